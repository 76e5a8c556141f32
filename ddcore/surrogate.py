"""The surrogate encoder whose embedding the density is estimated on.

Trained on the biased training set with SupCon (default), plain cross-entropy, or left untrained.
Its two SupCon views use geometric augmentation only: colour jitter would erase the very colour
cue whose clusters the density estimate has to find.

A cross-entropy surrogate can be debiased (--surrogate-debias; ddcore.debias) to ask the paper's
Table 4 question, whether a debiased surrogate gives better densities. LfF trains a biased model
beside it, SelecMix an auxiliary contrastive encoder, and JTT an identification model before it,
all on the same batches, augmentation and schedule; those helpers are discarded, and the surrogate
kept (and cached) is the debiased model itself: LfF's f_D, SelecMix's f, JTT's final model. Its
embedding is then defined as for any cross-entropy surrogate: the encoder's features, L2-normalised.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import augment, debias
from .errors import DivergedError
from .nets import ConvNet, cpu_chunk, init_parameters
from .supcon import SupConLoss

VIEW_AUGMENTATION = "crop_scale_rotate"
PROJECTION_DIM = 128
Progress = Callable[[int, int, float | None], None]


class Surrogate(nn.Module):
    """ConvNet encoder + MLP projection head. `embed` gives the L2-normalised vectors the KDE uses:
    the projection for SupCon (where the contrastive geometry lives), the encoder features otherwise
    (cross-entropy, debiased or not, and untrained)."""

    def __init__(self, encoder: ConvNet, objective: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.objective = objective
        d = encoder.embed_dim
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, PROJECTION_DIM))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.encoder.embed(x)), dim=1)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
        """[N, C, H, W] -> [N, d], unit norm, computed in batches."""
        self.eval()
        out = []
        for start in range(0, len(x), batch):
            xb = x[start:start + batch]
            z = self.project(xb) if self.objective == "supcon" else F.normalize(self.encoder.embed(xb), dim=1)
            out.append(z.float())
        return torch.cat(out)


@dataclass(frozen=True)
class SurrogateSpec:
    objective: str  # "supcon" | "ce" | "untrained"
    epochs: int
    lr: float
    batch: int
    width: int
    depth: int
    norm: str
    temperature: float
    max_steps: int | None = None  # stop after this many steps in all, mid-epoch if need be
    debiasing: debias.DebiasSpec | None = None  # LfF, JTT or SelecMix ("ce" only); part of the cache key


def build_surrogate(spec: SurrogateSpec, num_classes: int, image_shape: tuple[int, int, int],
                    generator: torch.Generator) -> Surrogate:
    """A freshly initialised surrogate for images of shape (C, H, W), on the generator's device."""
    c, h, w = image_shape
    encoder = ConvNet(num_classes, c, spec.width, spec.depth, spec.norm, (h, w))
    return init_parameters(Surrogate(encoder, spec.objective), generator).to(generator.device)


def train_surrogate(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    spec: SurrogateSpec,
    generator: torch.Generator,
    aug_generator: torch.Generator,
    progress: Progress | None = None,
) -> Surrogate:
    """Train (or, for "untrained", just initialise) a surrogate on images [N, 3, H, W] on their device."""
    if spec.debiasing is not None and spec.objective != "ce":
        raise ValueError(f"a debiased surrogate is a cross-entropy one, not {spec.objective}")
    if spec.objective == "untrained" or spec.epochs == 0 or spec.debiasing is None:
        return fit(images, labels, num_classes, spec, generator, aug_generator, progress)
    if spec.debiasing.method in debias.JOINT_METHODS:
        return fit(images, labels, num_classes, spec, generator, aug_generator, progress, joint=spec.debiasing)
    # JTT: the identification model is a cross-entropy surrogate stopped after T of its epochs
    stop = debias.identification_epochs(spec.epochs, max(1, len(images) // spec.batch), spec.debiasing.jtt_id_steps)
    identifier = fit(images, labels, num_classes, spec, generator, aug_generator, stop=stop)
    wrong = debias.misclassified(identifier.encoder, images, labels)
    index = debias.upsample(wrong, spec.debiasing.jtt_upweight)
    return fit(images, labels, num_classes, spec, generator, aug_generator, progress, index=index)


def fit(images: torch.Tensor, labels: torch.Tensor, num_classes: int, spec: SurrogateSpec,
         generator: torch.Generator, aug_generator: torch.Generator, progress: Progress | None = None,
         stop: int | None = None, index: torch.Tensor | None = None,
         joint: debias.DebiasSpec | None = None) -> Surrogate:
    """The surrogate's training loop: `spec.epochs` epochs (cosine schedule), or only the first
    `stop`; over `index` (a multiset of sample positions) instead of every sample once; with LfF's
    biased model or SelecMix's auxiliary encoder (`joint`) trained beside it."""
    device = images.device
    model = build_surrogate(spec, num_classes, tuple(images.shape[1:]), generator).to(device)
    encoder = model.encoder
    if spec.objective == "untrained" or spec.epochs == 0:
        return model
    params = list(model.parameters())
    helper = None
    if joint is not None:
        def twin() -> ConvNet:
            return build_surrogate(spec, num_classes, tuple(images.shape[1:]), generator).encoder.to(device)

        helper = debias.joint_trainer(joint, twin, labels, num_classes, generator)
        params += list(helper.parameters())
    opt = torch.optim.SGD(params, lr=spec.lr, momentum=0.9, weight_decay=5e-4)
    size = len(images) if index is None else len(index)
    steps_per_epoch = max(1, size // spec.batch)
    total = spec.epochs * steps_per_epoch
    if spec.max_steps is not None:
        total = min(total, spec.max_steps)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    supcon = SupConLoss(spec.temperature)
    chunk = cpu_chunk(encoder, images)  # per-image layers only: chunking changes no value, only the cache use
    model.train()
    step = 0
    for _ in range(spec.epochs if stop is None else stop):
        if step == total:
            break
        order = torch.randperm(size, generator=generator, device=generator.device).to(device)
        if index is not None:
            order = index[order]
        for b in range(min(steps_per_epoch, total - step)):
            idx = order[b * spec.batch:(b + 1) * spec.batch]
            x, y = images[idx], labels[idx]
            if spec.objective == "supcon":
                v1 = augment.augment(x, VIEW_AUGMENTATION, aug_generator)
                v2 = augment.augment(x, VIEW_AUGMENTATION, aug_generator)
                views = torch.cat([v1, v2])
                z = torch.cat([model.project(part) for part in views.split(chunk or len(views))])
                z = z.view(2, len(x), -1).transpose(0, 1)
                loss = supcon(z, y)
            else:
                xa = augment.augment(x, VIEW_AUGMENTATION, aug_generator)
                loss = F.cross_entropy(encoder(xa), y) if helper is None else helper.loss(encoder, xa, y, idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 10 == 0 or step == total:  # a host sync: only every tenth step
                value = loss.item()
                if not math.isfinite(value):
                    raise DivergedError(f"the surrogate diverged at step {step} (loss {value}); lower "
                                        f"--surrogate-lr (now {spec.lr:g})" +
                                        (f" or raise --supcon-temperature (now {spec.temperature:g})"
                                         if spec.objective == "supcon" else ""))
                if progress is not None:
                    progress(step, total, value)
            elif progress is not None:
                progress(step, total, None)
    return model
