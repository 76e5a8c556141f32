"""`python -m ddcore sweep {run,status,table,cancel}` (wired into ddcore.cli)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import results, store
from .backends import BACKENDS, RayBackend, make_backend, run_sweep
from .spec import load_spec, shipped_specs


def add_parser(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    sweep = sub.add_parser("sweep", help="run a grid of runs from a TOML spec; its status, table, cancel",
                           description="Sweeps: a grid of runs from a TOML spec (see sweeps/*.toml)")
    commands = sweep.add_subparsers(dest="sweep_command", required=True, parser_class=parser_class)
    shipped = ", ".join(p.stem for p in shipped_specs())
    p = commands.add_parser("run", help="queue (local) or run (ray) every cell not done yet")
    p.add_argument("spec", help=f"a spec file, or a shipped spec's name ({shipped})")
    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local: the background worker, one cell at a time (returns at once); "
                        "ray: one Ray task per cell (waits until every cell has ended)")
    p.add_argument("--ray-address", default=None,
                   help="a Ray cluster to join (default: $RAY_ADDRESS, else a new local instance)")
    p.add_argument("--cpus-per-cell", type=int, default=None, help="ray: CPUs per cell and torch threads (default 1)")
    p.add_argument("--gpus-per-cell", type=float, default=None,
                   help="ray: GPUs per cell (default: 1 when the cluster has GPUs, else 0)")
    for name, what in (("status", "each cell's state and headline accuracy"),
                       ("table", "results: mean ± std over seeds (markdown), or --long / --csv"),
                       ("cancel", "stop the sweep's queued and running cells")):
        p = commands.add_parser(name, help=what, description=what)
        p.add_argument("name", help="the sweep's name (its spec's `name`)")
        if name == "table":
            p.add_argument("--csv", action="store_true", help="CSV instead of markdown")
            p.add_argument("--long", action="store_true", help="one row per cell instead of the aggregate")
    for p in commands.choices.values():
        p.add_argument("--runs", default="runs", help="the runs folder (default: runs)")


def format_status(root: Path, name: str) -> str:
    cells = store.require_cells(root, name)
    counts = store.state_counts(cells)
    head = f"sweep {name} in {root}: {len(cells)} cells: " + ", ".join(f"{n} {s}" for s, n in counts.items())
    rows = [("STATE", "SEED", "AXES", "UNBIASED", "CELL")]
    for cell in cells:
        m = store.cell_metrics(cell.path) if cell.state == "done" else None
        acc = "" if m is None or m.unbiased is None else f"{m.unbiased:.1f}"
        axes = " ".join(f"{k}={results.fmt(k, results.rule_text(k, v))}" for k, v in cell.tag.axes)
        note = cell.error or (cell.status.message if cell.state in ("failed", "cancelled") else cell.status.stage)
        rows.append((cell.state, str(cell.tag.seed), axes, acc, cell.name + (f"  ({note[:70]})" if note else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join([head, *("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)])


def format_table(root: Path, name: str, as_csv: bool, long: bool) -> str:
    table = results.long_table(store.require_cells(root, name))
    if long:
        return table.to_csv() if as_csv else table.to_markdown()
    agg = results.aggregate(table)
    return agg.to_csv() if as_csv else results.summary(agg).to_markdown()


def main(args: argparse.Namespace) -> int:
    root = Path(args.runs)
    if args.sweep_command == "run":
        spec = load_spec(args.spec)
        backend = make_backend(args.backend, args.ray_address, args.cpus_per_cell, args.gpus_per_cell,
                               echo=lambda line: print(line, file=sys.stderr))
        launch = run_sweep(root, spec, backend)
        print(f"sweep {spec.name}: {launch.queued} cell(s) {'run' if isinstance(backend, RayBackend) else 'queued'}, "
              f"{launch.done} already done, {launch.active} already queued or running; "
              f"follow it with: python -m ddcore sweep status {spec.name} --runs {root}")
        return 0
    if args.sweep_command == "status":
        print(format_status(root, args.name))
        return 0
    if args.sweep_command == "table":
        print(format_table(root, args.name, args.csv, args.long), end="")
        return 0
    asked = store.cancel(root, args.name)
    print(f"asked {len(asked)} cell(s) of sweep {args.name} to stop" if asked
          else f"sweep {args.name} has no queued or running cell")
    return 0

