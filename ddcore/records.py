"""The run record: one typed, versioned, checked dataclass per file of a run folder.

    Status          status.json      state, stage, progress, ... (ddcore.runstore documents the layout)
    Metrics         metrics.json     flat: the known fields below, then `extra` (method-specific results)
    SyntheticImages synthetic.pt     images float32 [N, 3, H, W] stored normalised by `mean`/`std` [3]
    EmbeddingMap    embeddings.npz   the 2-D map and everything the Embedding map page shows

Each record checks its own types, shapes and ranges when it is built, so an invalid one cannot
exist; `save(run_dir)` writes it atomically with `"version": VERSION`, and `load(run_dir)` reads,
migrates and checks it, raising `DamagedRun` (naming the file) for anything it cannot trust.
Files without a version are version 1, written before this module existed; their migration lives
in each `load` here and nowhere else. A field is added to a JSON record in one line, with a
default (what older files read back as).
"""
from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import pickle
import stat
import tempfile
import types
import typing
import zipfile
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .data.spec import Naming
from .errors import DDError

VERSION = 2
STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")
THUMB_SIDE = 32  # the map's thumbnails of real images are at most this many pixels on a side


class DamagedRun(DDError):
    """A run file exists but cannot be trusted: unreadable, of the wrong type or shape, or written
    by a newer ddcore. The message names the file and what is wrong with it."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path} is damaged: {why}")
        self.path = Path(path)


class RecordError(ValueError):
    """A value that does not fit its record field; `load` turns it into DamagedRun."""


# files -------------------------------------------------------------------------------------------


def atomic_write(path: Path, write) -> None:
    """Call write(f) on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; run folders are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    data = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False).encode()
    atomic_write(path, lambda f: f.write(data))


