"""Debiasing without bias labels, for the evaluation models and the surrogate: Learning from
Failure (LfF) and Just Train Twice (JTT). Only the class labels are used; the bias attribute never is.

Generalised cross-entropy (GCE; Zhang & Sabuncu, NeurIPS 2018), for the softmax probability p_y
of the true class and 0 < q <= 1:
    GCE(p, y) = (1 - p_y^q) / q,    d GCE / d theta = p_y^q * d CE / d theta.
It tends to CE as q -> 0 and is the mean absolute error at q = 1. Its gradient weights each sample
by its own confidence p_y^q, so a model trained with it leans further on the samples it already
finds easy: on biased data, the bias-aligned ones. (LfF's code multiplies the gradient by a
further q; the loss here is the paper's equation.)

Learning from Failure (Nam et al., NeurIPS 2020, Algorithm 1). Two models of the same
architecture, trained together on the same batches: a biased model f_B trained with GCE (q = 0.7),
and the debiased model f_D trained with cross-entropy weighted per sample by its relative
difficulty
    W(x) = CE_B(x) / (CE_B(x) + CE_D(x)),
high where the biased model fails and the debiased one does not (the bias-conflicting samples).
As in the official code, each CE here is an exponential moving average of that sample's loss
over its visits (alpha = 0.7; a sample's first visit sets it), divided by the largest average
among the samples of its class, and the division carries a 1e-8 guard. The step minimises
mean(GCE_B) + mean(W * CE_D) with W held constant; f_D is the model kept. LfF's own Coloured
MNIST recipe is Adam (lr 1e-3, batch 256) for 100 epochs of an MLP; here both models take the
recipe of the model they stand in for (the evaluation's SGD and schedule, or the surrogate's).

Just Train Twice (Liu et al., ICML 2021, Algorithm 1). An identification model is trained by
ERM for T epochs (a checkpoint of the ordinary training, as in the official code); its error set
is the training samples it misclassifies (evaluation mode, no augmentation). The final model is
then trained from scratch, with the same recipe and epoch count, on the upsampled set in which
every error-set sample appears lambda_up times and every other sample once. The paper's values
(its appendix): Waterbirds T = 60 of 300 epochs, lambda_up = 100; CelebA T = 1 of 50 epochs,
lambda_up = 50; both tuned on worst-group validation accuracy, which needs the group labels we do
not have. Ours, for sets from 100 synthetic images to the whole training set:
- T is a budget of SGD steps, not a share of the epochs: the fewest whole epochs that hold
  `jtt_id_steps` = 15 steps (a 100-image synthetic set takes 1 step per epoch, the bundled
  4,000-image training set 16, so T = 15 and 1 epochs). The colour is learned within about 15
  steps whatever the set's size, and a small set is memorised soon after: on the bundled data at
  5%, one epoch of the evaluation's recipe leaves an error set holding most conflicting samples,
  while a vanilla-DM synthetic set at IPC 10 has a handful of errors at 12 steps and none from 20
  on, so a share of a 300- or 1,000-epoch evaluation (Waterbirds: 20%) would leave JTT nothing to
  upweight (bench/jtt_identification.py prints both; bench/RESULTS.md).
- lambda_up = 20: when the error set is the conflicting samples, upsampling it by (1 - rho) / rho
  balances it against the rest; that is 19 at the 5% the presets use.

SelecMix (Hwang et al., NeurIPS 2022; the method behind the paper's Table 3 figure of 53.7%), as
its official code trains it (`train_vanilla` with its configs' `--mix --ours --rand`, a = 1,
b = 0). An auxiliary encoder f_C (the trained model's architecture with an MLP projection head to
128 unit-norm dimensions) learns the bias with the generalised SupCon loss (ddcore.supcon; q = 0.7,
temperature 0.2, one view, on the same batches), and its cosine similarities pick each sample's
contradicting partner within the batch. A coin per batch chooses the kind of pair:
- the same label, least similar to it in f_C (same class, other bias), or
- another label, most similar to it in f_C (same bias, other class).
The trained model sees only mixed samples, dominated by the partner:
    x~ = lambda x + (1 - lambda) x_partner,  lambda ~ U(0, 1/2),  loss CE(f(x~), y_partner),
so it must read the label off the partner's content while the anchor's bias is mixed in. Where
the batch holds no candidate of the chosen kind a sample is its own partner (x~ = x); the
official code falls through to an arbitrary index there. Deviations, as for LfF: f_C takes the
trained model's optimiser and schedule (the official code gives it Adam, lr 0.02 on Coloured MNIST),
and partners are searched within one training batch (the official code searches a batch of 1,024
and steps on minibatches of 256 from it).

SelecMix+L (`selecmix-lff`; the official `train_lff` with its `l_ours` config, a = 0.1, b = 1):
LfF's objective on the plain batch, both models as above, plus SelecMix's mixed loss weighted by
0.1 and the auxiliary encoder's contrastive loss:
    mean(GCE_B) + mean(W * CE_D) + 0.1 * CE(f_D(x~), y_partner) + L_GSC(f_C).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import DEBIAS_METHODS, EvalConfig
from .nets import init_parameters
from .supcon import SupConLoss

WEIGHT_EPS = 1e-8  # LfF's guard in W = CE_B / (CE_B + CE_D + eps)
MAX_FLOOR = 1e-12  # a class whose largest average loss is 0 divides by this instead
SELECMIX_TEMPERATURE = 0.2  # the official configs' tau for the auxiliary encoder's generalised SupCon
SELECMIX_MAX_ANCHOR = 0.5  # lambda ~ U(0, this): the partner's share of a mixed sample is at least half
SELECMIX_PROJECTION = 128  # the auxiliary encoder's projection dimension (SupConResNet's feat_dim)
SELECMIX_LFF_MIX_WEIGHT = 0.1  # SelecMix+L: the mixed samples' loss beside LfF's (the official config's a)
JOINT_METHODS = ("lff", "selecmix", "selecmix-lff")  # a network trained beside the kept one, in the same loop


@dataclass(frozen=True)
class DebiasSpec:
    """One debiasing method and its hyperparameters (ddcore.config.EvalConfig holds the values)."""

    method: str  # "lff" | "jtt" | "selecmix" | "selecmix-lff"
    gce_q: float
    lff_ema: float
    jtt_upweight: int
    jtt_id_steps: int


def spec_from(method: str, e: EvalConfig) -> DebiasSpec | None:
    """The spec for `method` ("none": None) with the hyperparameters of the evaluation section."""
    if method not in DEBIAS_METHODS:
        raise ValueError(f"unknown debiasing method {method!r}; choose one of {', '.join(DEBIAS_METHODS)}")
    if method == "none":
        return None
    return DebiasSpec(method, e.gce_q, e.lff_ema, e.jtt_upweight, e.jtt_id_steps)


def gce_loss(logits: torch.Tensor, targets: torch.Tensor, q: float) -> torch.Tensor:
    """Per-sample generalised cross-entropy (1 - p_y^q) / q for logits [N, C], targets [N] -> [N]."""
    if not 0 < q <= 1:
        raise ValueError(f"GCE q must be in (0, 1], got {q}")
    if logits.dim() != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(f"logits must be [N, C] and targets [N]; got {tuple(logits.shape)} and {tuple(targets.shape)}")
    log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    return (1 - torch.exp(q * log_p)) / q


class SampleLossEMA:
    """Per-sample moving average of a loss, as LfF keeps it: a sample's first visit sets its value,
    later ones blend old * alpha + new * (1 - alpha); `normalised` divides by its class's maximum."""

    def __init__(self, labels: torch.Tensor, num_classes: int, alpha: float) -> None:
        if not 0 <= alpha < 1:
            raise ValueError(f"EMA alpha must be in [0, 1), got {alpha}")
        self.labels, self.num_classes, self.alpha = labels, num_classes, alpha
        self.values = torch.zeros(len(labels), device=labels.device)
        self.seen = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)

    def update(self, index: torch.Tensor, losses: torch.Tensor) -> None:
        if index.shape != losses.shape or index.unique().numel() != index.numel():
            raise ValueError("update needs one loss per sample index, each index once")
        old = self.values[index]
        blended = self.alpha * old + (1 - self.alpha) * losses.detach().float()
        self.values[index] = torch.where(self.seen[index], blended, losses.detach().float())
        self.seen[index] = True

    def class_max(self) -> torch.Tensor:
        """[num_classes]: the largest average over all samples of each class (unvisited ones count 0)."""
        out = torch.zeros(self.num_classes, device=self.values.device)
        return out.scatter_reduce(0, self.labels, self.values, "amax", include_self=True)

    def normalised(self, index: torch.Tensor) -> torch.Tensor:
        return self.values[index] / self.class_max().clamp_min(MAX_FLOOR)[self.labels[index]]


