"""Wall time from the app's "Run vanilla + reweighted" click to both results on disk: the same
calls the Distill page makes (two `jobs.submit`, the background worker), timed until both runs
are done. The worker is started first and warmed, as the app does when the page opens.

    python bench/pair_via_worker.py [--preset quick]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ddcore import jobs, runstore
from ddcore.config import preset
from ddcore.records import Metrics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="quick")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jobs.ensure_worker(root)
        while jobs.worker_pid(root) is None:
            time.sleep(0.2)
        time.sleep(20)  # the worker's warm-up (imports, UMAP JIT) happens while the user fills the form
        cfg = preset(args.preset)
        start = time.time()
        runs = [jobs.submit(root, cfg.with_overrides(reweight=r)) for r in ("none", "kde")]
        while not all(runstore.read_status(r).final for r in runs):
            time.sleep(0.5)
        wall = time.time() - start
        jobs.stop_worker(root)
        print(f"{time.strftime('%Y-%m-%d')} | preset {args.preset} | click to both done: {wall:.0f} s")
        for r in runs:
            s, m = runstore.read_status(r), Metrics.load(r)
            print(f"  {runstore.read_config(r).reweight.reweight}: {s.state}, "
                  f"unbiased {m.test_acc_unbiased if m else None}")


if __name__ == "__main__":
    main()
