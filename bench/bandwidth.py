"""How the KDE bandwidth decides the weights: for each conflict ratio and surrogate objective,
train the surrogate once, then for sigma = scale * (median within-class distance) report the share
of weight on bias-conflicting samples and how evenly the weight is spread over the (class, colour)
groups (1.0 = every group present in a class gets the same total weight).

    python bench/bandwidth.py                                   # bundled data, quick surrogate
    python bench/bandwidth.py --source files --root ../shared/data --preset paper
"""
from __future__ import annotations

import argparse
import time

import torch

from ddcore import density
from ddcore.config import preset
from ddcore.data import load_biased
from ddcore.pipeline import resolve_device
from ddcore.surrogate import SurrogateSpec, train_surrogate

SCALES = (0.1, 0.25, 0.5, 1.0, 2.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--source", default="bundled")
    ap.add_argument("--root", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ratios", default="0.005,0.01,0.02,0.05")
    ap.add_argument("--objectives", default="supcon,ce,untrained")
    args = ap.parse_args()
    device = resolve_device(args.device)
    print(f"{time.strftime('%Y-%m-%d')} | preset {args.preset} | source {args.source} | device {device}\n")
    print("| ratio | surrogate | median dist | " + " | ".join(f"scale {s}: share / balance" for s in SCALES) + " |")
    print("|---|---|---|" + "---|" * len(SCALES))
    for ratio in map(float, args.ratios.split(",")):
        cfg = preset(args.preset).with_overrides(conflict_ratio=ratio, source=args.source, root=args.root)
        train = load_biased(cfg.data, train=True, seed=0).to(device)
        for objective in args.objectives.split(","):
            r = cfg.reweight
            spec = SurrogateSpec(objective, r.surrogate_epochs, r.surrogate_lr, r.surrogate_batch, r.surrogate_width,
                                 cfg.net.net_depth, cfg.net.net_norm, r.supcon_temperature)
            model = train_surrogate(train.images, train.labels, 10, spec,
                                    torch.Generator(device=device).manual_seed(11), torch.Generator().manual_seed(12))
            z = model.embed(train.images)
            median = density.auto_bandwidth(z, train.labels, torch.Generator().manual_seed(0)) / density.BANDWIDTH_SCALE
            cells = []
            for scale in SCALES:
                w = density.density_weights(density.kde_log_density(z, train.labels, scale * median), train.labels, 1.0)
                share, _ = density.conflict_shares(w, train.conflicting)
                cells.append(f"{100 * share:.0f}% / {density.group_balance(w, train.labels, train.bias):.2f}")
            print(f"| {ratio:g} | {objective} | {median:.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
