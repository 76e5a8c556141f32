"""Seconds to corrupt N random 32x32 images with each Corrupted CIFAR-10 corruption at one level,
on the CPU (or --device): the best of --repeats timed calls, after one warm-up call per
corruption (which builds the cached blur matrices); the best, because on a shared machine other
processes only ever add time. Prints a Markdown table; not a test.

    python bench/corruptions_speed.py [--n 5000] [--severity 5] [--size 32] [--repeats 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from ddcore.data.corruptions import CORRUPTION_TYPES, corrupt


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(images: torch.Tensor, name: str, severity: int) -> float:
    start = time.perf_counter()
    corrupt(images, name, severity, torch.Generator().manual_seed(1))
    if images.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--severity", type=int, default=5)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    images = torch.rand(args.n, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    print(f"{time.strftime('%Y-%m-%d')} | {cpu_name()}, {torch.get_num_threads()} threads | device {device} "
          f"| torch {torch.__version__} | {args.n} images {args.size}x{args.size}, level {args.severity}, "
          f"best of {args.repeats}\n")
    print("| type | corruption | seconds | images / s |")
    print("|---|---|---|---|")
    total = 0.0
    for kind, names in CORRUPTION_TYPES.items():
        for name in names:
            corrupt(images[:8], name, args.severity, torch.Generator().manual_seed(0))  # warm-up
            seconds = min(timed(images, name, args.severity) for _ in range(args.repeats))
            total += seconds
            print(f"| {kind} | {name} | {seconds:.2f} | {args.n / seconds:,.0f} |")
    print(f"| | **all 20** | **{total:.1f}** | |")


if __name__ == "__main__":
    main()
