"""The dataset registry and config rules, background-coloured Fashion-MNIST and BFFHQ, each built
from small files written here (never ../shared, never the network)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from datafiles import make_bffhq, make_idx_dataset, write_png
from ddcore.config import DATASETS, MAX_IMAGE_SIZE, DataConfig, RunConfig, preset, validate
from ddcore.data import (
    BFFHQ,
    DATASET_SPECS,
    PALETTE,
    SEVERITY_STD,
    BiasedTensors,
    ColoredFashionMNIST,
    describe,
    files_help,
    keep_for_ratio,
    load_biased,
    train_summary,
)
from ddcore.errors import ConfigError, DatasetError
from ddcore.pipeline import preflight

ROOT = Path(__file__).resolve().parents[1]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# registry, config, BiasedTensors


def test_every_dataset_has_a_complete_spec() -> None:
    assert set(DATASET_SPECS) == set(DATASETS)
    for name, spec in DATASET_SPECS.items():
        assert spec.name == name and spec.title and spec.bias_attribute
        assert spec.path_option in ("--root", "--csv-path")
        help_text = spec.files_help(DataConfig(dataset=name, root="/data/here"))
        assert ("--csv-path" if name == "csv" else "/data/here") in help_text
        if spec.naming is not None:
            n = spec.naming
            assert len(n.bias_values) == len(n.colours) and len(n.aligned) == len(n.classes)
            assert all(0 <= v <= 1 for colour in n.colours for v in colour)
    assert [name for name, s in DATASET_SPECS.items() if s.bundled] == ["cmnist", "bg-cmnist"]
    assert describe(DataConfig()).colours[3] == pytest.approx(tuple(PALETTE[3].tolist()))


def test_biased_tensors_aligned_bias() -> None:
    labels, bias = torch.tensor([0, 0, 1, 1]), torch.tensor([2, 0, 1, 2])
    default = BiasedTensors(torch.zeros(4, 3, 2, 2), labels, bias, 2)  # the old positional API
    assert default.aligned_bias.tolist() == [0, 1] and default.conflicting.tolist() == [True, False, False, True]
    custom = BiasedTensors(torch.zeros(4, 3, 2, 2), labels, bias, 2, torch.tensor([2, 1]))
    assert custom.conflicting.tolist() == [False, True, False, True]
    assert torch.equal(custom.to("cpu").aligned_bias, torch.tensor([2, 1]))
    with pytest.raises(ValueError, match="aligned_bias"):
        BiasedTensors(torch.zeros(4, 3, 2, 2), labels, bias, 2, torch.tensor([0, 1, 2]))


def test_legacy_mnist_source_reads_as_files() -> None:
    d = RunConfig().to_dict()
    d["data"] = {k: v for k, v in d["data"].items() if k not in ("image_size", "csv_path")}  # an older folder
    d["data"]["source"] = "mnist"
    assert RunConfig.from_dict(d).data.source == "files"


@pytest.mark.parametrize("overrides, message", [
    ({"dataset": "bffhq"}, "bffhq has no bundled sample; pass --source files --root DIR"),
    ({"dataset": "csv"}, "csv has no bundled sample; pass --source files --csv-path FILE"),
    ({"dataset": "bffhq", "source": "files", "root": "/x", "download": True}, "torchvision cannot download bffhq"),
    ({"conflict_ratio": None}, "cmnist assigns the bias itself"),
    ({"dataset": "csv", "source": "files", "csv_path": "a.csv", "root": "/x"}, "--root is not used"),
    ({"csv_path": "a.csv"}, "--csv-path is for --dataset csv only"),
    ({"image_size": 0}, "image size must be a whole number of pixels"),
    ({"image_size": MAX_IMAGE_SIZE + 1}, "image size must be a whole number of pixels"),
    ({"image_size": 4}, "too small for a depth-3 ConvNet"),
    ({"source": "mnist"}, "unknown source 'mnist'; choose one of bundled, files"),
])
def test_config_errors_name_the_fix(overrides, message) -> None:
    cfg = preset("quick").with_overrides(**overrides)
    with pytest.raises(ConfigError) as err:
        preflight(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_image_size_resizes_and_preflight_checks_native_size(tmp_path) -> None:
    data = load_biased(DataConfig(image_size=32, conflict_ratio=0.1), True, 0)
    assert data.images.shape == (4000, 3, 32, 32) and 0 <= data.images.min() and data.images.max() <= 1
    assert train_summary(DataConfig(image_size=32)).image_size == (32, 32)
    # a network deeper than the images allow: 28 px survive four halvings only as 1 px
    with pytest.raises(ConfigError, match="images are 28x28, too small for a depth-5 ConvNet"):
        preflight(preset("smoke").with_overrides(net_depth=5))
    validate(preset("smoke").with_overrides(net_depth=5, image_size=32))


def test_cli_lists_every_data_option() -> None:
    result = subprocess.run([sys.executable, "-m", "ddcore", "distill", "--help"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    for flag in ("--dataset", "--source", "--root", "--download", "--conflict-ratio", "--severity", "--image-size",
                 "--csv-path"):
        assert flag in result.stdout, flag


def test_keep_for_ratio_rule() -> None:
    labels = torch.tensor([0] * 20 + [1] * 10)
    conflicting = torch.zeros(30, dtype=torch.bool)
    conflicting[:4] = True  # class 0: 4 of 20 (20%); class 1: none
    names = ("a", "b")
    assert keep_for_ratio(labels, conflicting, None, names, "d", gen()).all()
    with pytest.raises(ConfigError, match=r"0% bias-conflicting samples in class 'b' \(0 of 10\).*at most --conflict-ratio 0\b"):
        keep_for_ratio(labels, conflicting, 0.1, names, "d", gen())
    only_a = labels == 0
    keep = keep_for_ratio(labels[only_a], conflicting[only_a], 0.1, names[:1], "d", gen())
    # 16 aligned kept; round(0.1 / 0.9 * 16) = 2 of the 4 conflicting
    assert int(keep.sum()) == 18 and int((keep & conflicting[only_a]).sum()) == 2
    assert int(keep_for_ratio(labels[only_a], conflicting[only_a], 0.2, names[:1], "d", gen()).sum()) == 20
    assert int(keep_for_ratio(labels[only_a], conflicting[only_a], 0.0, names[:1], "d", gen()).sum()) == 16


# ---------------------------------------------------------------------------------------------
# background-coloured Fashion-MNIST


def test_bg_fmnist_from_idx_files(tmp_path) -> None:
    made = make_idx_dataset(tmp_path, "FashionMNIST", n_train=60, n_test=20)
    cfg = DataConfig(dataset="bg-fmnist", source="files", root=str(tmp_path), conflict_ratio=0.5, severity=5)
    train, test = load_biased(cfg, True, 0), load_biased(cfg, False, 0)
    assert train.images.shape == (60, 3, 28, 28) and test.images.shape == (20, 3, 28, 28)
    assert torch.equal(train.labels, made["train"][1])
    # 6 per class at 50%: 3 conflicting per class, over the other colours
    assert torch.equal(torch.bincount(train.labels[train.conflicting], minlength=10), torch.full((10,), 3))
    # background colouring: grey g becomes g + (1 - g) * colour, so black pixels show the colour
    grey = made["train"][0].float() / 255
    colour = (train.images[:, :, 0, 0] - grey[:, None, 0, 0]) / (1 - grey[:, None, 0, 0]).clamp_min(1e-3)
    dark = grey[:, 0, 0] < 0.9
    assert torch.all((colour[dark] - PALETTE[train.bias[dark]]).abs() <= 0.02 + 5 * SEVERITY_STD[5])
    assert torch.equal(train_summary(cfg).class_counts, torch.full((10,), 6))
    again = load_biased(cfg, True, 0)
    assert torch.equal(again.images, train.images) and not torch.equal(load_biased(cfg, True, 1).bias, train.bias)
    assert len(ColoredFashionMNIST(str(tmp_path), train=False, seed=0)) == 20
    assert describe(cfg).classes[9] == "ankle boot"


def test_bg_fmnist_missing_files_and_bundled(tmp_path) -> None:
    cfg = DataConfig(dataset="bg-fmnist", source="files", root=str(tmp_path))
    with pytest.raises(DatasetError) as err:
        load_biased(cfg, True, 0)
    assert os.path.join(str(tmp_path), "FashionMNIST", "raw", "train-images-idx3-ubyte") in str(err.value)
    assert "--download" in str(err.value)
    with pytest.raises(ConfigError, match="bg-fmnist has no bundled sample; pass --source files --root DIR"):
        load_biased(DataConfig(dataset="bg-fmnist"), True, 0)
    assert "FashionMNIST/raw" in files_help(cfg) and "--download" in files_help(cfg)


# ---------------------------------------------------------------------------------------------
# BFFHQ


def bffhq_cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(**{"dataset": "bffhq", "source": "files", "root": str(root), "conflict_ratio": None, **kw})


@pytest.fixture(scope="module")
def bffhq_root(tmp_path_factory) -> Path:
    return make_bffhq(tmp_path_factory.mktemp("bffhq-data"))


def test_bffhq_train_split_as_distributed(bffhq_root) -> None:
    data = load_biased(bffhq_cfg(bffhq_root), True, 0)
    assert data.images.shape == (88, 3, 64, 64) and data.num_classes == 2  # resized to the default 64
    assert torch.equal(torch.bincount(data.labels), torch.tensor([44, 44]))
    assert int(data.conflicting.sum()) == 8 and torch.equal(data.conflicting, data.labels != data.bias)
    young_women = data.images[(data.labels == 0) & (data.bias == 0)]
    assert torch.allclose(young_women[:, :, 8, 8], torch.tensor([60, 80, 200]) / 255)  # the file's colour
    assert torch.equal(train_summary(bffhq_cfg(bffhq_root)).class_counts, torch.tensor([44, 44]))
    small = load_biased(bffhq_cfg(bffhq_root, image_size=16), True, 0)
    assert small.images.shape == (88, 3, 16, 16) and small.images[0, :, 0, 0].sum() == 0  # the dark pixel kept


def test_bffhq_ratio_subsamples_conflicting(bffhq_root) -> None:
    cfg = bffhq_cfg(bffhq_root, conflict_ratio=0.05)
    data = load_biased(cfg, True, 0)
    # per class 40 aligned + round(0.05 / 0.95 * 40) = 2 of the 4 conflicting
    assert torch.equal(torch.bincount(data.labels), torch.tensor([42, 42]))
    assert torch.equal(torch.bincount(data.labels[data.conflicting]), torch.tensor([2, 2]))
    assert torch.equal(train_summary(cfg).class_counts, torch.tensor([42, 42]))
    assert torch.equal(load_biased(cfg, True, 0).images, data.images)  # deterministic per seed
    with pytest.raises(ConfigError, match=r"only 9\.09% bias-conflicting samples in class 'young' \(4 of 44\); "
                                          r"ask for at most --conflict-ratio 0\.0909"):
        load_biased(bffhq_cfg(bffhq_root, conflict_ratio=0.1), True, 0)


def test_bffhq_seed_picks_which_conflicting_images(tmp_path) -> None:
    root = tmp_path / "data"
    base = root / "bffhq"
    for i in range(8):  # distinguishable conflicting images: their red channel is their number
        write_png(base / "0.5pct" / "conflict" / "0" / f"c{i}_0_1.png", (10 * i, 0, 0))
        write_png(base / "0.5pct" / "conflict" / "1" / f"d{i}_1_0.png", (10 * i, 0, 0))
    for i in range(40):
        write_png(base / "0.5pct" / "align" / "0" / f"a{i}_0_0.png", (0, 200, 0))
        write_png(base / "0.5pct" / "align" / "1" / f"b{i}_1_1.png", (0, 200, 0))
    write_png(base / "test" / "t_0_1.png", (0, 0, 0))
    cfg = bffhq_cfg(root, conflict_ratio=0.05)
    picks = set()
    for seed in range(5):
        data = load_biased(cfg, True, seed)
        picks.add(tuple(sorted((data.images[data.conflicting][:, 0, 8, 8] * 255).round().int().tolist())))
    assert len(picks) > 1 and all(len(p) == 4 for p in picks)


def test_bffhq_test_split_is_conflicting_only(bffhq_root) -> None:
    test = load_biased(bffhq_cfg(bffhq_root, conflict_ratio=0.05), False, 0)  # the ratio never touches it
    assert len(test) == 12 and test.conflicting.all()
    assert torch.equal(torch.bincount(test.labels), torch.tensor([6, 6]))
    ds = BFFHQ(str(bffhq_root), train=False, image_size=32)
    image, label, bias, index = ds[3]
    assert image.shape == (3, 32, 32) and label != bias and index == 3 and "conflicting only" in repr(ds)


def test_bffhq_missing_and_wrong_folders(tmp_path, bffhq_root) -> None:
    with pytest.raises(DatasetError) as err:
        load_biased(bffhq_cfg(tmp_path / "empty"), True, 0)
    assert os.path.join(str(tmp_path / "empty"), "bffhq", "0.5pct", "align") in str(err.value)
    assert "torchvision cannot download BFFHQ" in str(err.value)
    with pytest.raises(DatasetError, match="looks like the bffhq folder itself; --root must be the folder that holds bffhq/"):
        load_biased(bffhq_cfg(bffhq_root / "bffhq"), True, 0)
    with pytest.raises(ConfigError, match="dataset bffhq needs its files"):
        BFFHQ(None)


def test_bffhq_bad_names_and_unreadable_images(tmp_path) -> None:
    root = make_bffhq(tmp_path / "data", aligned=3, conflicting=1, test_per_group=1)
    conflict = root / "bffhq" / "0.5pct" / "conflict" / "0"
    write_png(conflict / "7_young_1.png", (1, 2, 3))
    write_png(conflict / "noname.png", (1, 2, 3))
    with pytest.raises(DatasetError) as err:
        train_summary(bffhq_cfg(root))
    message = str(err.value)
    assert "has 2 bad file names" in message and "7_young_1.png" in message and "noname.png" in message
    (conflict / "7_young_1.png").unlink()
    (conflict / "noname.png").unlink()
    broken = conflict / "9_0_1.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError) as err:
        load_biased(bffhq_cfg(root, image_size=8), True, 0)
    assert "has 1 bad images" in str(err.value) and str(broken) in str(err.value)
