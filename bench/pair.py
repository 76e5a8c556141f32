"""Vanilla vs reweighted distillation (and the full-data baseline) for one setting; prints a
markdown table of accuracies, weight shares and per-stage seconds.

    python bench/pair.py --preset quick                       # bundled data, CPU
    python bench/pair.py --preset paper --source files --root ../shared/data --ipc 50 --device cuda

Extra `--name value` pairs are passed to every run as config overrides (e.g. --weighting mean).
Runs go to bench/runs/ (ignored by git) and are ordinary run folders.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from ddcore import runstore
from ddcore.cli import parse_overrides
from ddcore.config import RunConfig, preset
from ddcore.pipeline import execute_run, preflight
from ddcore.records import Metrics

Row = tuple[str, Metrics, float, Path]  # (vanilla|reweighted|full-data, metrics, wall seconds, run folder)


def run_pair(base: RunConfig, name: str, baseline: bool) -> list[Row]:
    """Run `base` vanilla, then reweighted (then the full-data baseline), one after the other in
    this process, each in its own folder bench/runs/<time>-<name>-<label>."""
    out = Path(__file__).parent / "runs"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kinds = [("vanilla", base.with_overrides(reweight="none")), ("reweighted", base.with_overrides(reweight="kde"))]
    if baseline:
        kinds.append(("full-data", base.with_overrides(kind="baseline")))
    rows = []
    for label, cfg in kinds:
        run_dir = runstore.create_run(out / f"{stamp}-{name}-{label}", preflight(cfg))
        t0 = time.time()
        metrics = execute_run(run_dir)
        rows.append((label, metrics, time.time() - t0, run_dir))
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="quick")
    p.add_argument("--baseline", action="store_true", help="also train on the whole biased training set")
    p.add_argument("--tag", default="")
    args, rest = p.parse_known_args()
    overrides = parse_overrides(rest)
    base = preset(args.preset, overrides.get("method", "dm")).with_overrides(**overrides)
    rows = run_pair(base, f"{args.preset}{args.tag}", args.baseline)
    print(f"\n{time.strftime('%Y-%m-%d')} | preset {args.preset} | overrides {overrides or '-'} | "
          f"device {rows[0][1].device} | torch {torch.__version__} | {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads\n")
    print("| run | unbiased | aligned | conflicting | conflicting weight share | wall s | seconds per stage |")
    print("|---|---|---|---|---|---|---|")
    for label, m, wall, run_dir in rows:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in m.seconds_per_stage.items())
        print(f"| {label} | {m.test_acc_unbiased:.1f} ± {m.test_acc_unbiased_std:.1f} | "
              f"{m.test_acc_aligned:.1f} | {m.test_acc_conflicting:.1f} | "
              f"{100 * m.weight_share_conflicting:.1f}% (count {100 * m.count_share_conflicting:.1f}%) | "
              f"{wall:.0f} | {stages} |")


if __name__ == "__main__":
    main()
