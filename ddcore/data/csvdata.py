"""The user's own biased data: a CSV file listing images with a label and a bias attribute value.

    path,label,bias,split          <- header; the split column is optional
    images/0001.png,cat,indoor,train
    images/0002.png,dog,outdoor,test

- `path` is relative to the CSV file's folder (or absolute). Any image PIL reads; RGB is used.
- `label` and `bias` may be whole numbers or names. Their sorted distinct values become the class
  and bias indices (numbers sorted as numbers); the names are kept for display.
- Class c's aligned bias value is its most frequent one in the training split (ties: the first in
  sort order); every other value of that class is bias-conflicting.
- `split` is train or test. Without the column, a fixed 20% of every (label, bias) group is held
  out for testing, the same for every run seed; such a test split is as biased as the training
  split, so its aligned and conflicting accuracies are the figures to read, not the overall one.
- Every bad row (a missing or empty field, a wrong number of fields, an unknown split, a missing or
  unreadable image) is collected and reported in one DatasetError with its CSV line number.
"""
from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..config import MAX_IMAGE_SIZE, DataConfig
from ..errors import ConfigError, DatasetError
from .base import BiasedDataset, BiasedTensors, BuildCache, keep_for_ratio, num_conflicting, to_float
from .imagefiles import READ_ERRORS, Problems, image_size_of, read_rgb
from .spec import DatasetSpec, Naming, Summary, distinct_colours

COLUMNS = ("path", "label", "bias")
SPLITS = ("train", "test")
HOLDOUT = 0.2  # share of every (label, bias) group held out for testing when there is no split column
HOLDOUT_SEED = 20240102  # fixes that hold-out once for all runs, whatever their seed
_INT = re.compile(r"[+-]?\d+")
_FIX = "fix or remove those rows"


@dataclass(frozen=True)
class CSVTable:
    """The CSV's good rows: absolute image paths, CSV line numbers, label and bias indices
    (int64 [N]), the training-split mask (bool [N]), the names, and class c's aligned bias value
    (int64 [num_classes])."""

    csv_path: str
    files: tuple[str, ...]
    lines: tuple[int, ...]
    labels: torch.Tensor
    bias: torch.Tensor
    train: torch.Tensor
    classes: tuple[str, ...]
    bias_values: tuple[str, ...]
    aligned: torch.Tensor

    def naming(self) -> Naming:
        return Naming(self.classes, self.bias_values, distinct_colours(len(self.bias_values)),
                      tuple(self.aligned.tolist()))


# (absolute path, mtime_ns, size) -> the parsed table and the problems found while parsing
_tables: BuildCache[tuple[str, int, int], tuple[CSVTable | None, Problems]] = BuildCache(4)
# the same key + image_size -> uint8 images of every good row, all the same shape
_images: BuildCache[tuple[str, int, int, int | None], torch.Tensor] = BuildCache(2)


def _stat_key(csv_path: str | None) -> tuple[str, int, int]:
    if csv_path is None:
        raise ConfigError(f"dataset csv needs --csv-path FILE; {files_help_text()}")
    path = os.path.abspath(os.path.expanduser(csv_path))
    if not os.path.isfile(path):
        where = "is a folder, not a CSV file" if os.path.isdir(path) else "not found"
        raise DatasetError(f"CSV file {path} {where}; {files_help_text()}")
    st = os.stat(path)
    return path, st.st_mtime_ns, st.st_size


def _values(raw: list[str]) -> tuple[list[int], tuple[str, ...]]:
    """Distinct values sorted (as numbers when every value is a whole number) -> (index of each
    entry, names)."""
    if all(_INT.fullmatch(v) for v in raw):
        as_int = [int(v) for v in raw]
        order = sorted(set(as_int))
        index = {v: i for i, v in enumerate(order)}
        return [index[v] for v in as_int], tuple(str(v) for v in order)
    order = sorted(set(raw))
    index = {v: i for i, v in enumerate(order)}
    return [index[v] for v in raw], tuple(order)


