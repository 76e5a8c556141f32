"""Expert trajectories for MTT: ConvNets trained on the real data (reweighted when the run is),
with their parameters recorded after every epoch.

Expert i of a configuration is fully determined by that configuration and i (its own generators),
so experts are cached one file each and reused by any later run that needs the same ones: the
cache key holds everything that changes a trajectory (the data, the per-sample weights, the
architecture, the expert's optimiser, batch, augmentation and seed), not how many experts a run
asks for or how many epochs it keeps. Experts train `parallel` at a time as one batched
computation (`torch.func.vmap` over stacked parameters): on a GPU that fills the device, on a
CPU it gains nothing, so the default there is one.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from .. import augment, runstore
from ..data import BiasedTensors
from ..nets import ConvNet

CACHE_FORMAT = 4  # bump when the stored layout or the training procedure changes (4: own augmentation streams)

# progress(done, total): expert epochs finished
ExpertProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExpertSpec:
    """How every expert of a run is trained (the data and weights come separately)."""

    lr: float  # plain SGD, no momentum, as the MTT reference
    batch: int
    strategy: str  # DSA strategy applied to each batch ("none": no augmentation)
    weighting: str  # "sample": batches drawn by weight; "mean": uniform batches, weighted loss
    seed: int


@dataclass(frozen=True)
class CacheReport:
    loaded: int  # experts read from the cache
    trained: int  # experts trained because no usable entry existed
    rebuilt: int  # of those, entries that existed but were damaged or too short


def param_shapes(net: ConvNet) -> list[tuple[str, torch.Size]]:
    """The network's parameter names and shapes, in the order of the flat vectors here."""
    return [(name, p.shape) for name, p in net.named_parameters()]


def unflatten(flat: torch.Tensor, shapes: list[tuple[str, torch.Size]]) -> dict[str, torch.Tensor]:
    """[..., P] -> {name: [..., *shape]} views of one flat parameter vector (or a stack of them)."""
    sizes = [math.prod(shape) for _, shape in shapes]
    parts = flat.split(sizes, dim=-1)
    return {name: part.reshape(*flat.shape[:-1], *shape) for (name, shape), part in zip(shapes, parts)}


def flatten(params: dict[str, torch.Tensor], batch_dims: int = 0) -> torch.Tensor:
    """Inverse of `unflatten`: {name: [..., *shape]} -> [..., P] (dict order = parameter order)."""
    return torch.cat([p.flatten(batch_dims) for p in params.values()], dim=batch_dims)


def expert_seed(seed: int, index: int) -> int:
    """Expert `index`'s own seed: independent of which other experts are trained with it."""
    return seed * 100_003 + index


AUG_STREAM = 2**50  # added to an expert's seed for its augmentation: above every expert's own seed (< 2**48)


