"""Corrupted CIFAR-10 under the LfF protocol (Nam et al., 2020): the bias attribute is one of ten
corruptions (type 0: snow, frost, fog, ...; type 1: noises and blurs, see
ddcore.data.corruptions.CORRUPTION_TYPES). Class c's aligned corruption is entry c; in the
training split a fraction `conflict_ratio` of each class gets one of the other nine, spread evenly
(as Coloured MNIST spreads colours), and the test split is uniform over all ten.

CIFAR-10 itself is read from torchvision's layout, ROOT/cifar-10-batches-py/ (data_batch_1..5,
test_batch), which torchvision can download. The batches are pickles; they are read with an
unpickler that only accepts numpy arrays, so a tampered file cannot run code. The corruptions are
computed here at CIFAR-10-C level `severity` (1..5); LfF's "severity 4" benchmark folders are
level 5. Corrupted images are rounded to uint8, as CIFAR-10-C and the LfF folders store them.
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torchvision.datasets import CIFAR10

from ..config import DataConfig
from ..errors import ConfigError, DatasetError
from .base import (
    BiasedDataset,
    BiasedTensors,
    BuildCache,
    assign_bias_test,
    assign_bias_train,
    check_conflict_ratio,
    resize,
    to_float,
    to_uint8,
    validation_part,
)
from .corruptions import CORRUPTION_TYPES, corrupt
from .spec import DatasetSpec, Naming, Summary, distinct_colours, shown_root

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FOLDER = "cifar-10-batches-py"
BATCHES = {True: tuple(f"data_batch_{i}" for i in range(1, 6)), False: ("test_batch",)}
# Images corrupted per call. Fixed, because a corruption draws its randomness per call: the same
# chunks give the same images for a seed. 1,000 keep the largest intermediate below ~100 MB.
CORRUPT_CHUNK = 1000

# In-process caches only: a full build (50,000 training images corrupted) takes about 20 s on 2 CPU
# cores (bench/RESULTS.md, section 5), too little next to a run to pay for a disk cache's
# invalidation rules. The pair (vanilla + reweighted) and the test split hit these.
_Raw = tuple[torch.Tensor, torch.Tensor]  # uint8 [N, 3, 32, 32], int64 [N]
_raw: BuildCache[tuple[str, bool], _Raw] = BuildCache(2)  # (absolute root, train) -> CIFAR-10 as read
# (root, train, type, ratio (None for test), severity, seed, validation) -> (corrupted uint8 images, bias)
_built: BuildCache[tuple[str, bool, int, float | None, int, int, bool], tuple[torch.Tensor, torch.Tensor]] = BuildCache(3)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only (what a CIFAR-10 batch holds)."""

    _ALLOWED = {"_reconstruct", "scalar", "ndarray", "dtype"}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):  # how Python 3 writes bytes at pickle protocol 2
            return super().find_class(module, name)
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in self._ALLOWED:
            if module == "numpy.core.multiarray":  # numpy 1 wrote this path; numpy 2 moved it
                module = "numpy._core.multiarray" if int(np.__version__.split(".")[0]) >= 2 else module
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")


def batch_path(root: str, name: str) -> str:
    return os.path.join(root, FOLDER, name)


def _fix(root: str) -> str:
    return (f"delete {os.path.join(root, FOLDER)} and pass --download, or extract cifar-10-python.tar.gz "
            f"into {root} again")


