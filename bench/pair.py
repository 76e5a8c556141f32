"""Vanilla vs reweighted distillation (and, on request, the oracle, a random subset and the
full-data baseline) for one setting; prints a markdown table of accuracies, weight shares, group
balance and per-stage seconds.

    python bench/pair.py --preset quick                       # bundled data, CPU
    python bench/pair.py --preset quick --oracle --subset --baseline
    python bench/pair.py --preset paper --source files --root ../shared/data --ipc 50 --device cuda

Extra `--name value` pairs are passed to every run as config overrides (e.g. --weighting mean).
Runs go to bench/runs/pairs/ (ignored by git, like every runs folder under bench/runs/) and are
ordinary run folders.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ddcore import hardware, runstore
from ddcore.cli import parse_overrides
from ddcore.config import RunConfig, preset
from ddcore.errors import ConfigError
from ddcore.pipeline import execute_run, preflight
from ddcore.records import Metrics

Row = tuple[str, Metrics, float, Path]  # (label, metrics, wall seconds, run folder)
# A runs folder of its own: each bench script keeps one under bench/runs/ (a runs folder holds only
# what ddcore made, so two scripts cannot share bench/runs/ itself)
PAIRS = Path(__file__).parent / "runs" / "pairs"

# label -> how the run differs from the base config
VARIANTS = {"vanilla": {"reweight": "none"}, "reweighted": {"reweight": "kde"}, "oracle": {"reweight": "oracle"},
            "random subset": {"kind": "random-subset"}, "full data": {"kind": "baseline"}}


def run_set(base: RunConfig, name: str, labels: list[str]) -> list[Row]:
    """Run `base` as each variant in `labels`, one after the other in this process, each in its
    own folder bench/runs/pairs/<time>-<name>-<label>."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for label in labels:
        cfg = base.with_overrides(**VARIANTS[label])
        run_dir = runstore.create_run(PAIRS / f"{stamp}-{name}-{label.replace(' ', '-')}", preflight(cfg))
        t0 = time.time()
        metrics = execute_run(run_dir)
        rows.append((label, metrics, time.time() - t0, run_dir))
    return rows


def run_pair(base: RunConfig, name: str, baseline: bool) -> list[Row]:
    """Vanilla, then reweighted (then the full-data baseline)."""
    return run_set(base, name, ["vanilla", "reweighted"] + (["full data"] if baseline else []))


def machine_line(rows: list[Row]) -> str:
    m = rows[0][1]
    where = m.gpu or f"CPU capability {hardware.cpu_capability()}, {torch.get_num_threads()} threads"
    return f"{time.strftime('%Y-%m-%d')} | device {m.device} ({where}) | torch {torch.__version__}"


def pct(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


HEADER = ("| run | unbiased | aligned | conflicting | worst group | conflicting weight share | group balance | "
          "wall s | seconds per stage |\n|---|---|---|---|---|---|---|---|---|")


def table_row(label: str, m: Metrics, wall: float) -> str:
    stages = ", ".join(f"{k} {v:.0f}" for k, v in m.seconds_per_stage.items())
    balance = "" if m.weight_group_balance is None else f"{m.weight_group_balance:.2f}"
    return (f"| {label} | {pct(m.test_acc_unbiased, m.test_acc_unbiased_std)} | {pct(m.test_acc_aligned)} | "
            f"{pct(m.test_acc_conflicting)} | {pct(m.test_acc_worst_group)} | "
            f"{100 * m.weight_share_conflicting:.1f}% (count {100 * m.count_share_conflicting:.1f}%) | {balance} | "
            f"{wall:.0f} | {stages} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="quick")
    p.add_argument("--baseline", action="store_true", help="also train on the whole biased training set")
    p.add_argument("--oracle", action="store_true", help="also reweight by the bias labels (the upper reference)")
    p.add_argument("--subset", action="store_true", help="also IPC real images per class, no distillation")
    p.add_argument("--variants", default="vanilla,reweighted",
                   help=f"comma-separated, from {', '.join(VARIANTS)} (the flags above add theirs)")
    p.add_argument("--tag", default="")
    args, rest = p.parse_known_args()
    try:
        overrides = parse_overrides(rest)
        base = preset(args.preset, overrides.get("method", "dm")).with_overrides(**overrides)
    except ConfigError as exc:
        p.error(str(exc))
    hardware.configure_process()
    labels = [v.strip() for v in args.variants.split(",") if v.strip()]
    labels += ["oracle"] * args.oracle + ["random subset"] * args.subset + ["full data"] * args.baseline
    unknown = sorted(set(labels) - set(VARIANTS))
    if unknown or not labels:
        p.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    rows = run_set(base, f"{args.preset}{args.tag}", labels)
    print(f"\n{machine_line(rows)} | preset {args.preset} | overrides {overrides or '-'}\n")
    print(HEADER)
    for label, m, wall, _ in rows:
        print(table_row(label, m, wall))


if __name__ == "__main__":
    main()
