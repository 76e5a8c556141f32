"""The types and the loss bookkeeping every distillation method shares (see ddcore.methods)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..config import RunConfig
from ..data import BiasedTensors
from ..errors import DivergedError
from ..hardware import Compilation, Precision
from ..nets import ConvNet

LOG_POINTS = 100  # loss read back (a host sync) this many times per run

# progress(done, total, loss): loss is None when not measured at this step. It may raise
# ddcore.errors.Cancelled to stop the method cooperatively.
Progress = Callable[[int, int, float | None], None]


def _no_stage(name: str) -> None:
    """The default `DistillJob.stage`: sub-stages go unreported."""


@dataclass(frozen=True)
class DistillJob:
    train: BiasedTensors
    weights: torch.Tensor  # [N] float, sums to 1 within each class
    cfg: RunConfig
    seed: int
    progress: Progress
    stage: Callable[[str], None] = _no_stage  # announces a method's sub-stage (MTT: "experts")
    cache_dir: Path | None = None  # where a method may cache reusable work (MTT's experts); None: no cache
    precision: Precision = Precision(False, "fp32 unless the run resolves --bf16")  # ddcore.hardware
    compile: Compilation = Compilation(False, "eager unless the run resolves --compile")  # ddcore.hardware

    def generators(self) -> tuple[torch.Generator, torch.Generator]:
        """(a generator on the data's device for networks and sampling, a CPU generator for
        augmentation draws), both seeded from the job."""
        device = self.train.images.device
        return torch.Generator(device=device).manual_seed(self.seed), torch.Generator().manual_seed(self.seed + 1)

    def network(self) -> ConvNet:
        """The run's ConvNet on the data's device; methods re-draw its weights from a generator."""
        n, images = self.cfg.net, self.train.images
        net = ConvNet(self.train.num_classes, images.shape[1], n.net_width, n.net_depth, n.net_norm, tuple(images.shape[2:]))
        return net.to(images.device)


@dataclass(frozen=True)
class SyntheticSet:
    images: torch.Tensor  # [C * IPC, 3, H, W], class-major
    labels: torch.Tensor  # [C * IPC]
    losses: list[float]  # the loss at each logged step
    info: dict[str, float] = field(default_factory=dict)  # method-specific results (MTT: the learned lr)


class LossLog:
    """Keeps each iteration's loss on the device and reads it back only at LOG_POINTS evenly spaced
    iterations; there it checks the loss and the synthetic images for divergence and reports the
    mean loss since the last log point. `progress` is called every iteration."""

    def __init__(self, job: DistillJob, iterations: int, device: torch.device, method: str, hint: str) -> None:
        self.job, self.iterations, self.method, self.hint = job, iterations, method, hint
        self.every = max(1, iterations // LOG_POINTS)
        self.trace = torch.zeros(iterations, device=device)
        self.logged: list[float] = []

    def at_log_point(self, it: int) -> bool:
        """Whether iteration `it` (0-based) reads the loss back (where extra checks cost nothing more)."""
        done = it + 1
        return done % self.every == 0 or done == self.iterations

    def step(self, it: int, loss: torch.Tensor, syn: torch.Tensor) -> None:
        """Record iteration `it`'s (0-based) scalar loss; `syn` is the current synthetic set."""
        self.trace[it] = loss.detach()
        done = it + 1
        if not self.at_log_point(it):
            self.job.progress(done, self.iterations, None)
            return
        value = float(self.trace[done - self.every:done].mean())
        if not (math.isfinite(value) and bool(torch.isfinite(syn).all())):
            raise DivergedError(
                f"{self.method} diverged at iteration {done}: the synthetic images or the loss became "
                f"non-finite (loss {value}); {self.hint}"
            )
        self.logged.append(value)
        self.job.progress(done, self.iterations, value)