def _read_batch(root: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 [n, 3072], int64 [n]); DatasetError naming the file if damaged."""
    path = batch_path(root, name)
    try:
        with open(path, "rb") as f:
            entry = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError, OverflowError) as e:
        raise DatasetError(f"CIFAR-10 file {path} is corrupt or truncated ({type(e).__name__}: {e}); {_fix(root)}") from e
    if isinstance(entry, dict):
        entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    data = entry.get("data") if isinstance(entry, dict) else None
    labels = entry.get("labels") if isinstance(entry, dict) else None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
            and labels is not None and len(labels) == len(data)):
        raise DatasetError(f"CIFAR-10 file {path} does not hold a batch of 32x32 RGB images with labels; {_fix(root)}")
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and not (0 <= labels.min() and labels.max() <= 9):
        raise DatasetError(f"CIFAR-10 file {path} has labels outside 0..9; {_fix(root)}")
    return data, labels


def _missing(root: str, path: str) -> str:
    msg = f"CIFAR-10 not found: expected {path}"
    if os.path.isfile(os.path.join(root, "cifar-10-python.tar.gz")):
        return f"{msg}, found only cifar-10-python.tar.gz; extract it there (tar xzf), or pass --download (which extracts it)"
    if os.path.isfile(os.path.join(root, os.path.basename(path))):
        return f"{msg}, but {root} looks like {FOLDER} itself; --root must be the folder that holds {FOLDER}/"
    return f"{msg}; point --root at a folder that holds {FOLDER}/, or pass --download to fetch it (needs internet)"


def load_cifar10(root: str | None, train: bool, download: bool = False) -> _Raw:
    """CIFAR-10 as (uint8 [N, 3, 32, 32], int64 [N]), cached in-process per (root, split); the
    returned tensors are shared with the cache and must not be modified. All six batch files must
    be there (as torchvision requires), so a preflight finds a missing test batch too."""
    if root is None:
        raise ConfigError(f"Corrupted CIFAR-10 needs its files: pass --root DIR, where DIR/{FOLDER} holds CIFAR-10 "
                          "(add --download to fetch it there)")
    root = os.path.abspath(os.path.expanduser(root))

    def read() -> _Raw:
        missing = [batch_path(root, n) for n in BATCHES[True] + BATCHES[False] if not os.path.isfile(batch_path(root, n))]
        if missing and download:
            try:  # torchvision fetches and checks the archive, then extracts it into root
                CIFAR10(root, train=train, download=True)
            except (RuntimeError, OSError, ValueError) as e:
                raise DatasetError(f"could not download CIFAR-10 into {root}; check the internet connection, or "
                                   f"extract cifar-10-python.tar.gz there by hand. torchvision said: {e}") from e
        elif missing:
            raise DatasetError(_missing(root, missing[0]))
        parts = [_read_batch(root, name) for name in BATCHES[train]]
        data = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
        return torch.from_numpy(data), torch.from_numpy(np.concatenate([p[1] for p in parts]))

    return _raw.get((root, train), read)


def build_corrupted(images: torch.Tensor, labels: torch.Tensor, train: bool, corruption_type: int,
                    conflict_ratio: float, severity: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Assign each image a corruption (biased if `train`, else uniform) and apply it.
    uint8 [N, 3, H, W] -> (corrupted uint8 [N, 3, H, W], int64 bias [N])."""
    names = CORRUPTION_TYPES[corruption_type]
    if train:
        bias = assign_bias_train(labels, conflict_ratio, len(names), generator)
    else:
        bias = assign_bias_test(labels, len(names), generator)
    out = torch.empty_like(images)
    for k, name in enumerate(names):
        idx = (bias == k).nonzero().squeeze(1)
        for s in range(0, len(idx), CORRUPT_CHUNK):
            part = idx[s : s + CORRUPT_CHUNK]
            out[part] = to_uint8(corrupt(to_float(images[part]), name, severity, generator))
    return out, bias


