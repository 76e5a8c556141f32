"""Full MNIST (60,000 training images) across conflict ratios: vanilla vs reweighted DM vs the
full-data baseline (and the bias-label oracle), with the conflicting weight share, the group
balance and seconds per stage; one markdown table.

    python bench/fullscale.py --root ../shared/data [--ratios 0.005,0.01,0.02,0.05] [--ipcs 10,50]
                              [--preset full] [--variants reweighted] [--oracle] [--no-baseline]
                              [--evaluate-on validation] [--name value ...]

Runs go to bench/runs/pairs/ (bench/pair.py's) and are ordinary run folders (their surrogates shared
through its cache).
"""
from __future__ import annotations

import argparse

from pair import HEADER, machine_line, run_set, table_row  # bench/pair.py, beside this script

from ddcore import hardware
from ddcore.cli import parse_overrides
from ddcore.config import preset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="the folder holding MNIST/raw")
    ap.add_argument("--ratios", default="0.005,0.01,0.02,0.05")
    ap.add_argument("--ipcs", default="10")
    ap.add_argument("--preset", default="full", help="full (quick with smoothed weights) or quick, paper")
    ap.add_argument("--variants", default="vanilla,reweighted", help="comma-separated: vanilla, reweighted")
    ap.add_argument("--oracle", action="store_true", help="also reweight by the bias labels")
    ap.add_argument("--no-baseline", action="store_true", help="skip the full-data baseline")
    args, rest = ap.parse_known_args()
    overrides = parse_overrides(rest)
    hardware.configure_process()
    rows = []
    for ratio in map(float, args.ratios.split(",")):
        for i, ipc in enumerate(map(int, args.ipcs.split(","))):
            base = preset(args.preset).with_overrides(source="files", root=args.root, conflict_ratio=ratio, ipc=ipc,
                                                      **overrides)
            labels = [v.strip() for v in args.variants.split(",") if v.strip()] + ["oracle"] * args.oracle
            labels += ["full data"] * (i == 0 and not args.no_baseline)  # the baseline does not depend on IPC
            for label, m, wall, _ in run_set(base, f"{args.preset}-r{ratio:g}-ipc{ipc}", labels):
                rows.append((ratio, ipc, label, m, wall))
    print(f"\n{machine_line([(r[2], r[3], r[4], None) for r in rows])} | full MNIST | preset {args.preset} | "
          f"overrides {overrides or '-'}\n")
    print("| ratio | IPC " + HEADER.replace("\n|", "\n|---|---|", 1))
    for ratio, ipc, label, m, wall in rows:
        print(f"| {ratio:g} | {ipc if label != 'full data' else ''} " + table_row(label, m, wall))


if __name__ == "__main__":
    main()
