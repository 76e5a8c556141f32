"""App render times: with 20 finished runs on disk (one with a 5,000-point map), how long each
page's script takes on its second load (caches warm), measured in-process with AppTest.

    python bench/app_render.py

This is the script's own time; the browser adds its drawing on top (see bench/RESULTS.md for
figures read off Chromium).
"""
from __future__ import annotations

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
    jobs.ensure_worker = lambda root: None  # AppTest runs pages in-process: queue nothing here
    with tempfile.TemporaryDirectory() as tmp:
        smoke, root = Path(tmp) / "smoke", Path(tmp) / "runs"
        cfg = preset("smoke")
        for name, run_cfg in (("kde", cfg), ("none", cfg.with_overrides(reweight="none")),
                              ("baseline", cfg.with_overrides(kind="baseline"))):
            execute_run(runstore.create_run(smoke / name, run_cfg))
        for i, name in enumerate(["kde", "none"] * 9 + ["baseline"] * 2):
            shutil.copytree(smoke / name, root / f"{i:02d}-{name}")
        enlarge_map(root / "00-kde", MAP_POINTS)
        os.environ["DDCORE_RUNS"] = str(root)
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
        print(f"{time.strftime('%Y-%m-%d')} | 20 finished runs, one map of {MAP_POINTS} points | AppTest, in-process\n")
        print("| page | first load s | second load s |")
        print("|---|---|---|")
        for page in sorted(p.relative_to(REPO).as_posix() for p in (REPO / "app_pages").glob("*.py")):
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