def _parse(key: tuple[str, int, int]) -> tuple[CSVTable | None, Problems]:
    path = key[0]
    folder = os.path.dirname(path)
    problems = Problems(path, "rows")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(_numbered(csv.reader(f)))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"cannot read CSV file {path} ({e}); save it as UTF-8 text with comma-separated columns") from e
    if not rows:
        raise DatasetError(f"CSV file {path} is empty; {files_help_text()}")
    header = [h.strip().lower() for h in rows[0][1]]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS + ("split",)]
    if missing or unknown or len(set(header)) != len(header):
        raise DatasetError(f"CSV file {path} must start with the header line path,label,bias (and optionally "
                           f",split), in any order and nothing else; found: {','.join(rows[0][1])}")
    col = {name: header.index(name) for name in header}
    has_split = "split" in col
    files, lines, labels, biases, splits = [], [], [], [], []
    for line, row in rows[1:]:
        if len(row) != len(header):
            problems.add(f"line {line}", f"{len(row)} fields, expected {len(header)}")
            continue
        value = {name: row[i].strip() for name, i in col.items()}
        empty = [name for name in header if not value[name]]
        if empty:
            problems.add(f"line {line}", "missing " + " and ".join(empty))
            continue
        split = value.get("split", "train").lower()
        if split not in SPLITS:
            problems.add(f"line {line}", f"unknown split '{value['split']}' (use train or test)")
            continue
        image = os.path.join(folder, value["path"])
        if not os.path.isfile(image):
            problems.add(f"line {line}", f"image {value['path']} not found")
            continue
        files.append(image)
        lines.append(line)
        labels.append(value["label"])
        biases.append(value["bias"])
        splits.append(split == "train")
    if not files:
        return None, problems
    label_idx, classes = _values(labels)
    bias_idx, bias_values = _values(biases)
    label_t, bias_t = torch.tensor(label_idx), torch.tensor(bias_idx)
    train = torch.tensor(splits) if has_split else _holdout(label_t, bias_t)
    table = CSVTable(path, tuple(files), tuple(lines), label_t, bias_t, train, classes, bias_values,
                     torch.zeros(len(classes), dtype=torch.int64))
    return table, problems


