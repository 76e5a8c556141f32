"""Distribution matching (Zhao & Bilen, 2023) with per-sample weights on the real side.

Each iteration draws a fresh random ConvNet (no training), embeds a real batch and the synthetic
images of every class, each class's real and synthetic images under one shared (Siamese)
augmentation drawn for that class, and takes one SGD step on the synthetic images to reduce
    sum_c || sum_i a_ci * embed(real_ci) - mean_j embed(syn_cj) ||^2.
The weights enter through the real batch and its coefficients a_ci (ddcore.methods.sampling);
the default draws batches by weight: a 5% minority is ~13 of 256 images of a uniform batch, so a
weighted mean over such a batch is noisy (bench/RESULTS.md compares the two).
On a CPU both sides run in chunks sized for its caches (`ddcore.nets.cpu_chunk`): the real
side needs no gradient, and the synthetic side's loss is a sum of per-class terms, so it runs
forward and backward a group of classes at a time, with the same gradient as one pass. A GPU
takes each side in one forward. The op group is drawn once per iteration and its parameters per
class (the reference draws both per class; the loss is a sum of independent per-class terms, so
each class sees the same augmentation distribution either way, and one op keeps all classes in
one forward). The loop never syncs with the host except at logging steps.
"""
from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from .. import augment
from ..data import dsa_strategy
from ..nets import ConvNet, cpu_chunk
from .base import DistillJob, LossLog, SyntheticSet
from .sampling import RealSampler
from .spec import MethodSpec


def dm_loss(real_mean: torch.Tensor, syn_emb: torch.Tensor) -> torch.Tensor:
    """real_mean [C, d] (each class's coefficient-weighted real embedding), syn_emb [C, IPC, d]
    -> scalar sum_c || real_mean_c - mean_j syn_cj ||^2."""
    return (real_mean - syn_emb.mean(dim=1)).pow(2).sum()


@torch.no_grad()
def real_means(net: ConvNet, images: torch.Tensor, idx: torch.Tensor, coef: torch.Tensor,
               params: augment.AugParams, chunk: int) -> torch.Tensor:
    """Each class's coefficient-weighted mean embedding of its real batch: images [N, 3, H, W],
    idx and coef [C, B], params with one draw per class -> [C, d]. `chunk` real images per forward
    (0: all at once); every chunking gives the same means up to float rounding."""
    C, B = idx.shape
    flat, weights, params = idx.flatten(), coef.flatten(), params.repeat(B)
    if chunk <= 0 or chunk >= len(flat):
        return (net.embed(augment.apply(images[flat], params)).float() * weights[:, None]).view(C, B, -1).sum(1)
    rows = torch.arange(C, device=idx.device).repeat_interleave(B)
    means = torch.zeros(C, net.embed_dim, device=images.device)
    for start in range(0, len(flat), chunk):
        part = slice(start, start + chunk)
        emb = net.embed(augment.apply(images[flat[part]], params.rows(part))).float()
        means.index_add_(0, rows[part], emb * weights[part, None])
    return means


def class_groups(classes: int, ipc: int, chunk: int) -> list[slice]:
    """The classes whose synthetic images go through the network together: as many whole classes
    as fit in `chunk` images (at least one), or all of them when chunk is 0."""
    per_group = classes if chunk <= 0 else max(1, chunk // ipc)
    return [slice(c, min(c + per_group, classes)) for c in range(0, classes, per_group)]


def syn_backward(net: ConvNet, syn: torch.Tensor, real_mean: torch.Tensor, params: augment.AugParams,
                 classes: slice, autocast: AbstractContextManager) -> torch.Tensor:
    """DM's loss terms of `classes` (syn [C, IPC, 3, H, W], real_mean [C, d], params one draw per
    class), backpropagated into syn.grad; returns their (detached) sum."""
    ipc = syn.shape[1]
    with autocast:
        part = params.rows(classes).repeat(ipc)
        emb = net.embed(augment.apply(syn[classes].flatten(0, 1), part)).float().view(-1, ipc, net.embed_dim)
    loss = dm_loss(real_mean[classes], emb)
    loss.backward()
    return loss.detach()


def distill_dm(job: DistillJob) -> SyntheticSet:
    train, d = job.train, job.cfg.distill
    device, C, ipc = train.images.device, train.num_classes, d.ipc
    g, aug_g = job.generators()

    real = RealSampler.for_job(job)
    syn = real.init_synthetic(train.images, ipc, g, d.init)
    opt = torch.optim.SGD([syn], lr=d.lr_img, momentum=d.momentum_img)
    net = job.network()
    net.requires_grad_(False)  # gradients flow to the synthetic images only
    if job.compile.on:
        net.features.compile()  # in place: reset_parameters keeps drawing into the same weights
    chunk = cpu_chunk(net, train.images)
    groups = class_groups(C, ipc, chunk)
    strategy = dsa_strategy(job.cfg)
    autocast, real_autocast = job.precision.autocast(device), job.precision.real_autocast(device)

    log = LossLog(job, d.iterations, device, "DM", f"lower --lr-img (now {d.lr_img}) or check the data")
    for it in range(d.iterations):
        net.reset_parameters(g)
        idx, coef = real.draw(g)
        params = augment.sample_params(strategy, aug_g, C)  # one draw per class
        with real_autocast:
            real_mean = real_means(net, train.images, idx, coef, params, chunk)
        opt.zero_grad(set_to_none=True)
        loss = sum(syn_backward(net, syn, real_mean, params, classes, autocast) for classes in groups)
        opt.step()
        log.step(it, loss, syn)

    labels = torch.arange(C, device=device).repeat_interleave(ipc)
    return SyntheticSet(syn.detach().flatten(0, 1), labels, log.logged)


SPEC = MethodSpec(
    "dm", "DM", "distribution matching: cheap iterations, each a fresh random network",
    distill_dm,
    presets={"paper": {}, "quick": {"iterations": 300, "batch_real": 64, "lr_img": 10.0}, "smoke": {"iterations": 10, "batch_real": 16}},
    autocast=True,
)
