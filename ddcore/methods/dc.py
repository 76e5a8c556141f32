"""Gradient matching: DC (Zhao et al., 2021) and DSA (Zhao & Bilen, 2021), with per-sample
weights on the real side.

Each iteration draws a fresh random ConvNet and alternates, `outer` times: one SGD step on the
synthetic images that reduces
    sum_c D(grad_theta CE_w(real_c), grad_theta CE(syn_c))
(D: `match_distance`), then `inner` epochs of network training on the (detached) synthetic set
in shuffled batches of `batch_train`, as the reference trains it, so the gradients are matched
along the trajectory a network trained on the synthetic set takes. DSA applies one Siamese
augmentation draw to the real and synthetic batch of each class, and augments the inner
training per image; DC augments nothing. The weights enter as in DM (`weighting`):
"sample" draws the real batch by weight and CE_w is the plain mean, "mean" draws it uniformly and
CE_w weights each sample by its normalised weight (`weighted_cross_entropy`).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .. import augment
from ..config import MAX_NET_LR, DistillConfig, between, positive
from ..data import dsa_strategy
from ..errors import ConfigError
from ..nets import ConvNet
from .base import DistillJob, LossLog, SyntheticSet
from .sampling import RealSampler
from .spec import MethodSpec

# (outer, inner) loops of the reference protocol by IPC (its get_loops). Any other IPC takes the
# schedule of the nearest listed IPC (ties: the smaller one), e.g. 2 -> IPC 1's, 100 -> IPC 50's.
LOOP_SCHEDULE: dict[int, tuple[int, int]] = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15),
                                             50: (50, 10)}
COS_EPS = 1e-6  # as in the reference: rows whose gradient is zero count as orthogonal, not NaN


def loop_schedule(ipc: int, outer: int | None = None, inner: int | None = None) -> tuple[int, int]:
    """(outer, inner) for `ipc`; an explicit `outer`/`inner` replaces the rule's value."""
    nearest = min(LOOP_SCHEDULE, key=lambda listed: (abs(listed - ipc), listed))
    rule_outer, rule_inner = LOOP_SCHEDULE[nearest]
    return outer or rule_outer, inner or rule_inner