def _epoch_batches(train: BiasedTensors, weights: torch.Tensor, spec: ExpertSpec,
                   g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's sample order [N] and per-sample loss coefficients [N]. The weights sum to 1
    within each class; scaled by the class sizes they keep the data's class frequencies, so
    uniform weights reproduce plain training."""
    n = len(train.labels)
    per_sample = weights * torch.bincount(train.labels, minlength=train.num_classes)[train.labels]
    if spec.weighting == "sample":
        order = torch.multinomial(per_sample / n, n, replacement=True, generator=g)
        return order, torch.ones(n, device=order.device)
    order = torch.randperm(n, generator=g, device=per_sample.device)
    return order, per_sample[order]


def _batch_loss(net: ConvNet, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                coef: torch.Tensor) -> torch.Tensor:
    """sum_i coef_i CE_i / sum_i coef_i for one expert's batch."""
    per_sample = F.cross_entropy(functional_call(net, params, (x,)), y, reduction="none")
    return (per_sample * coef).sum() / coef.sum()


def train_experts(net: ConvNet, train: BiasedTensors, weights: torch.Tensor, spec: ExpertSpec, indices: list[int],
                  epochs: int, progress: ExpertProgress | None = None) -> torch.Tensor:
    """Train the experts numbered `indices` together for `epochs` epochs each; `net` gives the
    architecture (its weights are redrawn and then unused). Returns [len(indices), epochs + 1, P]:
    each expert's flat parameters at the start and after every epoch."""
    device = train.images.device
    gens = [torch.Generator(device=device).manual_seed(expert_seed(spec.seed, i)) for i in indices]
    # + 1 would be expert i + 1's own seed: on a CPU its init and batch order would replay this augmentation's draws
    aug_gens = [torch.Generator().manual_seed(expert_seed(spec.seed, i) + AUG_STREAM) for i in indices]
    inits = [{name: p.detach().clone() for name, p in net.reset_parameters(g).named_parameters()} for g in gens]
    params = {name: torch.stack([p[name] for p in inits]) for name in inits[0]}
    step = vmap(grad(lambda p, x, y, c: _batch_loss(net, p, x, y, c)))

    trajectory = [flatten(params, 1)]
    n = len(train.labels)
    for epoch in range(epochs):
        epoch_batches = [_epoch_batches(train, weights, spec, g) for g in gens]
        for start in range(0, n, spec.batch):
            xs, ys, cs = [], [], []
            for (order, coef), aug_g in zip(epoch_batches, aug_gens):
                idx = order[start:start + spec.batch]
                xs.append(augment.augment(train.images[idx], spec.strategy, aug_g))
                ys.append(train.labels[idx])
                cs.append(coef[start:start + spec.batch])
            grads = step(params, torch.stack(xs), torch.stack(ys), torch.stack(cs))
            params = {name: p - spec.lr * grads[name] for name, p in params.items()}
        trajectory.append(flatten(params, 1))
        if progress is not None:
            progress(epoch + 1, epochs)
    return torch.stack(trajectory, dim=1)


def cache_key(train: BiasedTensors, weights: torch.Tensor, net: ConvNet, spec: ExpertSpec, data_id: str) -> str:
    """A digest of everything that changes a trajectory; `data_id` names the data (config + seed)."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, "data": data_id, "spec": asdict(spec),
                         "net": repr(net), "shape": list(train.images.shape)}, sort_keys=True).encode())
    h.update(train.labels.cpu().numpy().tobytes())
    h.update(weights.float().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


def _read_entry(path: Path, epochs: int, num_params: int, device: torch.device) -> torch.Tensor | None:
    """The first epochs + 1 checkpoints of a cached expert, or None if the entry is missing, too
    short or damaged in any way (then it is retrained, never trusted)."""
    if not path.exists():
        return None
    try:
        traj = torch.load(path, weights_only=True, map_location=device)["trajectory"]
    except Exception:
        return None
    if not (isinstance(traj, torch.Tensor) and traj.dim() == 2 and traj.shape[1] == num_params
            and traj.shape[0] >= epochs + 1 and bool(torch.isfinite(traj).all())):
        return None
    return traj[: epochs + 1].float()


def load_or_train(net: ConvNet, train: BiasedTensors, weights: torch.Tensor, spec: ExpertSpec, count: int,
                  epochs: int, parallel: int, cache_dir: Path | None, data_id: str,
                  progress: ExpertProgress | None = None) -> tuple[torch.Tensor, CacheReport]:
    """Experts 0..count-1 as [count, epochs + 1, P] on the data's device: cached entries are
    loaded, the rest trained `parallel` at a time and stored (without a cache_dir all are trained)."""
    device = train.images.device
    num_params = sum(p.numel() for p in net.parameters())
    folder = cache_dir / f"experts-{cache_key(train, weights, net, spec, data_id)}" if cache_dir else None

    def entry(i: int) -> Path | None:
        return folder / f"expert-{i:03d}.pt" if folder else None

    found: dict[int, torch.Tensor] = {}
    damaged = 0
    for i in range(count):
        path = entry(i)
        if path is not None:
            traj = _read_entry(path, epochs, num_params, device)
            if traj is None:
                damaged += path.exists()
            else:
                found[i] = traj
    missing = [i for i in range(count) if i not in found]
    groups = [missing[s:s + parallel] for s in range(0, len(missing), parallel)]
    done_epochs = 0

    def group_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(done_epochs + done, len(groups) * total)

    for group in groups:
        trained = train_experts(net, train, weights, spec, group, epochs, group_progress)
        done_epochs += epochs
        for i, traj in zip(group, trained):
            found[i] = traj
            path = entry(i)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                buf = io.BytesIO()
                torch.save({"trajectory": traj.cpu().clone()}, buf)
                runstore.write_bytes(path, buf.getvalue())
    report = CacheReport(loaded=count - len(missing), trained=len(missing), rebuilt=damaged)
    return torch.stack([found[i] for i in range(count)]), report
