"""Biased datasets behind one interface, plus a sample-grid helper.

`DATASET_SPECS` maps each name of `ddcore.config.DATASETS` to its `DatasetSpec` (title, names,
display colours, native size, bundled sample, loader, summary, files help). The rest of ddcore
uses the functions below, never a dataset module directly:

- `load_biased(cfg, train, seed)`: the biased training split or the test split as `BiasedTensors`;
- `train_summary(cfg)`: training class counts and image size, cheaply (for `pipeline.preflight`);
- `files_help(cfg)`: which files to put where (errors, the app);
- `describe(cfg)`: class and bias-value names and colours (the app);
- `dsa_strategy(run_cfg)`: the run's DSA strategy (the dataset's own unless one is given).

Each dataset is also a torchvision-style `Dataset` (ColoredMNIST, ColoredFashionMNIST,
CorruptedCIFAR10, BFFHQ, BiasedCSV). Decoded files are cached in-process (bounded; `clear_cache()` empties the caches).
"""
from __future__ import annotations

import math

import torch
from PIL import Image

from ..config import DATASETS, DataConfig, RunConfig, validate_data
from ..errors import ConfigError
from . import bffhq, cifar, colored, csvdata
from .base import (
    BiasedTensors,
    Normalization,
    assign_bias_test,
    assign_bias_train,
    clear_caches,
    keep_for_ratio,
    num_conflicting,
)
from .bffhq import BFFHQ
from .cifar import CorruptedCIFAR10
from .colored import PALETTE, SEVERITY_STD, ColoredFashionMNIST, ColoredMNIST, colorize
from .csvdata import BiasedCSV
from .mnist import load_grey_digits
from .spec import DatasetSpec, Naming, Summary, distinct_colours

__all__ = [
    "BFFHQ",
    "DATASET_SPECS",
    "PALETTE",
    "SEVERITY_STD",
    "BiasedCSV",
    "BiasedTensors",
    "ColoredFashionMNIST",
    "ColoredMNIST",
    "CorruptedCIFAR10",
    "DatasetSpec",
    "Naming",
    "Normalization",
    "Summary",
    "assign_bias_test",
    "assign_bias_train",
    "check_config",
    "clear_cache",
    "colorize",
    "describe",
    "distinct_colours",
    "dsa_strategy",
    "files_help",
    "get_spec",
    "image_grid",
    "keep_for_ratio",
    "load_biased",
    "load_grey_digits",
    "num_conflicting",
    "train_summary",
]

DATASET_SPECS: dict[str, DatasetSpec] = {s.name: s for s in (*colored.SPECS, *cifar.SPECS, bffhq.SPEC, csvdata.SPEC)}
assert set(DATASET_SPECS) == set(DATASETS), "every configurable dataset needs a registry entry"

clear_cache = clear_caches


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASET_SPECS:
        raise ConfigError(f"unknown dataset '{name}'; choose one of {', '.join(DATASET_SPECS)}")
    return DATASET_SPECS[name]


def check_config(cfg: DataConfig) -> DatasetSpec:
    """The data section's values, then what depends on the dataset: a bundled sample, --download,
    a conflict ratio of None, which option points at the files. Returns the dataset's spec."""
    validate_data(cfg)
    spec = get_spec(cfg.dataset)
    where = "FILE" if spec.path_option == "--csv-path" else "DIR"
    if cfg.source == "bundled" and not spec.bundled:
        raise ConfigError(f"{spec.name} has no bundled sample; pass --source files {spec.path_option} {where} "
                          f"({spec.files_help(cfg)})")
    if cfg.download and not spec.downloadable:
        raise ConfigError(f"torchvision cannot download {spec.name}; drop --download ({spec.files_help(cfg)})")
    if cfg.conflict_ratio is None and not spec.bias_from_files:
        bias_from_files = ", ".join(s.name for s in DATASET_SPECS.values() if s.bias_from_files)
        raise ConfigError(f"{spec.name} assigns the bias itself and needs a conflict ratio in [0, 1]; only "
                          f"{bias_from_files} take none (the data as its files come)")
    if spec.path_option == "--csv-path" and cfg.root is not None:
        raise ConfigError(f"dataset {spec.name} reads --csv-path FILE; --root is not used by it")
    if cfg.evaluate_on == "validation" and not spec.validation:
        able = ", ".join(s.name for s in DATASET_SPECS.values() if s.validation)
        raise ConfigError(f"{spec.name} has no validation split here (its bias comes with its files); "
                          f"--evaluate-on validation works for {able}")
    if spec.path_option != "--csv-path" and cfg.csv_path is not None:
        raise ConfigError(f"--csv-path is for --dataset csv only, not {spec.name}")
    return spec


def load_biased(cfg: DataConfig, train: bool, seed: int) -> BiasedTensors:
    """The biased training split (`train=True`) or the test split of `cfg.dataset`.

    `seed` fixes everything random about the split (bias assignment, colour jitter, corruptions,
    which conflicting samples a ratio keeps); which images are in which split never depends on it.
    The test split ignores `cfg.conflict_ratio`.
    """
    return check_config(cfg).load(cfg, train, seed)


def train_summary(cfg: DataConfig) -> Summary:
    """The training split's class counts and image size, reading as little as the format allows;
    raises the same ConfigError / DatasetError as `load_biased` for a bad config or missing files."""
    return check_config(cfg).summary(cfg)


def dsa_strategy(cfg: RunConfig) -> str:
    """The run's DSA strategy: --dsa-strategy when given ("none": no augmentation), else the
    dataset's own (color_crop_cutout_scale_rotate for digits; flip added for natural images)."""
    return cfg.distill.dsa_strategy if cfg.distill.dsa_strategy is not None else get_spec(cfg.data.dataset).dsa_strategy


def files_help(cfg: DataConfig) -> str:
    """One line saying which files the dataset needs, where (under cfg.root), and which options to pass."""
    return get_spec(cfg.dataset).files_help(cfg)


def describe(cfg: DataConfig) -> Naming:
    """Class names, bias-value names and display colours, and each class's aligned value."""
    return get_spec(cfg.dataset).describe(cfg)


def image_grid(images: torch.Tensor, nrow: int, pad: int = 1) -> Image.Image:
    """Tile images ([N, C, H, W] with C = 1 or 3, values in [0, 1]) into an RGB PIL image with
    `nrow` images per row and `pad` white pixels between and around them.

    The result is (cols * (W + pad) + pad) wide and (rows * (H + pad) + pad) high, where
    cols = min(nrow, N) and rows = ceil(N / nrow).
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3) or len(images) == 0 or nrow < 1 or pad < 0:
        raise ValueError(f"image_grid needs [N>0, 1 or 3, H, W] images and nrow >= 1, got {tuple(images.shape)}")
    images = images.detach().cpu().float().clamp(0.0, 1.0).expand(-1, 3, -1, -1)
    n, _, h, w = images.shape
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    grid = torch.ones(3, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i, image in enumerate(images):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        grid[:, top : top + h, left : left + w] = image
    pixels = (grid * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous()
    return Image.fromarray(pixels.numpy())  # uint8 [H, W, 3] is RGB
