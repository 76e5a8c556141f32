"""What this machine runs fast, decided on purpose and recorded with every run.

CPUs differ between users and between days: bf16 autocast made DM 2x faster on one CPU with
AVX-512 BF16, 5.7x slower on one with only AVX2, 1.3-2.2x slower on a Xeon with AMX (whose flags
promise native bf16), and 10-13% slower on an H200 (bench/RESULTS.md). Neither the flags nor a
ConvNet micro-benchmark predicted the Xeon (the micro-benchmark said bf16 was 2x faster). So
`--bf16 auto` (the quick, full and paper presets' default) measures: a CPU without native bf16
instructions (no AVX-512 BF16 or AMX in /proc/cpuinfo) gets fp32 at once; otherwise the run's own
iteration is timed at its own sizes (`Probe`) in fp32, in bf16 and in bf16 for the gradient-free real side only
(on the Xeon that side ran 2x faster in bf16 while the synthetic side's backward ran slower), once
per machine and sizes, cached in the runs folder. Threads are set deliberately too: one run at a
time gets every core this process may use; and so is glibc's allocator, which otherwise hands big
buffers back to the kernel on every free. `--compile auto` (every preset's default) compiles DM's
network on a CPU for runs long enough to repay the compilation (`resolve_compile`).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

MODES = ("auto", "true", "false")  # --bf16 and --compile: decided here, or forced
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Precision:
    bf16: bool
    reason: str  # why, in words, for metrics.json and the log
    real_only: bool = False  # bf16 only for a gradient-free forward (DM's real side), the rest fp32

    @property
    def name(self) -> str:
        return "fp32" if not self.bf16 else "bf16-real" if self.real_only else "bf16"

    def autocast(self, device: torch.device) -> torch.autocast:
        """For the loop's differentiated work."""
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16 and not self.real_only)

    def real_autocast(self, device: torch.device) -> torch.autocast:
        """For a forward under no_grad (DM's real images): bf16 in both bf16 modes."""
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)


@dataclass(frozen=True)
class Compilation:
    on: bool  # torch.compile the network's feature layers
    reason: str  # why, in words, for metrics.json and the log


Probe = Callable[[Precision], float]  # seconds per iteration of a run's own loop in that precision


def cpu_capability() -> str:
    """The vector instruction set torch dispatches to on this CPU ('AVX2', 'AVX512', ...)."""
    return torch.backends.cpu.get_cpu_capability()


def cxx_compiler() -> str | None:
    """The C++ compiler `--compile` needs (torch.compile builds the code it generates with one):
    $CXX, g++, clang++ or c++ on PATH, whichever is found first; None if none is."""
    for name in (os.environ.get("CXX"), "g++", "clang++", "c++"):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


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


def side_by_side_threads(jobs: int, device: torch.device) -> int | None:
    """torch threads for each of `jobs` independent computations run side by side in this process,
    one Python thread each (torch's thread count is per thread), or None: run them one after the
    other (one job, a GPU, or a single thread to share). Small networks use a few cores poorly one
    at a time: 3 evaluation models at the quick sizes on 2 cores trained 1.03-1.3x (median 1.15x)
    faster side by side, one thread each, than one after the other with 2 threads; 2 at a time were no
    faster, the third model then training alone (bench/RESULTS.md 16). So every job gets a thread,
    sharing the cores when there are more jobs than threads."""
    threads = torch.get_num_threads()
    if jobs < 2 or device.type != "cpu" or threads < 2:
        return None
    return max(1, threads // jobs)


# glibc serves allocations above its mmap threshold (dynamic, 128 KiB up to 32 MiB) with fresh
# mappings that it unmaps on free, and trims the heap's free top: a training loop that allocates the
# same activations every step then page-faults them in again every step. Fixed thresholds keep freed
# memory for reuse: evaluation steps ran 1.3-1.5x faster, DM's quick iterations no faster but
# without glibc's occasional 2x slower process (bench/RESULTS.md 8.6), at the cost of up to
# TRIM_THRESHOLD bytes kept mapped while unused.
MMAP_THRESHOLD = 32 * 2**20  # the largest value glibc accepts on 64-bit machines
TRIM_THRESHOLD = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")  # glibc's own settings, read at start


def configure_allocator() -> bool:
    """Set glibc's thresholds (above), unless the user set them in the environment; False where the
    C library is not glibc or the user chose (nothing done)."""
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in MALLOC_ENV):
        return False
    libc = ctypes.CDLL("libc.so.6")
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def configure_process() -> int:
    """Threads and allocator for a process that runs one job at a time (the CLI, the worker, the
    benchmarks); returns torch's thread count."""
    configure_allocator()
    return configure_threads()


FASTER = 0.9  # bf16 is chosen only when it takes under 90% of fp32's time: a near tie is not worth the rounding


