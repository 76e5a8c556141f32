"""Corrupted CIFAR-10 from CIFAR-10 batches written here in torchvision's pickle format: shapes,
corruption counts per ratio, determinism, the test split's uniform corruptions, and each damaged
input with its message."""
from __future__ import annotations

import os
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10

from datafiles import make_cifar
from ddcore.config import DataConfig
from ddcore.data import DATASET_SPECS, clear_cache, describe, load_biased, train_summary
from ddcore.data.cifar import CorruptedCIFAR10, load_cifar10
from ddcore.data.corruptions import CORRUPTION_TYPES
from ddcore.errors import ConfigError, DatasetError


def cifar_cfg(root, corruption_type: int = 0, **kw) -> DataConfig:
    return DataConfig(**{"dataset": f"cifar10c-{corruption_type}", "source": "files", "root": str(root),
                         "severity": 5, **kw})


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    return root, make_cifar(root, per_class_train=10, per_class_test=10)


def test_batches_read_as_written(cifar_root) -> None:
    root, made = cifar_root
    for train in (True, False):
        images, labels = load_cifar10(str(root), train)
        assert images.dtype == torch.uint8 and images.shape == (100, 3, 32, 32)
        assert np.array_equal(images.numpy(), made[train][0]) and np.array_equal(labels.numpy(), made[train][1])
    summary = train_summary(cifar_cfg(root))
    assert torch.equal(summary.class_counts, torch.full((10,), 10)) and summary.image_size == (32, 32)


@pytest.mark.parametrize("corruption_type", [0, 1])
def test_train_split_counts_and_names(cifar_root, corruption_type: int) -> None:
    root, _ = cifar_root
    data = load_biased(cifar_cfg(root, corruption_type, conflict_ratio=0.3), True, 0)
    assert data.images.shape == (100, 3, 32, 32) and data.images.dtype == torch.float32
    assert 0 <= data.images.min() and data.images.max() <= 1
    for c in range(10):  # 3 of each class's 10 get another class's corruption, each a different one
        of_c = data.bias[data.labels == c]
        counts = torch.bincount(of_c, minlength=10)
        assert counts[c] == 7 and int(counts.sum()) == 10 and int(counts.max()) == 7
        assert int((torch.cat([counts[:c], counts[c + 1:]]) > 1).sum()) == 0
    naming = describe(cifar_cfg(root, corruption_type))
    assert naming.bias_values[0] == CORRUPTION_TYPES[corruption_type][0].replace("_", " ")
    assert naming.classes[3] == "cat" and naming.aligned == tuple(range(10))
    assert DATASET_SPECS[f"cifar10c-{corruption_type}"].bias_attribute == "corruption"


def test_ratio_extremes_and_uniform_test_split(cifar_root) -> None:
    root, made = cifar_root
    assert not load_biased(cifar_cfg(root, 1, conflict_ratio=0.0), True, 0).conflicting.any()
    assert load_biased(cifar_cfg(root, 1, conflict_ratio=1.0), True, 0).conflicting.all()
    test = load_biased(cifar_cfg(root, 1, conflict_ratio=0.3), False, 0)
    for c in range(10):  # each class's 10 test images: every corruption once
        assert torch.equal(torch.bincount(test.bias[test.labels == c], minlength=10), torch.ones(10, dtype=torch.int64))
    # type 1's last "corruption" is the original image: those test images are CIFAR-10's own
    original = (test.bias == 9).numpy()
    assert np.array_equal((test.images[original] * 255).round().to(torch.uint8).numpy(), made[False][0][original])
    corrupted = (test.bias == 0).numpy()  # gaussian noise changes every image it touches
    assert not np.array_equal((test.images[corrupted] * 255).round().to(torch.uint8).numpy(), made[False][0][corrupted])


