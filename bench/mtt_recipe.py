"""MTT has no published MNIST recipe: this sweep is how ours was chosen. Each row is one reweighted
MTT run on the `quick` preset (bundled data unless overridden) with one setting changed; experts
are cached in bench/runs/mtt-recipe/.cache, so rows that share them train them once.

    python bench/mtt_recipe.py                       # CPU, bundled data
    python bench/mtt_recipe.py --ipc 50 --device cuda --preset paper
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ddcore import runstore
from ddcore.cli import parse_overrides
from ddcore.config import preset
from ddcore.pipeline import execute_run, preflight

# the largest max_start_epoch first: shorter runs reuse the prefix of its cached trajectories
SETTINGS: list[dict[str, object]] = [
    {"max_start_epoch": 8},
    {},
    {"max_start_epoch": 2},
    {"lr_img": 10.0},
    {"lr_img": 1000.0},
    {"syn_steps": 24},
    {"reweight": "none"},
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="quick")
    args, rest = p.parse_known_args()
    common = parse_overrides(rest)
    base = preset(args.preset, "mtt").with_overrides(reweight="kde", eval_models=2, **common)
    out = Path(__file__).parent / "runs" / "mtt-recipe"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    d = base.distill
    print(f"{time.strftime('%Y-%m-%d')} | preset {args.preset} | base: ipc {d.ipc}, lr_img {d.lr_img}, "
          f"syn_steps {d.syn_steps}, max_start {d.max_start_epoch}, experts {d.num_experts}, "
          f"iterations {d.iterations} | overrides {common or '-'}\n")
    print("| change | unbiased | conflicting | learned lr | final loss | experts s | distill s | device |")
    print("|---|---|---|---|---|---|---|---|")
    for i, change in enumerate(SETTINGS):
        cfg = base.with_overrides(**change)
        run_dir = runstore.create_run(out / f"{stamp}-mtt-recipe-{i}", preflight(cfg))
        m = execute_run(run_dir)
        s = m.seconds_per_stage
        print(f"| {change or 'base'} | {m.test_acc_unbiased:.1f} ± {m.test_acc_unbiased_std:.1f} | "
              f"{m.test_acc_conflicting:.1f} | {m.extra['learned_lr']:.4f} | {m.final_loss:.3f} | "
              f"{s.get('experts', 0):.0f} | {s['distill']:.0f} | {m.device} |", flush=True)


if __name__ == "__main__":
    main()
