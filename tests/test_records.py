"""The typed run record: every file checks its types and shapes, says which file is damaged and
how, and reads the files of older versions."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ddcore import runstore
from ddcore.config import preset
from ddcore.records import (
    VERSION, DamagedRun, EmbeddingMap, Metrics, RecordError, Status, SyntheticImages, thumbnails,
)
from runfiles import Bomb, fake_map


def test_metrics_are_flat_json_with_typed_fields_and_method_extras(tmp_path: Path) -> None:
    metrics = Metrics.from_json({"test_acc_unbiased": 91, "seconds_per_stage": {"distill": 3}, "learned_lr": 0.02,
                                 "experts_loaded": 2, "note": "x", "curve": [1, 2.5]})
    assert metrics.test_acc_unbiased == 91.0 and isinstance(metrics.test_acc_unbiased, float)
    assert metrics.extra == {"learned_lr": 0.02, "experts_loaded": 2, "note": "x", "curve": [1, 2.5]}
    metrics.save(tmp_path)
    raw = json.loads((tmp_path / "metrics.json").read_text())
    assert raw["learned_lr"] == 0.02 and raw["version"] == VERSION and "extra" not in raw, "flat, as before"
    assert Metrics.load(tmp_path) == metrics
    assert Metrics.load(tmp_path / "nothing-yet") is None


@pytest.mark.parametrize(("values", "message"), [
    ({"test_acc_unbiased": "abc"}, "test_acc_unbiased should be a number or null, got 'abc'"),
    ({"test_acc_unbiased": 101.0}, "test_acc_unbiased should lie in [0.0, 100.0]"),
    ({"weight_share_conflicting": -0.1}, "weight_share_conflicting should lie in [0.0, 1.0]"),
    ({"num_train": 2.5}, "num_train should be a whole number or null"),
    ({"seconds_per_stage": {"map": "slow"}}, "seconds_per_stage.map should be a number"),
    ({"learned_lr": {"nested": 1}}, "learned_lr should be a number, text, true or false, null or a list"),
    ({"test_acc_unbiased_per_model": [50.0, None]}, "test_acc_unbiased_per_model[1] should be a number"),
])
def test_metrics_of_the_wrong_type_are_a_damaged_run_naming_the_file(tmp_path: Path, values, message) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps(values))
    with pytest.raises(DamagedRun) as caught:
        Metrics.load(tmp_path)
    assert str(tmp_path / "metrics.json") in str(caught.value) and message in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not readable JSON"),
    ("[1, 2]", "should hold a JSON object"),
    ('{"state": "running", "version": 99}', "written by a newer ddcore (record version 99"),
    ('{"state": "exploded"}', "state should be one of queued, running, done, failed, cancelled"),
    ('{"progress": "abc"}', "progress should be a number, got 'abc'"),
    ('{"progress": 1.5}', "progress should lie in [0.0, 1.0]"),
    ('{"eta_seconds": Infinity}', "eta_seconds should be a number or null"),
    ('{"pid": true}', "pid should be a whole number or null"),
    ('{"created": 1' + "0" * 400 + '}', "created should be a finite number, got 1000"),
])
def test_damaged_status_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "status.json").write_text(text)
    with pytest.raises(DamagedRun, match="status.json is damaged") as caught:
        Status.load(tmp_path)
    assert message in str(caught.value)


def test_version_1_json_files_still_load(tmp_path: Path) -> None:
    # written by the code before the record existed: no version, no warning field
    (tmp_path / "status.json").write_text(json.dumps({"state": "done", "progress": 1.0, "created": 5.0, "pid": 7}))
    (tmp_path / "metrics.json").write_text(json.dumps({"test_acc_unbiased": 26.7, "learned_lr": 0.01}))
    assert Status.load(tmp_path) == Status(state="done", progress=1.0, created=5.0, pid=7)
    assert Metrics.load(tmp_path).extra == {"learned_lr": 0.01}


def test_synthetic_images_keep_their_normalisation_and_display_in_range(tmp_path: Path) -> None:
    pixels = torch.rand(4, 3, 8, 8)
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.3])
    record = SyntheticImages((pixels - mean[:, None, None]) / std[:, None, None], torch.tensor([0, 0, 1, 1]), mean, std)
    record.save(tmp_path)
    back = SyntheticImages.load(tmp_path)
    torch.testing.assert_close(back.display(), pixels)
    loud = SyntheticImages(torch.full((1, 3, 2, 2), 9.0), torch.tensor([0]))
    assert loud.display().max() == 1.0, "display images are clamped to [0, 1]"


def test_version_1_synthetic_files_read_as_mean_0_std_1(tmp_path: Path) -> None:
    images = torch.rand(2, 3, 4, 4)
    torch.save({"images": images, "labels": torch.tensor([0, 1])}, tmp_path / "synthetic.pt")
    record = SyntheticImages.load(tmp_path)
    assert record.mean.tolist() == [0, 0, 0] and record.std.tolist() == [1, 1, 1]
    assert torch.equal(record.display(), images)


@pytest.mark.parametrize(("payload", "message"), [
    ({"images": torch.rand(2, 3, 4, 4).double(), "labels": torch.tensor([0, 1])}, "images should be float32"),
    ({"images": torch.rand(2, 1, 4, 4), "labels": torch.tensor([0, 1])}, "images should be float32 [N, 3, H, W]"),
    ({"images": torch.rand(2, 3, 4, 4), "labels": torch.tensor([0])}, "labels should be int64 [2]"),
    ({"images": torch.rand(2, 3, 4, 4), "labels": torch.tensor([0, -1])}, "not negative"),
    ({"images": torch.full((1, 3, 2, 2), float("nan")), "labels": torch.tensor([0])}, "non-finite"),
    ({"images": torch.rand(1, 3, 2, 2), "labels": torch.tensor([0]), "std": torch.zeros(3)}, "std should be positive"),
    ({"pictures": torch.rand(1, 3, 2, 2)}, "should hold a dict with 'images' and 'labels'"),
])
def test_damaged_synthetic_files(tmp_path: Path, payload, message: str) -> None:
    torch.save(payload, tmp_path / "synthetic.pt")
    with pytest.raises(DamagedRun, match="synthetic.pt is damaged") as caught:
        SyntheticImages.load(tmp_path)
    assert message in str(caught.value)


def test_a_pickle_bomb_is_refused_without_running_it_or_suggesting_weights_only_false(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.write_text("alive")
    torch.save({"images": Bomb(canary), "labels": torch.tensor([0])}, tmp_path / "synthetic.pt")
    with pytest.raises(DamagedRun, match="objects other than plain tensors") as caught:
        SyntheticImages.load(tmp_path)
    assert canary.exists() and "weights_only" not in str(caught.value)
    (tmp_path / "synthetic.pt").write_bytes((tmp_path / "synthetic.pt").read_bytes()[:100])
    with pytest.raises(DamagedRun, match="not a readable tensor file"):
        SyntheticImages.load(tmp_path)


def test_embedding_map_round_trip_and_thumbnails(tmp_path: Path) -> None:
    emb = fake_map()
    emb.save(tmp_path)
    back = EmbeddingMap.load(tmp_path)
    assert back.classes == ("0", "1") and back.bias_attribute == "colour" and back.real_thumbs.shape == (50, 4, 4, 3)
    np.testing.assert_array_equal(back.real_map, emb.real_map)
    assert not back.real_map.flags.writeable, "a record's arrays are read-only"
    assert thumbnails(torch.rand(3, 3, 64, 48)).shape == (3, 32, 24, 3)
    assert thumbnails(torch.ones(1, 3, 28, 28)).dtype == np.uint8 and thumbnails(torch.ones(1, 3, 28, 28)).max() == 255


@pytest.mark.parametrize(("change", "message"), [
    ({"real_map": np.zeros((50, 3), dtype=np.float32)}, "real_map should be float32 [n, 2]"),
    ({"real_label": np.zeros(49, dtype=np.int64)}, "real_label has shape [49]; its 'n' should be 50"),
    ({"real_weight": np.full(50, np.nan, dtype=np.float32)}, "real_weight holds non-finite values"),
    ({"syn_neighbors": np.full((4, 3), 50)}, "syn_neighbors should index 0..49"),
    ({"real_label": np.full(50, 5)}, "real_label should index 0..1"),
    ({"classes": ("only one",)}, "need as many names"),
])
def test_embedding_maps_with_wrong_shapes_or_indices_are_refused(tmp_path: Path, change, message: str) -> None:
    with pytest.raises(RecordError, match=message.replace("[", r"\[").replace("]", r"\]")):
        dataclasses.replace(fake_map(), **change)
    arrays = {k: v for k, v in dict(np.load(_saved(tmp_path))).items()}
    arrays.update({k: np.array(v) for k, v in change.items()})
    np.savez(tmp_path / "embeddings.npz", **arrays)
    with pytest.raises(DamagedRun, match="embeddings.npz is damaged"):
        EmbeddingMap.load(tmp_path)


def _saved(folder: Path) -> Path:
    fake_map().save(folder)
    return folder / "embeddings.npz"



def test_a_map_version_beyond_any_whole_number_is_a_damaged_run(tmp_path: Path) -> None:
    arrays = dict(np.load(_saved(tmp_path)))
    np.savez(tmp_path / "embeddings.npz", **{**arrays, "version": np.array(np.inf)})
    with pytest.raises(DamagedRun, match="embeddings.npz is damaged"):
        EmbeddingMap.load(tmp_path)

def test_object_arrays_and_truncated_maps_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "embeddings.npz", real_map=np.array([{"x": 1}], dtype=object))
    with pytest.raises(DamagedRun, match="not a plain array file"):
        EmbeddingMap.load(tmp_path)
    data = _saved(tmp_path).read_bytes()
    (tmp_path / "embeddings.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedRun, match="not a readable array file"):
        EmbeddingMap.load(tmp_path)


V1_ARRAYS = ("real_index", "real_features", "real_log_density", "real_density", "real_weight", "real_label",
             "real_bias", "real_map", "syn_features", "syn_log_density", "syn_label", "syn_map", "syn_neighbors",
             "train_log_density", "train_weight", "train_label", "train_bias")


@pytest.mark.parametrize(("classes", "named"), [(10, True), (2, False)])
def test_version_1_maps_get_names_from_the_run_config_and_no_thumbnails(tmp_path: Path, classes: int,
                                                                        named: bool) -> None:
    run = runstore.create_run(tmp_path / "old", preset("smoke"))  # coloured MNIST: ten classes and colours
    emb = fake_map(n=40, classes=classes)
    np.savez_compressed(run / "embeddings.npz", **{k: getattr(emb, k) for k in V1_ARRAYS},
                        density_space=np.array("old space"))
    old = EmbeddingMap.load(run)
    assert old.real_thumbs is None and old.density_space == "old space"
    assert old.aligned_bias.tolist() == list(range(classes)), "the oldest maps had no aligned_bias: class c's was c"
    if named:  # the config still describes the data: its names and colours
        assert old.bias_attribute == "colour" and old.bias_values[0] == "colour 0" and len(old.colours) == 10
    else:  # it does not (two classes, not ten): indices and grey
        assert old.bias_attribute == "bias" and old.classes == ("0", "1") and (old.colours == 0.6).all()
