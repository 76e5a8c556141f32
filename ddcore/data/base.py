"""What every biased dataset shares: the in-memory split (`BiasedTensors`), bias assignment under
the LfF protocol, the conflict-ratio rule for data whose bias comes with its files, resizing, and
the bounded in-process caches of decoded splits.

All randomness comes from an explicit `torch.Generator`, so a seed fixes the data exactly.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
import torch.nn.functional as F
from torchvision.datasets import VisionDataset

from ..errors import ConfigError


@dataclass(frozen=True)
class BiasedTensors:
    """A whole split in memory: images float32 [N, 3, H, W] in [0, 1], labels and bias int64 [N].

    `aligned_bias` (int64 [num_classes]) holds class c's bias-aligned attribute value; a sample is
    bias-conflicting when `bias != aligned_bias[label]`. Left out, it is arange(num_classes):
    class c's aligned value is c (Coloured MNIST, Corrupted CIFAR-10, BFFHQ).
    """

    images: torch.Tensor
    labels: torch.Tensor
    bias: torch.Tensor  # the bias attribute's value (colour, corruption, gender, ... index)
    num_classes: int
    aligned_bias: torch.Tensor | None = None  # always a tensor after construction

    def __post_init__(self) -> None:
        aligned = self.aligned_bias
        if aligned is None:
            aligned = torch.arange(self.num_classes)
        if aligned.shape != (self.num_classes,):
            raise ValueError(f"aligned_bias must have shape ({self.num_classes},), got {tuple(aligned.shape)}")
        object.__setattr__(self, "aligned_bias", aligned.to(self.labels.device, torch.int64))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def conflicting(self) -> torch.Tensor:
        """bool [N]: samples whose bias attribute is not their class's aligned value."""
        return self.bias != self.aligned_bias[self.labels]

    def class_indices(self, c: int) -> torch.Tensor:
        """int64 indices of the samples of class `c`."""
        return (self.labels == c).nonzero().squeeze(1)

    def to(self, device: torch.device | str) -> "BiasedTensors":
        return BiasedTensors(self.images.to(device), self.labels.to(device), self.bias.to(device), self.num_classes,
                             self.aligned_bias.to(device))

    def normalized(self, norm: "Normalization") -> "BiasedTensors":
        """The same split with its images standardised by `norm`."""
        return BiasedTensors(norm.apply(self.images), self.labels, self.bias, self.num_classes, self.aligned_bias)


@dataclass(frozen=True)
class Normalization:
    """Per-channel standardisation x -> (x - mean) / std, as the reference trains on. A run uses
    its training split's own statistics, applies them to the test split too, and stores them with
    the synthetic set, which lives (unclamped) in this space; `invert` gives displayable images."""

    mean: torch.Tensor  # float32 [3]
    std: torch.Tensor  # float32 [3], positive

    @classmethod
    def of(cls, images: torch.Tensor, chunk: int = 4096) -> "Normalization":
        """The statistics of images [N, 3, H, W] (accumulated in float64, in chunks)."""
        total = torch.zeros(3, dtype=torch.float64)
        squares = torch.zeros(3, dtype=torch.float64)
        for s in range(0, len(images), chunk):
            x = images[s:s + chunk].double().cpu()
            total += x.sum(dim=(0, 2, 3))
            squares += x.pow(2).sum(dim=(0, 2, 3))
        n = images.shape[0] * images.shape[2] * images.shape[3]
        mean = total / n
        std = (squares / n - mean.pow(2)).clamp_min(0).sqrt().clamp_min(1e-3)  # a constant channel stays finite
        return cls(mean.float(), std.float())

    @classmethod
    def identity(cls) -> "Normalization":
        return cls(torch.zeros(3), torch.ones(3))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)[:, None, None]) / self.std.to(x)[:, None, None]

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.to(x)[:, None, None] + self.mean.to(x)[:, None, None]


# ---------------------------------------------------------------------------------------------
# bias assignment (datasets that make their own bias: coloured MNIST variants, Corrupted CIFAR-10)


class BiasedDataset(VisionDataset):
    """torchvision-style access to one in-memory split. Subclasses fill `images`, `labels`, `bias`
    and `num_classes` (and `aligned_bias` where class c's aligned value is not c). Items are
    (image, label, bias, index): the image after `transform`, if given."""

    images: torch.Tensor
    labels: torch.Tensor
    bias: torch.Tensor
    num_classes: int
    aligned_bias: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int, int, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index]), int(self.bias[index]), index

    def tensors(self) -> BiasedTensors:
        """The whole split as tensors (shared with the dataset, not copied)."""
        return BiasedTensors(self.images, self.labels, self.bias, self.num_classes, self.aligned_bias)


def check_conflict_ratio(conflict_ratio: float) -> None:
    if not (isinstance(conflict_ratio, (int, float)) and 0.0 <= conflict_ratio <= 1.0):
        raise ConfigError(f"conflict ratio must be in [0, 1], got {conflict_ratio!r}")


def num_conflicting(conflict_ratio: float, n: int) -> int:
    """Bias-conflicting samples in a class of `n`: round(ratio * n) with halves rounded up."""
    return math.floor(conflict_ratio * n + 0.5)


def _spread(values: torch.Tensor, total: int, generator: torch.Generator) -> torch.Tensor:
    """`total` entries drawn from `values` as evenly as possible (counts differ by at most 1);
    which values get the remainder is random."""
    whole, extra = divmod(total, len(values))
    return torch.cat([values.repeat(whole), values[torch.randperm(len(values), generator=generator)[:extra]]])


