"""How far distilled pixels leave [0, 1], by method and image lr: the calibration of the saturation
warning (ddcore.pipeline.SATURATION_MARGIN / SATURATION_SHARE). Prints, per setting, the share of
pixels beyond [0, 1] by more than each margin, before the clamp that saving applies.

    python bench/saturation.py
"""
from __future__ import annotations

import time

from ddcore import density
from ddcore.config import preset
from ddcore.data import load_biased
from ddcore.methods import DistillJob, get_method

SETTINGS = [("dm", "smoke", lr, None) for lr in (1.0, 10.0, 100.0, 1e4, 1e6)] + [
    ("dm", "quick", 1.0, 100), ("dm", "quick", 10.0, 100), ("dc", "smoke", 0.1, None), ("dc", "smoke", 1e3, None),
    ("mtt", "smoke", 100.0, None), ("mtt", "smoke", 1e5, None),
]
MARGINS = (0.05, 0.1, 0.25, 0.5, 1.0)


def main() -> None:
    print(f"{time.strftime('%Y-%m-%d')} | vanilla weights, seed 0, bundled data\n")
    print("| method | preset | iterations | lr_img | " + " | ".join(f"beyond by > {m}" for m in MARGINS) + " |")
    print("|---|---|---|---|" + "---|" * len(MARGINS))
    for method, name, lr, iterations in SETTINGS:
        cfg = preset(name, method).with_overrides(lr_img=lr)
        if iterations is not None:
            cfg = cfg.with_overrides(iterations=iterations)
        train = load_biased(cfg.data, True, 0)
        syn = get_method(method)(DistillJob(train, density.uniform_weights(train.labels), cfg, 0, lambda d, t, l: None))
        outside = (syn.images - syn.images.clamp(0, 1)).abs()
        shares = " | ".join(f"{100 * float((outside > m).float().mean()):.1f}%" for m in MARGINS)
        print(f"| {method} | {name} | {cfg.distill.iterations} | {lr:g} | {shares} |", flush=True)


if __name__ == "__main__":
    main()
