"""The real side of every distillation method: which real images each step sees, with what
coefficients, and the real images the synthetic set starts from. Weights (normalised within each
class) enter here and only here, in one of two ways (`weighting`):
  "sample": batches drawn with probability proportional to w (with replacement), uniform coefficients;
  "mean":   batches drawn uniformly without replacement, coefficients w / sum_batch w.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import DistillJob


# A class member's smallest weight in the table: a small --kde-tau underflows rare samples' weights
# to 0, and a zero would make a member look like padding (whose index belongs to another class)
MIN_WEIGHT = 1e-30


def class_table(labels: torch.Tensor, weights: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of each class's samples and their weights, padded to [C, n_max]: padding weight 0,
    members at least MIN_WEIGHT, so `w > 0` marks the members."""
    counts = torch.bincount(labels, minlength=num_classes)
    n_max = int(counts.max())
    table = torch.zeros(num_classes, n_max, dtype=torch.long, device=labels.device)
    w = torch.zeros(num_classes, n_max, dtype=torch.float32, device=labels.device)
    for c in range(num_classes):
        idx = (labels == c).nonzero().squeeze(1)
        table[c, : len(idx)] = idx
        w[c, : len(idx)] = weights[idx].clamp_min(MIN_WEIGHT)
    return table, w


def sample_positions(w: torch.Tensor, batch: int, with_weights: bool, generator: torch.Generator) -> torch.Tensor:
    """[C, batch] column positions into the class table: by weight with replacement, or uniformly
    without replacement among the real (non-padding) entries."""
    if with_weights:
        return torch.multinomial(w, batch, replacement=True, generator=generator)
    noise = torch.rand(w.shape, device=w.device, generator=generator).masked_fill(w <= 0, -1.0)
    return noise.topk(batch, dim=1).indices


def real_batch_size(w: torch.Tensor, batch_real: int, weighted_sampling: bool) -> int:
    """Real images per class per step: uniform sampling is without replacement, so it is capped
    by the smallest class."""
    return batch_real if weighted_sampling else min(batch_real, int((w > 0).sum(1).min()))


def init_synthetic(images: torch.Tensor, table: torch.Tensor, w: torch.Tensor, ipc: int,
                   generator: torch.Generator, init: str = "weighted") -> torch.Tensor:
    """The starting synthetic set [C, IPC, 3, H, W]: IPC real images per class drawn without
    replacement uniformly ("real") or with probability proportional to w ("weighted"; the same
    for vanilla runs), or standard normal noise ("noise": the reference's random init)."""
    if init == "noise":
        shape = (len(table), ipc, *images.shape[1:])
        return torch.randn(shape, generator=generator, device=generator.device).to(images.device)
    probs = (w > 0).float() if init == "real" else w
    pos = torch.multinomial(probs, ipc, replacement=False, generator=generator)
    return images[table.gather(1, pos)].clone()


@dataclass(frozen=True)
class RealSampler:
    table: torch.Tensor  # [C, n_max] indices into the training set (padding: weight 0)
    w: torch.Tensor  # [C, n_max] weights
    weighted: bool  # "sample" mode
    batch: int  # real images per class per step

    @classmethod
    def for_job(cls, job: DistillJob) -> "RealSampler":
        table, w = class_table(job.train.labels, job.weights, job.train.num_classes)
        weighted = job.cfg.reweight.weighting == "sample"
        return cls(table, w, weighted, real_batch_size(w, job.cfg.distill.batch_real, weighted))

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices into the training set [C, B], coefficients [C, B] whose rows sum to 1)."""
        pos = sample_positions(self.w, self.batch, self.weighted, generator)
        coef = torch.ones(pos.shape, device=pos.device) if self.weighted else self.w.gather(1, pos)
        return self.table.gather(1, pos), coef / coef.sum(dim=1, keepdim=True)

    def init_synthetic(self, images: torch.Tensor, ipc: int, generator: torch.Generator,
                       init: str = "weighted") -> torch.Tensor:
        """A leaf tensor [C, IPC, 3, H, W] to optimise (see `init_synthetic`)."""
        return init_synthetic(images, self.table, self.w, ipc, generator, init).requires_grad_(True)