def assign_bias_train(
    labels: torch.Tensor, conflict_ratio: float, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """Biased split: each sample takes its class's value (class c -> c), except
    `num_conflicting(ratio, n_c)` random samples per class, spread evenly over the other values."""
    check_conflict_ratio(conflict_ratio)
    bias = labels.clone()
    for c in range(num_classes):
        idx = (labels == c).nonzero().squeeze(1)
        k = num_conflicting(conflict_ratio, len(idx))
        chosen = idx[torch.randperm(len(idx), generator=generator)[:k]]  # random order, so values land randomly
        others = torch.tensor([b for b in range(num_classes) if b != c], dtype=labels.dtype)
        bias[chosen] = _spread(others, k, generator)
    return bias


def assign_bias_test(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Unbiased split: each class's samples are spread evenly over all values (~1/num_classes aligned)."""
    bias = torch.empty_like(labels)
    values = torch.arange(num_classes, dtype=labels.dtype)
    for c in range(num_classes):
        idx = (labels == c).nonzero().squeeze(1)
        bias[idx[torch.randperm(len(idx), generator=generator)]] = _spread(values, len(idx), generator)
    return bias


# ---------------------------------------------------------------------------------------------
# the validation split (--evaluate-on validation) of datasets that make their own bias

HOLDOUT_EVERY = 10


def holdout_mask(labels: torch.Tensor) -> torch.Tensor:
    """bool [N]: every HOLDOUT_EVERY-th image of each class, in file order (the same for every
    seed): the validation images, held out of the training split."""
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)
        mask[idx[HOLDOUT_EVERY - 1::HOLDOUT_EVERY]] = True
    return mask


def validation_part(labels: torch.Tensor, train: bool) -> torch.Tensor:
    """Which images of the training files a validation run uses: the rest to train on (`train`),
    the held-out ones to evaluate on."""
    held = holdout_mask(labels)
    return ~held if train else held


# ---------------------------------------------------------------------------------------------
# the conflict-ratio rule for datasets whose bias comes with the files (BFFHQ, CSV)


def keep_for_ratio(
    labels: torch.Tensor,
    conflicting: torch.Tensor,
    conflict_ratio: float | None,
    class_names: Sequence[str],
    dataset: str,
    generator: torch.Generator,
) -> torch.Tensor:
    """Which training samples to keep (bool [N]) so that each class's bias-conflicting share is
    `conflict_ratio`; None keeps the data as it comes.

    Every aligned sample is kept, and per class c with A_c aligned samples a random
    round(ratio * A_c / (1 - ratio)) of its conflicting ones (all of them at ratio 1). Asking for
    more than a class holds is a ConfigError naming the data's own share: the files cannot make
    more conflicting samples, and dropping aligned ones instead would shrink the set silently.
    """
    keep = torch.ones(len(labels), dtype=torch.bool)
    if conflict_ratio is None:
        return keep
    check_conflict_ratio(conflict_ratio)
    shares = []
    for c in range(len(class_names)):
        in_c = labels == c
        n, k_have = int(in_c.sum()), int((in_c & conflicting).sum())
        if n:
            shares.append((k_have / n, c, k_have, n))
    own, c, k_have, n = min(shares)
    if conflict_ratio > own + 1e-12:
        most = math.floor(own * 1e5) / 1e5  # rounded down, so the suggested value is always accepted
        raise ConfigError(
            f"{dataset}'s training data has only {100 * own:.3g}% bias-conflicting samples in class "
            f"'{class_names[c]}' ({k_have} of {n}); ask for at most --conflict-ratio {most:g}, or "
            "--conflict-ratio none to use the data as it comes"
        )
    for c in range(len(class_names)):
        idx = ((labels == c) & conflicting).nonzero().squeeze(1)
        aligned = int(((labels == c) & ~conflicting).sum())
        k = len(idx) if conflict_ratio >= 1.0 else min(len(idx), num_conflicting(conflict_ratio / (1.0 - conflict_ratio), aligned))
        keep[idx[torch.randperm(len(idx), generator=generator)[k:]]] = False
    return keep


# ---------------------------------------------------------------------------------------------
# images


_CHUNK = 4096  # images resized at a time, so a large split never holds two float copies


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square-resize images (uint8 0..255 or float in [0, 1], [N, C, H, W]) to size x size with
    antialiased bilinear interpolation (what PIL's BILINEAR does when shrinking). Returns float32 in
    [0, 1]; the aspect ratio is not kept (the LfF/DisEnt loaders resize faces the same way)."""
    out = torch.empty(len(images), images.shape[1], size, size)
    for s in range(0, len(images), _CHUNK):
        x = images[s : s + _CHUNK].float()
        if images.dtype == torch.uint8:
            x = x / 255.0
        out[s : s + _CHUNK] = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False).clamp_(0.0, 1.0)
    return out


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 in [0, 1]."""
    return images.float().div_(255.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [N, C, H, W] in [0, 1] -> uint8, rounded (how image files store pixels)."""
    return images.clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# caches

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_caches: list["BuildCache"] = []  # every cache, so that clear_caches() reaches them all


class BuildCache(Generic[K, V]):
    """A thread-safe, bounded (least recently used) in-process cache of built splits. The app
    loads from several threads, so each value is built once under the lock; callers must copy
    what they return if the caller may modify it."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        _caches.append(self)

    def get(self, key: K, build: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = build()
            self._items[key] = value
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
            return value

    def __contains__(self, key: K) -> bool:
        with self._lock:
            return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def clear_caches() -> None:
    """Forget every decoded split of every dataset (e.g. after replacing files on disk)."""
    for cache in _caches:
        cache.clear()
