"""BFFHQ (biased FFHQ; Kim et al., BiaSwap, ICCV 2021): faces whose target is age (young / old)
and whose bias attribute is gender, in the folder layout the LfF/DisEnt repositories distribute:

    ROOT/bffhq/0.5pct/align/<any subfolder>/*.png     bias-aligned training images
    ROOT/bffhq/0.5pct/conflict/<any subfolder>/*.png  bias-conflicting training images (0.5%)
    ROOT/bffhq/valid/*.png                            not used here (nothing is tuned on it)
    ROOT/bffhq/test/*.png                             test images; only the bias-conflicting ones are kept

Every file name ends in `_{target}_{bias}.png` (target 0 young, 1 old; bias 0 female, 1 male); a
sample is bias-aligned when target == bias, so young women and old men are the majority groups.
The reference loaders glob `align/*/*`; images directly in align/ or conflict/ are read too.
"""
from __future__ import annotations

import glob
import os
from collections.abc import Callable
from typing import Any

import torch

from ..config import DataConfig
from ..errors import ConfigError, DatasetError
from .base import BiasedDataset, BiasedTensors, BuildCache, keep_for_ratio, to_float
from .imagefiles import READ_ERRORS, Problems, read_rgb
from .spec import DatasetSpec, Naming, Summary, distinct_colours, shown_root

CLASSES = ("young", "old")
GENDERS = ("female", "male")
DEFAULT_SIZE = 64
TRAIN_FOLDER = "0.5pct"  # the only training ratio distributed