def _numbered(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(line number where the record ends, fields) for every non-blank record of a csv.reader."""
    for row in reader:
        if row and any(v.strip() for v in row):
            yield reader.line_num, row


def _holdout(labels: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """bool [N]: True for training rows; round(HOLDOUT * n) of each (label, bias) group's n rows,
    picked by a fixed generator, are test rows (a group of one or two stays in training)."""
    train = torch.ones(len(labels), dtype=torch.bool)
    gen = torch.Generator().manual_seed(HOLDOUT_SEED)
    groups = labels * (int(bias.max()) + 1) + bias
    for g in groups.unique():
        idx = (groups == g).nonzero().squeeze(1)
        train[idx[torch.randperm(len(idx), generator=gen)[: num_conflicting(HOLDOUT, len(idx))]]] = False
    return train


def _with_aligned(table: CSVTable) -> CSVTable:
    """Check that every class has training rows and that test rows exist, and fill in each class's
    aligned bias value."""
    if bool(table.train.all()):
        raise DatasetError(f"CSV file {table.csv_path} has no test rows, so a run could train but never be evaluated: "
                           "add a split column with some test rows, or give (label, bias) groups at least 3 rows "
                           f"each (without a split column {HOLDOUT:.0%} of each group is held out for testing)")
    aligned = []
    for c, name in enumerate(table.classes):
        counts = Counter(table.bias[table.train & (table.labels == c)].tolist())
        if not counts:
            raise DatasetError(f"CSV file {table.csv_path}: class '{name}' has no training rows; every class "
                               "needs some (check the split column)")
        aligned.append(min(counts, key=lambda b: (-counts[b], b)))
    if len(table.classes) < 2:
        raise DatasetError(f"CSV file {table.csv_path} has a single class ('{table.classes[0]}'); "
                           "a classifier needs at least two")
    return replace(table, aligned=torch.tensor(aligned, dtype=torch.int64))


def read_table(csv_path: str | None, image_problems: Callable[[CSVTable, Problems], None] | None = None) -> CSVTable:
    """The parsed CSV (cached by path, modification time and size). `image_problems(table,
    problems)` may add what it finds wrong with the images, so that every bad row is reported in
    the one DatasetError this raises."""
    key = _stat_key(csv_path)
    table, found = _tables.get(key, lambda: _parse(key))
    problems = Problems(found.subject, found.unit)
    problems.items = list(found.items)  # a copy: the cached list must not grow with image problems
    if table is not None and image_problems is not None:
        image_problems(table, problems)
    problems.items.sort(key=lambda item: int(item[0].split()[-1]))  # by line number
    problems.raise_if_any(_FIX)
    if table is None:
        raise DatasetError(f"CSV file {found.subject} has no data rows; {files_help_text()}")
    return _with_aligned(table)


def _check_headers(image_size: int | None) -> Callable[[CSVTable, Problems], None]:
    """Open every image's header (cheap: no pixels decoded): unreadable files become problems and,
    without an image_size, images of different sizes a DatasetError."""

    def check(table: CSVTable, problems: Problems) -> None:
        sizes: dict[tuple[int, int], int] = {}
        for path, line in zip(table.files, table.lines):
            try:
                sizes.setdefault(image_size_of(path), line)
            except READ_ERRORS as e:
                problems.add(f"line {line}", f"cannot read image {os.path.relpath(path, os.path.dirname(table.csv_path))} ({e})")
        if image_size is None and len(sizes) > 1 and not problems:
            first = ", ".join(f"{w}x{h} (line {line})" for (h, w), line in list(sizes.items())[:3])
            raise DatasetError(f"the images of {table.csv_path} differ in size ({first}); pass --image-size N to "
                               "resize them all to N x N")
        too_big = [(hw, line) for hw, line in sizes.items() if max(hw) > MAX_IMAGE_SIZE]
        if image_size is None and too_big and not problems:
            (h, w), line = too_big[0]
            raise DatasetError(f"the images of {table.csv_path} are {w}x{h} (line {line}), larger than ddcore holds "
                               f"({MAX_IMAGE_SIZE} a side); pass --image-size N (at most {MAX_IMAGE_SIZE}) to resize them")

    return check


def _decode_all(table: CSVTable, image_size: int | None) -> torch.Tensor:
    """uint8 [N, 3, H, W] of every good row (one decode serves both splits)."""
    images: list[torch.Tensor] = []
    problems = Problems(table.csv_path, "rows")
    for path, line in zip(table.files, table.lines):
        try:
            images.append(read_rgb(path, image_size))
        except READ_ERRORS as e:
            problems.add(f"line {line}", f"cannot read image {os.path.relpath(path, os.path.dirname(table.csv_path))} ({e})")
    problems.raise_if_any(_FIX)
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise DatasetError(f"the images of {table.csv_path} differ in size; pass --image-size N to resize them all")
    return torch.stack(images)


class BiasedCSV(BiasedDataset):
    """The user's CSV dataset (module docstring) as a torchvision-style dataset. Items are
    (image, label, bias, index): image float32 [3, H, W] in [0, 1] (after `transform`, if given),
    the class index, the bias value's index and the position in the split.

    Args:
        csv_path: the CSV file; image paths are relative to its folder.
        train: the training split if True, else the test split.
        transform: applied to each image tensor.
        image_size: resize every image to this side (None: keep the images' common size).
        conflict_ratio: None keeps the training split as it comes; a ratio keeps every aligned
            image and subsamples the conflicting ones down to it (ddcore.data.base.keep_for_ratio).
        seed: fixes which conflicting images the ratio keeps.
    """

    def __init__(
        self,
        csv_path: str | None,
        train: bool = True,
        transform: Callable[[torch.Tensor], Any] | None = None,
        *,
        image_size: int | None = None,
        conflict_ratio: float | None = None,
        seed: int = 0,
    ) -> None:
        key = _stat_key(csv_path)
        super().__init__(os.path.dirname(key[0]), transform=transform)
        self.train, self.image_size, self.conflict_ratio, self.seed = train, image_size, conflict_ratio, seed
        # the header check makes a load report the same bad rows as the preflight; skipped when the
        # images are decoded already (then they were fine, and the key holds the CSV's mtime)
        cached = (*key, image_size) in _images
        self.table = read_table(csv_path, None if cached else _check_headers(image_size))
        images = _images.get((*key, image_size), lambda: _decode_all(self.table, image_size))
        rows = self.table.train if train else ~self.table.train
        labels, bias = self.table.labels[rows], self.table.bias[rows]
        keep = torch.ones(len(labels), dtype=torch.bool)
        if train:
            conflicting = bias != self.table.aligned[labels]
            keep = keep_for_ratio(labels, conflicting, conflict_ratio, self.table.classes, "csv",
                                  torch.Generator().manual_seed(seed))
        index = rows.nonzero().squeeze(1)[keep]
        self.images, self.labels, self.bias = to_float(images[index]), labels[keep], bias[keep]
        self.num_classes, self.aligned_bias = len(self.table.classes), self.table.aligned
        self.lines = [self.table.lines[i] for i in index.tolist()]  # the CSV line of each item

    def extra_repr(self) -> str:
        return (f"CSV: {self.table.csv_path}\nSplit: {'Train' if self.train else 'Test'}\n"
                f"Conflict ratio: {self.conflict_ratio}\nSeed: {self.seed}")


# ---------------------------------------------------------------------------------------------
# registry entry


def files_help_text() -> str:
    return ("a UTF-8 CSV file whose first line is the header path,label,bias (optionally ,split with train or "
            "test), one image per row, paths relative to the CSV's folder, labels and bias values as numbers or "
            "names; pass --dataset csv --source files --csv-path FILE")


def _load(cfg: DataConfig, train: bool, seed: int) -> BiasedTensors:
    return BiasedCSV(cfg.csv_path, train, image_size=cfg.image_size, conflict_ratio=cfg.conflict_ratio,
                     seed=seed).tensors()


def _summary(cfg: DataConfig) -> Summary:
    table = read_table(cfg.csv_path, _check_headers(cfg.image_size))
    labels, bias = table.labels[table.train], table.bias[table.train]
    keep = keep_for_ratio(labels, bias != table.aligned[labels], cfg.conflict_ratio, table.classes, "csv",
                          torch.Generator())
    if cfg.image_size is not None:
        size = (cfg.image_size, cfg.image_size)
    else:
        size = image_size_of(table.files[0])  # all the same: _check_headers made sure
    return Summary(torch.bincount(labels[keep], minlength=len(table.classes)), size)


SPEC = DatasetSpec(
    name="csv", title="Your own data (CSV of path, label, bias)", bias_attribute="bias attribute",
    native_size=None, bundled=False, downloadable=False, bias_from_files=True, path_option="--csv-path",
    load=_load, summary=_summary, files_help=lambda cfg: "CSV dataset: " + files_help_text(),
    read_naming=lambda cfg: read_table(cfg.csv_path).naming(),
)
