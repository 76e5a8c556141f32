"""Per-class Gaussian kernel density on surrogate embeddings, and the weights it implies.

For class c with L2-normalised embeddings z_1..z_n:
    p_i = 1/n * sum_j exp(-|z_i - z_j|^2 / (2 sigma^2))          (j runs over the class, i included)
    w_i = p_i^(-1/tau) / sum_{k in c} p_k^(-1/tau)                 (each class's weights sum to 1)
tau = 1 is inverse density; tau -> inf tends to uniform. If the embedding clusters by
(class, bias attribute) group, inverse density gives each group about the same total weight:
group balancing without bias labels. Everything works in log space and in row chunks, so a class
of 60,000 samples needs chunk * n floats at a time, never n * n.
"""
from __future__ import annotations

import math

import torch

from .config import SIGMA_RANGE

_BANDWIDTH_SAMPLE = 1000  # per class, for the median: enough for 3 significant digits


def log_density_at(queries: torch.Tensor, points: torch.Tensor, sigma: float, chunk: int = 2048) -> torch.Tensor:
    """log (1/n sum_j exp(-|q - x_j|^2 / (2 sigma^2))) for queries [Q, d] against points [n, d]: [Q]."""
    out = torch.empty(len(queries), dtype=torch.float32, device=queries.device)
    for start in range(0, len(queries), chunk):
        sq = torch.cdist(queries[start:start + chunk].float(), points.float()).pow(2)
        out[start:start + chunk] = torch.logsumexp(-sq / (2 * sigma**2), dim=1) - math.log(len(points))
    return out


def class_log_density(z: torch.Tensor, sigma: float, chunk: int = 2048) -> torch.Tensor:
    """z: [n, d] embeddings of one class -> log p: [n] (each sample's own kernel included)."""
    return log_density_at(z, z, sigma, chunk)


def kde_log_density(features: torch.Tensor, labels: torch.Tensor, sigma: float, chunk: int = 2048) -> torch.Tensor:
    """features: [N, d], labels: [N] -> log density of each sample within its own class: [N]."""
    out = torch.empty(len(features), dtype=torch.float32, device=features.device)
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)
        out[idx] = class_log_density(features[idx].float(), sigma, chunk)
    return out


def auto_bandwidth(features: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
                   scale: float = 1.0) -> float:
    """The default sigma: `scale` (the config's kde_scale) times the median distance between two
    samples of the same class. It follows the embedding's scale (dimension, normalisation, how
    tightly the surrogate clusters), so one rule serves every dataset and ratio."""
    medians = []
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)
        if len(idx) < 2:
            continue
        pick = idx[torch.randperm(len(idx), generator=generator, device=generator.device)[:_BANDWIDTH_SAMPLE].to(idx.device)]
        d = torch.cdist(features[pick].float(), features[pick].float())
        medians.append(d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)].median())
    if not medians:
        raise ValueError("every class has fewer than two samples; cannot pick a bandwidth")
    sigma = scale * float(torch.stack(medians).median())
    # a collapsed embedding (median ~0) has no density to find; below the smallest sigma a user may
    # set, the weights would follow cdist's float rounding (~1e-4 on unit vectors), not the data
    return max(sigma, SIGMA_RANGE[0])


def density_weights(log_density: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """w_i proportional to p_i^(-1/tau), normalised to sum to 1 within each class: [N]."""
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    w = torch.empty_like(log_density)
    for c in labels.unique():
        idx = labels == c
        w[idx] = torch.softmax(-log_density[idx] / tau, dim=0)
    return w


def smooth_weights(weights: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, sigma: float,
                   chunk: int = 2048) -> torch.Tensor:
    """Each sample's weight spread over its kernel neighbourhood within its class: [N].

        w~_i = sum_j K_ij w_j / d_j,   K_ij = exp(-|z_i - z_j|^2 / (2 sigma^2)),   d_j = sum_k K_jk

    (i, j, k in one class). Inverse density gives a cluster's thin edge far more weight than its
    dense core, so a group's weight can sit on a few atypical samples; spreading it evens it out
    inside the cluster. K is symmetric, so sum_i w~_i = sum_j w_j: every class, and every cluster
    far from the others (an isolated sample included: K_jj = 1), keeps its total, and the group
    balance with it (bench/RESULTS.md 14)."""
    out = torch.empty_like(weights)
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)
        z, w = features[idx].float(), weights[idx].float()
        degree = torch.empty_like(w)
        for start in range(0, len(idx), chunk):
            degree[start:start + chunk] = _kernel(z[start:start + chunk], z, sigma).sum(1)
        share = w / degree
        for start in range(0, len(idx), chunk):
            out[idx[start:start + chunk]] = _kernel(z[start:start + chunk], z, sigma) @ share
    return out


def _kernel(a: torch.Tensor, b: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.exp(-torch.cdist(a, b).pow(2) / (2 * sigma**2))


def uniform_weights(labels: torch.Tensor) -> torch.Tensor:
    """1/n_c for every sample of class c: what "no reweighting" means."""
    counts = torch.bincount(labels)
    return 1.0 / counts[labels].float()


def oracle_weights(labels: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The upper reference KDE weighting aims at, from the bias labels: every (class, bias value)
    group present in class c gets the same total weight 1 / G_c, shared equally by its samples,
    so each class's weights sum to 1: w_i = 1 / (G_c * n_group(i))."""
    values = int(bias.max()) + 1
    group = labels * values + bias
    size = torch.bincount(group)
    groups_per_class = torch.bincount(torch.unique(group) // values, minlength=int(labels.max()) + 1)
    return 1.0 / (groups_per_class[labels] * size[group]).float()


def group_balance(weights: torch.Tensor, labels: torch.Tensor, bias: torch.Tensor) -> float:
    """How evenly the weight spreads over each class's (class, bias value) groups: the mean over
    classes of the normalised entropy of the group totals. 1.0: every group present in a class
    gets the same total weight (what `oracle_weights` gives); near 0: one group takes it all."""
    scores = []
    for c in labels.unique():
        m = labels == c
        present = torch.bincount(bias[m]) > 0
        totals = torch.bincount(bias[m], weights=weights[m].double())[present]
        p = totals / totals.sum()
        scores.append(float(-(p * p.clamp_min(1e-300).log()).sum() / math.log(len(p))) if len(p) > 1 else 1.0)
    return sum(scores) / len(scores)


def conflict_shares(weights: torch.Tensor, conflicting: torch.Tensor) -> tuple[float, float]:
    """(share of the total weight on bias-conflicting samples, their share of the count)."""
    weight_share = float(weights[conflicting].sum() / weights.sum())
    count_share = float(conflicting.float().mean())
    return weight_share, count_share
