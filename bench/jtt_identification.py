"""How long JTT's identification model should train: its error set after T epochs.

On the real training set (the full-data baseline's and the surrogate's recipes) it prints, for a
few T, how many samples the identification model gets wrong, how many of the bias-conflicting
samples are among them (recall) and what share of the error set they are (precision). With
--run, the same for a finished run's synthetic set (which has no bias labels: sizes only), at T
in steps of one epoch. These numbers chose `jtt_id_steps` (ddcore/debias.py).

    python bench/jtt_identification.py                          # quick preset, bundled data, 5%
    python bench/jtt_identification.py --run runs/<a vanilla DM run> --steps 8 12 15 20 30
"""
from __future__ import annotations

import argparse
import time

import torch

from ddcore import debias, evaluate, hardware, runstore, surrogate
from ddcore.cli import parse_overrides
from ddcore.config import preset
from ddcore.data import Normalization, load_biased
from ddcore.records import SyntheticImages


def line(what: str, wrong: torch.Tensor, conflicting: torch.Tensor | None = None) -> str:
    text = f"| {what} | {int(wrong.sum())} of {len(wrong)} |"
    if conflicting is None:
        return text + " – | – |"
    hit = int((wrong & conflicting).sum())
    return text + f" {hit} of {int(conflicting.sum())} | {100 * hit / max(1, int(wrong.sum())):.0f}% |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick")
    p.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 3], help="T on the real training set")
    p.add_argument("--run", help="also a finished run's synthetic set")
    p.add_argument("--steps", type=int, nargs="+", default=[8, 12, 15, 20, 30], help="T on the synthetic set")
    args, rest = p.parse_known_args()
    hardware.configure_process()
    cfg = preset(args.preset).with_overrides(**parse_overrides(rest))
    raw = load_biased(cfg.data, train=True, seed=cfg.seed)
    train = raw.normalized(Normalization.of(raw.images))  # the space every stage trains in (ddcore.pipeline)
    x, y, conflicting = train.images, train.labels, train.conflicting
    r = cfg.reweight
    spec = surrogate.SurrogateSpec("ce", r.surrogate_epochs, r.surrogate_lr, r.surrogate_batch, r.surrogate_width,
                                   cfg.net.net_depth, cfg.net.net_norm, r.supcon_temperature)
    rows = ["| identification model | misclassified | conflicting among them | precision |", "|---|---|---|---|"]
    for t in args.epochs:
        net = evaluate.fit(x, y, train.num_classes, cfg, cfg.eval.baseline_epochs, cfg.seed, stop=t)
        steps = t * -(-len(y) // cfg.eval.eval_batch)
        rows.append(line(f"baseline recipe, T = {t} of {cfg.eval.baseline_epochs} epochs ({steps} steps)",
                         debias.misclassified(net, x, y), conflicting))
    for t in (e for e in args.epochs if e <= r.surrogate_epochs):
        model = surrogate.fit(x, y, train.num_classes, spec, torch.Generator().manual_seed(cfg.seed + 11),
                              torch.Generator().manual_seed(cfg.seed + 12), stop=t)
        rows.append(line(f"cross-entropy surrogate recipe, T = {t} of {r.surrogate_epochs} epochs "
                         f"({t * max(1, len(y) // r.surrogate_batch)} steps)",
                         debias.misclassified(model.encoder, x, y), conflicting))
    if args.run:
        run_cfg = runstore.read_config(args.run)
        syn = SyntheticImages.load(args.run)
        images, labels = syn.images, syn.labels  # as stored and evaluated: in the run's normalised space
        per_epoch = -(-len(labels) // run_cfg.eval.eval_batch)
        for s in args.steps:
            t = -(-s // per_epoch)
            net = evaluate.fit(images, labels, train.num_classes, run_cfg, run_cfg.eval.eval_epochs,
                               run_cfg.seed + 1000, stop=t)  # the seed of the run's first evaluation model
            rows.append(line(f"{args.run}'s synthetic set, T = {t} of {run_cfg.eval.eval_epochs} epochs "
                             f"({t * per_epoch} steps)", debias.misclassified(net, images, labels)))
    print(f"\n{time.strftime('%Y-%m-%d')} | preset {args.preset} | CPU capability {hardware.cpu_capability()}, "
          f"{torch.get_num_threads()} threads\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
