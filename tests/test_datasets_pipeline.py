"""Every file-based dataset through a whole run (data -> surrogate -> density -> distill ->
evaluate -> map): other image sizes (CIFAR 32x32, BFFHQ 64x64), other class counts (BFFHQ's 2)
and MTT's experts on them, from files the tests write."""
from __future__ import annotations

import pytest
import torch

from datafiles import make_bffhq, make_cifar
from ddcore import runstore
from ddcore.config import preset
from ddcore.errors import DivergedError
from ddcore.pipeline import execute_run
from ddcore.records import THUMB_SIDE, EmbeddingMap, SyntheticImages

FAST = dict(surrogate="untrained", iterations=2, eval_epochs=2, map_points=40, map_neighbors=5, source="files")


@pytest.mark.parametrize(("dataset", "method", "side", "classes"), [
    ("cifar10c-1", "dm", 32, 10),
    ("cifar10c-0", "mtt", 32, 10),
    ("bffhq", "dc", 64, 2),
])
def test_a_whole_run_on_each_file_dataset(tmp_path, dataset: str, method: str, side: int, classes: int) -> None:
    data = tmp_path / "data"
    if dataset == "bffhq":
        make_bffhq(data, aligned=12, conflicting=3, test_per_group=3)
        extra = {"conflict_ratio": None}
    else:
        make_cifar(data, per_class_train=6, per_class_test=2)
        extra = {"severity": 5}
    if method == "mtt":
        extra["lr_lr"] = 0.0  # a fixed student lr: on 60 noise images the experts take one step (see below)
    cfg = preset("smoke", method).with_overrides(dataset=dataset, root=str(data), **FAST, **extra)
    run = runstore.create_run(tmp_path / "runs" / "run", cfg)
    metrics = execute_run(run)
    synthetic = SyntheticImages.load(run)
    images, labels = synthetic.images, synthetic.labels
    assert images.shape == (classes * cfg.distill.ipc, 3, side, side)
    assert labels.tolist() == torch.arange(classes).repeat_interleave(cfg.distill.ipc).tolist()
    assert metrics.num_train == (classes * 15 if dataset == "bffhq" else 60)
    assert 0.0 <= metrics.test_acc_unbiased <= 100.0
    embeddings = EmbeddingMap.load(run)
    assert embeddings.syn_map.shape == (len(labels), 2)
    thumb_side = min(side, THUMB_SIDE)  # BFFHQ's 64x64 faces are kept as 32x32 thumbnails
    assert embeddings.real_thumbs.shape == (len(embeddings.real_index), thumb_side, thumb_side, 3)
    assert len(embeddings.classes) == classes
    assert runstore.read_status(run).state == "done"


def test_a_runaway_learned_lr_fails_the_run_with_its_message_and_keeps_the_folder(tmp_path) -> None:
    # experts that took a single SGD step (60 images, batch 64) make the lr's gradient huge: the
    # guard must stop the run with a message naming the fix, recorded where the app shows it
    make_cifar(tmp_path / "data", per_class_train=6, per_class_test=2)
    cfg = preset("smoke", "mtt").with_overrides(dataset="cifar10c-0", root=str(tmp_path / "data"), severity=5, **FAST)
    run = runstore.create_run(tmp_path / "runs" / "run", cfg)
    with pytest.raises(DivergedError):
        execute_run(run)
    status = runstore.read_status(run)
    assert status.state == "failed" and "learned student lr" in status.message and "--lr-lr" in status.message
    assert (run / "config.json").is_file() and "experts" in (run / "log.txt").read_text()
