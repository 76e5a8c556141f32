"""Per-cell overhead of the Ray backend over the local one: the same sweep through both, timed.

    python bench/sweep_overhead.py [--spec smoke] [--cpus 2]

Each backend runs the spec into a fresh runs folder. The local backend queues the cells for the
background worker (a fresh one, so its start-up counts, as it would for a user); the Ray backend
starts a local Ray instance with --cpus CPUs and gives each cell all of them, so both run one
cell at a time with the same thread count. Start-up: from submitting to the first cell starting
(a fresh worker's imports and warm-up; Ray's worker processes). Overhead per cell: the time from
the first cell's start to the last one's end that the cells' own seconds_total does not account
for, per cell (handing a cell over, and for Ray sending its files back). Prints the figures only.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ddcore import jobs
from ddcore.sweeps import store
from ddcore.sweeps.backends import LocalBackend, RayBackend, run_sweep
from ddcore.sweeps.spec import expand, load_spec


def finished(root: Path, name: str, total: int) -> bool:
    cells = store.sweep_cells(root, name)
    return len(cells) == total and all(c.status.final for c in cells)


def measure(label: str, root: Path, spec, backend) -> dict[str, float]:
    total = len(expand(spec))
    start = time.time()
    run_sweep(root, spec, backend)
    while not finished(root, spec.name, total):  # the local backend returns once the cells are queued
        time.sleep(0.2)
    wall = time.time() - start
    cells = store.sweep_cells(root, spec.name)
    own = [m.seconds for c in cells if (m := store.cell_metrics(c.path)) is not None and m.seconds is not None]
    first = min(c.status.started for c in cells if c.status.started)
    last = max(c.status.finished for c in cells if c.status.finished)
    per_cell = (last - first - sum(own)) / total  # between one cell's end and the next one's start
    print(f"{label:>6}: {total} cells ({', '.join(sorted({c.state for c in cells}))}) in {wall:.1f} s: "
          f"start-up {first - start:.1f} s until the first cell started, cells' own time {sum(own):.1f} s "
          f"(median {statistics.median(own):.1f} s), overhead {per_cell:.2f} s per cell")
    return {"wall": wall, "startup": first - start, "per_cell": per_cell}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="smoke", help="a spec file or shipped spec name (default: smoke)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance, all given to each cell")
    args = parser.parse_args()
    spec = load_spec(args.spec)
    print(f"spec {spec.name}: {len(expand(spec))} cells, preset {spec.preset}; torch {torch.__version__}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    with tempfile.TemporaryDirectory() as tmp:
        local_root, ray_root = Path(tmp) / "local", Path(tmp) / "ray"
        try:
            local = measure("local", local_root, spec, LocalBackend())
        finally:
            jobs.stop_worker(local_root)
        import ray

        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        print(f"   ray: local instance started in {time.perf_counter() - start:.1f} s (not counted below)")
        try:
            remote = measure("ray", ray_root, spec, RayBackend(cpus_per_cell=args.cpus))
        finally:
            ray.shutdown()
    print(f"Ray over local: {remote['per_cell'] - local['per_cell']:+.2f} s per cell, "
          f"{remote['startup'] - local['startup']:+.1f} s of start-up (plus Ray's own start above)")


if __name__ == "__main__":
    main()
