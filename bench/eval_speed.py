"""The evaluation's seconds: its models trained side by side (one thread each where there are more
models than threads; `ddcore.hardware.side_by_side_threads`) against one after the other with
every thread, alternating, on the bundled sample's first IPC images per class.

    python bench/eval_speed.py [--rounds 3] [--ipc 10] [--width 32] [--models 3] [--epochs 300]

The defaults are the quick preset's evaluation (3 models, 300 epochs, ConvNet-32, IPC 10). Run it
with nothing else busy.
"""
from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import torch

from ddcore import hardware
from ddcore.config import preset
from ddcore.data import load_biased
from ddcore.evaluate import evaluate_set


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=300)
    args = ap.parse_args()
    threads = hardware.configure_process()
    cfg = preset("quick").with_overrides(net_width=args.width, eval_models=args.models)
    train, test = load_biased(cfg.data, True, 0), load_biased(cfg.data, False, 0)
    pick = torch.cat([torch.nonzero(train.labels == c).flatten()[:args.ipc] for c in range(train.num_classes)])
    images, labels = train.images[pick], train.labels[pick]

    def timed() -> tuple[float, float]:
        start = time.perf_counter()
        metrics = evaluate_set(images, labels, test, cfg, args.epochs, 0)
        return time.perf_counter() - start, metrics["test_acc_unbiased"]

    print(f"{time.strftime('%Y-%m-%d')} | CPU capability {hardware.cpu_capability()}, {threads} threads | "
          f"{args.models} models x {args.epochs} epochs, IPC {args.ipc}, width {args.width}\n")
    print("| round | one after the other s | side by side s | ratio | unbiased % (after / side) |")
    print("|---|---|---|---|---|")
    ratios = []
    for r in range(args.rounds):
        with mock.patch.object(hardware, "side_by_side_threads", lambda jobs, device: None):
            after, acc_after = timed()
        side, acc_side = timed()
        ratios.append(after / side)
        print(f"| {r + 1} | {after:.1f} | {side:.1f} | {after / side:.2f}x | {acc_after:.1f} / {acc_side:.1f} |",
              flush=True)
    print(f"\nmedian ratio {statistics.median(ratios):.2f}x (each model: "
          f"{hardware.side_by_side_threads(args.models, images.device) or threads} thread(s) side by side)")


if __name__ == "__main__":
    main()
