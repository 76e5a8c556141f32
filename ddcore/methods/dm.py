"""Distribution matching (Zhao & Bilen, 2023) with per-sample weights on the real side.

Each iteration draws a fresh random ConvNet (no training), embeds a real batch and the synthetic
images of every class under one shared (Siamese) augmentation, and takes one SGD step on the
synthetic images to reduce
    sum_c || sum_i a_ci * embed(real_ci) - mean_j embed(syn_cj) ||^2.
The weights enter through the real batch and its coefficients a_ci (ddcore.methods.sampling);
the default draws batches by weight: a 5% minority is ~13 of 256 images of a uniform batch, so a
weighted mean over such a batch is noisy (bench/RESULTS.md compares the two).
All classes share one forward pass per side; the loop never syncs with the host except at
logging steps.
"""
from __future__ import annotations

import torch

from .. import augment
from .base import DistillJob, LossLog, SyntheticSet
from .sampling import RealSampler


def dm_loss(real_emb: torch.Tensor, real_coef: torch.Tensor, syn_emb: torch.Tensor) -> torch.Tensor:
    """real_emb [C, B, d], real_coef [C, B] (rows sum to 1), syn_emb [C, IPC, d] -> scalar
    sum_c || sum_i coef_ci real_ci - mean_j syn_cj ||^2."""
    real_mean = (real_emb * real_coef.unsqueeze(-1)).sum(dim=1)
    return (real_mean - syn_emb.mean(dim=1)).pow(2).sum()


def distill_dm(job: DistillJob) -> SyntheticSet:
    train, d = job.train, job.cfg.distill
    device, C, ipc = train.images.device, train.num_classes, d.ipc
    g, aug_g = job.generators()

    real = RealSampler.for_job(job)
    syn = real.init_synthetic(train.images, ipc, g)
    opt = torch.optim.SGD([syn], lr=d.lr_img, momentum=d.momentum_img)
    net = job.network()
    net.requires_grad_(False)  # gradients flow to the synthetic images only
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=d.bf16)

    log = LossLog(job, d.iterations, device, "DM", f"lower --lr-img (now {d.lr_img}) or check the data")
    for it in range(d.iterations):
        net.reset_parameters(g)
        idx, coef = real.draw(g)
        params = augment.sample_params(d.dsa_strategy, aug_g)
        with autocast:
            with torch.no_grad():
                real_emb = net.embed(augment.apply(train.images[idx.flatten()], params)).float().view(C, real.batch, -1)
            syn_emb = net.embed(augment.apply(syn.flatten(0, 1), params)).float().view(C, ipc, -1)
        loss = dm_loss(real_emb, coef, syn_emb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.step(it, loss, syn)

    labels = torch.arange(C, device=device).repeat_interleave(ipc)
    return SyntheticSet(syn.detach().flatten(0, 1), labels, log.logged)
