"""Tiny dataset files in each format the loaders read, written by the tests into tmp_path."""
from __future__ import annotations

import csv
import pickle
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def write_idx(path: Path, data: torch.Tensor) -> None:
    """An uncompressed idx file (what torchvision's MNIST readers take) holding uint8 `data`."""
    magic = 2051 if data.dim() == 3 else 2049
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in data.shape)
    path.write_bytes(header + data.numpy().tobytes())


def make_idx_dataset(root: Path, folder: str, n_train: int = 60, n_test: int = 20) -> dict[str, tuple]:
    """ROOT/<folder>/raw with the four idx files; labels cycle through 0..9."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    g = gen(5)
    made = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        labels = (torch.arange(n) % 10).to(torch.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        made[prefix] = (images, labels.long())
    return made


def write_png(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (16, 16)) -> None:
    """A flat-coloured PNG of (width, height) `size` with one darker pixel, so resizing shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.empty((size[1], size[0], 3), dtype=np.uint8)
    pixels[:] = rgb
    pixels[0, 0] = (0, 0, 0)
    Image.fromarray(pixels).save(path)


def make_bffhq(root: Path, aligned: int = 40, conflicting: int = 4, test_per_group: int = 6) -> Path:
    """ROOT/bffhq in the distributed layout: per age class `aligned` aligned and `conflicting`
    conflicting training PNGs (in align/<age>/ and conflict/<age>/), `test_per_group` test PNGs
    for each of the four (age, gender) groups, and an unused valid/ folder."""
    base = root / "bffhq"
    i = 0
    for age in (0, 1):
        for folder, gender, n in (("align", age, aligned), ("conflict", 1 - age, conflicting)):
            for _ in range(n):
                write_png(base / "0.5pct" / folder / str(age) / f"{i}_{age}_{gender}.png", (60 + 150 * gender, 80, 200 - 150 * age))
                i += 1
        for gender in (0, 1):
            for _ in range(test_per_group):
                write_png(base / "test" / f"{i}_{age}_{gender}.png", (60 + 150 * gender, 80, 200 - 150 * age))
                i += 1
    write_png(base / "valid" / f"{i}_0_0.png", (0, 0, 0))
    return root


def write_csv(path: Path, rows: list[list[str]], header: str = "path,label,bias,split") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write(header + "\n")
        csv.writer(f).writerows(rows)
    return path


def make_cifar(root: Path, per_class_train: int = 6, per_class_test: int = 4) -> dict[bool, tuple[np.ndarray, np.ndarray]]:
    """ROOT/cifar-10-batches-py as torchvision's CIFAR-10 download unpacks it: data_batch_1..5,
    test_batch and batches.meta, pickled dicts with 'data' uint8 [n, 3072] (RGB planes) and
    'labels'. Labels cycle through the classes, so each batch holds every class."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    made = {}
    for train, per_class in ((True, per_class_train), (False, per_class_test)):
        labels = np.tile(np.arange(10), per_class)
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        made[train] = (data.reshape(-1, 3, 32, 32), labels)
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        size = -(-len(labels) // len(names))
        for i, name in enumerate(names):
            part = slice(i * size, (i + 1) * size)  # consecutive, as in the real files
            batch = {"batch_label": f"batch {i}", "labels": labels[part].tolist(), "data": data[part],
                     "filenames": [f"img{j}.png" for j in range(len(labels[part]))]}
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            "num_cases_per_batch": 10000, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return made
