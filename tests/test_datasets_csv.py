"""The user's own data: a CSV of (path, label, bias[, split]) with images, written here. Shapes,
names, the aligned value per class, the ratio rule, the hold-out split, every bad-row case with its
line number, and one smoke run through the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from datafiles import write_csv, write_png
from ddcore.cli import main
from ddcore.config import DataConfig
from ddcore.data import BiasedCSV, describe, load_biased, train_summary
from ddcore.errors import ConfigError, DatasetError

ROOT = Path(__file__).resolve().parents[1]
COLOUR = {"indoor": (200, 40, 40), "outdoor": (40, 200, 40), "studio": (40, 40, 200)}


def csv_cfg(path: Path | None, **kw) -> DataConfig:
    return DataConfig(**{"dataset": "csv", "source": "files", "csv_path": path and str(path), "conflict_ratio": None,
                         **kw})


def make_dataset(folder: Path, split_column: bool = True) -> Path:
    """cats mostly indoor, dogs mostly outdoor. Training: per class 20 aligned and 4 conflicting
    (2 + 2 over the other two values); test: per class 5 aligned and 5 conflicting."""
    rows = []
    for label, aligned, others in (("cat", "indoor", ("outdoor", "studio")), ("dog", "outdoor", ("indoor", "studio"))):
        plan = [("train", aligned)] * 20 + [("train", b) for b in others for _ in range(2)]
        plan += [("test", aligned)] * 5 + [("test", others[i % 2]) for i in range(5)]
        for i, (split, bias) in enumerate(plan):
            name = f"img/{label}-{split}-{i}.png"
            write_png(folder / name, COLOUR[bias], (12, 12))
            rows.append([name, label, bias] + ([split] if split_column else []))
    return write_csv(folder / "data.csv", rows, "path,label,bias" + (",split" if split_column else ""))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("csv-data"))


def test_csv_with_split_column(dataset) -> None:
    train, test = load_biased(csv_cfg(dataset), True, 0), load_biased(csv_cfg(dataset), False, 0)
    assert train.images.shape == (48, 3, 12, 12) and test.images.shape == (20, 3, 12, 12)
    naming = describe(csv_cfg(dataset))
    assert naming.classes == ("cat", "dog") and naming.bias_values == ("indoor", "outdoor", "studio")
    assert naming.aligned == (0, 1) and train.aligned_bias.tolist() == [0, 1] and len(naming.colours) == 3
    assert torch.equal(torch.bincount(train.labels[train.conflicting]), torch.tensor([4, 4]))
    assert torch.equal(torch.bincount(test.labels[test.conflicting]), torch.tensor([5, 5]))
    indoor_cat = train.images[(train.labels == 0) & (train.bias == 0)]
    assert torch.allclose(indoor_cat[:, :, 5, 5], torch.tensor([200, 40, 40]) / 255)
    summary = train_summary(csv_cfg(dataset))
    assert torch.equal(summary.class_counts, torch.tensor([24, 24])) and summary.image_size == (12, 12)


def test_csv_ratio_rule_and_items(dataset) -> None:
    cfg = csv_cfg(dataset, conflict_ratio=0.1)
    data = load_biased(cfg, True, 0)
    # per class 20 aligned + round(0.1 / 0.9 * 20) = 2 of the 4 conflicting
    assert torch.equal(torch.bincount(data.labels), torch.tensor([22, 22]))
    assert torch.equal(train_summary(cfg).class_counts, torch.tensor([22, 22]))
    assert torch.equal(load_biased(cfg, True, 0).bias, data.bias)
    with pytest.raises(ConfigError, match=r"only 16\.7% bias-conflicting samples in class 'cat' \(4 of 24\)"):
        load_biased(csv_cfg(dataset, conflict_ratio=0.2), True, 0)
    ds = BiasedCSV(str(dataset), train=False)
    image, label, bias, index = ds[7]
    assert image.shape == (3, 12, 12) and (label, bias, index) == (int(ds.labels[7]), int(ds.bias[7]), 7)
    assert ds.lines[0] == 26  # the header, then the 24 training rows of cats: cats' first test row
    resized = load_biased(csv_cfg(dataset, image_size=20), False, 0)
    assert resized.images.shape == (20, 3, 20, 20)


def test_csv_without_split_holds_out_a_fixed_fifth(tmp_path) -> None:
    rows = []
    for label, aligned in (("2", "0"), ("10", "1")):  # whole numbers sort as numbers: 2 before 10
        for i in range(20):
            write_png(tmp_path / f"{label}-a{i}.png", (9, 9, 9))
            rows.append([label, f"{label}-a{i}.png", aligned])
        for i in range(3):
            write_png(tmp_path / f"{label}-c{i}.png", (9, 9, 9))
            rows.append([label, f"{label}-c{i}.png", "7"])
    path = write_csv(tmp_path / "nosplit.csv", rows, "label,path,bias")  # any column order
    cfg = csv_cfg(path)
    naming = describe(cfg)
    assert naming.classes == ("2", "10") and naming.bias_values == ("0", "1", "7") and naming.aligned == (0, 1)
    train, test = load_biased(cfg, True, 0), load_biased(cfg, False, 5)
    # per class: 4 of the 20 aligned and round(0.6) = 1 of the 3 conflicting are held out
    assert torch.equal(torch.bincount(train.labels), torch.tensor([18, 18]))
    assert torch.equal(torch.bincount(test.labels), torch.tensor([5, 5]))
    assert torch.equal(torch.bincount(test.labels[test.conflicting]), torch.tensor([1, 1]))
    assert torch.equal(load_biased(cfg, False, 9).images, test.images)  # the same hold-out for every seed


def test_csv_bad_rows_are_reported_together_with_line_numbers(tmp_path) -> None:
    for i in range(6):
        write_png(tmp_path / f"ok{i}.png", (1, 2, 3))
    (tmp_path / "garbage.png").write_bytes(b"this is not an image")
    rows = [["ok0.png", "a", "x", "train"], ["ok1.png", "b", "y", "train"],  # lines 2, 3: fine
            ["ok2.png", "", "x", "train"],  # 4: missing label
            ["ok3.png", "a", "", "test"],  # 5: missing bias
            ["ok4.png", "a", "x"],  # 6: too few fields
            ["ok5.png", "a", "x", "validation"],  # 7: unknown split
            ["nowhere.png", "a", "x", "train"],  # 8: missing file
            ["garbage.png", "b", "y", "train"]]  # 9: not an image
    rows += [[f"gone{i}.png", "a", "x", "train"] for i in range(6)]  # 10..15: missing files
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DatasetError) as err:
        train_summary(csv_cfg(path))
    message = str(err.value)
    assert message.startswith(f"{path} has 12 bad rows: line 4: missing label; line 5: missing bias; "
                              "line 6: 3 fields, expected 4; line 7: unknown split 'validation' (use train or test); "
                              "line 8: image nowhere.png not found; line 9: cannot read image garbage.png")
    assert "line 13: image gone3.png not found; and 2 more; fix or remove those rows" in message
    assert "\n" not in message
    with pytest.raises(DatasetError) as again:  # loading reports the very same rows
        load_biased(csv_cfg(path), True, 0)
    assert str(again.value) == message
    # nothing is remembered: once the CSV is fixed, it loads
    write_csv(path, rows[:2] + [[f"ok{i}.png", "ab"[i % 2], "xy"[i % 2], "train"] for i in range(2, 6)]
              + [["ok0.png", "a", "x", "test"]])
    assert len(load_biased(csv_cfg(path), True, 0)) == 6


def test_csv_truncated_image_is_reported_on_load(tmp_path) -> None:
    for i in range(4):
        write_png(tmp_path / f"ok{i}.png", (1, 2, 3), (40, 40))
    whole = (tmp_path / "ok3.png").read_bytes()
    (tmp_path / "ok3.png").write_bytes(whole[: len(whole) // 2])
    path = write_csv(tmp_path / "t.csv", [["ok0.png", "a", "x", "train"], ["ok1.png", "b", "y", "train"],
                                          ["ok2.png", "a", "x", "test"], ["ok3.png", "b", "y", "test"]])
    with pytest.raises(DatasetError, match=r"has 1 bad rows: line 5: cannot read image ok3\.png"):
        load_biased(csv_cfg(path), False, 0)


@pytest.mark.parametrize("header, message", [
    ("path,label", "must start with the header line path,label,bias"),
    ("path,label,bias,splt", "must start with the header line path,label,bias"),
])
def test_csv_header_errors(tmp_path, header, message) -> None:
    write_png(tmp_path / "a.png", (1, 2, 3))
    path = write_csv(tmp_path / "h.csv", [["a.png", "a", "x", "train"]], header)
    with pytest.raises(DatasetError, match=message):
        load_biased(csv_cfg(path), True, 0)


def test_csv_dataset_level_errors(tmp_path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_biased(csv_cfg(tmp_path / "missing.csv"), True, 0)
    with pytest.raises(ConfigError, match="dataset csv needs --csv-path FILE"):
        load_biased(csv_cfg(None), True, 0)
    write_png(tmp_path / "small.png", (1, 2, 3), (12, 12))
    write_png(tmp_path / "wide.png", (1, 2, 3), (20, 10))
    sizes = write_csv(tmp_path / "sizes.csv", [["small.png", "a", "x", "train"], ["wide.png", "b", "y", "train"],
                                               ["small.png", "a", "x", "test"]])
    with pytest.raises(DatasetError, match=r"differ in size \(12x12 \(line 2\), 20x10 \(line 3\)\); pass --image-size N"):
        train_summary(csv_cfg(sizes))
    assert load_biased(csv_cfg(sizes, image_size=16), True, 0).images.shape == (2, 3, 16, 16)
    # a whole split is held as float32 [N, 3, S, S]: photos at their own size would not fit
    write_png(tmp_path / "photo.png", (1, 2, 3), (300, 300))
    photos = write_csv(tmp_path / "photos.csv", [["photo.png", "a", "x", "train"], ["photo.png", "b", "y", "train"],
                                                 ["photo.png", "b", "y", "test"]])
    with pytest.raises(DatasetError, match=r"are 300x300 \(line 2\), larger than ddcore holds \(256 a side\); pass --image-size"):
        train_summary(csv_cfg(photos))
    assert load_biased(csv_cfg(photos, image_size=8), True, 0).images.shape == (2, 3, 8, 8)
    only_test = write_csv(tmp_path / "only-test.csv", [["small.png", "a", "x", "train"], ["small.png", "b", "y", "test"]])
    with pytest.raises(DatasetError, match="class 'b' has no training rows"):
        load_biased(csv_cfg(only_test), True, 0)
    # without a split column a group of one or two rows stays in training: here every group does
    no_test = write_csv(tmp_path / "no-test.csv", [["small.png", "a", "x"], ["small.png", "a", "x"],
                                                   ["small.png", "b", "y"]], "path,label,bias")
    with pytest.raises(DatasetError, match="has no test rows, so a run could train but never be evaluated"):
        train_summary(csv_cfg(no_test))
    empty = write_csv(tmp_path / "empty.csv", [])
    with pytest.raises(DatasetError, match="has no data rows"):
        load_biased(csv_cfg(empty), True, 0)


def test_cli_smoke_run_on_a_csv_dataset(tmp_path, dataset) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "ddcore", "distill", "--preset", "smoke", "--dataset", "csv", "--source", "files",
         "--csv-path", str(dataset), "--conflict-ratio", "none", "--device", "cpu", "--map-points", "40",
         "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_train"] == 48 and metrics["num_test"] == 20
    assert metrics["count_share_conflicting"] == pytest.approx(8 / 48)
    assert metrics["test_acc_conflicting"] is not None
    config = json.loads((out / "config.json").read_text())["data"]
    assert (config["dataset"], config["conflict_ratio"], config["csv_path"]) == ("csv", None, str(dataset))


def test_cli_reports_a_bad_csv_in_one_line(tmp_path, capsys) -> None:
    path = write_csv(tmp_path / "bad.csv", [["nowhere.png", "a", "x", "train"]])
    code = main(["distill", "--preset", "smoke", "--dataset", "csv", "--source", "files", "--csv-path", str(path),
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "line 2: image nowhere.png not found" in err[0]
    assert not (tmp_path / "run").exists()  # preflight failed before a run folder was written
