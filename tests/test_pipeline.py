"""A run is a pure function of its config: the surrogate cache changes nothing but time, and a
damaged cache entry is rebuilt instead of trusted."""
import pytest
import torch

from ddcore import runstore
from ddcore.config import preset
from ddcore.pipeline import execute_run
from ddcore.records import EmbeddingMap, Metrics, SyntheticImages


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


def test_a_run_records_its_precision_and_the_machine(tmp_path, monkeypatch):
    from ddcore import hardware

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))  # an AVX2-only CPU: auto means fp32
    cfg = preset("smoke").with_overrides(eval_epochs=1, map_points=100, device="cpu", bf16="auto")
    metrics = execute_run(runstore.create_run(tmp_path / "run", cfg))
    assert metrics.precision == "fp32" and "lacks native bf16" in metrics.precision_reason
    assert metrics.cpu_capability == hardware.cpu_capability() and metrics.threads == torch.get_num_threads()
    assert metrics.gpu is None
    assert Metrics.load(tmp_path / "run").precision == "fp32"
    assert any("precision fp32" in line for line in runstore.read_log(tmp_path / "run"))
    # --compile auto (every preset's): a smoke run's few iterations stay eager, and the run says why
    assert metrics.compiled is False and "do not repay compiling" in metrics.compile_reason
    assert any("do not repay compiling" in line for line in runstore.read_log(tmp_path / "run"))
    # a CPU whose flags name native bf16: the run's own DM iteration is timed in both, the ratio cached
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    monkeypatch.setattr(hardware, "_RATIOS", {})
    measured = execute_run(runstore.create_run(tmp_path / "measured", cfg))
    assert measured.precision_reason.startswith("measured: bf16 takes")
    bf16 = float(measured.precision_reason.split("bf16 takes ")[1].split("x")[0])
    real = float(measured.precision_reason.split("real side only ")[1].split("x")[0])
    best = min((bf16, "bf16"), (real, "bf16-real"))
    assert measured.precision == (best[1] if best[0] < hardware.FASTER else "fp32")
    assert len(list(runstore.cache_dir(tmp_path).glob("precision-*.json"))) == 1


def test_oracle_and_random_subset_runs(tmp_path):
    cfg = preset("smoke").with_overrides(eval_epochs=1, map_points=100, device="cpu")
    oracle = execute_run(runstore.create_run(tmp_path / "oracle", cfg.with_overrides(reweight="oracle")))
    # 5% conflicting spread over 9 colours: the oracle gives every present colour group of a class the same total
    assert oracle.weight_share_conflicting > 0.5 and oracle.count_share_conflicting < 0.1
    subset = execute_run(runstore.create_run(tmp_path / "subset", cfg.with_overrides(kind="random-subset", ipc=3)))
    stored = SyntheticImages.load(tmp_path / "subset")
    assert stored.images.shape[0] == 30 and stored.labels.bincount().tolist() == [3] * 10
    assert subset.weight_share_conflicting == subset.count_share_conflicting
    assert "subset" in subset.seconds_per_stage and "distill" not in subset.seconds_per_stage
    for metrics in (oracle, subset):
        assert len(metrics.group_accuracy) == 10 and metrics.test_acc_worst_group is not None
        assert metrics.deo_max >= metrics.deo_mean >= 0


def test_kde_smooth_changes_only_how_the_weights_spread(tmp_path):
    cfg = preset("smoke").with_overrides(eval_epochs=1, map_points=200)
    raw = execute_run(runstore.create_run(tmp_path / "raw", cfg))
    smooth = execute_run(runstore.create_run(tmp_path / "smooth", cfg.with_overrides(kde_smooth=True)))
    assert smooth.kde_sigma == raw.kde_sigma  # the same surrogate and bandwidth
    assert smooth.weight_share_conflicting != raw.weight_share_conflicting
    assert "(weights smoothed)" in "\n".join(runstore.read_log(tmp_path / "smooth"))
    weights = EmbeddingMap.load(tmp_path / "smooth").train_weight
    assert weights.min() > 0 and len(weights) == len(EmbeddingMap.load(tmp_path / "raw").train_weight)


def test_kde_scale_sets_the_adaptive_bandwidth_a_run_uses(tmp_path):
    cfg = preset("smoke").with_overrides(eval_epochs=1, map_points=200)
    wide = execute_run(runstore.create_run(tmp_path / "wide", cfg.with_overrides(kde_scale=1.0)))
    narrow = execute_run(runstore.create_run(tmp_path / "narrow", cfg.with_overrides(kde_scale=0.5)))
    assert "loaded from cache" in "\n".join(runstore.read_log(tmp_path / "narrow"))  # the same surrogate
    assert narrow.kde_sigma == pytest.approx(0.5 * wide.kde_sigma, rel=1e-5)
    assert narrow.weight_share_conflicting != wide.weight_share_conflicting
