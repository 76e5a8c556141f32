"""Regenerate the examples the app shows on first start (examples/runs/, see ddapp/examples.py).

    .venv/bin/python scripts/make_examples.py            # the example runs
    .venv/bin/python scripts/make_examples.py --sweep    # the Sweeps page's example sweep

Runs each example from scratch with the current code (about 5 minutes on 2 CPU cores) and
replaces the folders in examples/runs/ (and the README's picture of the pair). Run it after any change to the pipeline, the presets or the
run record: tests/test_examples.py fails until the shipped examples match the current code.
`--sweep` runs every cell of sweeps/amplification.toml instead (about 15-25 minutes) and replaces
examples/sweeps/; its test fails when the spec's cells change.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image

from ddapp import examples
from ddcore import hardware

ASSET = Path(__file__).resolve().parent.parent / "assets" / "quick-pair-synthetic.png"  # the README's picture


def pair_picture(vanilla: Path, reweighted: Path, gap: int = 12) -> Image.Image:
    """The two synthetic-set grids side by side on white: vanilla left, reweighted right."""
    left, right = Image.open(vanilla).convert("RGB"), Image.open(reweighted).convert("RGB")
    out = Image.new("RGB", (left.width + gap + right.width, max(left.height, right.height)), "white")
    out.paste(left, (0, 0))
    out.paste(right, (left.width + gap, 0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="make the example sweep, not the example runs")
    args = parser.parse_args()
    hardware.configure_process()  # as the worker does for every run
    start = time.time()
    if args.sweep:
        print(examples.make_sweep())
        return
    for run_dir in examples.make():
        size = sum(f.stat().st_size for f in run_dir.iterdir()) / 2**20
        print(f"{run_dir.name}: {size:.2f} MiB")
    pair_picture(examples.ROOT / "dm-vanilla" / "synthetic.png",
                 examples.ROOT / "dm-reweighted" / "synthetic.png").save(ASSET)
    print(f"{time.strftime('%Y-%m-%d')} · {time.time() - start:.0f} s · {torch.get_num_threads()} threads · "
          f"CPU capability {hardware.cpu_capability()}")


if __name__ == "__main__":
    main()
