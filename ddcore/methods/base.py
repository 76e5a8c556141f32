"""The types every distillation method shares (see ddcore.methods)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..config import RunConfig
from ..data import BiasedTensors

# progress(done, total, loss): loss is None when not measured at this step. It may raise
# ddcore.errors.Cancelled to stop the method cooperatively.
Progress = Callable[[int, int, float | None], None]


@dataclass(frozen=True)
class DistillJob:
    train: BiasedTensors
    weights: torch.Tensor  # [N] float, sums to 1 within each class
    cfg: RunConfig
    seed: int
    progress: Progress


@dataclass(frozen=True)
class SyntheticSet:
    images: torch.Tensor  # [C * IPC, 3, H, W], class-major
    labels: torch.Tensor  # [C * IPC]
    losses: list[float]  # the loss at each logged step

