"""Matching training trajectories (MTT, Cazenavette et al., 2022) with reweighted experts.

The experts (ddcore.methods.experts) are ConvNets trained on the real data; when the run reweights, they
train on batches drawn by weight (or with a weighted loss), so their trajectories already carry
the correction. Each iteration picks an expert and a start epoch s < max_start_epoch, starts a
student at the expert's parameters theta_s, takes `syn_steps` SGD steps on (augmented) synthetic
batches with the learned lr alpha, and reduces
    || theta_N - theta*_{s + expert_epochs} ||^2 / || theta_s - theta*_{s + expert_epochs} ||^2
with respect to the synthetic images and alpha. The student is a flat parameter vector run
through the network with `torch.func.functional_call`, so the unrolled steps stay differentiable
without touching any module's parameters.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call

from .. import augment
from ..config import MAX_NET_LR, DistillConfig, between, positive
from ..data import dsa_strategy
from ..errors import DivergedError
from ..nets import ConvNet
from . import experts
from .base import DistillJob, LossLog, SyntheticSet
from .sampling import RealSampler
from .spec import MethodSpec

# (syn_steps, max_start_epoch) by IPC for MNIST-sized data, chosen by the measurements in
# bench/RESULTS.md; any other IPC takes the nearest listed IPC's values (ties: the smaller one)
MTT_SCHEDULE: dict[int, tuple[int, int]] = {1: (50, 2), 10: (30, 10), 50: (30, 20)}
LR_LIMIT = 100.0  # a learned lr beyond this many times the expert lr has exploded


def mtt_schedule(ipc: int, syn_steps: int | None = None, max_start_epoch: int | None = None) -> tuple[int, int]:
    """(syn_steps, max_start_epoch) for `ipc`; explicit values replace the rule's."""
    nearest = min(MTT_SCHEDULE, key=lambda listed: (abs(listed - ipc), listed))
    rule_steps, rule_start = MTT_SCHEDULE[nearest]
    return syn_steps or rule_steps, max_start_epoch or rule_start


def trajectory_loss(net: ConvNet, shapes: list[tuple[str, torch.Size]], start: torch.Tensor, target: torch.Tensor,
                    syn: torch.Tensor, labels: torch.Tensor, lr: torch.Tensor, batches: Sequence[torch.Tensor],
                    augs: Sequence[augment.AugParams]) -> torch.Tensor:
    """start, target [P] (expert checkpoints), syn [M, 3, H, W], labels [M], lr scalar; one student
    SGD step per (index batch, augmentation) pair -> the normalised parameter distance, a scalar
    differentiable with respect to syn and lr."""
    theta = start.detach().requires_grad_(True)
    for idx, aug in zip(batches, augs):
        logits = functional_call(net, experts.unflatten(theta, shapes), (augment.apply(syn[idx], aug),))
        ce = F.cross_entropy(logits, labels[idx])
        theta = theta - lr * torch.autograd.grad(ce, theta, create_graph=True)[0]
    return (theta - target).pow(2).sum() / (start - target).pow(2).sum()


def check_lr(lr: float, initial: float, iteration: int, lr_lr: float) -> None:
    """The learned lr's known failure modes become clear errors instead of silent garbage."""
    if not lr == lr:  # NaN
        raise DivergedError(f"MTT's learned student lr became NaN at iteration {iteration}; "
                            f"lower --lr-lr (now {lr_lr}) or --lr-img")
    if lr <= 0:
        raise DivergedError(f"MTT's learned student lr became non-positive ({lr:.3g}) at iteration {iteration}; "
                            f"lower --lr-lr (now {lr_lr}), or set it to 0 to keep the lr fixed")
    if lr > LR_LIMIT * initial:
        raise DivergedError(f"MTT's learned student lr exploded to {lr:.3g} (over {LR_LIMIT:g}x the expert lr "
                            f"{initial}) at iteration {iteration}; lower --lr-lr (now {lr_lr})")


