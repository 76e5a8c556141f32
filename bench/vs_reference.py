"""Our DM loop against the reference one (VICO-UoE/DatasetCondensation, main_DM.py), side by side.

    python bench/vs_reference.py --reference DIR [--device cpu|cuda] [--ipcs 10,50] [--iterations 5]
                                 [--rounds 3] [--no-auto] [--source files --root ../shared/data]

DIR is a checkout of https://github.com/VICO-UoE/DatasetCondensation (never vendored here). The
reference's own network and augmentation (`utils.get_network`, `utils.DiffAugment`) run its
per-iteration steps as main_DM.py does for a ConvNet: a new network, then per class a batch of
`batch_real` real images, one Siamese DSA draw for that class's real and synthetic images, the
mean-embedding loss, and the loss read back (`loss.item()`) every iteration. Ours is
`ddcore.methods.dm.distill_dm` on the same data and sizes, once in fp32, eager, and once as a
paper-preset run resolves it: the precision `--bf16 auto` picks and what `--compile auto` decides
for the preset's 20,000 iterations (on a CPU: compiled; compilation happens in the warm-up
iteration, ~30 s once in a 20,000-iteration run). Both are timed in alternation (reference, ours, reference, ...),
the first iteration of every timed block excluded as warm-up, and the median seconds per
iteration compared: a ratio above 1 means ours is faster.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ddcore import hardware
from ddcore.cli import parse_overrides
from ddcore.config import RunConfig, preset
from ddcore.data import BiasedTensors, dsa_strategy, load_biased
from ddcore.density import uniform_weights
from ddcore.methods import DistillJob, get_method, job_compile, job_precision
from ddcore.pipeline import resolve_device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_seconds(ref, train: BiasedTensors, cfg: RunConfig, device: torch.device, iterations: int) -> float:
    """Seconds per iteration of the reference's loop body (main_DM.py, ConvNet branch)."""
    C, ipc, batch, strategy = train.num_classes, cfg.distill.ipc, cfg.distill.batch_real, dsa_strategy(cfg)
    param = ref.ParamDiffAug()
    images_all = train.images
    indices_class = [np.flatnonzero(train.labels.cpu().numpy() == c) for c in range(C)]
    shape = tuple(train.images.shape[1:])
    image_syn = torch.randn(C * ipc, *shape, device=device, requires_grad=True)
    optimizer_img = torch.optim.SGD([image_syn], lr=cfg.distill.lr_img, momentum=0.5)
    stamps = []
    for _ in range(iterations + 1):
        net = ref.get_network("ConvNet", shape[0], C, shape[1:])
        net.train()
        for p in net.parameters():
            p.requires_grad = False
        loss = torch.tensor(0.0).to(device)
        for c in range(C):
            img_real = images_all[np.random.permutation(indices_class[c])[:batch]]
            img_syn = image_syn[c * ipc:(c + 1) * ipc]
            seed = int(time.time() * 1000) % 100000
            img_real = ref.DiffAugment(img_real, strategy, seed=seed, param=param)
            img_syn = ref.DiffAugment(img_syn, strategy, seed=seed, param=param)
            loss += torch.sum((net.embed(img_real).detach().mean(0) - net.embed(img_syn).mean(0)) ** 2)
        optimizer_img.zero_grad()
        loss.backward()
        optimizer_img.step()
        loss.item()
        stamps.append(time.perf_counter())
    return (stamps[-1] - stamps[0]) / iterations


def our_seconds(train: BiasedTensors, cfg: RunConfig, precision: hardware.Precision, compiled: hardware.Compilation,
                iterations: int) -> float:
    stamps: list[float] = []
    job = DistillJob(train, uniform_weights(train.labels), cfg.with_overrides(iterations=iterations + 1), 0,
                     lambda done, total, loss: stamps.append(time.perf_counter()), precision=precision,
                     compile=compiled)
    get_method("dm")(job)
    sync(train.images.device)
    return (time.perf_counter() - stamps[0]) / iterations


def load_reference(folder: Path):
    if not (folder / "utils.py").exists():
        raise SystemExit(f"error: {folder} is not a DatasetCondensation checkout (no utils.py)")
    sys.path.insert(0, str(folder))  # the reference is a folder of scripts, not a package
    warnings.filterwarnings("ignore", message="Default grid_sample")  # its affine_grid calls, every iteration
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its scipy.ndimage.interpolation import is deprecated
        return importlib.import_module("utils")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, type=Path, help="a DatasetCondensation checkout")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ipcs", default="10,50")
    ap.add_argument("--iterations", type=int, default=5, help="timed iterations per block (plus one warm-up)")
    ap.add_argument("--rounds", type=int, default=3, help="alternations of reference and ours")
    ap.add_argument("--no-auto", action="store_true",
                    help="no bf16 in the auto column (--compile auto still applies; --compile false for fp32 eager "
                         "only): skips the precision timing, minutes where bf16 runs emulated")
    args, rest = ap.parse_known_args()
    ref = load_reference(args.reference.resolve())
    hardware.configure_process()
    device = resolve_device(args.device)
    # ConvNet-128, 256 real images per class, DSA; the bundled sample unless --source files --root DIR
    base = preset("paper").with_overrides(**{"source": "bundled", "root": None, **parse_overrides(rest)})
    train = load_biased(base.data, train=True, seed=0).to(device)
    fp32, eager = hardware.Precision(False, "fp32"), hardware.Compilation(False, "eager")
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU capability {hardware.cpu_capability()}, {torch.get_num_threads()} threads")
    print(f"{time.strftime('%Y-%m-%d')} | {machine} | torch {torch.__version__} | {len(train.labels)} training images "
          f"{tuple(train.images.shape[1:])} | ConvNet-{base.net.net_width}, {base.distill.batch_real} real/class, "
          f"DSA {dsa_strategy(base)} | {args.rounds} rounds x {args.iterations} iterations\n")
    print("| IPC | reference s/it (rounds) | ours fp32 eager s/it | ours auto s/it | ratio fp32 eager | ratio auto | "
          "auto chose |")
    print("|---|---|---|---|---|---|---|")
    for ipc in map(int, args.ipcs.split(",")):
        cfg = base.with_overrides(ipc=ipc)
        bare = DistillJob(train, uniform_weights(train.labels), cfg, 0, lambda *a: None)
        auto, compiled = (fp32 if args.no_auto else job_precision(bare, "auto")), job_compile(bare)
        ref_t, fp32_t, auto_t = [], [], []
        for _ in range(args.rounds):
            ref_t.append(reference_seconds(ref, train, cfg, device, args.iterations))
            fp32_t.append(our_seconds(train, cfg, fp32, eager, args.iterations))
            if auto.bf16 or compiled.on:
                auto_t.append(our_seconds(train, cfg, auto, compiled, args.iterations))
        r, f = statistics.median(ref_t), statistics.median(fp32_t)
        a = statistics.median(auto_t) if auto_t else f
        rounds = " / ".join(f"{t:.3f}" for t in ref_t)
        print(f"| {ipc} | {r:.4f} ({rounds}) | {f:.4f} | {a:.4f} | {r / f:.2f}x | {r / a:.2f}x | {auto.name}: {auto.reason}; {compiled.reason} |",
              flush=True)


if __name__ == "__main__":
    main()
