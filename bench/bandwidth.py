"""How the surrogate and the KDE bandwidth decide the weights: for each dataset, conflict ratio
and surrogate setting, train the surrogate as a run would (the pipeline's own data, normalisation,
spec and generators), then for sigma = scale * (median within-class distance) report the share of
weight on bias-conflicting samples and how evenly the weight is spread over the (class, bias value)
groups (1.0 = every group present in a class gets the same total weight, as the oracle gives).
Reads the training split only (its bias labels, which the method never sees), never the test split.

    python bench/bandwidth.py                                         # bundled cmnist, quick surrogate
    python bench/bandwidth.py --datasets cmnist,bg-cmnist --steps 30,60,120 --ratios 0.02,0.05
    python bench/bandwidth.py --source files --root ../shared/data --preset paper
    python bench/bandwidth.py --datasets cmnist,bg-cmnist --ratios 0.01,0.05 --scales 0.7,1 --taus 0.75,1 --ess

--smooth spreads the weights over the kernel as `--kde-smooth true` does (density.smooth_weights).
--ess adds a third figure to each cell: how evenly the bias-aligned samples share their weight,
their effective sample size (sum w)^2 / sum w^2 over their count (1.0: equal weights; 0.1: as if
a tenth of them held it all), averaged over the classes.
"""
from __future__ import annotations

import argparse
import time

import torch

from ddcore import density, hardware
from ddcore.config import preset
from ddcore.pipeline import (
    load_splits,
    resolve_device,
    surrogate_generators,
    surrogate_spec,
)
from ddcore.surrogate import train_surrogate


def aligned_ess(weights: torch.Tensor, labels: torch.Tensor, conflicting: torch.Tensor) -> float:
    """Mean over classes of the aligned samples' effective sample size as a fraction of their count."""
    fractions = []
    for c in labels.unique():
        w = weights[(labels == c) & ~conflicting].double()
        fractions.append(float(w.sum() ** 2 / (w ** 2).sum()) / len(w))
    return sum(fractions) / len(fractions)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--datasets", default="cmnist")
    ap.add_argument("--source", default="bundled")
    ap.add_argument("--root", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ratios", default="0.005,0.01,0.02,0.05")
    ap.add_argument("--objectives", default="supcon")
    ap.add_argument("--steps", default="preset", help="surrogate step budgets, comma-separated ('none': no cap)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--scales", default="0.25,0.5,1,2",
                    help="bandwidths, as multiples of the median within-class distance (kde_scale)")
    ap.add_argument("--taus", default="preset", help="KDE temperatures, comma-separated")
    ap.add_argument("--smooth", action="store_true", help="smooth the weights as --kde-smooth true does")
    ap.add_argument("--ess", action="store_true", help="also the aligned samples' effective sample size fraction")
    args = ap.parse_args()
    scales = tuple(map(float, args.scales.split(",")))
    threads = hardware.configure_process()
    device = resolve_device(args.device)
    print(f"{time.strftime('%Y-%m-%d')} | preset {args.preset} | source {args.source} | device {device} | "
          f"{'smoothed weights | ' if args.smooth else ''}"
          f"{threads} threads | CPU capability {hardware.cpu_capability()}\n")
    print("| dataset | ratio | surrogate | steps | seed | tau | median distance | "
          + " | ".join(f"scale {s}: share / balance" + (" / aligned ESS" if args.ess else "") for s in scales) + " |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(scales))
    for dataset in args.datasets.split(","):
        for ratio in map(float, args.ratios.split(",")):
            for seed in map(int, args.seeds.split(",")):
                base = preset(args.preset).with_overrides(dataset=dataset, conflict_ratio=ratio, source=args.source,
                                                          root=args.root, seed=seed)
                train, _, _ = load_splits(base, device)
                for objective in args.objectives.split(","):
                    for steps in args.steps.split(","):
                        cfg = base.with_overrides(surrogate=objective)
                        if steps != "preset":
                            cfg = cfg.with_overrides(surrogate_steps=None if steps == "none" else int(steps))
                        model = train_surrogate(train.images, train.labels, train.num_classes, surrogate_spec(cfg),
                                                *surrogate_generators(cfg, device))
                        z = model.embed(train.images)
                        sigma = density.auto_bandwidth(z, train.labels, torch.Generator().manual_seed(seed))
                        for tau in args.taus.split(","):
                            tau = cfg.reweight.kde_tau if tau == "preset" else float(tau)
                            cells = []
                            for scale in scales:
                                log_density = density.kde_log_density(z, train.labels, scale * sigma)
                                w = density.density_weights(log_density, train.labels, tau)
                                if args.smooth:
                                    w = density.smooth_weights(w, z, train.labels, scale * sigma)
                                share, _ = density.conflict_shares(w, train.conflicting)
                                balance = density.group_balance(w, train.labels, train.bias)
                                ess = f" / {aligned_ess(w, train.labels, train.conflicting):.2f}" if args.ess else ""
                                cells.append(f"{100 * share:.0f}% / {balance:.2f}{ess}")
                            print(f"| {dataset} | {ratio:g} | {objective} | {cfg.reweight.surrogate_steps} | {seed} | "
                                  f"{tau:g} | {sigma:.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
