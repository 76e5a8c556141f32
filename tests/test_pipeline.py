"""A run is a pure function of its config: the surrogate cache changes nothing but time, and a
damaged cache entry is rebuilt instead of trusted."""
import torch

from ddcore import runstore
from ddcore.config import preset
from ddcore.pipeline import execute_run
from ddcore.records import SyntheticImages


def test_same_config_same_result_with_fresh_hit_and_corrupt_cache(tmp_path):
    cfg = preset("smoke").with_overrides(eval_epochs=2, map_points=200)
    first = execute_run(runstore.create_run(tmp_path / "first", cfg))
    (cache,) = (tmp_path / ".cache").glob("surrogate-*.pt")
    second = execute_run(runstore.create_run(tmp_path / "second", cfg))
    cache.write_bytes(b"not a checkpoint")
    third = execute_run(runstore.create_run(tmp_path / "third", cfg))

    logs = {name: "\n".join(runstore.read_log(tmp_path / name)) for name in ("first", "second", "third")}
    assert "loaded from cache" not in logs["first"]
    assert "loaded from cache" in logs["second"]
    assert "unreadable" in logs["third"] and "retraining" in logs["third"]
    images = [SyntheticImages.load(tmp_path / name).images for name in ("first", "second", "third")]
    assert torch.equal(images[0], images[1]) and torch.equal(images[0], images[2])
    for metrics in (second, third):
        assert metrics.test_acc_unbiased == first.test_acc_unbiased
        assert metrics.weight_share_conflicting == first.weight_share_conflicting
