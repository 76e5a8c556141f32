"""Evaluation: train fresh ConvNets on a (synthetic or full) training set, test on unbiased data.

Reference protocol: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, lr x 0.1 at half
the epochs, DSA augmentation during training; accuracy reported overall ("unbiased", colours
uniform), on bias-aligned and on bias-conflicting test samples; mean and std over several
freshly initialised models. Accuracies are in percent. Under --eval-debias the models are trained
with Learning from Failure, Just Train Twice or SelecMix (+L) (ddcore.debias) with the same optimiser,
schedule and augmentation.

Group metrics (a group is one (class, bias value) pair of the test split): `group_accuracy`, the
[classes x bias values] matrix of accuracies (None where the test split has no such sample); the
worst group's accuracy; and the equalised-odds differences as FairDD (Zhou et al., NeurIPS 2025)
computes them: for each class the spread (max - min) of its groups' accuracies, then `deo_max`
(DEO-M) the largest and `deo_mean` (DEO-A) the mean spread over the classes. FairDD counts a group
absent from the test split as accuracy 0; here it is left out, and a class with fewer than two
groups present has no spread.
"""
from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from . import augment, debias, hardware
from .config import RunConfig
from .data import BiasedTensors, dsa_strategy
from .nets import ConvNet, build_convnet

Progress = Callable[[int, int, float | None], None]


Groups = tuple[tuple[float | None, ...], ...]  # [class][bias value] -> accuracy in percent, None: no samples


@dataclass(frozen=True)
class Accuracy:
    unbiased: float
    aligned: float
    conflicting: float
    groups: Groups = ()

    @property
    def worst_group(self) -> float | None:
        present = [a for row in self.groups for a in row if a is not None]
        return min(present) if present else None

    @property
    def spreads(self) -> list[float]:
        """Per class with at least two groups present: max - min of its groups' accuracies."""
        rows = [[a for a in row if a is not None] for row in self.groups]
        return [max(r) - min(r) for r in rows if len(r) >= 2]

    @property
    def deo_max(self) -> float | None:
        return max(self.spreads) if self.spreads else None

    @property
    def deo_mean(self) -> float | None:
        return statistics.fmean(self.spreads) if self.spreads else None


def group_accuracy(correct: torch.Tensor, labels: torch.Tensor, bias: torch.Tensor, num_classes: int,
                   num_values: int) -> Groups:
    """correct, labels, bias [N] -> accuracy (percent) of each (class, bias value) group."""
    group = labels * num_values + bias
    total = torch.bincount(group, minlength=num_classes * num_values).view(num_classes, num_values)
    right = torch.bincount(group, weights=correct.float(), minlength=num_classes * num_values).view(total.shape)
    return tuple(tuple(100.0 * float(r) / int(t) if int(t) else None for r, t in zip(rr, tt))
                 for rr, tt in zip(right.tolist(), total.tolist()))


@torch.no_grad()
def accuracy(net: ConvNet, test: BiasedTensors, batch: int = 2048) -> Accuracy:
    net.eval()
    preds = torch.cat([net(test.images[i:i + batch]).argmax(1) for i in range(0, len(test.images), batch)])
    correct = (preds == test.labels).float()
    conflicting = test.conflicting

    def pct(mask: torch.Tensor) -> float:
        return 100.0 * float(correct[mask].mean()) if bool(mask.any()) else float("nan")

    num_values = int(max(test.bias.max(), test.aligned_bias.max())) + 1
    groups = group_accuracy(correct.cpu(), test.labels.cpu(), test.bias.cpu(), test.num_classes, num_values)
    return Accuracy(pct(torch.ones_like(conflicting)), pct(~conflicting), pct(conflicting), groups)


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: RunConfig,
                     epochs: int, seed: int, progress: Progress | None = None) -> ConvNet:
    """A fresh ConvNet (the run's architecture) trained on images [N, 3, H, W] / labels [N] with
    cross-entropy, or with the debiasing method cfg.eval.eval_debias names."""
    spec = debias.spec_from(cfg.eval.eval_debias, cfg.eval)
    if spec is None:
        return fit(images, labels, num_classes, cfg, epochs, seed, progress)
    if spec.method in debias.JOINT_METHODS:
        return fit(images, labels, num_classes, cfg, epochs, seed, progress, joint=spec)
    # JTT: the identification model is this very training stopped after T epochs
    stop = debias.identification_epochs(epochs, math.ceil(len(images) / cfg.eval.eval_batch), spec.jtt_id_steps)
    total = stop + epochs

    def phase(offset: int) -> Progress | None:
        return None if progress is None else lambda done, _, loss: progress(offset + done, total, loss)

    identifier = fit(images, labels, num_classes, cfg, epochs, seed, phase(0), stop=stop)
    index = debias.upsample(debias.misclassified(identifier, images, labels), spec.jtt_upweight)
    return fit(images, labels, num_classes, cfg, epochs, seed, phase(stop), index=index)


