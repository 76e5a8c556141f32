"""The app over what a crash or a careless user leaves behind: every page over a runs folder holding
every kind of damaged run, a runs folder that is not ddcore's, a restart with runs in every
state, and a jobs panel that reads nothing when nothing changed."""
from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from ddapp import examples, ui
from ddcore import jobs, runstore
from ddcore.jobs import ensure_worker
from ddcore.records import SyntheticImages
from ddcore.config import preset
from tests.runfiles import damaged_store, dead_pid

from test_app_pages import PAGES, by_label, page_text

SYNTHETIC_DAMAGE = ("synthetic-truncated", "synthetic-pickle", "synthetic-missing")
MAP_DAMAGE = ("map-object-arrays", "map-truncated", "map-wrong-shape", "map-index-out-of-range")


@pytest.fixture
def damaged(store_copy: Path, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    outside = tmp_path / "outside"
    outside.mkdir()
    return store_copy, outside, damaged_store(store_copy, store_copy / "smoke-kde", outside)


def test_every_page_renders_over_every_kind_of_damaged_run(app, goto, damaged) -> None:
    root, outside, says = damaged
    at = app(root)
    for page in PAGES:
        goto(at, page)
        assert "Traceback" not in page_text(at)
    at = goto(at, "app_pages/runs.py")
    listing = at.dataframe[0].value.set_index("name")
    assert set(says) <= set(listing.index)
    # the listing reads the small files; damaged images and maps are found by the pages that load them
    for name, fragment in ((n, f) for n, f in says.items() if n not in SYNTHETIC_DAMAGE + MAP_DAMAGE):
        at.selectbox(key="runs_run").set_value(name).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert any(fragment in e.value for e in at.error), (name, [e.value for e in at.error])
    assert (outside / "canary").read_text() == "alive", "the pickle was never executed"


def test_damaged_images_and_maps_are_a_message_on_their_pages(app, goto, damaged) -> None:
    root, _, says = damaged
    at = goto(app(root), "app_pages/embedding_map.py")
    for name in SYNTHETIC_DAMAGE + MAP_DAMAGE:
        at.selectbox(key="map_run").set_value(name).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert any(says[name] in e.value for e in at.error), (name, [e.value for e in at.error])
        if name in SYNTHETIC_DAMAGE:  # the map itself is fine and still shown
            assert at.get("plotly_chart")
    at = goto(at, "app_pages/synthetic_images.py")
    for name in SYNTHETIC_DAMAGE:
        at.selectbox(key="syn_left").set_value(name).run()
        assert not at.exception and any(says[name] in e.value for e in at.error), name


def test_synthetic_images_the_map_does_not_place_are_one_line_on_the_map(app, goto, store_copy) -> None:
    run = store_copy / "smoke-kde"
    synthetic = SyntheticImages.load(run)
    replace(synthetic, images=synthetic.images[:3], labels=synthetic.labels[:3]).save(run)  # the map places 20
    at = goto(app(store_copy), "app_pages/embedding_map.py")
    at.selectbox(key="map_run").set_value("smoke-kde").run()
    damaged = f"{run} is damaged: its synthetic.pt holds 3 images, but its embedding map places 20"
    assert {e.value for e in at.error} == {damaged} and at.get("plotly_chart"), "the map itself is still shown"
    by_label(at.selectbox, "Synthetic image").set_value(19).run()
    assert not at.exception and {e.value for e in at.error} == {damaged}
    assert not any(c.startswith("synthetic #") for i in at.image for c in i.captions), "the line, not an image"


def test_a_symlinked_run_is_neither_deleted_nor_exported(app, goto, damaged) -> None:
    root, outside, _ = damaged
    (outside / "config.json").write_text(json.dumps(preset("smoke").to_dict()))
    at = goto(app(root), "app_pages/runs.py")
    at.selectbox(key="runs_run").set_value("symlinked").run()
    assert by_label(at.get("download_button"), "Export zip").proto.disabled
    by_label(at.button, "Delete…").click().run()
    by_label(at.button, "Yes, delete").click().run()
    assert not at.exception and any("symbolic link" in e.value and "nothing was deleted" in e.value for e in at.error)
    assert (root / "symlinked").is_symlink() and sorted(p.name for p in outside.iterdir()) == ["canary", "config.json"]


@pytest.mark.parametrize("kind", ["foreign", "file", "home", "no-such-user", "nul", "too-long", "examples"])
def test_a_runs_folder_ddcore_did_not_make_is_one_line_on_every_page(app, goto, tmp_path, monkeypatch, kind) -> None:
    models = tmp_path / "models"
    (models / "bert").mkdir(parents=True)
    (models / "bert" / "config.json").write_text('{"hidden_size": 768}')
    (models / ".cache" / "pip").mkdir(parents=True)
    (models / ".cache" / "pip" / "wheel").write_bytes(b"w")
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    typed, message = {"foreign": (str(models), "is not a ddcore runs folder"),
                      "file": (str(tmp_path / "a-file"), "is a file, not a folder"),
                      "home": ("~/models", f"{models} is not a ddcore runs folder"),
                      "no-such-user": ("~no-such-user-x/runs", "there is no user 'no-such-user-x'"),
                      "nul": (str(tmp_path / "a\x00b"), "is not a usable path"),
                      "too-long": (str(tmp_path / ("x" * 300) / ("y" * 5000)), "is not a usable path"),
                      "examples": (str(examples.ROOT), "holds the example runs that ship with ddbias")}[kind]
    at = app(tmp_path / "unused")
    at.text_input(key="runs_root").set_value(typed).run()
    for page in PAGES:
        goto(at, page)
        if not page.endswith(("bias_explorer.py", "story.py")):  # the pages that need no runs folder
            assert [e.value for e in at.error] == [next(e.value for e in at.error if message in e.value)]
    assert sorted(str(p.relative_to(models)) for p in models.rglob("*")) == [
        ".cache", ".cache/pip", ".cache/pip/wheel", "bert", "bert/config.json"], "nothing written or deleted there"
    assert not (tmp_path / "~").exists() and not (tmp_path / "unused").exists()
    assert not list(tmp_path.glob("~*")) and not list(examples.ROOT.glob(".worker*"))


def test_a_runs_folder_of_blanks_means_the_default(app, goto, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    at = app(tmp_path / "default")
    at.text_input(key="runs_root").set_value("   ").run()
    for page in PAGES:
        goto(at, page)
        assert not at.exception and not at.error, (page, [e.value for e in at.error])
    assert not (tmp_path / "   ").exists()


def test_app_restart_with_runs_in_every_state(app, goto, smoke_store, tmp_path, monkeypatch) -> None:
    root = runstore.init_root(tmp_path / "runs")
    shutil.copytree(smoke_store / "smoke-kde", root / "done")
    shutil.copytree(smoke_store / "smoke-none", root / "done-warned")
    runstore.update_status(root / "done-warned", warning="the synthetic images saturated: 97% of their pixels")
    cfg = preset("smoke")
    runstore.create_run(root / "queued", cfg)
    for name, changes in (("failed", dict(state="failed", message="IPC 500 is larger than the smallest class")),
                          ("cancelled", dict(state="cancelled", message="cancelled by the user")),
                          ("running-dead", dict(state="running", stage="distill", pid=dead_pid())),
                          ("running-alive", dict(state="running", stage="distill"))):
        runstore.update_status(runstore.create_run(root / name, cfg), **changes)
    (root / "damaged").mkdir()
    (root / "damaged" / "status.json").write_text('{"progress": "abc"}')
    started = []
    monkeypatch.setattr(jobs, "ensure_worker", started.append)
    with runstore.running(root / "running-alive"):  # a job still executing in another process
        at = goto(app(root), "app_pages/distill.py")
        assert started and started[0] == root, "the queued run got a worker (the last one is gone)"
        assert any("IPC 500" in e.value for e in at.error)
        assert any("saturated" in w.value for w in at.warning)
        for page in PAGES:
            goto(at, page)
        at = goto(at, "app_pages/runs.py")
        states = at.dataframe[0].value.set_index("name")["state"].to_dict()
        assert states == {"done": "done", "done-warned": "done", "queued": "queued", "failed": "failed",
                          "cancelled": "cancelled", "running-dead": "failed", "running-alive": "running",
                          "damaged": "damaged"}
        at.selectbox(key="runs_run").set_value("running-dead").run()
        assert any("died" in e.value for e in at.error) and not by_label(at.button, "Delete…").disabled
        at.selectbox(key="runs_run").set_value("running-alive").run()
        assert by_label(at.button, "Delete…").disabled


def test_the_jobs_panel_rereads_only_what_changed_and_polls_only_while_jobs_run(app, goto, store_copy) -> None:
    at = goto(app(store_copy), "app_pages/distill.py")
    watch = at.session_state["_runs_watch"]
    assert watch.reads == 3 and ui.poll_interval(runstore.list_runs(store_copy)) is None
    at.run()
    assert not at.exception and watch.reads == 3, "nothing changed: no run was read again"
    runstore.create_run(store_copy / "new", preset("smoke"))
    at.run()
    assert watch.reads == 4 and ui.poll_interval(runstore.list_runs(store_copy)) == ui.POLL_SECONDS
    assert [b.label for b in at.button].count("Cancel") == 1


def test_a_run_deleted_while_shown_is_said_not_switched_to_silently(app, goto, store_copy) -> None:
    at = goto(app(store_copy), "app_pages/embedding_map.py")
    name = at.selectbox(key="map_run").value
    runstore.delete_run(store_copy / name)
    at.run()
    assert not at.exception and at.selectbox(key="map_run").value != name
    assert any(f"Run `{name}` is no longer here" in i.value for i in at.info), [i.value for i in at.info]
    at.run()
    assert not any("is no longer here" in i.value for i in at.info), "said once"


LISTING_PAGES = ("compare", "distill", "embedding_map", "runs", "story", "synthetic_images")


def test_a_runs_folder_ddcore_cannot_write_in_is_one_line_on_every_page(app, goto, store_copy, monkeypatch) -> None:
    runstore.create_run(store_copy / "queued", preset("smoke"))  # every listing tries to start its worker
    (store_copy / jobs.LOCK_NAME).mkdir()  # a folder where the worker lock goes
    monkeypatch.setattr(jobs, "ensure_worker", ensure_worker)  # the real one: it cannot start a worker here
    lock = f"cannot open the worker lock {store_copy / jobs.LOCK_NAME} (Is a directory)"
    at = app(store_copy)
    for page in PAGES:
        goto(at, page)
        assert {e.value for e in at.error} == ({lock} if page.endswith(tuple(f"/{p}.py" for p in LISTING_PAGES))
                                               else set()), page

    def refuse(self, *args, **kwargs):  # a read-only runs folder (as root, chmod does not stop writes)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    monkeypatch.setattr(Path, "touch", refuse)
    at = goto(at, "app_pages/runs.py")
    at.selectbox(key="runs_run").set_value("smoke-baseline").run()
    by_label(at.button, "Delete…").click().run()
    by_label(at.button, "Yes, delete").click().run()
    assert not at.exception and f"cannot delete {store_copy / 'smoke-baseline'} (Read-only file system)" in [
        e.value for e in at.error]
    at = goto(at, "app_pages/distill.py")
    by_label(at.button, "Cancel").click().run()
    assert not at.exception and f"cannot cancel {store_copy / 'queued'} (Read-only file system)" in [
        e.value for e in at.error]
    assert (store_copy / "smoke-baseline").is_dir() and runstore.read_status(store_copy / "queued").state == "queued"
