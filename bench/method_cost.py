"""Time per iteration and peak memory of every distillation method at IPC 1, 10 and 50.

Each (method, IPC) cell runs in its own process on the preset's data and network with uniform
weights, so the peak is that cell's own: peak resident memory of the process on a CPU (data and
libraries included; the "idle" row is a process that only loaded the data), peak allocated GPU
memory on CUDA. The first iteration is warm-up and not timed; MTT's expert training is reported
separately as seconds per expert epoch.

    python bench/method_cost.py                                # quick preset, CPU
    python bench/method_cost.py --preset paper --device cuda --source files --root ../shared/data
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from dataclasses import replace

import torch

from ddcore.cli import parse_overrides
from ddcore.config import METHODS, preset
from ddcore.data import load_biased
from ddcore.density import uniform_weights
from ddcore.methods import DistillJob, get_method, job_precision
from ddcore.pipeline import resolve_device

IPCS = (1, 10, 50)
# iterations timed per method: enough for a stable mean, few enough for a CPU
ITERATIONS = {"dm": 21, "dc": 3, "dsa": 3, "mtt": 6}


def measure(method: str, ipc: int, preset_name: str, device_name: str, overrides: dict[str, object]) -> dict:
    """One cell, in this process: seconds per iteration (and per expert epoch), peak memory in MiB."""
    base = preset(preset_name, "dm" if method == "idle" else method)
    cfg = base.with_overrides(**{"ipc": ipc, "iterations": ITERATIONS.get(method, 3), **overrides})
    device = resolve_device(device_name)
    train = load_biased(cfg.data, train=True, seed=0).to(device)
    stamps: dict[str, list[float]] = {"experts": [], "distill": []}
    stage = ["distill"]

    def progress(done: int, total: int, loss: float | None) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()  # the timing needs it; the methods themselves never sync per step
        stamps[stage[0]].append(time.perf_counter())

    def on_stage(name: str) -> None:
        stage[0] = name
        stamps[name].append(time.perf_counter())

    if method == "idle":
        return {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    job = DistillJob(train, uniform_weights(train.labels), cfg, 0, progress, on_stage)
    job = replace(job, precision=job_precision(job, cfg.distill.bf16))
    get_method(method)(job)
    t = stamps["distill"]
    start = 1 if method == "mtt" else 0  # MTT's list opens with its stage switch; then iteration 1 is skipped
    out = {"s_per_it": (t[-1] - t[start]) / (len(t) - start - 1),
           "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if stamps["experts"]:
        e = stamps["experts"]
        out["s_per_expert_epoch"] = (e[-1] - e[0]) / (len(e) - 1)
    if device.type == "cuda":
        out["gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="quick")
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--one", nargs=2, metavar=("METHOD", "IPC"), help=argparse.SUPPRESS)  # a child process
    args, rest = p.parse_known_args()
    overrides = parse_overrides(rest)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.preset, args.device, overrides)))
        return

    def child(method: str, ipc: int) -> dict:
        cmd = [sys.executable, __file__, "--preset", args.preset, "--device", args.device, "--one", method, str(ipc), *rest]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])

    c = preset(args.preset)
    print(f"{time.strftime('%Y-%m-%d')} | preset {args.preset} (width {c.net.net_width}) | device {args.device} | "
          f"torch {torch.__version__} | {platform.machine()}, {torch.get_num_threads()} threads | overrides {rest or '-'}\n")
    print(f"idle process (data loaded): {child('idle', 1)['rss_mib']:.0f} MiB peak RSS\n")
    memory = "peak GPU MiB" if args.device == "cuda" else "peak RSS MiB"
    print(f"| method | IPC | s / iteration | {memory} | s / expert epoch |")
    print("|---|---|---|---|---|")
    for method in args.methods.split(","):
        for ipc in IPCS:
            r = child(method, ipc)
            expert = f"{r['s_per_expert_epoch']:.2f}" if "s_per_expert_epoch" in r else "-"
            peak = r.get("gpu_mib", r["rss_mib"])
            print(f"| {method} | {ipc} | {r['s_per_it']:.3f} | {peak:.0f} | {expert} |", flush=True)


if __name__ == "__main__":
    main()
