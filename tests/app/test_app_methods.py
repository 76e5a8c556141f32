"""The Compare page's methods-side-by-side table, on run records and through the page."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from ddapp import metrics
from ddcore import runstore
from ddcore.config import METHODS, preset
from ddcore.pipeline import execute_run
from ddcore.runstore import Metrics, RunInfo, Status

from test_app_pages import by_label


def run_info(name: str, method: str, reweight: str, acc: float | None, ipc: int = 10) -> RunInfo:
    cfg = preset("smoke", method).with_overrides(reweight=reweight, ipc=ipc)
    return RunInfo(name, Path("/nowhere") / name, cfg, Status(state="done"), Metrics(test_acc_unbiased=acc))


def test_method_table_pairs_vanilla_and_reweighted_per_method() -> None:
    runs = [
        run_info("dm-kde-new", "dm", "kde", 91.0),
        run_info("dm-kde-old", "dm", "kde", 80.0),  # an older repeat: the newest counts
        run_info("dm-none", "dm", "none", 25.0),
        run_info("mtt-kde", "mtt", "kde", 90.0),
        run_info("mtt-none", "mtt", "none", 27.5),
        run_info("dc-kde", "dc", "kde", None),  # unfinished metrics and no vanilla: no gain
        run_info("dm-ipc1", "dm", "none", 20.0, ipc=1),
    ]
    table = metrics.method_table(runs)
    rows = {(r["IPC"], r["method"]): r for r in table.to_dict("records")}
    assert set(rows) == {(10, "DM"), (10, "MTT"), (10, "DC"), (1, "DM")}
    assert (rows[10, "DM"]["vanilla %"], rows[10, "DM"]["reweighted %"], rows[10, "DM"]["gain (points)"]) == (25.0, 91.0, 66.0)
    assert rows[10, "MTT"]["gain (points)"] == pytest.approx(62.5)
    assert pd.isna(rows[10, "DC"]["gain (points)"]) and pd.isna(rows[1, "DM"]["reweighted %"])


def test_compare_page_shows_methods_side_by_side(smoke_store: Path, tmp_path: Path, app, goto) -> None:
    root = tmp_path / "runs"
    shutil.copytree(smoke_store, root)
    # a second method's run: the smoke run's record under MTT's settings
    mtt = root / "smoke-mtt"
    shutil.copytree(root / "smoke-kde", mtt)
    runstore.write_json(mtt / "config.json", preset("smoke", "mtt").to_dict())
    metrics_ = json.loads((mtt / "metrics.json").read_text())
    runstore.write_json(mtt / "metrics.json", {**metrics_, "test_acc_unbiased": 12.5})
    at = goto(app(root), "app_pages/compare.py")
    at.multiselect[0].set_value(["smoke-kde", "smoke-none", "smoke-mtt"]).run()
    assert not at.exception
    [table] = [d for d in at.dataframe if "method" in d.value.columns]
    assert sorted(table.value["method"]) == ["DM", "MTT"]
    assert table.value.set_index("method").loc["MTT", "reweighted %"] == 12.5


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_from_the_distill_page(method: str, app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/distill.py")
    by_label(at.selectbox, "Preset").set_value("smoke").run()
    by_label(at.selectbox, "Method").set_value(method).run()
    by_label(at.number_input, "Iterations").set_value(2)  # a form field: sent with the submit
    by_label(at.button, "Run single").click().run()
    assert not at.exception and at.success
    (queued,) = runstore.list_runs(tmp_path)
    assert queued.config.distill == replace(preset("smoke", method).distill, iterations=2)
    execute_run(queued.path)  # what the worker does with it
    (done,) = runstore.list_runs(tmp_path)
    assert done.status.state == "done" and done.metrics.test_acc_unbiased is not None
    at = goto(at, "app_pages/compare.py")
    assert method.upper() in " ".join(at.multiselect[0].value + [str(v) for v in at.dataframe[0].value["run"]])


def test_runs_page_clears_the_shared_cache(app, goto, store_copy: Path) -> None:
    assert runstore.cache_usage(store_copy), "the smoke runs cached their surrogate"
    at = goto(app(store_copy), "app_pages/runs.py")
    assert any("Shared cache" in c.value for c in at.caption)
    by_label(at.button, "Clear cache").click().run()
    assert not at.exception and not runstore.cache_dir(store_copy).exists()
    assert {r.name for r in runstore.list_runs(store_copy)} == {"smoke-kde", "smoke-none", "smoke-baseline"}


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_runs_page_says_what_stands_where_the_cache_goes(app, goto, store_copy: Path, tmp_path: Path, kind) -> None:
    cache = runstore.cache_dir(store_copy)
    shutil.rmtree(cache)
    if kind == "file":
        cache.write_text("not a folder")
    else:
        cache.symlink_to(tmp_path, target_is_directory=True)
    at = goto(app(store_copy), "app_pages/runs.py")
    assert [w.value for w in at.warning] == [next(w.value for w in at.warning if f"{cache} is " in w.value)]
    assert not any("Shared cache" in c.value for c in at.caption) and at.tabs, "the rest of the page is drawn"
