"""Distribution matching (Zhao & Bilen, 2023) with per-sample weights on the real side.

Each iteration draws a fresh random ConvNet (no training), embeds a real batch and the synthetic
images of every class under one shared (Siamese) augmentation, and takes one SGD step on the
synthetic images to reduce
    sum_c || sum_i a_ci * embed(real_ci) - mean_j embed(syn_cj) ||^2.
The weights enter in one of two ways (`weighting`):
  "sample": real batches are drawn with probability proportional to w (with replacement) and a_ci
            is uniform. Default: a 5% minority is ~13 of 256 per batch under uniform sampling, so a
            weighted mean over such a batch is noisy; sampling by weight puts the minority into
            every batch (bench/RESULTS.md compares the two).
  "mean":   batches are drawn uniformly and a_ci = w_ci / sum_batch w (the weighted mean).
All classes share one forward pass per side; the loop never syncs with the host except at
logging steps.
"""
from __future__ import annotations

import torch

from .. import augment
from ..nets import ConvNet
from .base import DistillJob, LossLog, SyntheticSet


def class_table(labels: torch.Tensor, weights: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of each class's samples and their weights, padded to [C, n_max] (padding weight 0)."""
    counts = torch.bincount(labels, minlength=num_classes)
    n_max = int(counts.max())
    table = torch.zeros(num_classes, n_max, dtype=torch.long, device=labels.device)
    w = torch.zeros(num_classes, n_max, dtype=torch.float32, device=labels.device)
    for c in range(num_classes):
        idx = (labels == c).nonzero().squeeze(1)
        table[c, : len(idx)] = idx
        w[c, : len(idx)] = weights[idx]
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


def dm_loss(real_emb: torch.Tensor, real_coef: torch.Tensor, syn_emb: torch.Tensor) -> torch.Tensor:
    """real_emb [C, B, d], real_coef [C, B] (rows sum to 1), syn_emb [C, IPC, d] -> scalar
    sum_c || sum_i coef_ci real_ci - mean_j syn_cj ||^2."""
    real_mean = (real_emb * real_coef.unsqueeze(-1)).sum(dim=1)
    return (real_mean - syn_emb.mean(dim=1)).pow(2).sum()


def init_synthetic(images: torch.Tensor, table: torch.Tensor, w: torch.Tensor, ipc: int,
                   generator: torch.Generator) -> torch.Tensor:
    """IPC real images per class, drawn without replacement with probability proportional to w
    (uniform for vanilla runs): [C, IPC, 3, H, W]."""
    pos = torch.multinomial(w, ipc, replacement=False, generator=generator)
    return images[table.gather(1, pos)].clone()


def distill_dm(job: DistillJob) -> SyntheticSet:
    cfg, train = job.cfg, job.train
    d, n = cfg.distill, cfg.net
    device = train.images.device
    C, ipc = train.num_classes, d.ipc
    g = torch.Generator(device=device).manual_seed(job.seed)
    aug_g = torch.Generator().manual_seed(job.seed + 1)

    table, w = class_table(train.labels, job.weights, C)
    weighted_sampling = cfg.reweight.weighting == "sample"
    batch = real_batch_size(w, d.batch_real, weighted_sampling)

    syn = init_synthetic(train.images, table, w, ipc, g).requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=d.lr_img, momentum=d.momentum_img)
    net = ConvNet(C, train.images.shape[1], n.net_width, n.net_depth, n.net_norm, tuple(train.images.shape[2:])).to(device)
    net.requires_grad_(False)  # gradients flow to the synthetic images only
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=d.bf16)

    log = LossLog(job, d.iterations, device, "DM", f"lower --lr-img (now {d.lr_img}) or check the data")
    for it in range(d.iterations):
        net.reset_parameters(g)
        pos = sample_positions(w, batch, weighted_sampling, g)
        coef = torch.full(pos.shape, 1.0 / batch, device=device) if weighted_sampling else w.gather(1, pos)
        coef = coef / coef.sum(dim=1, keepdim=True)
        real = train.images[table.gather(1, pos).flatten()]
        params = augment.sample_params(d.dsa_strategy, aug_g)
        with autocast:
            with torch.no_grad():
                real_emb = net.embed(augment.apply(real, params)).float().view(C, batch, -1)
            syn_emb = net.embed(augment.apply(syn.flatten(0, 1), params)).float().view(C, ipc, -1)
        loss = dm_loss(real_emb, coef, syn_emb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.step(it, loss, syn)

    labels = torch.arange(C, device=device).repeat_interleave(ipc)
    return SyntheticSet(syn.detach().flatten(0, 1), labels, log.logged)