def match_distance(g_real: Sequence[torch.Tensor], g_syn: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over the weight tensors (1-D tensors, i.e. biases and norm affines, are skipped) of
    sum_rows (1 - cos(real_row, syn_row)), each tensor seen as [out, rest]. -> scalar"""
    total = g_syn[0].new_zeros(())
    for gr, gs in zip(g_real, g_syn):
        if gr.dim() == 1:
            continue
        gr, gs = gr.flatten(1), gs.flatten(1)
        cos = (gr * gs).sum(1) / (gr.norm(dim=1) * gs.norm(dim=1) + COS_EPS)
        total = total + (1 - cos).sum()
    return total


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """logits [B, K], labels [B], weights [B] (any positive scale) -> sum_i w_i CE_i / sum_i w_i."""
    per_sample = F.cross_entropy(logits, labels, reduction="none")
    return (per_sample * weights).sum() / weights.sum()


def matching_loss(net: ConvNet, params: list[torch.Tensor], real: torch.Tensor, coef: torch.Tensor,
                  syn: torch.Tensor, strategy: str, aug_g: torch.Generator) -> torch.Tensor:
    """real [C, B, 3, H, W] with weights coef [C, B], syn [C, IPC, 3, H, W] -> the class-summed
    gradient distance, differentiable with respect to syn. Each class gets its own augmentation
    draw, shared by its real and synthetic images."""
    loss = syn.new_zeros(())
    for c in range(len(syn)):
        aug = augment.sample_params(strategy, aug_g)
        real_labels = torch.full((len(real[c]),), c, device=syn.device)
        real_ce = weighted_cross_entropy(net(augment.apply(real[c], aug)), real_labels, coef[c])
        g_real = [t.detach() for t in torch.autograd.grad(real_ce, params)]
        syn_ce = F.cross_entropy(net(augment.apply(syn[c], aug)), real_labels[:1].expand(len(syn[c])))
        loss = loss + match_distance(g_real, torch.autograd.grad(syn_ce, params, create_graph=True))
    return loss


def train_network(net: ConvNet, opt: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, epochs: int,
                  batch: int, strategy: str, g: torch.Generator, aug_g: torch.Generator) -> None:
    """`epochs` passes over images [M, 3, H, W] in shuffled batches of `batch`, each image under
    its own augmentation draw: every synthetic image is seen once per epoch."""
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=g, device=images.device)
        for start in range(0, len(images), batch):
            idx = order[start:start + batch]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(augment.augment(images[idx], strategy, aug_g)), labels[idx]).backward()
            opt.step()


def distill_dc(job: DistillJob) -> SyntheticSet:
    train, d = job.train, job.cfg.distill
    device, C, ipc = train.images.device, train.num_classes, d.ipc
    g, aug_g = job.generators()
    strategy = dsa_strategy(job.cfg) if d.method == "dsa" else "none"
    outer, inner = loop_schedule(ipc, d.outer_loop, d.inner_loop)

    real = RealSampler.for_job(job)
    syn = real.init_synthetic(train.images, ipc, g, d.init)
    syn_labels = torch.arange(C, device=device).repeat_interleave(ipc)
    opt = torch.optim.SGD([syn], lr=d.lr_img, momentum=d.momentum_img)
    net = job.network()
    params = list(net.parameters())
    net_opt = torch.optim.SGD(params, lr=d.lr_net)

    log = LossLog(job, d.iterations, device, d.method.upper(),
                  f"lower --lr-img (now {d.lr_img}) or --lr-net (now {d.lr_net}), or check the data")
    for it in range(d.iterations):
        net.reset_parameters(g)
        loss_sum = torch.zeros((), device=device)
        for step in range(outer):
            idx, coef = real.draw(g)
            loss = matching_loss(net, params, train.images[idx], coef, syn, strategy, aug_g)
            opt.zero_grad(set_to_none=True)
            loss.backward(inputs=[syn])  # the images only: the network's weights stay untouched here
            opt.step()
            loss_sum = loss_sum + loss.detach()
            if step == outer - 1:
                break  # the reference trains the network only between matching steps
            train_network(net, net_opt, syn.detach().flatten(0, 1), syn_labels, inner, d.batch_train, strategy,
                          g, aug_g)
        log.step(it, loss_sum / outer, syn)

    return SyntheticSet(syn.detach().flatten(0, 1), syn_labels, log.logged)


def check(d: DistillConfig) -> None:
    between("network lr", d.lr_net, 0, MAX_NET_LR, above=True, flag="--lr-net")
    for name, loops in (("outer loop", d.outer_loop), ("inner loop", d.inner_loop)):
        if loops is not None:
            positive(name, loops)
    positive("inner-loop batch (--batch-train)", d.batch_train)
    if d.method == "dsa" and d.dsa_strategy in ("", "none"):
        raise ConfigError("method dsa needs an augmentation strategy (--dsa-strategy); "
                          "gradient matching without augmentation is method dc")


# Quick: IPC 10 keeps the reference's (10, 50) loops, so an iteration costs ~10 s on 2 cores
# (width 32, 64 real images per class), ~100 DM iterations; 12 fit the ~3 minute run.
PRESETS = {"paper": {"lr_img": 0.1, "iterations": 1000, "batch_real": 256},
           "quick": {"lr_img": 0.1, "iterations": 12, "batch_real": 64},
           "smoke": {"lr_img": 0.1, "iterations": 10, "batch_real": 16}}
SPECS = (
    MethodSpec("dc", "DC", "gradient matching: per class, the real and synthetic gradients of a network trained "
               "on the synthetic set in an inner loop", distill_dc, PRESETS, check),
    MethodSpec("dsa", "DSA", "gradient matching with Siamese augmentation of the real and synthetic batches",
               distill_dc, PRESETS, check),
)
