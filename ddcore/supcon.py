"""Supervised contrastive loss (Khosla et al., 2020), as in the SupContrast reference."""
from __future__ import annotations

import torch
from torch import nn


class SupConLoss(nn.Module):
    """features: [batch, views, dim], L2-normalised along dim; labels: [batch] int.

    Every one of the N = batch * views vectors is an anchor. Its positives are the other vectors
    with the same label (its own other views included); its denominator runs over all vectors but
    itself. Returns the mean over anchors of
        -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / T) / sum_{a != i} exp(z_i.z_a / T) ).
    An anchor with no positive contributes 0 (never NaN); the mean is taken over all anchors.

    With `q` (0 < q <= 1) it is SelecMix's generalised SupCon (Hwang et al., NeurIPS 2022), the
    contrastive analogue of generalised cross-entropy: each log-probability term is weighted by
    q * p^q, p its own probability, held constant, so the encoder leans on the pairs it already
    finds easy (on biased data, the bias) and becomes a bias detector.
    """

    def __init__(self, temperature: float = 0.1, q: float | None = None) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if q is not None and not 0 < q <= 1:
            raise ValueError(f"generalised SupCon's q must be in (0, 1], got {q}")
        self.temperature, self.q = temperature, q

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if features.dim() != 3:
            raise ValueError(f"features must be [batch, views, dim], got shape {tuple(features.shape)}")
        batch, views, _ = features.shape
        if labels.shape != (batch,):
            raise ValueError(f"labels must be [batch]={batch}, got shape {tuple(labels.shape)}")
        if batch * views < 2:
            raise ValueError("SupCon needs at least two vectors (batch * views >= 2)")
        z = features.transpose(0, 1).reshape(batch * views, -1)  # view-major: [N, dim]
        y = labels.repeat(views)
        logits = z @ z.T / self.temperature
        self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
        # subtract the row max for stability; it cancels in the log-ratio
        logits = logits - logits.masked_fill(self_mask, float("-inf")).amax(dim=1, keepdim=True).detach()
        log_denominator = torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
        # an anchor's own term never counts; left in, exp(2 / T) ** q overflowed to inf, and inf * 0 is NaN
        log_prob = (logits - log_denominator).masked_fill(self_mask, 0.0)
        if self.q is not None:
            log_prob = log_prob * (self.q * log_prob.detach().exp() ** self.q)
        positives = (y[:, None] == y[None, :]) & ~self_mask
        n_pos = positives.sum(dim=1)
        per_anchor = -(log_prob * positives).sum(dim=1) / n_pos.clamp(min=1)
        return per_anchor.mean()
