"""The dataset interface: what the registry (`ddcore.data.DATASET_SPECS`) knows about each dataset."""
from __future__ import annotations

import colorsys
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import DataConfig
from .base import BiasedTensors

RGB = tuple[float, float, float]

# Display colours for bias values that are not colours themselves (corruptions, genders, the
# user's own attributes): the Okabe-Ito palette (distinguishable with colour-blindness), then
# golden-angle hues. Deliberately not the app's class colours, so "coloured by class" and
# "coloured by bias attribute" never look alike.
_OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")


def distinct_colours(n: int) -> tuple[RGB, ...]:
    """`n` fixed, distinct display colours as RGB in [0, 1]."""
    colours = [tuple(int(h[i : i + 2], 16) / 255 for i in (1, 3, 5)) for h in _OKABE_ITO[:n]]
    for i in range(n - len(colours)):
        colours.append(colorsys.hsv_to_rgb((0.61803398875 * i) % 1.0, 0.55, 0.85))
    return tuple((float(r), float(g), float(b)) for r, g, b in colours)


@dataclass(frozen=True)
class Naming:
    """Names for display: the classes, the bias attribute's values with a colour each, and which
    value is class c's aligned one (`aligned[c]`)."""

    classes: tuple[str, ...]
    bias_values: tuple[str, ...]
    colours: tuple[RGB, ...]
    aligned: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Summary:
    """What a run can be checked against before any image is decoded: the training split's class
    counts (int64 [num_classes], after the conflict-ratio rule) and its images' (H, W)."""

    class_counts: torch.Tensor
    image_size: tuple[int, int]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the registry.

    `load(cfg, train, seed)` builds the biased training split (train=True) or the test split;
    `summary(cfg)` is the cheap check for `pipeline.preflight` (it reads labels, not images, where
    the format allows, and raises the same errors as `load` for missing or damaged files);
    `files_help(cfg)` says which files go where; `describe(cfg)` gives the display names.
    """

    name: str
    title: str
    bias_attribute: str  # what the bias attribute is, for text: "colour", "corruption", "gender", ...
    native_size: int | None  # side of the images when image_size is None; None: the files' own size
    bundled: bool  # a sample ships with the code (source "bundled")
    downloadable: bool  # torchvision can download the files (--download)
    bias_from_files: bool  # the bias comes with the files (conflict ratio None = as they come)
    path_option: str  # the option that points at the files: "--root" or "--csv-path"
    load: Callable[[DataConfig, bool, int], BiasedTensors]
    summary: Callable[[DataConfig], Summary]
    files_help: Callable[[DataConfig], str]
    naming: Naming | None = None  # None: read from the files by `read_naming` (csv)
    read_naming: Callable[[DataConfig], Naming] | None = None
    # the DSA strategy a run uses unless --dsa-strategy says otherwise: natural images flip (the
    # reference's default), digits do not (a mirrored digit is not a digit)
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    validation: bool = False  # --evaluate-on validation is possible (the loader holds images out of its training files)

    def describe(self, cfg: DataConfig) -> Naming:
        if self.naming is not None:
            return self.naming
        assert self.read_naming is not None, f"dataset {self.name} needs a naming or a read_naming"
        return self.read_naming(cfg)


def shown_root(root: str | None) -> str:
    """The root as a user should read it in help text: absolute, or ROOT when none was given."""
    return os.path.abspath(os.path.expanduser(root)) if root else "ROOT"
