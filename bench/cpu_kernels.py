"""The three CPU costs found by profiling an evaluation step and a quick DM iteration, each timed
both ways on this machine (bench/RESULTS.md 8.6):

1. average pooling: ATen's `avg_pool2d` on NCHW tensors against `ddcore.nets.AvgPool2x2` (a
   depthwise 2x2 convolution), forward and backward, at the evaluation's and DM's sizes;
2. memory layout: GroupNorm forward and backward on NCHW input against channels_last input (what
   the crop augmentation used to hand the network);
3. the allocator: an evaluation step (ConvNet-32, 100 images, augmentation, SGD) and a quick DM
   iteration in fresh processes with glibc's default thresholds and with
   `ddcore.hardware.configure_allocator`, alternated.

    python bench/cpu_kernels.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from ddcore import augment, hardware
from ddcore.nets import AvgPool2x2, build_convnet


def ms(f, n: int) -> float:
    for _ in range(3):
        f()
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1000


def forward_backward(module, x: torch.Tensor):
    def step():
        y = module(x)
        y.backward(torch.ones_like(y))
    return step


def kernels() -> None:
    print("| what | shape | one way ms | other way ms | ratio |")
    print("|---|---|---|---|---|")
    for shape in [(100, 32, 28, 28), (41, 128, 28, 28)]:
        x = torch.randn(*shape, requires_grad=True)
        aten = ms(forward_backward(lambda t: F.avg_pool2d(t, 2), x), 30)
        ours = ms(forward_backward(AvgPool2x2(), x), 30)
        print(f"| pooling fwd+bwd: avg_pool2d / AvgPool2x2 | {list(shape)} | {aten:.2f} | {ours:.2f} | {aten / ours:.1f}x |")
        norm = torch.nn.GroupNorm(shape[1], shape[1])
        last = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        plain, cl = ms(forward_backward(norm, x), 30), ms(forward_backward(norm, last), 30)
        print(f"| GroupNorm fwd+bwd: channels_last / NCHW input | {list(shape)} | {cl:.2f} | {plain:.2f} | {cl / plain:.1f}x |")


def steps() -> tuple[float, float]:
    """(evaluation step ms, quick DM iteration ms) in this process."""
    from ddcore.methods.dm import class_groups, real_means, syn_backward
    from ddcore.nets import cpu_chunk

    g, aug_g = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    strategy = "color_crop_cutout_scale_rotate"
    net = build_convnet(10, 32, 3, "instance", (28, 28), g)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(100, 3, 28, 28), torch.arange(10).repeat_interleave(10)

    def eval_step() -> None:
        loss = F.cross_entropy(net(augment.augment(x, strategy, aug_g)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    dm_net = build_convnet(10, 32, 3, "instance", (28, 28), g).requires_grad_(False)
    images, syn = torch.randn(4000, 3, 28, 28), torch.randn(10, 10, 3, 28, 28, requires_grad=True)
    idx, coef = torch.randint(0, 4000, (10, 64), generator=g), torch.full((10, 64), 1 / 64)
    chunk = cpu_chunk(dm_net, images)

    def dm_step() -> None:
        params = augment.sample_params(strategy, aug_g, 10)
        real = real_means(dm_net, images, idx, coef, params, chunk)
        for classes in class_groups(10, 10, chunk):
            syn_backward(dm_net, syn, real, params, classes, contextlib.nullcontext())

    return ms(eval_step, 60), ms(dm_step, 30)


def allocator(rounds: int) -> None:
    results: dict[str, list[tuple[float, float]]] = {"glibc defaults": [], "configure_allocator": []}
    for _ in range(rounds):
        for name, rows in results.items():
            out = subprocess.run([sys.executable, __file__, "--steps", name], capture_output=True, text=True,
                                 check=True).stdout.split()
            rows.append((float(out[0]), float(out[1])))
    print("\n| allocator | evaluation step ms (rounds) | quick DM iteration ms (rounds) |")
    print("|---|---|---|")
    for name, rows in results.items():
        ev, dm = zip(*rows)
        print(f"| {name} | {statistics.median(ev):.1f} ({' / '.join(f'{v:.1f}' for v in ev)}) | "
              f"{statistics.median(dm):.1f} ({' / '.join(f'{v:.1f}' for v in dm)}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", default="", help=argparse.SUPPRESS)  # internal: one timed child process
    args = ap.parse_args()
    if args.steps:
        if args.steps == "configure_allocator" and not hardware.configure_allocator():
            raise SystemExit("error: not glibc, or MALLOC_* thresholds set in the environment")
        hardware.configure_threads()
        print(*(f"{v:.2f}" for v in steps()))
        return
    hardware.configure_process()
    print(f"{time.strftime('%Y-%m-%d')} | CPU capability {hardware.cpu_capability()}, "
          f"{torch.get_num_threads()} threads | torch {torch.__version__}\n")
    kernels()
    allocator(args.rounds)


if __name__ == "__main__":
    main()
