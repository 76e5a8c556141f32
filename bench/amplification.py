"""Bias amplification per dataset: the full-data baseline (a ConvNet trained on the whole biased
training set) vs vanilla DM vs reweighted DM, at 5% bias-conflicting and IPC 10 by default.
Prints one Markdown table; datasets whose files are not here are listed with the reason and the
command to run where they are.

    python bench/amplification.py                                   # every dataset; the bundled sample where there is one
    python bench/amplification.py --datasets bg-cmnist              # one dataset
    python bench/amplification.py --datasets cmnist bg-cmnist bg-fmnist cifar10c-0 cifar10c-1 \\
        --root DIR --severity 5                                     # DIR holding MNIST/, FashionMNIST/, cifar-10-batches-py/
    python bench/amplification.py --datasets bffhq --root DIR --conflict-ratio none
    python bench/amplification.py --preset paper --ipc 50 --device cuda --root DIR   # the GPU protocol

Bias gap = aligned minus conflicting test accuracy. Distillation *amplifies* the bias when
vanilla DM's gap is wider than the full-data model's, and *suppresses* it when narrower. Where the
test split has no aligned samples (BFFHQ's), the conflicting accuracies are compared instead.
Runs go to bench/runs/pairs/ like bench/pair.py's (and are made by its run_pair).
"""
from __future__ import annotations

import argparse
import platform
import shlex
import time
from typing import Any

import torch
from pair import run_pair  # bench/pair.py, beside this script

from ddcore.cli import _converter
from ddcore.config import DATASETS, RunConfig, preset
from ddcore.data import DATASET_SPECS
from ddcore.errors import DDError
from ddcore.pipeline import preflight
from ddcore.records import Metrics


def config(args: argparse.Namespace, dataset: str) -> RunConfig:
    spec = DATASET_SPECS[dataset]
    files = args.root is not None or not spec.bundled
    overrides: dict[str, Any] = dict(dataset=dataset, source="files" if files else "bundled", root=args.root if files else None,
                                     conflict_ratio=args.conflict_ratio, ipc=args.ipc, device=args.device, seed=args.seed)
    if args.severity is not None:
        overrides["severity"] = args.severity
    if spec.path_option == "--csv-path":
        overrides.update(root=None, csv_path=args.csv_path)
    return preset(args.preset, "dm").with_overrides(**overrides)


def acc(m: Metrics, key: str) -> float | None:
    return getattr(m, f"test_acc_{key}")


def cell(m: Metrics) -> str:
    """'unbiased ± std (gap g)' for one run."""
    u, a, c = acc(m, "unbiased"), acc(m, "aligned"), acc(m, "conflicting")
    gap = f"gap {a - c:.1f}" if a is not None and c is not None else f"conflicting {c:.1f}"
    return f"{u:.1f} ± {m.test_acc_unbiased_std:.1f} ({gap})"


def verdict(full: Metrics, vanilla: Metrics) -> str:
    if acc(full, "aligned") is not None and acc(vanilla, "aligned") is not None:
        change = (acc(vanilla, "aligned") - acc(vanilla, "conflicting")) - (acc(full, "aligned") - acc(full, "conflicting"))
        return f"{'amplifies' if change > 0 else 'suppresses'} (gap {change:+.1f})"
    change = acc(vanilla, "conflicting") - acc(full, "conflicting")
    return f"{'amplifies' if change < 0 else 'suppresses'} (conflicting {change:+.1f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=[d for d in DATASETS if d != "csv"], choices=DATASETS)
    p.add_argument("--preset", default="quick")
    p.add_argument("--root", default=None, help="folder holding the datasets' files (default: bundled samples only)")
    p.add_argument("--csv-path", default=None, help="the CSV for --datasets csv")
    p.add_argument("--conflict-ratio", type=_converter("conflict_ratio"), default=0.05)
    p.add_argument("--severity", type=int, default=None, help="colour jitter / CIFAR-10-C level (default: the preset's)")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    done, skipped = [], []
    for dataset in args.datasets:
        cfg = config(args, dataset)
        try:
            preflight(cfg)
        except DDError as exc:
            skipped.append((dataset, str(exc)))
            continue
        t0 = time.time()
        rows = {label: m for label, m, _, _ in run_pair(cfg, f"{args.preset}-amp-{dataset}", baseline=True)}
        done.append((dataset, cfg, rows, time.time() - t0))

    device = done[0][2]["vanilla"].device if done else "-"
    print(f"\n{time.strftime('%Y-%m-%d')} | preset {args.preset} | IPC {args.ipc} | conflict ratio "
          f"{args.conflict_ratio} | device {device} | torch {torch.__version__} | "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads\n")
    print("| dataset | data | full-data baseline | vanilla DM | reweighted DM | DD vs full data | wall s |")
    print("|---|---|---|---|---|---|---|")
    for dataset, cfg, rows, wall in done:
        data = "bundled sample" if cfg.data.source == "bundled" else f"files ({cfg.data.root or cfg.data.csv_path})"
        print(f"| {dataset} | {data}, {rows['vanilla'].num_train:,} train | {cell(rows['full data'])} | "
              f"{cell(rows['vanilla'])} | {cell(rows['reweighted'])} | {verdict(rows['full data'], rows['vanilla'])} | "
              f"{wall:.0f} |")
    if done:
        print("\nUnbiased test accuracy in percent, mean ± std over the evaluation models; gap = aligned minus "
              "conflicting accuracy.")
    for dataset, reason in skipped:
        command = ["python", "bench/amplification.py", "--datasets", dataset, "--preset", args.preset]
        command += ["--csv-path", "FILE"] if dataset == "csv" else ["--root", "DIR"]
        if dataset.startswith("cifar10c"):
            command += ["--severity", "5"]
        if DATASET_SPECS[dataset].bias_from_files:
            command += ["--conflict-ratio", "none"]
        print(f"\n- **{dataset}: not run here.** {reason}\n  Where the data exists: `{shlex.join(command)}`")


if __name__ == "__main__":
    main()
