"""App render times: with 20 finished runs on disk (one with a 5,000-point map), how long each
page's script takes on its first and second load (caches warm), measured in-process with AppTest.

    python bench/app_render.py [--unpaired N] [--repo DIR]

--unpaired N adds N finished runs, vanilla and reweighted, that pair with no other run (a sweep's
cells over seeds or KDE settings, say): the pages that look for pairs and references read them all.
--repo DIR times another checkout's app (run with PYTHONPATH=DIR, so that its packages load).

This is the script's own time; the browser adds its drawing on top (see bench/RESULTS.md for
figures read off Chromium).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from streamlit.testing.v1 import AppTest

from ddcore import jobs, runstore
from ddcore.config import preset
from ddcore.pipeline import execute_run
from ddcore.records import EmbeddingMap

MAP_POINTS = 5000


def enlarge_map(run_dir: Path, n: int) -> None:
    """Give a run a map of n real points by repeating its own, jittered: only the size matters."""
    emb = EmbeddingMap.load(run_dir)
    reps = np.arange(n) % len(emb.real_map)
    real = {f.name: getattr(emb, f.name)[reps] for f in fields(emb) if f.name.startswith("real_")}
    real["real_map"] = real["real_map"] + np.random.default_rng(0).normal(scale=0.3, size=(n, 2)).astype(np.float32)
    replace(emb, **real).save(run_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unpaired", type=int, default=0, help="extra finished runs that pair with none")
    ap.add_argument("--repo", type=Path, default=REPO, help="the checkout whose app.py and app_pages/ are timed")
    args = ap.parse_args()
    if args.unpaired < 0:
        ap.error(f"--unpaired must be 0 or more, got {args.unpaired}")
    if not (args.repo / "app.py").is_file() or not (args.repo / "app_pages").is_dir():
        ap.error(f"--repo {args.repo} holds no app.py and app_pages/ to time")
    args.repo = args.repo.resolve()
    jobs.ensure_worker = lambda root: None  # AppTest runs pages in-process: queue nothing here
    with tempfile.TemporaryDirectory() as tmp:
        smoke, root = Path(tmp) / "smoke", Path(tmp) / "runs"
        cfg = preset("smoke")
        for name, run_cfg in (("kde", cfg), ("none", cfg.with_overrides(reweight="none")),
                              ("baseline", cfg.with_overrides(kind="baseline"))):
            execute_run(runstore.create_run(smoke / name, run_cfg))
        for i, name in enumerate(["kde", "none"] * 9 + ["baseline"] * 2):
            shutil.copytree(smoke / name, root / f"{i:02d}-{name}")
        for i in range(args.unpaired):  # vanilla and reweighted alike, each with a seed of its own: no pairs
            name = ("none", "kde")[i % 2]
            run = root / f"u{i:04d}-{name}"
            shutil.copytree(smoke / name, run)
            config = json.loads((run / "config.json").read_text())
            (run / "config.json").write_text(json.dumps({**config, "seed": 1000 + i}))
        enlarge_map(root / "00-kde", MAP_POINTS)
        os.environ["DDCORE_RUNS"] = str(root)
        os.chdir(args.repo)  # the app's pages are given relative to it
        at = AppTest.from_file(str(args.repo / "app.py"), default_timeout=120).run()
        print(f"{time.strftime('%Y-%m-%d')} | {20 + args.unpaired} finished runs ({args.unpaired} pairing with none), "
              f"one map of {MAP_POINTS} points | AppTest, in-process | {args.repo}\n")
        print("| page | first load s | second load s |")
        print("|---|---|---|")
        for page in sorted(p.relative_to(args.repo).as_posix() for p in (args.repo / "app_pages").glob("*.py")):
            start = time.perf_counter()
            at.switch_page(page).run()
            if page.endswith("embedding_map.py"):
                at.selectbox(key="map_run").set_value("00-kde").run()
            first = time.perf_counter() - start
            start = time.perf_counter()
            at.switch_page(page).run()
            second = time.perf_counter() - start
            if at.exception:
                raise SystemExit(f"{page} raised: {[e.value for e in at.exception]}")
            print(f"| {page} | {first:.3f} | {second:.3f} |", flush=True)


if __name__ == "__main__":
    main()