def relative_difficulty(loss_biased: torch.Tensor, loss_debiased: torch.Tensor) -> torch.Tensor:
    """LfF's W(x) = CE_B / (CE_B + CE_D), in [0, 1]: 1/2 where both models find x equally hard."""
    return loss_biased / (loss_biased + loss_debiased + WEIGHT_EPS)


class LfF(nn.Module):
    """The biased model f_B and the two loss averages; the caller trains f_D and passes its logits.
    Its parameters (f_B's) go into the same optimiser as f_D's."""

    def __init__(self, biased: nn.Module, labels: torch.Tensor, num_classes: int, spec: DebiasSpec) -> None:
        super().__init__()
        self.biased, self.q = biased, spec.gce_q
        self.ema_b = SampleLossEMA(labels, num_classes, spec.lff_ema)
        self.ema_d = SampleLossEMA(labels, num_classes, spec.lff_ema)

    def loss(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The joint objective on one batch: net is f_D, x the (augmented) images both models see,
        y their labels, index their positions in the training set."""
        logits_d, logits_b = net(x), self.biased(x)
        ce_b = F.cross_entropy(logits_b, y, reduction="none")
        ce_d = F.cross_entropy(logits_d, y, reduction="none")
        self.ema_b.update(index, ce_b)
        self.ema_d.update(index, ce_d)
        weight = relative_difficulty(self.ema_b.normalised(index), self.ema_d.normalised(index))
        return gce_loss(logits_b, y, self.q).mean() + (ce_d * weight).mean()

    def weights(self) -> torch.Tensor:
        """W of every training sample from the current averages (for inspection and tests)."""
        index = torch.arange(len(self.ema_b.values), device=self.ema_b.values.device)
        return relative_difficulty(self.ema_b.normalised(index), self.ema_d.normalised(index))


def identification_epochs(epochs: int, steps_per_epoch: int, id_steps: int) -> int:
    """JTT's T: the fewest whole epochs that hold `id_steps` SGD steps, at least 1 and at most all."""
    if steps_per_epoch < 1 or id_steps < 1:
        raise ValueError(f"steps per epoch and identification steps must be at least 1, got {steps_per_epoch}, "
                         f"{id_steps}")
    return min(max(epochs, 1), math.ceil(id_steps / steps_per_epoch))


@torch.no_grad()
def misclassified(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """[N] bool: the samples `model` (logits) gets wrong, in evaluation mode, without augmentation."""
    model.eval()
    preds = torch.cat([model(images[i:i + batch]).argmax(1) for i in range(0, len(images), batch)])
    return preds != labels


def upsample(wrong: torch.Tensor, upweight: int) -> torch.Tensor:
    """JTT's upsampled training set as indices: every sample where `wrong` is true appears
    `upweight` times, every other sample once; [N] bool -> [N + (upweight - 1) * wrong.sum()]."""
    if wrong.dtype != torch.bool or wrong.dim() != 1:
        raise ValueError(f"wrong must be a 1-d bool tensor, got {wrong.dtype} of shape {tuple(wrong.shape)}")
    if isinstance(upweight, bool) or not isinstance(upweight, int) or upweight < 1:
        raise ValueError(f"the upweight factor must be a whole number of at least 1, got {upweight!r}")
    repeats = torch.where(wrong, upweight, 1)
    return torch.arange(len(wrong), device=wrong.device).repeat_interleave(repeats)


def contradicting_partners(similarity: torch.Tensor, labels: torch.Tensor, same_label: bool) -> torch.Tensor:
    """SelecMix's partner of each sample, from the auxiliary encoder's similarities [B, B] and the
    labels [B] -> [B] indices: with `same_label`, the least similar sample of the same label;
    otherwise the most similar sample of another label; itself where there is none."""
    if similarity.shape != (len(labels), len(labels)):
        raise ValueError(f"similarity must be [B, B] for {len(labels)} labels, got {tuple(similarity.shape)}")
    same = labels[:, None] == labels[None, :]
    if same_label:
        candidates = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pick = similarity.masked_fill(~candidates, float("inf")).argmin(1)
    else:
        candidates = ~same
        pick = similarity.masked_fill(~candidates, float("-inf")).argmax(1)
    return torch.where(candidates.any(1), pick, torch.arange(len(labels), device=labels.device))


def mix(x: torch.Tensor, partner: torch.Tensor, anchor_share: torch.Tensor) -> torch.Tensor:
    """x~_i = a_i x_i + (1 - a_i) x_partner(i) for images [B, ...], partner [B], anchor_share [B]."""
    a = anchor_share.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    return a * x + (1 - a) * x[partner]


class SelecMix(nn.Module):
    """The auxiliary encoder f_C and its loss; the caller trains f (the model kept) through `loss`.
    Its parameters (f_C's, and with `lff` the biased model's) go into the same optimiser as f's:
    the losses share no parameter, so one step on their sum is the official code's separate steps."""

    def __init__(self, encoder: nn.Module, spec: DebiasSpec, generator: torch.Generator,
                 lff: LfF | None = None) -> None:
        super().__init__()
        self.encoder, self.generator, self.lff = encoder, generator, lff
        d = encoder.embed_dim
        self.head = init_parameters(
            nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, SELECMIX_PROJECTION)), generator,
        ).to(next(encoder.parameters()).device)
        self.contrastive = SupConLoss(SELECMIX_TEMPERATURE, q=spec.gce_q)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.encoder.embed(x)), dim=1)

    def loss(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """One batch: x the (augmented) images [B, C, H, W], y their labels [B], index their
        positions in the training set (used by SelecMix+L's LfF part only)."""
        z = self.project(x)
        with torch.no_grad():
            similarity = z.detach() @ z.detach().T
            device = self.generator.device
            same_label = bool(torch.rand((), generator=self.generator, device=device) < 0.5)
            partner = contradicting_partners(similarity, y, same_label)
            share = (torch.rand(len(x), generator=self.generator, device=device) * SELECMIX_MAX_ANCHOR).to(x.device)
            mixed = mix(x, partner, share)
        loss = F.cross_entropy(net(mixed), y[partner])
        if self.lff is not None:
            if index is None:
                raise ValueError("SelecMix+L needs the samples' positions in the training set (index)")
            loss = self.lff.loss(net, x, y, index) + SELECMIX_LFF_MIX_WEIGHT * loss
        if len(x) > 1:  # a contrastive loss needs two vectors: a batch of one trains f alone
            loss = loss + self.contrastive(z[:, None], y)
        return loss


def joint_trainer(spec: DebiasSpec, make_twin: Callable[[], nn.Module], labels: torch.Tensor,
                  num_classes: int, generator: torch.Generator) -> LfF | SelecMix:
    """What is trained beside the kept model, for JOINT_METHODS: LfF's biased model, SelecMix's
    auxiliary encoder, or both; each a fresh network of the kept one's architecture from `make_twin`."""
    if spec.method == "lff":
        return LfF(make_twin(), labels, num_classes, spec).train()
    if spec.method == "selecmix":
        return SelecMix(make_twin(), spec, generator).train()
    if spec.method == "selecmix-lff":
        auxiliary = make_twin()
        return SelecMix(auxiliary, spec, generator, LfF(make_twin(), labels, num_classes, spec)).train()
    raise ValueError(f"{spec.method} trains no network beside the kept one")
