"""DM seconds per iteration at the paper's sizes (256 real images per class, 10 classes,
ConvNet-128, DSA) for IPC 1/10/50 in fp32 and bf16, on the device at hand; also the `quick`
preset's setting with the precision `--bf16 auto` picks there, and with `--compile` the largest
IPC with torch.compile (its first iteration, compilation included, is shown apart).

    python bench/dm_speed.py [--device cpu|cuda] [--iterations N] [--ipcs 1,10,50] [--compile]
    python bench/dm_speed.py --chunk-mib 4,16,64,all [--ipcs 10]   # choose ddcore.nets.CPU_CHUNK_BYTES
    python bench/dm_speed.py --floor [--ipcs 10,50]                # how far from the arithmetic's floor

--chunk-mib times, instead, the real side's forward in chunks of each size (CPU; "all": one
forward over every real image) at the paper's sizes in fp32 and at the quick preset's.

--floor sets the loop (paper sizes, fp32) against the least time its convolutions can take: their
multiply-adds per iteration (the real images' forward; the synthetic images' forward and, the
network being frozen, their input gradients, the same count again) at the rate this device runs
the network's convolutions alone, as many images at a time as the loop's chunks hold (256 on a
GPU). A loop near 100% of its floor has nothing left to
gain but less or cheaper arithmetic (bf16).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from ddcore import hardware, nets
from ddcore.config import preset
from ddcore.data import load_biased
from ddcore.density import uniform_weights
from ddcore.methods import DistillJob, get_method, job_precision
from ddcore.pipeline import resolve_device


def seconds_per_iteration(train, cfg, precision: hardware.Precision, iterations: int) -> tuple[float, float]:
    """(seconds per iteration, seconds of the first one). The first iteration is warm-up (and
    compilation, with cfg's --compile true; otherwise eager): timing starts once it has finished,
    on the GPU too."""
    stamps: list[float] = []

    def progress(done: int, total: int, loss: float | None) -> None:
        if done == 1 and train.images.is_cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    start = time.perf_counter()
    compiled = hardware.Compilation(cfg.distill.compile == "true", "--compile true")  # else eager
    get_method("dm")(DistillJob(train, uniform_weights(train.labels), cfg.with_overrides(iterations=iterations + 1),
                                0, progress, precision=precision, compile=compiled))
    if train.images.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - stamps[0]) / iterations, stamps[0] - start


def numbers(kind, allow_all: bool = False):
    """An argparse type: comma-separated positive numbers of `kind` (and 'all' if allowed)."""
    def parse(text: str) -> list:
        try:
            values = [v if allow_all and v == "all" else kind(v) for v in text.split(",")]
        except ValueError:
            values = []
        if not values or any(v != "all" and not v > 0 for v in values):
            raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers{' or all' if allow_all else ''}, "
                                             f"got {text!r}")
        return values
    return parse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--ipcs", type=numbers(int), default="1,10,50")
    ap.add_argument("--compile", action="store_true", help="also the largest IPC with torch.compile")
    ap.add_argument("--chunk-mib", type=numbers(float, allow_all=True), default=None,
                    help="comma-separated chunk sizes in MiB, or 'all'")
    ap.add_argument("--floor", action="store_true", help="the loop against its convolutions' least time (paper sizes)")
    args = ap.parse_args()
    hardware.configure_process()
    device = resolve_device(args.device)
    train = load_biased(preset("quick").data, train=True, seed=0).to(device)  # the bundled sample serves for speed
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU capability {hardware.cpu_capability()}, {torch.get_num_threads()} threads")
    print(f"{time.strftime('%Y-%m-%d')} | {machine} | torch {torch.__version__} | {args.iterations} timed iterations\n")
    fp32, bf16 = hardware.Precision(False, "fp32"), hardware.Precision(True, "bf16")
    ipcs = args.ipcs
    if args.floor:
        floor_table(train, ipcs, args.iterations, fp32)
        return
    if args.chunk_mib:
        chunk_table(train, ipcs, args.chunk_mib, args.iterations, fp32, auto(train, preset("quick")))
        return
    print("| setting | IPC | precision | s / iteration | iterations / s | 20,000 iterations | first iteration s |")
    print("|---|---|---|---|---|---|---|")
    paper = preset("paper")
    settings = [("paper", paper.with_overrides(ipc=ipc), p) for ipc in ipcs for p in (fp32, bf16)]
    if args.compile:
        settings += [("paper, compiled", paper.with_overrides(ipc=ipcs[-1], compile="true"), p) for p in (fp32, bf16)]
    settings.append(("quick", preset("quick"), auto(train, preset("quick"))))
    for name, cfg, precision in settings:
        per_iter, first = seconds_per_iteration(train, cfg, precision, args.iterations)
        chosen = f" (auto: {precision.reason})" if name == "quick" else ""
        print(f"| {name} (batch {cfg.distill.batch_real}/class, width {cfg.net.net_width}) | {cfg.distill.ipc} | "
              f"{precision.name}{chosen} | {per_iter:.4f} | {1 / per_iter:.1f} | {20000 * per_iter / 60:.1f} min | "
              f"{first:.1f} |", flush=True)


def auto(train, cfg) -> hardware.Precision:
    """What `--bf16 auto` picks for a DM run of `cfg` on `train` (measured there, not cached)."""
    return job_precision(DistillJob(train, uniform_weights(train.labels), cfg, 0, lambda *a: None), "auto")


def conv_rate(net: nn.Module, image_shape: tuple[int, ...], batch: int) -> tuple[int, float]:
    """(FLOPs of the network's nn.Conv2d layers per image, 2 per multiply-add; the rate in FLOP/s at
    which this device runs those convolutions alone, `batch` images at a time, medians of 5)."""
    convs: list[tuple[nn.Conv2d, torch.Size, int]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: convs.append((m, i[0].shape[1:], o[0].numel())))
             for m in net.modules() if isinstance(m, nn.Conv2d)]
    device = next(net.parameters()).device
    with torch.no_grad():
        net.embed(torch.zeros(1, *image_shape, device=device))
    for hook in hooks:
        hook.remove()
    flops, seconds = 0, 0.0
    for conv, in_shape, out_numel in convs:
        flops += 2 * out_numel * (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]
        x, times = torch.randn(batch, *in_shape, device=device), []
        with torch.no_grad():
            for i in range(7):
                start = time.perf_counter()
                conv(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i >= 2:  # two warm-ups
                    times.append(time.perf_counter() - start)
        seconds += statistics.median(times)
    return flops, batch * flops / seconds


def floor_table(train, ipcs: list[int], iterations: int, fp32: hardware.Precision) -> None:
    shape = tuple(train.images.shape[1:])
    print("| setting | IPC | conv GFLOP / iteration | convolutions alone GFLOP/s | floor s / iteration | loop s / iteration "
          "| floor / loop |\n|---|---|---|---|---|---|---|")
    for ipc in ipcs:
        cfg = preset("paper").with_overrides(ipc=ipc)
        net = nets.build_convnet(train.num_classes, cfg.net.net_width, cfg.net.net_depth, cfg.net.net_norm,
                                 shape[1:], torch.Generator().manual_seed(0), train.images.device)
        images = train.num_classes * (cfg.distill.batch_real + 2 * ipc)  # real forward; synthetic forward + input grads
        flops, rate = conv_rate(net, shape, nets.cpu_chunk(net, train.images) or 256)
        floor = images * flops / rate
        loop = seconds_per_iteration(train, cfg, fp32, iterations)[0]
        print(f"| paper (batch {cfg.distill.batch_real}/class, width {cfg.net.net_width}) | {ipc} | "
              f"{images * flops / 1e9:.0f} | {rate / 1e9:.0f} | {floor:.4f} | {loop:.4f} | {floor / loop:.0%} |", flush=True)


def chunk_table(train, ipcs: list[int], sizes: list[float | str], iterations: int, fp32: hardware.Precision,
                auto: hardware.Precision) -> None:
    """Seconds per iteration for each CPU chunk size, the sizes alternated over two rounds (median
    of the two) so that a drift of the machine spreads over all of them."""
    settings = [("paper", preset("paper").with_overrides(ipc=ipc), fp32) for ipc in ipcs]
    settings.append(("quick", preset("quick"), auto))
    print("| setting | IPC | precision | chunk | s / iteration |\n|---|---|---|---|---|")
    for name, cfg, precision in settings:
        times: dict[str, list[float]] = {s: [] for s in sizes}
        for _ in range(2):
            for size in sizes:
                nets.CPU_CHUNK_BYTES = 2**50 if size == "all" else int(float(size) * 2**20)
                times[size].append(seconds_per_iteration(train, cfg, precision, iterations)[0])
        for size in sizes:
            print(f"| {name} (batch {cfg.distill.batch_real}/class, width {cfg.net.net_width}) | {cfg.distill.ipc} | "
                  f"{precision.name} | {size if size == 'all' else f'{size:g} MiB'} | {statistics.median(times[size]):.4f} |",
                  flush=True)


if __name__ == "__main__":
    main()
