"""Regenerate the example runs the app shows on first start (examples/, see ddapp/examples.py).

    .venv/bin/python scripts/make_examples.py

Runs each example from scratch with the current code (about 5 minutes on 2 CPU cores) and
replaces the folders in examples/ (and the README's picture of the pair). Run it after any change to the pipeline, the presets or the
run record: tests/test_examples.py fails until the shipped examples match the current code.
"""
from __future__ import annotations

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
    start = time.time()
    for run_dir in examples.make():
        size = sum(f.stat().st_size for f in run_dir.iterdir()) / 2**20
        print(f"{run_dir.name}: {size:.2f} MiB")
    pair_picture(examples.ROOT / "dm-vanilla" / "synthetic.png",
                 examples.ROOT / "dm-reweighted" / "synthetic.png").save(ASSET)
    print(f"{time.strftime('%Y-%m-%d')} · {time.time() - start:.0f} s · {torch.get_num_threads()} threads · "
          f"CPU capability {hardware.cpu_capability()}")


if __name__ == "__main__":
    main()