def resolve_precision(setting: str, device: torch.device, method: str, probe: Probe,
                      cache_dir: Path | None = None, sizes: str = "") -> Precision:
    """Turn a validated `--bf16 auto|true|false` into a decision for this device and method.
    `probe` times the run's own iteration (ddcore.methods.precision_probe) and `sizes` names what
    it depends on; they are used only for `auto` on a device that has bf16 at all."""
    from .methods import get_method_spec

    if not get_method_spec(method).autocast:
        return Precision(False, f"{method} runs in fp32")
    if setting != "auto":
        return Precision(setting == "true", f"--bf16 {setting}")
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            return Precision(False, "CUDA device lacks bf16")
        where = torch.cuda.get_device_name(device)
    else:
        flags = cpu_flags()
        native = None if flags is None else sorted(set(NATIVE_BF16_FLAGS) & flags)
        if native == []:
            return Precision(False, f"CPU lacks native bf16 (no {' or '.join(NATIVE_BF16_FLAGS)}; "
                                    f"capability {cpu_capability()})")
        where = f"this CPU ({' and '.join(native)})" if native else "this CPU (flags unknown)"
    ratios = measured_ratios(device, probe, cache_dir, f"{method} {sizes}")
    best = min(CANDIDATES, key=lambda c: ratios[c.name])
    measured = (f"measured: bf16 takes {ratios['bf16']:.2f}x, bf16 on the real side only "
                f"{ratios['bf16-real']:.2f}x the time of fp32 for this run's {method} iteration on {where}")
    if ratios[best.name] < FASTER:
        return replace(best, reason=measured)
    return Precision(False, measured)


def _machine_key(device: torch.device) -> str:
    parts = [platform.machine(), platform.processor(), cpu_capability(), torch.__version__, str(usable_cpus())]
    if device.type == "cuda":
        parts = [torch.cuda.get_device_name(device), torch.__version__, str(torch.version.cuda)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


_RATIOS: dict[str, dict[str, float]] = {}  # measured in this process: cache file name -> ratios
CANDIDATES = (Precision(True, "bf16 (timing)"), Precision(True, "bf16, real side (timing)", real_only=True))


def measured_ratios(device: torch.device, probe: Probe, cache_dir: Path | None, what: str) -> dict[str, float]:
    """Seconds per iteration of `what` on this machine in each of CANDIDATES' precisions over fp32's
    (by name): the best of two alternated timings of each, measured once; kept in the process and,
    given `cache_dir`, in cache_dir/precision-<machine>-<what>.json (a damaged entry, or one
    written before a candidate existed, is measured again, never trusted)."""
    name = f"precision-{_machine_key(device)}-{hashlib.sha256(what.encode()).hexdigest()[:8]}.json"
    path = None if cache_dir is None else Path(cache_dir) / name
    if path is not None and path.exists():
        try:
            ratios = {k: float(v) for k, v in json.loads(path.read_text())["over_fp32"].items()}
            if set(ratios) == {c.name for c in CANDIDATES} and all(r > 0 for r in ratios.values()):
                return ratios
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    if name not in _RATIOS:
        fp32 = Precision(False, "fp32 (timing)")
        rounds = [[probe(p) for p in (fp32, *CANDIDATES)] for _ in range(2)]
        best = [min(column) for column in zip(*rounds)]
        _RATIOS[name] = {c.name: t / best[0] for c, t in zip(CANDIDATES, best[1:])}
    if path is not None:
        from .runstore import write_json

        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"over_fp32": _RATIOS[name], "what": what, "capability": cpu_capability(),
                          "torch": torch.__version__})
    return _RATIOS[name]


# On 2-core CPUs torch.compile took 26-38 s (an empty inductor cache; 4-5 s with a warm one) and then
# saved 10-25% of every DM iteration: ~25 ms at the quick sizes, ~0.5 s at the paper's (bench/RESULTS.md
# 8.8, 15.2). From this many iterations on it repays itself at either size.
COMPILE_MIN_ITERATIONS = 2000
_COMPILE_WORKS: list[str | None] = []  # this process's answer of `compile_works`, once asked


def compile_works() -> str | None:
    """None if torch.compile can build a conv / instance-norm / ReLU block's forward and backward on
    this CPU, else why not (one line). Asked once per process (~10 s: inductor's import and a C++
    build): a compiler can be found and still fail (missing Python headers, a broken toolchain)."""
    if not _COMPILE_WORKS:
        block = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.GroupNorm(4, 4), torch.nn.ReLU())
        x = torch.randn(2, 3, 8, 8, requires_grad=True)
        try:
            torch.compile(block)(x).sum().backward()
            _COMPILE_WORKS.append(None)
        except Exception as exc:  # inductor fails in many ways; each means: run eager
            first = (str(exc).strip().splitlines() or [""])[0]
            _COMPILE_WORKS.append(f"{type(exc).__name__}: {first}")
    return _COMPILE_WORKS[0]


def resolve_compile(setting: str, device: torch.device, method: str, iterations: int,
                    works: Callable[[], str | None] = compile_works) -> Compilation:
    """Turn a validated `--compile auto|true|false` into a decision. auto compiles on a CPU when the
    run has at least COMPILE_MIN_ITERATIONS iterations, a C++ compiler is found and `works()` finds
    that compiling succeeds; a GPU stays eager (not yet measured there: `--compile true` tries it)."""
    from .methods import get_method_spec

    if not get_method_spec(method).autocast:
        return Compilation(False, f"{method} runs eager")
    if setting != "auto":
        return Compilation(setting == "true", f"--compile {setting}")
    if device.type != "cpu":
        return Compilation(False, f"eager on {device.type} (compiling is unmeasured there; --compile true tries it)")
    if iterations < COMPILE_MIN_ITERATIONS:
        return Compilation(False, f"eager: {iterations} iterations do not repay compiling (from {COMPILE_MIN_ITERATIONS})")
    if cxx_compiler() is None:
        return Compilation(False, "eager: no C++ compiler found (g++, clang++, c++ or $CXX) for torch.compile")
    failure = works()
    if failure is not None:
        return Compilation(False, f"eager: torch.compile fails on this machine ({failure})")
    return Compilation(True, f"compiled: {iterations} iterations repay compiling on a CPU (from {COMPILE_MIN_ITERATIONS})")
