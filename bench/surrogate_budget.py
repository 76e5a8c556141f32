"""Why full MNIST lost the weights (issue 12): the conflicting samples' share of the KDE weight and
the group balance as the SupCon surrogate trains for more or fewer steps, over bandwidth scales
and temperatures. On the validation split's training part only (no test image is read).

    python bench/surrogate_budget.py --root ../shared/data [--ratio 0.05] [--sizes 4000,16000,all]
    python bench/surrogate_budget.py --root ../shared/data --sizes all --max-steps 60   # the fix

Each row trains the quick preset's surrogate (4 epochs, cosine schedule) on a random subsample of
that many training images ("all": every one), or on all of them for at most --max-steps steps,
then embeds every training image and reports, for sigma = scale x (median within-class distance)
and tau, "conflicting share of the weight / group balance" (1.0: every (class, bias value) group
of a class gets the same total weight, as the bias-label oracle gives).
"""
from __future__ import annotations

import argparse
import time

import torch
from dm_speed import numbers  # bench/ is the script's directory: on sys.path

from ddcore import density, hardware
from ddcore.config import preset
from ddcore.data import Normalization, load_biased
from ddcore.surrogate import SurrogateSpec, train_surrogate

CELLS = [(1.0, 1.0), (0.5, 0.5), (0.5, 1.0), (0.25, 1.0), (1.0, 0.5)]  # (scale, tau); (1, 1) the defaults


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="the folder holding MNIST/raw")
    ap.add_argument("--ratio", type=float, default=0.05)
    ap.add_argument("--sizes", type=numbers(int, allow_all=True), default="4000,16000,all")
    ap.add_argument("--max-steps", type=int, default=None)
    args = ap.parse_args()
    hardware.configure_process()
    cfg = preset("quick").with_overrides(source="files", root=args.root, conflict_ratio=args.ratio,
                                         evaluate_on="validation")
    train = load_biased(cfg.data, True, 0)
    train = train.normalized(Normalization.of(train.images))
    r = cfg.reweight
    spec = SurrogateSpec("supcon", r.surrogate_epochs, r.surrogate_lr, r.surrogate_batch, r.surrogate_width,
                         cfg.net.net_depth, cfg.net.net_norm, r.supcon_temperature, args.max_steps)
    print(f"{time.strftime('%Y-%m-%d')} | full MNIST, {args.ratio:.1%} conflicting, validation split's training "
          f"part: {len(train.labels):,} images | CPU capability {hardware.cpu_capability()}, "
          f"{torch.get_num_threads()} threads\n")
    print("| trained on | SGD steps | median distance | " + " | ".join(f"s {s:g}, t {t:g}" for s, t in CELLS) +
          " | seconds |\n|---|---|---|" + "---|" * (len(CELLS) + 1))
    for size in args.sizes:
        start = time.time()
        idx = (torch.arange(len(train.labels)) if size == "all" else
               torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(5))[:size])
        model = train_surrogate(train.images[idx], train.labels[idx], train.num_classes, spec,
                                torch.Generator().manual_seed(11), torch.Generator().manual_seed(12))
        steps = spec.epochs * max(1, len(idx) // spec.batch)
        steps = steps if args.max_steps is None else min(steps, args.max_steps)
        z = model.embed(train.images)
        median = density.auto_bandwidth(z, train.labels, torch.Generator().manual_seed(0))
        cells = []
        for scale, tau in CELLS:
            w = density.density_weights(density.kde_log_density(z, train.labels, scale * median), train.labels, tau)
            share, _ = density.conflict_shares(w, train.conflicting)
            cells.append(f"{100 * share:.0f}% / {density.group_balance(w, train.labels, train.bias):.2f}")
        print(f"| {len(idx):,} images | {steps} | {median:.3f} | " + " | ".join(cells) +
              f" | {time.time() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