MAX_JSON_BYTES = 16 * 2**20  # a run's JSON files hold kilobytes: a larger one is not ours


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """A descriptor of the regular file at path (created if flags say so), never opened through a
    symbolic link (it could reach outside the run) and never blocking (a FIFO would, forever).
    FileNotFoundError when it is missing; ValueError when it is a link or not a regular file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError("it is a symbolic link; ddcore reads only the files it wrote") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError("it is not a regular file")
    return fd


def read_json(path: Path) -> Any:
    """A run file's JSON: a regular file (`open_regular`; /dev/zero would never end) of at most
    MAX_JSON_BYTES. FileNotFoundError when it is missing; ValueError (or OSError) when it is not
    such a file or not JSON."""
    with os.fdopen(open_regular(path), "rb") as f:
        info = os.fstat(f.fileno())
        if info.st_size > MAX_JSON_BYTES:
            raise ValueError(f"{info.st_size:,} bytes, more than any file ddcore writes")
        data = f.read(MAX_JSON_BYTES + 1)
    try:
        return json.loads(data)
    except RecursionError:  # nesting deeper than the parser's stack
        raise ValueError("nested too deeply") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _version(raw: Any, path: Path) -> int:
    version = raw.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DamagedRun(path, f"unknown record version {_short(version)}")
    if version > VERSION:
        raise DamagedRun(path, f"written by a newer ddcore (record version {version}, this one reads up to "
                               f"{VERSION}); update ddcore to read it")
    return version


# typed JSON records ------------------------------------------------------------------------------

Extra = int | float | str | bool | None | list  # a method-specific result in metrics.json


def _range(lo: float | None = None, hi: float | None = None, default: Any = None) -> Any:
    return field(default=default, metadata={"range": (lo, hi)})


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{where} should be a number, got {_short(value)}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # a whole number beyond any float
        finite = False
    if not finite:
        raise RecordError(f"{where} should be a finite number, got {_short(value)}")
    return float(value)


_TYPE_NAMES = {float: "a number", int: "a whole number", str: "text", bool: "true or false", list: "a list",
               type(None): "null"}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` as the type `hint` says (int -> float where a float is due; lists -> tuples), or
    RecordError naming `where`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except RecordError:
                pass
        names = [_TYPE_NAMES.get(a, str(a)) for a in args if not (a is int and float in args)]
        names = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        raise RecordError(f"{where} should be {names}, got {_short(value)}")
    if hint is float:
        return _number(value, where)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where} should be a whole number, got {_short(value)}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise RecordError(f"{where} should be {_TYPE_NAMES[hint]}, got {_short(value)}")
        return value
    if hint is list:  # Extra's list: plain scalars
        if not isinstance(value, list | tuple):
            raise RecordError(f"{where} should be a list, got {_short(value)}")
        return [_coerce(v, int | float | str | bool | None, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise RecordError(f"{where} should be a list, got {_short(value)}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise RecordError(f"{where} should be an object with text keys, got {_short(value)}")
        return {k: _coerce(v, args[1], f"{where}.{k}" if where else k) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):  # a section of a config
        if not isinstance(value, hint):
            raise RecordError(f"{where} should be a {hint.__name__}, got {_short(value)}")
        check_fields(value, f"{where}.")
        return value
    raise TypeError(f"no rule for the type {hint} of {where}")  # a record declared a new kind of field


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_fields(obj: Any, prefix: str = "") -> None:
    """Coerce and check every field of the frozen dataclass `obj` against its type hint and its
    metadata ("range": (lo, hi), "choices": (...), "flat": entries named by their own keys);
    RecordError names the first bad field."""
    hints = _hints(type(obj))
    for f in fields(obj):
        value = _coerce(getattr(obj, f.name), hints[f.name], "" if f.metadata.get("flat") else prefix + f.name)
        lo, hi = f.metadata.get("range", (None, None))
        if value is not None and ((lo is not None and value < lo) or (hi is not None and value > hi)):
            raise RecordError(f"{prefix}{f.name} should lie in [{lo}, {hi}], got {_short(value)}")
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            choices = ", ".join(f.metadata["choices"])
            raise RecordError(f"{prefix}{f.name} should be one of {choices}, got {_short(value)}")
        object.__setattr__(obj, f.name, value)


class JsonRecord:
    """A flat JSON file as a frozen dataclass (mixin for Status and Metrics)."""

    FILE: ClassVar[str]

    def __post_init__(self) -> None:
        check_fields(self)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, run_dir: Path) -> None:
        write_json(Path(run_dir) / self.FILE, {**self.to_json(), "version": VERSION})

    @classmethod
    def load(cls, run_dir: Path):
        """The record in run_dir; FileNotFoundError when the file is missing, DamagedRun when it
        cannot be trusted."""
        path = Path(run_dir) / cls.FILE
        try:
            raw = read_json(path)
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
            raise DamagedRun(path, f"not readable JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise DamagedRun(path, f"should hold a JSON object, holds {type(raw).__name__}")
        _version(raw, path)  # versions 1 and 2 differ only in fields that have defaults
        try:
            return cls.from_json({k: v for k, v in raw.items() if k != "version"})
        except (RecordError, TypeError) as exc:
            raise DamagedRun(path, str(exc)) from None


@dataclass(frozen=True)
class Status(JsonRecord):
    """status.json: where a run is. `warning` is set on a run that finished with a result the
    user should distrust (saturated synthetic images, say)."""

    FILE: ClassVar[str] = "status.json"

    state: str = field(default="queued", metadata={"choices": STATES})
    stage: str = ""
    progress: float = _range(0.0, 1.0, default=0.0)
    iteration: int = _range(0, None, default=0)
    iterations: int = _range(0, None, default=0)
    loss: float | None = None
    eta_seconds: float | None = None
    message: str = ""
    warning: str = ""
    created: float = 0.0
    started: float | None = None
    updated: float = 0.0
    finished: float | None = None
    pid: int | None = _range(1, 2**31 - 1)  # os.kill(0, ...) would signal our own group

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def _pct() -> Any:
    return _range(0.0, 100.0)


def _share() -> Any:
    return _range(0.0, 1.0)


@dataclass(frozen=True)
class Metrics(JsonRecord):
    """metrics.json: accuracies in percent (None where the test split lacks the group), shares as
    fractions, and `extra` for what one method reports (MTT: learned_lr, experts_loaded, ...),
    stored flat beside the known fields."""

    FILE: ClassVar[str] = "metrics.json"

    test_acc_unbiased: float | None = _pct()
    test_acc_unbiased_std: float | None = _pct()
    test_acc_aligned: float | None = _pct()
    test_acc_aligned_std: float | None = _pct()
    test_acc_conflicting: float | None = _pct()
    test_acc_conflicting_std: float | None = _pct()
    test_acc_unbiased_per_model: tuple[float, ...] = ()
    test_acc_worst_group: float | None = _pct()  # the (class, bias value) group with the lowest accuracy
    test_acc_worst_group_std: float | None = _pct()
    deo_max: float | None = _pct()  # equalised-odds differences, as FairDD computes them (ddcore.evaluate)
    deo_max_std: float | None = _pct()
    deo_mean: float | None = _pct()
    deo_mean_std: float | None = _pct()
    group_accuracy: tuple[tuple[float | None, ...], ...] = ()  # [class][bias value], None: no such test sample
    weight_share_conflicting: float | None = _share()
    count_share_conflicting: float | None = _share()
    weight_group_balance: float | None = _share()  # 1.0: every (class, bias value) group has the same total weight
    kde_sigma: float | None = _range(0.0, None)
    kde_sigma_rule: str | None = None  # "auto" or "fixed"
    final_loss: float | None = None
    saturated_share: float | None = _share()  # of synthetic pixels clamped by more than half the range
    device: str | None = None
    precision: str | None = None  # "fp32", "bf16" or "bf16-real" (ddcore.hardware.Precision.name)
    precision_reason: str | None = None
    compiled: bool | None = None  # DM's network under torch.compile (ddcore.hardware.Compilation)
    compile_reason: str | None = None
    cpu_capability: str | None = None
    threads: int | None = _range(1, None)
    gpu: str | None = None
    num_train: int | None = _range(0, None)
    num_test: int | None = _range(0, None)
    eval_models: int | None = _range(1, None)
    eval_epochs: int | None = _range(0, None)
    eval_debias: str | None = None  # written by `ddcore evaluate`, whose settings config.json does not hold
    seconds_total: float | None = _range(0.0, None)
    seconds_per_stage: dict[str, float] = field(default_factory=dict)
    warning: str = ""
    extra: dict[str, Extra] = field(default_factory=dict, metadata={"flat": True})

    def __post_init__(self) -> None:
        super().__post_init__()
        clash = sorted(set(self.extra) & ({f.name for f in fields(self)} | {"version"}))
        if clash:
            raise RecordError(f"extra results may not reuse the names {', '.join(clash)}")

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        extra = out.pop("extra")
        return {**out, **extra}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Metrics:
        """Flat keys: the known fields, everything else into `extra`."""
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in raw.items() if k in known},
                   extra={k: v for k, v in raw.items() if k not in known})

    @classmethod
    def load(cls, run_dir: Path) -> Metrics | None:
        """None while a run has no metrics yet."""
        try:
            return super().load(run_dir)
        except FileNotFoundError:
            return None


# tensors and arrays ------------------------------------------------------------------------------


def _missing(run_dir: Path, what: str) -> DDError:
    return DDError(f"run {Path(run_dir).name} has no {what}")


@dataclass(frozen=True)
class SyntheticImages:
    """synthetic.pt: images float32 [N, 3, H, W], stored normalised as (x - mean) / std per
    channel; labels int64 [N]. Plain tensors: torch.load(..., weights_only=True) reads it."""

    FILE: ClassVar[str] = "synthetic.pt"

    images: torch.Tensor
    labels: torch.Tensor
    mean: torch.Tensor = field(default_factory=lambda: torch.zeros(3))
    std: torch.Tensor = field(default_factory=lambda: torch.ones(3))

    def __post_init__(self) -> None:
        x, y, mean, std = self.images, self.labels, self.mean, self.std
        if not all(isinstance(t, torch.Tensor) for t in (x, y, mean, std)):
            raise RecordError("images, labels, mean and std should be tensors")
        if x.dtype != torch.float32 or x.dim() != 4 or x.shape[1] != 3 or len(x) == 0:
            raise RecordError(f"images should be float32 [N, 3, H, W], got {x.dtype} {list(x.shape)}")
        if y.dtype != torch.int64 or y.shape != (len(x),) or bool((y < 0).any()):
            raise RecordError(f"labels should be int64 [{len(x)}] and not negative, got {y.dtype} {list(y.shape)}")
        for name, t in (("mean", mean), ("std", std)):
            if t.dtype != torch.float32 or t.shape != (3,) or not bool(torch.isfinite(t).all()):
                raise RecordError(f"{name} should be three finite float32 values, got {t.dtype} {list(t.shape)}")
        if not bool((std > 0).all()):
            raise RecordError("std should be positive")
        if not bool(torch.isfinite(x).all()):
            raise RecordError("images hold non-finite values")

    def check_fits(self, run_dir: Path, image_shape: tuple[int, ...], num_classes: int) -> None:
        """DamagedRun unless the images are [3, H, W] as `image_shape` and every label names one
        of `num_classes` classes: the data the run's config loads."""
        path = Path(run_dir) / self.FILE
        if tuple(self.images.shape[1:]) != tuple(image_shape):
            raise DamagedRun(path, f"its images are {list(self.images.shape[1:])}, the run's data "
                                   f"{list(image_shape)}")
        if int(self.labels.max()) >= num_classes:
            raise DamagedRun(path, f"an image's label is {int(self.labels.max())}, the run's data has "
                                   f"{num_classes} classes (0..{num_classes - 1})")

    def denormalized(self) -> torch.Tensor:
        """The images in pixel units (0..1 is what a display shows), float32 [N, 3, H, W]."""
        return self.images * self.std[:, None, None] + self.mean[:, None, None]

    def display(self) -> torch.Tensor:
        """The images as shown: de-normalised and clamped to [0, 1], float32 [N, 3, H, W]."""
        return self.denormalized().clamp(0.0, 1.0)

    def save(self, run_dir: Path) -> None:
        payload = {"images": self.images.contiguous(), "labels": self.labels, "mean": self.mean, "std": self.std,
                   "version": VERSION}
        atomic_write(Path(run_dir) / self.FILE, lambda f: torch.save(payload, f))

    @classmethod
    def load(cls, run_dir: Path) -> SyntheticImages:
        path = Path(run_dir) / cls.FILE
        try:
            with os.fdopen(open_regular(path), "rb") as f:
                payload = torch.load(f, weights_only=True, map_location="cpu")
        except FileNotFoundError:
            raise _missing(run_dir, "synthetic images") from None
        except ValueError as exc:  # from open_regular: a link, a FIFO
            raise DamagedRun(path, f"not a readable tensor file ({exc})") from None
        except pickle.UnpicklingError:  # what weights_only raises for anything but plain tensors
            raise DamagedRun(path, "it holds objects other than plain tensors; refused to load them") from None
        except Exception as exc:  # truncated or not a torch file at all: torch raises many kinds
            raise DamagedRun(path, f"not a readable tensor file ({type(exc).__name__})") from None
        if not isinstance(payload, dict) or not {"images", "labels"} <= set(payload):
            raise DamagedRun(path, "should hold a dict with 'images' and 'labels'")
        _version(payload, path)  # version 1 had no mean/std: images in [0, 1], i.e. mean 0 and std 1
        try:
            return cls(**{k: payload[k] for k in ("images", "labels", "mean", "std") if k in payload})
        except RecordError as exc:
            raise DamagedRun(path, str(exc)) from None