def distill_mtt(job: DistillJob) -> SyntheticSet:
    train, d = job.train, job.cfg.distill
    device, C, ipc = train.images.device, train.num_classes, d.ipc
    g, aug_g = job.generators()
    pick = torch.Generator().manual_seed(job.seed + 2)  # expert and start epoch: CPU draws, no device sync
    syn_steps, max_start = mtt_schedule(ipc, d.syn_steps, d.max_start_epoch)
    strategy = dsa_strategy(job.cfg)
    net = job.network()
    shapes = experts.param_shapes(net)

    job.stage("experts")
    spec = experts.ExpertSpec(d.expert_lr, d.expert_batch, strategy, job.cfg.reweight.weighting, job.seed)
    parallel = d.expert_parallel or (d.num_experts if device.type == "cuda" else 1)
    data_id = json.dumps({"data": asdict(job.cfg.data), "seed": job.seed}, sort_keys=True)
    trajectories, report = experts.load_or_train(
        net, train, job.weights, spec, d.num_experts, max_start - 1 + d.expert_epochs, parallel, job.cache_dir,
        data_id, lambda done, total: job.progress(done, total, None))

    job.stage("distill")
    real = RealSampler.for_job(job)
    syn = real.init_synthetic(train.images, ipc, g, d.init)
    labels = torch.arange(C, device=device).repeat_interleave(ipc)
    lr = torch.tensor(d.expert_lr, device=device, requires_grad=True)
    opt_img = torch.optim.SGD([syn], lr=d.lr_img, momentum=d.momentum_img)
    opt_lr = torch.optim.SGD([lr], lr=d.lr_lr, momentum=0.5)
    batch = min(d.batch_syn or len(labels), len(labels))

    log = LossLog(job, d.iterations, device, "MTT", f"lower --lr-img (now {d.lr_img}) or --lr-lr (now {d.lr_lr})")
    for it in range(d.iterations):
        e = int(torch.randint(d.num_experts, (), generator=pick))
        s = int(torch.randint(max_start, (), generator=pick))
        batches = [torch.randperm(len(labels), generator=g, device=device)[:batch] for _ in range(syn_steps)]
        augs = [augment.sample_params(strategy, aug_g, batch) for _ in range(syn_steps)]  # per image
        loss = trajectory_loss(net, shapes, trajectories[e, s], trajectories[e, s + d.expert_epochs],
                               syn.flatten(0, 1), labels, lr, batches, augs)
        opt_img.zero_grad(set_to_none=True)
        opt_lr.zero_grad(set_to_none=True)
        loss.backward()
        opt_img.step()
        opt_lr.step()
        if log.at_log_point(it):
            check_lr(float(lr.detach()), d.expert_lr, it + 1, d.lr_lr)
        log.step(it, loss, syn)

    info = {"learned_lr": float(lr.detach()), "experts_loaded": report.loaded, "experts_trained": report.trained,
            "experts_rebuilt": report.rebuilt}
    return SyntheticSet(syn.detach().flatten(0, 1), labels, log.logged, info)


def check(d: DistillConfig) -> None:
    positive("number of experts", d.num_experts)
    positive("expert batch", d.expert_batch)
    positive("expert parallelism", d.expert_parallel, 0)
    positive("expert epochs", d.expert_epochs)
    for name, value in (("max start epoch", d.max_start_epoch), ("synthetic steps", d.syn_steps),
                        ("synthetic batch", d.batch_syn)):
        if value is not None:
            positive(name, value)
    between("expert lr", d.expert_lr, 0, MAX_NET_LR, above=True, flag="--expert-lr")
    between("the learned lr's lr (--lr-lr)", d.lr_lr, 0, 1)


# chosen by the measurements in bench/RESULTS.md (no published MNIST recipe exists)
SPEC = MethodSpec(
    "mtt", "MTT", "trajectory matching against expert networks trained on the (reweighted) real data first, cached "
    "and reused by later runs", distill_mtt,
    presets={"paper": {"iterations": 5000, "lr_img": 100.0},
             "quick": {"iterations": 120, "lr_img": 100.0, "num_experts": 4, "syn_steps": 12, "max_start_epoch": 4},
             "smoke": {"iterations": 10, "lr_img": 100.0, "num_experts": 2, "syn_steps": 3, "max_start_epoch": 2,
                       "expert_epochs": 1, "expert_batch": 64}},
    check=check,
)