def fit(images: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: RunConfig, epochs: int, seed: int,
         progress: Progress | None = None, stop: int | None = None, index: torch.Tensor | None = None,
         joint: debias.DebiasSpec | None = None) -> ConvNet:
    """The evaluation's training loop: `epochs` epochs of SGD (lr x 0.1 at half), or only the first
    `stop` of them; over `index` (a multiset of sample positions) instead of every sample once; and
    with LfF's biased model or SelecMix's auxiliary encoder (`joint`) trained beside the returned one."""
    device = images.device
    g = torch.Generator(device=device).manual_seed(seed)
    aug_g = torch.Generator().manual_seed(seed + 1)
    n, e = cfg.net, cfg.eval
    net = build_convnet(num_classes, n.net_width, n.net_depth, n.net_norm, tuple(images.shape[2:]), g, device)
    params = list(net.parameters())
    helper = None
    if joint is not None:
        def twin() -> ConvNet:
            return build_convnet(num_classes, n.net_width, n.net_depth, n.net_norm, tuple(images.shape[2:]), g, device)

        helper = debias.joint_trainer(joint, twin, labels, num_classes, g)
        params += list(helper.parameters())
    opt = torch.optim.SGD(params, lr=e.eval_lr, momentum=0.9, weight_decay=5e-4)
    # milestone 0 would decay before the first step: a 1-epoch training runs at the full lr
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, epochs // 2)], gamma=0.1)
    strategy = dsa_strategy(cfg) if e.eval_dsa else "none"
    size = len(images) if index is None else len(index)
    net.train()
    for epoch in range(epochs if stop is None else stop):
        order = torch.randperm(size, generator=g, device=device)
        if index is not None:
            order = index[order]
        for start in range(0, size, e.eval_batch):
            idx = order[start:start + e.eval_batch]
            x = augment.augment(images[idx], strategy, aug_g)
            loss = F.cross_entropy(net(x), labels[idx]) if helper is None else helper.loss(net, x, labels[idx], idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        if progress is not None:
            progress(epoch + 1, epochs if stop is None else stop, None)
    return net


def summarize(results: list[Accuracy]) -> dict[str, Any]:
    """mean and (population) std of each accuracy over models, as metrics.json keys. A group the
    test set lacks (no conflicting samples, say) has no accuracy: None, not NaN."""
    out: dict[str, Any] = {}
    for key in ("unbiased", "aligned", "conflicting"):
        values = [getattr(r, key) for r in results]
        defined = not any(math.isnan(v) for v in values)
        out[f"test_acc_{key}"] = statistics.fmean(values) if defined else None
        out[f"test_acc_{key}_std"] = statistics.pstdev(values) if defined else None
    for key, name in (("worst_group", "test_acc_worst_group"), ("deo_max", "deo_max"), ("deo_mean", "deo_mean")):
        values = [getattr(r, key) for r in results]
        defined = all(v is not None for v in values)
        out[name] = statistics.fmean(values) if defined else None
        out[f"{name}_std"] = statistics.pstdev(values) if defined else None
    out["group_accuracy"] = [[None if cells[0] is None else statistics.fmean(cells) for cells in zip(*rows)]
                             for rows in zip(*(r.groups for r in results))]
    out["test_acc_unbiased_per_model"] = [r.unbiased for r in results]
    return out


def evaluate_set(images: torch.Tensor, labels: torch.Tensor, test: BiasedTensors, cfg: RunConfig,
                 epochs: int, seed: int, progress: Progress | None = None) -> dict[str, Any]:
    """Train cfg.eval.eval_models fresh models on (images, labels) and test each on `test`. On a
    CPU with threads to share they train side by side (`hardware.side_by_side_threads`); a model's
    numbers depend only on its seed and its thread count, not on the others."""
    k = cfg.eval.eval_models
    board = _Board(k, progress)

    def one(m: int) -> Accuracy:
        net = train_classifier(images, labels, test.num_classes, cfg, epochs, seed + 1000 * (m + 1), board.reporter(m))
        return accuracy(net, test)

    threads = hardware.side_by_side_threads(k, images.device)
    return summarize([one(m) for m in range(k)] if threads is None else board.side_by_side(one, threads))


class _Stopped(Exception):
    """A model stopped because another one failed."""


class _Board:
    """The progress of k models, reported as one count (epochs done of all k), under a lock since
    they may train in threads; once one of them fails, the others stop at their next epoch, so a
    cancel or an error does not wait for them."""

    def __init__(self, k: int, progress: Progress | None) -> None:
        self.done, self.total = [0] * k, [0] * k
        self.progress, self.lock, self.failed = progress, threading.Lock(), False

    def reporter(self, m: int) -> Progress:
        def report(done: int, total: int, loss: float | None) -> None:
            with self.lock:
                if self.failed:
                    raise _Stopped
                self.done[m], self.total[m] = done, total
                if self.progress is not None:  # a model not started yet counts as long as the longest
                    self.progress(sum(self.done), len(self.total) * max(self.total), loss)
        return report

    def side_by_side(self, one: Callable[[int], Accuracy], threads: int) -> list[Accuracy]:
        """[one(m) for each model m], each in its own thread with `threads` torch threads; raises
        the first failure in model order once every thread has ended. Daemon threads: a Ctrl-C
        in the main thread ends the process without waiting for them."""
        results: list[Any] = [None] * len(self.done)
        errors: list[BaseException | None] = [None] * len(self.done)

        def task(m: int) -> None:
            torch.set_num_threads(threads)
            try:
                results[m] = one(m)
            except BaseException as exc:
                errors[m] = exc
                with self.lock:
                    self.failed = True

        workers = [threading.Thread(target=task, args=(m,), daemon=True) for m in range(len(self.done))]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                worker.join()
        except BaseException:
            with self.lock:
                self.failed = True
            raise
        for error in errors:
            if error is not None and not isinstance(error, _Stopped):
                raise error
        return results
