"""The example runs shipped in `examples/`: what every page shows before the user has run anything.

A read-only runs root in the repository, made by `scripts/make_examples.py` with the project's own
pipeline (`make`): a vanilla and a KDE-reweighted DM run on the bundled Coloured MNIST sample (the
`quick` preset, 5% bias-conflicting, seed 0) and their full-data baseline. The app lists them after
the user's own runs, under names that no run folder can have ("example:NAME"), so they are labelled
as examples everywhere and never deleted, re-run or overwritten. They are shipped rather than
computed on first start because a pair takes minutes on 2 CPU cores and the story page must be
drawn in seconds; the oracle and the random subset, which Compare offers to queue, are left out
to keep the repository light (each distill run is ~2 MB, mostly its synthetic tensors and map).
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ddcore import runstore
from ddcore.config import RunConfig, preset
from ddcore.runstore import RunInfo

if TYPE_CHECKING:
    from ddcore.pipeline import Listener

ROOT = Path(__file__).resolve().parents[1] / "examples"
PREFIX = "example:"  # ':' is not allowed in run names, so an example never shares a user's run name
MAP_POINTS = 1000  # a quarter of the bundled training split: keeps each shipped map under 1 MB


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

    root = runstore.init_root(root)
    with tempfile.TemporaryDirectory(prefix="ddbias-examples-") as tmp:
        made = []
        for name, cfg in configs().items():
            print(f"example {name}", flush=True)
            run_dir = runstore.create_run(Path(tmp) / name, cfg)
            execute_run(run_dir, listener)
            made.append(run_dir)
        for run_dir in made:
            target = root / run_dir.name
            if target.exists():
                runstore.delete_run(target)
            target.mkdir()
            for f in sorted(run_dir.iterdir()):
                if not f.name.startswith("."):
                    shutil.copy2(f, target / f.name)
    return [root / p.name for p in made]
