"""Evaluation: train fresh ConvNets on a (synthetic or full) training set, test on unbiased data.

Reference protocol: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x 0.1 at half
the epochs, DSA augmentation during training; accuracy reported overall ("unbiased", colours
uniform), on bias-aligned and on bias-conflicting test samples; mean and std over several
freshly initialised models. Accuracies are in percent.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import augment
from .config import RunConfig
from .data import BiasedTensors
from .nets import ConvNet, build_convnet

Progress = Callable[[int, int, float | None], None]


@dataclass(frozen=True)
class Accuracy:
    unbiased: float
    aligned: float
    conflicting: float


@torch.no_grad()
def accuracy(net: ConvNet, test: BiasedTensors, batch: int = 2048) -> Accuracy:
    net.eval()
    preds = torch.cat([net(test.images[i:i + batch]).argmax(1) for i in range(0, len(test.images), batch)])
    correct = (preds == test.labels).float()
    conflicting = test.conflicting

    def pct(mask: torch.Tensor) -> float:
        return 100.0 * float(correct[mask].mean()) if bool(mask.any()) else float("nan")

    return Accuracy(pct(torch.ones_like(conflicting)), pct(~conflicting), pct(conflicting))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: RunConfig,
                     epochs: int, seed: int, progress: Progress | None = None) -> ConvNet:
    """A fresh ConvNet (the run's architecture) trained on images [N, 3, H, W] / labels [N]."""
    device = images.device
    g = torch.Generator(device=device).manual_seed(seed)
    aug_g = torch.Generator().manual_seed(seed + 1)
    n, e = cfg.net, cfg.eval
    net = build_convnet(num_classes, n.net_width, n.net_depth, n.net_norm, tuple(images.shape[2:]), g, device)
    opt = torch.optim.SGD(net.parameters(), lr=e.eval_lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[epochs // 2], gamma=0.1)
    strategy = cfg.distill.dsa_strategy if e.eval_dsa else "none"
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=g, device=device)
        for start in range(0, len(images), e.eval_batch):
            idx = order[start:start + e.eval_batch]
            loss = F.cross_entropy(net(augment.augment(images[idx], strategy, aug_g)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        if progress is not None:
            progress(epoch + 1, epochs, None)
    return net


def summarize(results: list[Accuracy]) -> dict[str, float | None]:
    """mean and (population) std of each accuracy over models, as metrics.json keys. A group the
    test set lacks (no conflicting samples, say) has no accuracy: None, not NaN."""
    out: dict[str, float | None] = {}
    for key in ("unbiased", "aligned", "conflicting"):
        values = [getattr(r, key) for r in results]
        defined = not any(math.isnan(v) for v in values)
        out[f"test_acc_{key}"] = statistics.fmean(values) if defined else None
        out[f"test_acc_{key}_std"] = statistics.pstdev(values) if defined else None
    out["test_acc_unbiased_per_model"] = [r.unbiased for r in results]
    return out


def evaluate_set(images: torch.Tensor, labels: torch.Tensor, test: BiasedTensors, cfg: RunConfig,
                 epochs: int, seed: int, progress: Progress | None = None) -> dict[str, float]:
    """Train cfg.eval.eval_models fresh models on (images, labels) and test each on `test`."""
    k = cfg.eval.eval_models
    results = []
    for m in range(k):
        def model_progress(done: int, total: int, loss: float | None, m: int = m) -> None:
            if progress is not None:
                progress(m * total + done, k * total, loss)

        net = train_classifier(images, labels, test.num_classes, cfg, epochs, seed + 1000 * (m + 1), model_progress)
        results.append(accuracy(net, test))
    return summarize(results)
