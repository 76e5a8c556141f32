"""Biased datasets: Coloured MNIST and its background variant, plus a sample-grid helper.

`load_biased(cfg, train, seed)` is the entry point the rest of ddcore uses; `ColoredMNIST` is the
same data as a torchvision-style `Dataset`.
"""
from __future__ import annotations

import math

import torch
from PIL import Image

from ..config import DATASETS, DataConfig
from ..errors import ConfigError
from .colored import (
    PALETTE,
    SEVERITY_STD,
    BiasedTensors,
    ColoredMNIST,
    assign_bias_test,
    assign_bias_train,
    colorize,
    num_conflicting,
)
from .mnist import clear_cache, load_grey_digits

__all__ = [
    "PALETTE",
    "SEVERITY_STD",
    "BiasedTensors",
    "ColoredMNIST",
    "assign_bias_test",
    "assign_bias_train",
    "clear_cache",
    "colorize",
    "image_grid",
    "load_biased",
    "load_grey_digits",
    "num_conflicting",
]

# dataset name -> whether the colour goes on the background
_BACKGROUND: dict[str, bool] = {"cmnist": False, "bg-cmnist": True}
assert set(_BACKGROUND) == set(DATASETS), "every configurable dataset needs a loader"


def load_biased(cfg: DataConfig, train: bool, seed: int) -> BiasedTensors:
    """The biased training split (`train=True`) or the unbiased test split of `cfg.dataset`.

    `seed` fixes the bias assignment and colour jitter; which digits are in which split never
    depends on it. The test split ignores `cfg.conflict_ratio`.
    """
    if cfg.dataset not in _BACKGROUND:
        raise ConfigError(f"unknown dataset '{cfg.dataset}'; choose one of {', '.join(_BACKGROUND)}")
    return ColoredMNIST(
        cfg.root,
        train,
        download=cfg.download,
        source=cfg.source,
        conflict_ratio=cfg.conflict_ratio,
        severity=cfg.severity,
        background=_BACKGROUND[cfg.dataset],
        seed=seed,
    ).tensors()


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