class CorruptedCIFAR10(BiasedDataset):
    """Corrupted CIFAR-10 (module docstring). Items are (image, label, bias, index): image float32
    [3, S, S] in [0, 1] (after `transform`, if given; S = image_size or 32), the class, the
    corruption's index in CORRUPTION_TYPES[corruption_type] and the position in the split.

    Args:
        root: folder holding cifar-10-batches-py/.
        train: the biased training split if True, else the test split (uniform corruptions).
        transform: applied to each image tensor.
        download: let torchvision download CIFAR-10 into `root`.
        corruption_type: 0 or 1, the list of ten corruptions.
        conflict_ratio: fraction of each training class given another class's corruption.
        severity: CIFAR-10-C level 1..5 (the LfF benchmark's "severity 4" is level 5).
        image_size: resize the corrupted 32x32 images to this side (None: keep 32).
        seed: fixes the corruption assignment and the corruptions' randomness.
        validation: both splits come from the training batches: `train` the images not held out
            (ddcore.data.base.holdout_mask), else the held-out ones, corrupted as the test split is.
    """

    def __init__(
        self,
        root: str | None,
        train: bool = True,
        transform: Callable[[torch.Tensor], Any] | None = None,
        download: bool = False,
        *,
        corruption_type: int = 0,
        conflict_ratio: float = 0.05,
        severity: int = 4,
        image_size: int | None = None,
        seed: int = 0,
        validation: bool = False,
    ) -> None:
        super().__init__(root, transform=transform)
        check_conflict_ratio(conflict_ratio)
        if corruption_type not in CORRUPTION_TYPES:
            raise ConfigError(f"corruption type must be one of {sorted(CORRUPTION_TYPES)}, got {corruption_type!r}")
        if severity not in (1, 2, 3, 4, 5):
            raise ConfigError(f"severity must be 1..5, got {severity!r}")
        self.train, self.corruption_type, self.conflict_ratio = train, corruption_type, conflict_ratio
        self.severity, self.seed = severity, seed
        raw, labels = load_cifar10(root, train or validation, download)
        if validation:
            part = validation_part(labels, train)
            raw, labels = raw[part], labels[part]
        key = (os.path.abspath(os.path.expanduser(str(root))), train, corruption_type,
               conflict_ratio if train else None, severity, seed, validation)
        images, bias = _built.get(key, lambda: build_corrupted(raw, labels, train, corruption_type, conflict_ratio,
                                                               severity, torch.Generator().manual_seed(seed)))
        self.images = to_float(images) if image_size in (None, images.shape[-1]) else resize(images, image_size)
        self.labels, self.bias, self.num_classes = labels.clone(), bias.clone(), len(CLASSES)

    def extra_repr(self) -> str:
        split = "Train (biased)" if self.train else "Test (uniform corruptions)"
        return (f"Split: {split}\nCorruptions: type {self.corruption_type}, level {self.severity}\n"
                f"Conflict ratio: {self.conflict_ratio}\nSeed: {self.seed}")


# ---------------------------------------------------------------------------------------------
# registry entries


def files_help_text(root: str | None) -> str:
    r = shown_root(root)
    return (f"CIFAR-10 (python version): extract cifar-10-python.tar.gz so that {os.path.join(r, FOLDER)}/ holds "
            "data_batch_1 ... data_batch_5, test_batch and batches.meta, then pass --source files --root "
            f"{r}; or add --download to let torchvision fetch it there (170 MB, needs internet). The corruptions "
            "are computed here at CIFAR-10-C level --severity (the LfF benchmark's 'severity 4' is --severity 5)")


BENCHMARK_LEVEL = 5  # --severity unset: the level the LfF benchmark's "severity 4" folders were made at


def _spec(corruption_type: int, kinds: str) -> DatasetSpec:
    def load(cfg: DataConfig, train: bool, seed: int) -> BiasedTensors:
        severity = BENCHMARK_LEVEL if cfg.severity is None else cfg.severity
        return CorruptedCIFAR10(cfg.root, train, download=cfg.download, corruption_type=corruption_type,
                                conflict_ratio=cfg.conflict_ratio, severity=severity, image_size=cfg.image_size,
                                seed=seed, validation=cfg.evaluate_on == "validation").tensors()

    def summary(cfg: DataConfig) -> Summary:
        # reads (and caches) the training batches, which the run then reuses; nothing is corrupted
        _, labels = load_cifar10(cfg.root, True, cfg.download)
        if cfg.evaluate_on == "validation":
            labels = labels[validation_part(labels, True)]
        side = cfg.image_size or 32
        return Summary(torch.bincount(labels, minlength=len(CLASSES)), (side, side))

    names = tuple(n.replace("_", " ") for n in CORRUPTION_TYPES[corruption_type])
    return DatasetSpec(
        name=f"cifar10c-{corruption_type}", title=f"Corrupted CIFAR-10, type {corruption_type} ({kinds})",
        bias_attribute="corruption", native_size=32, bundled=False, downloadable=True, bias_from_files=False,
        path_option="--root", load=load, summary=summary, files_help=lambda cfg: files_help_text(cfg.root),
        naming=Naming(CLASSES, names, distinct_colours(len(names)), tuple(range(len(CLASSES)))), validation=True,
    )


SPECS = (_spec(0, "weather and digital"), _spec(1, "noise and blur"))