# name: (dtype, shape). Letters are sizes that must agree across arrays: n mapped real samples,
# d feature dimensions, m synthetic images, k neighbours, N training samples, C classes, V bias
# values, h x w thumbnail pixels.
MAP_ARRAYS: dict[str, tuple[str, str]] = {
    "real_index": ("int64", "n"),
    "real_features": ("float32", "n d"),
    "real_log_density": ("float32", "n"),
    "real_density": ("float32", "n"),
    "real_weight": ("float32", "n"),
    "real_label": ("int64", "n"),
    "real_bias": ("int64", "n"),
    "real_map": ("float32", "n 2"),
    "real_thumbs": ("uint8", "n h w 3"),
    "syn_features": ("float32", "m d"),
    "syn_log_density": ("float32", "m"),
    "syn_label": ("int64", "m"),
    "syn_map": ("float32", "m 2"),
    "syn_neighbors": ("int64", "m k"),
    "train_log_density": ("float32", "N"),
    "train_weight": ("float32", "N"),
    "train_label": ("int64", "N"),
    "train_bias": ("int64", "N"),
    "aligned_bias": ("int64", "C"),
    "colours": ("float32", "V 3"),
}


@dataclass(frozen=True)
class EmbeddingMap:
    """embeddings.npz: the real samples' surrogate features, KDE density and weight with their
    2-D UMAP position and a thumbnail (real_*, a stratified subset of the training split); the
    synthetic images' features, density, position and nearest real rows (syn_*); density, weight,
    label and bias of the whole training split (train_*); and the names and colours to show them
    with. Arrays are read-only. `real_thumbs` is None for runs made before thumbnails were kept."""

    FILE: ClassVar[str] = "embeddings.npz"

    real_index: np.ndarray
    real_features: np.ndarray
    real_log_density: np.ndarray
    real_density: np.ndarray
    real_weight: np.ndarray
    real_label: np.ndarray
    real_bias: np.ndarray
    real_map: np.ndarray
    real_thumbs: np.ndarray | None
    syn_features: np.ndarray
    syn_log_density: np.ndarray
    syn_label: np.ndarray
    syn_map: np.ndarray
    syn_neighbors: np.ndarray
    train_log_density: np.ndarray
    train_weight: np.ndarray
    train_label: np.ndarray
    train_bias: np.ndarray
    aligned_bias: np.ndarray  # class c's bias-aligned attribute value
    colours: np.ndarray  # RGB in [0, 1] of each bias value
    classes: tuple[str, ...]
    bias_values: tuple[str, ...]
    bias_attribute: str  # "colour", "corruption", ...
    density_space: str  # what the density was computed on, in words

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        for name, (dtype, shape) in MAP_ARRAYS.items():
            a = getattr(self, name)
            if a is None and name == "real_thumbs":
                continue
            letters = shape.split()
            if not (isinstance(a, np.ndarray) and a.dtype == np.dtype(dtype) and a.ndim == len(letters)
                    and all(size == int(x) for size, x in zip(a.shape, letters) if x.isdigit())):
                got = f"{a.dtype} {list(a.shape)}" if isinstance(a, np.ndarray) else type(a).__name__
                raise RecordError(f"{name} should be {dtype} [{', '.join(letters)}], got {got}")
            for size, letter in zip(a.shape, letters):
                if size != sizes.setdefault(letter, size):
                    raise RecordError(f"{name} has shape {list(a.shape)}; its '{letter}' should be {sizes[letter]} "
                                      "like the other arrays'")
            if a.dtype.kind == "f" and not np.isfinite(a).all() and name not in ("real_log_density", "syn_log_density"):
                raise RecordError(f"{name} holds non-finite values")
            a.setflags(write=False)
        C, V, n, N = sizes["C"], sizes["V"], sizes["n"], sizes["N"]
        for name, bound in (("real_index", N), ("real_label", C), ("syn_label", C), ("train_label", C),
                            ("real_bias", V), ("train_bias", V), ("aligned_bias", V), ("syn_neighbors", n)):
            a = getattr(self, name)
            if a.size and (a.min() < 0 or a.max() >= bound):
                raise RecordError(f"{name} should index 0..{bound - 1}, holds {a.min()}..{a.max()}")
        if len(self.classes) != C or len(self.bias_values) != V:
            raise RecordError(f"{C} classes and {V} bias values need as many names, got {len(self.classes)} and "
                              f"{len(self.bias_values)}")
        check = [("bias_attribute", self.bias_attribute), ("density_space", self.density_space),
                 *(("class name", c) for c in self.classes), *(("bias value name", b) for b in self.bias_values)]
        for what, text in check:
            if not isinstance(text, str):
                raise RecordError(f"{what} should be text, got {_short(text)}")

    @property
    def naming(self) -> Naming:
        return Naming(self.classes, self.bias_values, tuple(tuple(float(v) for v in c) for c in self.colours),
                      tuple(int(b) for b in self.aligned_bias))

    def conflicting(self) -> np.ndarray:
        """bool per mapped real sample: its bias value is not its class's aligned one."""
        return self.real_bias != self.aligned_bias[self.real_label]

    def save(self, run_dir: Path) -> None:
        arrays = {name: getattr(self, name) for name in MAP_ARRAYS if getattr(self, name) is not None}
        arrays.update(classes=np.array(self.classes, dtype=str), bias_values=np.array(self.bias_values, dtype=str),
                      bias_attribute=np.array(self.bias_attribute), density_space=np.array(self.density_space),
                      version=np.array(VERSION))
        atomic_write(Path(run_dir) / self.FILE, lambda f: np.savez_compressed(f, **arrays))

    @classmethod
    def load(cls, run_dir: Path) -> EmbeddingMap:
        path = Path(run_dir) / cls.FILE
        try:
            with os.fdopen(open_regular(path), "rb") as f, np.load(f, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise _missing(run_dir, "embedding map") from None
        except ValueError as exc:  # object arrays (pickles) are refused by allow_pickle=False
            raise DamagedRun(path, f"not a plain array file ({exc})") from None
        except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise DamagedRun(path, f"not a readable array file ({type(exc).__name__})") from None
        try:
            if _version({"version": int(raw["version"])} if "version" in raw else {}, path) == 1:
                raw = _map_from_version_1(raw, Path(run_dir))
            arrays = {name: _as(raw, name, dtype) for name, (dtype, _) in MAP_ARRAYS.items()}
            text = {k: raw[k] for k in ("classes", "bias_values", "bias_attribute", "density_space")}
            return cls(**arrays, classes=tuple(str(c) for c in _strings(text["classes"])),
                       bias_values=tuple(str(b) for b in _strings(text["bias_values"])),
                       bias_attribute=str(_strings(text["bias_attribute"], 0)),
                       density_space=str(_strings(text["density_space"], 0)))
        except KeyError as exc:
            raise DamagedRun(path, f"the array {exc} is missing") from None
        except (RecordError, TypeError, ValueError, OverflowError) as exc:
            raise DamagedRun(path, str(exc)) from None


def _as(raw: dict[str, np.ndarray], name: str, dtype: str) -> np.ndarray | None:
    """raw[name] in the declared dtype where the kind agrees (an int32 index, a float64 map)."""
    if name == "real_thumbs" and name not in raw:
        return None
    a = raw[name]
    if a.dtype.kind != np.dtype(dtype).kind:
        raise RecordError(f"{name} should be {dtype}, got {a.dtype}")
    return a.astype(dtype, copy=False)


def _strings(a: np.ndarray, ndim: int = 1) -> Any:
    if a.dtype.kind != "U" or a.ndim != ndim:
        raise RecordError(f"a text field should be {'a list of ' if ndim else ''}text, got {a.dtype} {list(a.shape)}")
    return a.tolist()


def _map_from_version_1(raw: dict[str, np.ndarray], run_dir: Path) -> dict[str, np.ndarray]:
    """Version 1 maps had no thumbnails, names or colours (the page rebuilt the dataset for
    them), and the oldest no aligned_bias (class c's aligned value was c). Names and colours come
    from the run's own config where it still describes the data, else plain indices and grey."""
    from .config import RunConfig
    from .data import describe, get_spec

    raw = dict(raw)
    num_classes = int(max(raw["train_label"].max(), raw["real_label"].max())) + 1
    raw.setdefault("aligned_bias", np.arange(num_classes, dtype=np.int64))
    num_values = int(max(raw["train_bias"].max(), raw["aligned_bias"].max())) + 1
    raw.setdefault("density_space", np.array("embedding"))
    try:
        data = RunConfig.from_dict(read_json(run_dir / "config.json")).data
        naming, attribute = describe(data), get_spec(data.dataset).bias_attribute
        usable = len(naming.classes) == num_classes and len(naming.bias_values) >= num_values
    except Exception:  # noqa: BLE001 - any reason the config no longer describes the data
        usable = False
    if usable:
        raw.update(classes=np.array(naming.classes, dtype=str), bias_values=np.array(naming.bias_values, dtype=str),
                   colours=np.array(naming.colours, dtype=np.float32), bias_attribute=np.array(attribute))
        raw["aligned_bias"] = raw["aligned_bias"].astype(np.int64)
    else:
        raw.update(classes=np.array([str(c) for c in range(num_classes)]),
                   bias_values=np.array([str(b) for b in range(num_values)]),
                   colours=np.full((num_values, 3), 0.6, dtype=np.float32), bias_attribute=np.array("bias"))
    return raw


def thumbnails(images: torch.Tensor) -> np.ndarray:
    """float [n, 3, H, W] in [0, 1] -> uint8 [n, h, w, 3], at most THUMB_SIDE on the longer side."""
    images = images.detach().float().cpu()
    side = max(images.shape[2:])
    if side > THUMB_SIDE:
        size = tuple(max(1, round(s * THUMB_SIDE / side)) for s in images.shape[2:])
        images = torch.nn.functional.interpolate(images, size=size, mode="bilinear", antialias=True)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