def test_deterministic_per_seed_and_resized(cifar_root) -> None:
    root, _ = cifar_root
    cfg = cifar_cfg(root, 0, conflict_ratio=0.2)
    a = load_biased(cfg, True, 3)
    clear_cache()  # rebuilt from the files, not served from the cache
    b = load_biased(cfg, True, 3)
    assert torch.equal(a.images, b.images) and torch.equal(a.bias, b.bias)
    c = load_biased(cfg, True, 4)
    assert torch.equal(a.labels, c.labels) and not torch.equal(a.bias, c.bias)
    small = load_biased(replace(cfg, image_size=16), True, 3)
    assert small.images.shape == (100, 3, 16, 16) and torch.equal(small.bias, a.bias)
    ds = CorruptedCIFAR10(str(root), train=False, corruption_type=1, severity=2, seed=1)
    image, label, bias, index = ds[5]
    assert image.shape == (3, 32, 32) and index == 5 and "uniform corruptions" in repr(ds)


def small_cifar(tmp_path):
    make_cifar(tmp_path, per_class_train=1, per_class_test=1)
    return tmp_path / "cifar-10-batches-py"


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:200]), "is corrupt or truncated"),
    (lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), "does not hold a batch of 32x32 RGB images"),
    (lambda p: p.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 12]})),
     "has labels outside 0..9"),
    (lambda p: p.write_bytes(pickle.dumps(os.system)), "posix.system is not allowed in a CIFAR-10 batch"),
])
def test_damaged_batch_names_the_file(tmp_path, damage, message) -> None:
    path = small_cifar(tmp_path) / "data_batch_3"
    damage(path)
    with pytest.raises(DatasetError) as err:
        train_summary(cifar_cfg(tmp_path))
    assert message in str(err.value) and str(path) in str(err.value) and "--download" in str(err.value)


def test_missing_files_and_wrong_root(tmp_path, monkeypatch) -> None:
    with pytest.raises(DatasetError) as err:
        load_biased(cifar_cfg(tmp_path / "none"), True, 0)
    assert os.path.join(str(tmp_path / "none"), "cifar-10-batches-py", "data_batch_1") in str(err.value)
    assert "--download" in str(err.value)
    folder = small_cifar(tmp_path / "data")
    (folder / "test_batch").unlink()
    with pytest.raises(DatasetError, match="test_batch"):  # found before a run starts, by the preflight
        train_summary(cifar_cfg(tmp_path / "data"))
    with pytest.raises(DatasetError, match="looks like cifar-10-batches-py itself"):
        load_biased(cifar_cfg(folder), True, 0)
    (tmp_path / "tar").mkdir()
    (tmp_path / "tar" / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(DatasetError, match="found only cifar-10-python.tar.gz; extract it there"):
        load_biased(cifar_cfg(tmp_path / "tar"), True, 0)

    def offline(self) -> None:
        raise RuntimeError("Error downloading cifar-10-python.tar.gz")

    monkeypatch.setattr(CIFAR10, "download", offline)
    with pytest.raises(DatasetError, match="could not download CIFAR-10"):
        load_biased(cifar_cfg(tmp_path / "none", download=True), True, 0)
    with pytest.raises(ConfigError, match="cifar10c-1 has no bundled sample; pass --source files --root DIR"):
        load_biased(DataConfig(dataset="cifar10c-1"), True, 0)


def test_validation_split_comes_from_the_training_batches(cifar_root) -> None:
    root, made = cifar_root
    cfg = cifar_cfg(root, evaluate_on="validation")
    train, val = load_biased(cfg, True, 0), load_biased(cfg, False, 0)
    assert torch.bincount(train.labels).tolist() == [9] * 10 and torch.bincount(val.labels).tolist() == [1] * 10
    assert train_summary(cfg).class_counts.tolist() == [9] * 10
    # the held-out image of each class is its 10th training image (file order)
    labels = made[True][1]
    tenth = [int(np.flatnonzero(labels == c)[9]) for c in range(10)]
    plain = CorruptedCIFAR10(str(root), False, corruption_type=0, severity=5, seed=0, validation=True)
    assert plain.labels.tolist() == labels[tenth].tolist()
