"""Regenerate the example runs the app shows on first start (examples/, see ddapp/examples.py).

    .venv/bin/python scripts/make_examples.py

Runs each example from scratch with the current code (about 5 minutes on 2 CPU cores) and
replaces the folders in examples/. Run it after any change to the pipeline, the presets or the
run record: tests/test_examples.py fails until the shipped examples match the current code.
"""
from __future__ import annotations

import time

import torch

from ddapp import examples
from ddcore import hardware


def main() -> None:
    start = time.time()
    for run_dir in examples.make():
        size = sum(f.stat().st_size for f in run_dir.iterdir()) / 2**20
        print(f"{run_dir.name}: {size:.2f} MiB")
    print(f"{time.strftime('%Y-%m-%d')} · {time.time() - start:.0f} s · {torch.get_num_threads()} threads · "
          f"CPU capability {hardware.cpu_capability()}")


if __name__ == "__main__":
    main()