_Files = tuple[list[str], torch.Tensor, torch.Tensor]  # paths, targets, biases
# (absolute root, train, size) -> (uint8 [N, 3, S, S], targets, biases) of every listed image
_cache: BuildCache[tuple[str, bool, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = BuildCache(4)


def folders(root: str, train: bool) -> list[str]:
    """The folders a split's images are read from."""
    base = os.path.join(root, "bffhq")
    if train:
        return [os.path.join(base, TRAIN_FOLDER, "align"), os.path.join(base, TRAIN_FOLDER, "conflict")]
    return [os.path.join(base, "test")]


def list_files(root: str | None, train: bool) -> _Files:
    """Every image of a split with the target and bias its name gives (the test split: only the
    bias-conflicting ones). Raises DatasetError for a missing folder or badly named files."""
    if root is None:
        raise ConfigError(f"dataset bffhq needs its files: {files_help_text(None)}")
    root = os.path.abspath(os.path.expanduser(root))
    paths: list[str] = []
    for folder in folders(root, train):
        if not os.path.isdir(folder):
            raise DatasetError(_missing(root, folder))
        found = sorted(glob.glob(os.path.join(glob.escape(folder), "*.png"))
                       + glob.glob(os.path.join(glob.escape(folder), "*", "*.png")))
        if not found:
            raise DatasetError(f"BFFHQ folder {folder} holds no .png images; {files_help_text(root)}")
        paths += found
    problems = Problems(f"BFFHQ under {os.path.join(root, 'bffhq')}", "file names")
    targets, biases = [], []
    for path in paths:
        parts = os.path.splitext(os.path.basename(path))[0].split("_")
        if len(parts) < 3 or parts[-2] not in ("0", "1") or parts[-1] not in ("0", "1"):
            problems.add(path, "the name does not end in _{target}_{bias}.png with target and bias 0 or 1")
            continue
        targets.append(int(parts[-2]))
        biases.append(int(parts[-1]))
    problems.raise_if_any("BFFHQ names every image <id>_<age 0|1>_<gender 0|1>.png; restore the original files")
    target, bias = torch.tensor(targets, dtype=torch.int64), torch.tensor(biases, dtype=torch.int64)
    if not train:  # the usual BFFHQ test split: bias-conflicting images only
        keep = (target != bias).nonzero().squeeze(1).tolist()
        paths, target, bias = [paths[i] for i in keep], target[keep], bias[keep]
    return paths, target, bias


def _missing(root: str, folder: str) -> str:
    if os.path.isdir(os.path.join(root, TRAIN_FOLDER)) or os.path.isdir(os.path.join(root, "test")):
        return (f"BFFHQ not found: expected {folder}, but {root} looks like the bffhq folder itself; "
                f"--root must be the folder that holds bffhq/ (here {os.path.dirname(root)})")
    return f"BFFHQ not found: expected {folder}; {files_help_text(root)}"


def _decode(paths: list[str], size: int) -> torch.Tensor:
    images = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    problems = Problems("BFFHQ", "images")
    for i, path in enumerate(paths):
        try:
            images[i] = read_rgb(path, size)
        except READ_ERRORS as e:
            problems.add(path, f"cannot read the image ({e})")
    problems.raise_if_any("replace or delete those files (the originals come with the LfF/DisEnt download)")
    return images


class BFFHQ(BiasedDataset):
    """BFFHQ as a torchvision-style dataset. Items are (image, label, bias, index): image float32
    [3, S, S] in [0, 1] (after `transform`, if given), age (0 young, 1 old), gender (0 female,
    1 male) and the position in the split.

    Args:
        root: the folder holding bffhq/ (see the module docstring for the layout).
        train: the 0.5%-conflicting training split if True, else the conflicting-only test split.
        transform: applied to each image tensor.
        image_size: side S the faces are resized to (bilinear; default 64).
        conflict_ratio: None keeps the training split as distributed; a ratio keeps every aligned
            image and subsamples the conflicting ones down to it (ddcore.data.base.keep_for_ratio).
        seed: fixes which conflicting images the ratio keeps.
    """

    def __init__(
        self,
        root: str | None,
        train: bool = True,
        transform: Callable[[torch.Tensor], Any] | None = None,
        *,
        image_size: int | None = None,
        conflict_ratio: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(root, transform=transform)
        self.train, self.image_size, self.conflict_ratio, self.seed = train, image_size or DEFAULT_SIZE, conflict_ratio, seed
        paths, labels, bias = list_files(root, train)
        assert root is not None  # list_files raised otherwise
        images, labels, bias = _cache.get((os.path.abspath(os.path.expanduser(root)), train, self.image_size),
                                          lambda: (_decode(paths, self.image_size), labels, bias))
        if train:
            keep = keep_for_ratio(labels, labels != bias, conflict_ratio, CLASSES, "bffhq",
                                  torch.Generator().manual_seed(seed))
            images, labels, bias = images[keep], labels[keep], bias[keep]
        self.images, self.labels, self.bias = to_float(images), labels.clone(), bias.clone()
        self.num_classes = len(CLASSES)

    def extra_repr(self) -> str:
        split = f"Train ({TRAIN_FOLDER}, conflict ratio {self.conflict_ratio})" if self.train else "Test (conflicting only)"
        return f"Split: {split}\nImage size: {self.image_size}\nSeed: {self.seed}"


# ---------------------------------------------------------------------------------------------
# registry entry


def files_help_text(root: str | None) -> str:
    r = shown_root(root)
    return (f"put the BFFHQ folders as the LfF/DisEnt download unpacks them under {r}: "
            f"{os.path.join(r, 'bffhq', TRAIN_FOLDER, 'align')}/<subfolder>/*.png, "
            f"{os.path.join(r, 'bffhq', TRAIN_FOLDER, 'conflict')}/<subfolder>/*.png and "
            f"{os.path.join(r, 'bffhq', 'test')}/*.png (file names end in _<age>_<gender>.png), then pass "
            f"--source files --root {r}; torchvision cannot download BFFHQ")


def _load(cfg: DataConfig, train: bool, seed: int) -> BiasedTensors:
    return BFFHQ(cfg.root, train, image_size=cfg.image_size, conflict_ratio=cfg.conflict_ratio, seed=seed).tensors()


def _summary(cfg: DataConfig) -> Summary:
    _, labels, bias = list_files(cfg.root, True)  # names only: the counts need no decoding
    keep = keep_for_ratio(labels, labels != bias, cfg.conflict_ratio, CLASSES, "bffhq", torch.Generator())
    side = cfg.image_size or DEFAULT_SIZE
    return Summary(torch.bincount(labels[keep], minlength=len(CLASSES)), (side, side))


SPEC = DatasetSpec(
    name="bffhq", title="BFFHQ (age, biased by gender)", bias_attribute="gender", native_size=DEFAULT_SIZE,
    bundled=False, downloadable=False, bias_from_files=True, path_option="--root", load=_load, summary=_summary,
    files_help=lambda cfg: "BFFHQ: " + files_help_text(cfg.root),
    naming=Naming(CLASSES, GENDERS, distinct_colours(2), (0, 1)),
)
