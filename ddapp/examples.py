"""The example runs shipped in `examples/runs/`: what every page shows before the user has run anything.

A read-only runs root in the repository (marked `.ddcore-shipped`: ddcore writes nothing there),
made by `scripts/make_examples.py` with the project's own pipeline (`make`): a vanilla and a
KDE-reweighted DM run on the bundled Coloured MNIST sample (the `quick` preset, 5% bias-conflicting,
seed 0) and their full-data baseline. The app lists them after the user's own runs, under names that
no run folder can have ("example:NAME"), so they are labelled as examples everywhere and never
deleted, re-run or overwritten. They are shipped rather than computed on first start because a pair
takes minutes on 2 CPU cores and the story page must be drawn in seconds; the oracle and the random
subset, which Compare offers to queue, are left out to keep the repository light (each distill run
is ~2 MB, mostly its synthetic tensors and map).

The Sweeps page's example is the shipped `amplification` sweep, run in full by the same script
(`make_sweep`) and shipped as its long table (`examples/sweeps/amplification.csv`, one row per
cell: what the page tabulates and plots) with one line saying where and when it ran; its 24 run
folders would weigh ~30 MB.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ddcore import hardware, jobs, runstore
from ddcore.config import RunConfig, preset
from ddcore.runstore import RunInfo
from ddcore.sweeps import results, store
from ddcore.sweeps.backends import LocalBackend, run_sweep
from ddcore.sweeps.spec import load_spec

if TYPE_CHECKING:
    from ddcore.pipeline import Listener

ROOT = Path(__file__).resolve().parents[1] / "examples" / "runs"  # a runs root: nothing in it but runs
SWEEPS = ROOT.parent / "sweeps"  # the example sweep's table, beside it
PREFIX = "example:"  # ':' is not allowed in run names, so an example never shares a user's run name
MAP_POINTS = 1000  # a quarter of the bundled training split: keeps each shipped map under 1 MB


SWEEP = "amplification"  # the shipped spec (sweeps/amplification.toml) whose results ship too


@dataclass(frozen=True)
class SweepExample:
    """The shipped sweep's results: what the Sweeps page shows beside the user's own sweeps."""

    name: str  # "example:amplification"
    cells: results.Table  # its long table (ddcore.sweeps.results.long_table)
    made: str  # where, when and how long it ran, one line


def configs() -> dict[str, RunConfig]:
    """Folder name -> config of every example run, in the order they are made."""
    base = preset("quick", "dm").with_overrides(map_points=MAP_POINTS, seed=0)
    return {
        "dm-vanilla": base.with_overrides(reweight="none"),
        "dm-reweighted": base,
        "full-data": base.with_overrides(kind="baseline"),
    }


def is_example(run: RunInfo) -> bool:
    return run.name.startswith(PREFIX)


def runs(root: Path = ROOT) -> list[RunInfo]:
    """The shipped example runs, in `configs()` order, named "example:FOLDER"."""
    order = list(configs())
    found = [r for r in runstore.list_runs(root) if r.name in order]
    return [replace(r, name=PREFIX + r.name) for r in sorted(found, key=lambda r: order.index(r.name))]


def make(root: Path = ROOT, listener: Listener | None = None) -> list[Path]:
    """Run every example from scratch in a scratch runs root, then put the finished folders in
    `root` in place of the old ones (only ddcore's files are copied: no lock, claim or cache)."""
    from ddcore.pipeline import execute_run  # the whole pipeline: only the script that makes examples needs it

    root = runstore.init_root(root, shipped_ok=True)
    runstore.mark_shipped(root)
    with tempfile.TemporaryDirectory(prefix="ddbias-examples-") as tmp:
        made = []
        for name, cfg in configs().items():
            print(f"example {name}", flush=True)
            run_dir = runstore.create_run(Path(tmp) / name, cfg)
            execute_run(run_dir, listener)
            made.append(run_dir)
        for run_dir in made:
            target = root / run_dir.name
            if target.exists():  # the old example, once it holds only a run's files
                shutil.rmtree(runstore.check_run_folder(target, "replaced", shipped_ok=True))
            target.mkdir()
            for f in sorted(run_dir.iterdir()):
                if not f.name.startswith("."):
                    shutil.copy2(f, target / f.name)
    return [root / p.name for p in made]


def sweep(folder: Path = SWEEPS, name: str = SWEEP) -> SweepExample | None:
    """The shipped sweep's results; None where a checkout lacks them or they cannot be read (the
    page then shows the user's sweeps alone; tests/test_examples.py keeps the shipped ones readable)."""
    try:
        cells = results.Table.from_csv((folder / f"{name}.csv").read_text())
        made = (folder / f"{name}.txt").read_text().strip()
    except (OSError, ValueError):  # missing, not text, or not a table
        return None
    return SweepExample(PREFIX + name, cells, made)


def make_sweep(folder: Path = SWEEPS, spec_path: str | Path = SWEEP) -> Path:
    """Run every cell of a spec (the shipped one) from scratch in a scratch runs root (the worker's
    loop, in this process), then write its long table and how it was made into `folder`.
    Returns the table's path."""
    spec = load_spec(spec_path)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="ddbias-example-sweep-") as tmp:
        run_sweep(Path(tmp), spec, LocalBackend(start_worker=False))
        jobs.run_worker(Path(tmp), poll_seconds=0.1, idle_exit_seconds=0.5)
        table = results.long_table(store.sweep_cells(Path(tmp), spec.name))
    unfinished = [r["cell"] for r in table.records() if r["state"] != "done"]
    if unfinished:
        raise RuntimeError(f"cells of {spec.name} that did not finish: {', '.join(unfinished)}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{spec.name}.csv").write_text(table.to_csv())
    (out / f"{spec.name}.txt").write_text(
        f"Made by `python scripts/make_examples.py --sweep` on {time.strftime('%Y-%m-%d')}: {len(table.rows)} "
        f"cells in {(time.time() - start) / 60:.0f} minutes, one at a time, on {torch.get_num_threads()} CPU "
        f"threads (CPU capability {hardware.cpu_capability()}, torch {torch.__version__}).\n")
    return out / f"{spec.name}.csv"
