"""DM iterations per second at the paper's batch sizes (256 real images per class, 10 classes,
ConvNet-128, DSA), for IPC 1/10/50, on the device at hand; also the `quick` preset's setting.

    python bench/dm_speed.py [--device cpu|cuda] [--iterations N] [--bf16]
"""
from __future__ import annotations

import argparse
import time

import torch


from ddcore.config import preset
from ddcore.data import load_biased
from ddcore.density import uniform_weights
from ddcore.methods import DistillJob, get_method
from ddcore.pipeline import resolve_device


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--ipcs", default="1,10,50")
    args = ap.parse_args()
    device = resolve_device(args.device)
    train = load_biased(preset("paper").data, train=True, seed=0).to(device)
    weights = uniform_weights(train.labels)
    print(f"{time.strftime('%Y-%m-%d')} | device {device} "
          f"({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'}) "
          f"| torch {torch.__version__}\n")
    print("| setting | IPC | bf16 | s / iteration | iterations / s |")
    print("|---|---|---|---|---|")
    settings = [("paper", preset("paper"), ipc, bf16) for ipc in map(int, args.ipcs.split(",")) for bf16 in (False, True)]
    settings += [("quick", preset("quick"), 10, preset("quick").distill.bf16)]
    for name, base, ipc, bf16 in settings:
        cfg = base.with_overrides(ipc=ipc, bf16=bf16, iterations=args.iterations + 1)
        stamps: list[float] = []
        job = DistillJob(train, weights, cfg, 0, lambda done, total, loss: stamps.append(time.perf_counter()))
        get_method("dm")(job)
        if device.type == "cuda":
            torch.cuda.synchronize()
        per_iter = (time.perf_counter() - stamps[0]) / args.iterations  # first iteration is warm-up
        print(f"| {name} (batch {cfg.distill.batch_real}/class, width {cfg.net.net_width}) | {ipc} | {bf16} | "
              f"{per_iter:.3f} | {1 / per_iter:.2f} |", flush=True)


if __name__ == "__main__":
    main()
