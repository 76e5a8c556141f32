"""What this machine runs fast, decided on purpose and recorded with every run.

CPUs differ between users and between days: bf16 autocast made DM 2x faster on a CPU with AMX
and 5.7x slower on one with only AVX2, and on an H200 it was slower than fp32 (bench/RESULTS.md).
So `--bf16 auto` (every preset's default) asks the device: a CPU uses bf16 only when it has native
bf16 instructions (AVX-512 BF16 or AMX), read from /proc/cpuinfo; a GPU, or a CPU whose flags
cannot be read, runs a one-time micro-benchmark of a ConvNet step, cached per machine. Threads are
set deliberately too: one run at a time gets every core this process may use.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

BF16_MODES = ("auto", "true", "false")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Precision:
    bf16: bool
    reason: str  # why, in words, for metrics.json and the log

    @property
    def name(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def autocast(self, device: torch.device) -> torch.autocast:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)


def cpu_capability() -> str:
    """The vector instruction set torch dispatches to on this CPU ('AVX2', 'AVX512', ...)."""
    return torch.backends.cpu.get_cpu_capability()


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The CPU's feature flags, or None where the platform does not say (not Linux)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity set, which containers and taskset restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure_threads() -> int:
    """Give torch every usable CPU, unless the user chose with OMP_NUM_THREADS; returns the count.
    Called by the CLI and the worker, which run one job at a time. Numba (UMAP) gets the same count
    before it loads: its first parallel call otherwise resets torch's thread count to its own
    default, and results depend on the thread count."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(usable_cpus())
    os.environ.setdefault("NUMBA_NUM_THREADS", str(torch.get_num_threads()))
    return torch.get_num_threads()


def resolve_precision(setting: str, device: torch.device, method: str, cache_dir: Path | None = None) -> Precision:
    """Turn a validated `--bf16 auto|true|false` into a decision for this device and method."""
    from .methods import get_method_spec

    if not get_method_spec(method).autocast:
        return Precision(False, f"{method} runs in fp32")
    if setting != "auto":
        return Precision(setting == "true", f"--bf16 {setting}")
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            return Precision(False, "CUDA device lacks bf16")
        faster, ratio = bf16_faster_measured(device, cache_dir)
        return Precision(faster, f"measured: bf16 takes {ratio:.2f}x the time of fp32 on {torch.cuda.get_device_name(device)}")
    flags = cpu_flags()
    if flags is not None:
        native = sorted(set(NATIVE_BF16_FLAGS) & flags)
        if native:
            return Precision(True, f"CPU has {' and '.join(native)}")
        return Precision(False, f"CPU lacks native bf16 (no {' or '.join(NATIVE_BF16_FLAGS)}; capability {cpu_capability()})")
    faster, ratio = bf16_faster_measured(device, cache_dir)
    return Precision(faster, f"measured: bf16 takes {ratio:.2f}x the time of fp32 on this CPU")


def _machine_key(device: torch.device) -> str:
    parts = [platform.machine(), platform.processor(), cpu_capability(), torch.__version__, str(usable_cpus())]
    if device.type == "cuda":
        parts = [torch.cuda.get_device_name(device), torch.__version__, str(torch.version.cuda)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def bf16_faster_measured(device: torch.device, cache_dir: Path | None) -> tuple[bool, float]:
    """(bf16 clearly faster, bf16 time / fp32 time) for a ConvNet step on `device`, measured once
    per machine: cached in the process and, given `cache_dir`, in cache_dir/precision-<machine>.json."""
    path = None if cache_dir is None else Path(cache_dir) / f"precision-{_machine_key(device)}.json"
    if path is not None and path.exists():
        try:
            ratio = float(json.loads(path.read_text())["bf16_over_fp32"])
            return ratio < 0.9, ratio
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged entry is measured again
    ratio = _measure_bf16_ratio(str(device))
    if path is not None:
        from .runstore import write_json

        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"bf16_over_fp32": ratio, "capability": cpu_capability(), "torch": torch.__version__})
    return ratio < 0.9, ratio


@functools.cache
def _measure_bf16_ratio(device_name: str) -> float:
    """Best-of-3 time of a DM-sized ConvNet forward and backward in bf16 over the same in fp32
    (a GPU gets paper sizes: width 128, 512 images; a CPU width 32, 128 images)."""
    from .nets import ConvNet

    device = torch.device(device_name)
    width, batch, repeats = (128, 512, 10) if device.type == "cuda" else (32, 128, 1)
    net = ConvNet(10, 3, width, 3, "instance", (28, 28)).to(device).requires_grad_(False)
    x = torch.rand(batch, 3, 28, 28, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_(True)

    def best(bf16: bool) -> float:
        times = []
        for _ in range(4):  # the first is warm-up
            start = time.perf_counter()
            for _ in range(repeats):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    net.embed(x).float().sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        return min(times[1:])

    return best(True) / best(False)
