import io
import shutil
import threading
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from ddcore import runstore
from ddcore.config import preset
from ddcore.errors import ConfigError, DDError
from ddcore.records import DamagedRun, EmbeddingMap, SyntheticImages


def make(tmp_path, name="run-a"):
    return runstore.create_run(tmp_path / name, preset("smoke"))


def test_create_and_read_back(tmp_path):
    run = make(tmp_path)
    assert runstore.read_config(run) == preset("smoke")
    status = runstore.read_status(run)
    assert status.state == "queued" and status.created > 0
    assert not list(run.glob(".*.tmp"))  # no temp files left behind
    assert (tmp_path / runstore.MARKER).is_file(), "the root is marked as ddcore's"


def test_refuses_an_existing_folder_and_replaces_only_through_a_staged_run(tmp_path):
    run = make(tmp_path)
    with pytest.raises(ConfigError, match="--overwrite"):
        runstore.create_run(run, preset("smoke"))
    with pytest.raises(ConfigError, match="still queued"):
        runstore.stage_replacement(run, preset("smoke"))
    runstore.update_status(run, state="done")
    (run / "metrics.json").write_text("{}")
    staged = runstore.stage_replacement(run, preset("quick"))
    assert staged.parent == run.parent and staged.name.startswith(".")
    assert runstore.read_config(run).preset == "smoke" and (run / "metrics.json").exists(), "old run untouched"
    assert [r.name for r in runstore.list_runs(tmp_path)] == ["run-a"], "the staged run is not listed"
    runstore.replace_run(staged, run)
    assert runstore.read_config(run).preset == "quick" and not (run / "metrics.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [runstore.MARKER, "run-a"]


def test_a_killed_replacement_is_replaced_by_the_next_one(tmp_path):
    run = make(tmp_path)
    runstore.update_status(run, state="done")
    first = runstore.stage_replacement(run, preset("quick"))
    runstore.update_status(first, state="running", pid=2**22 + 12345)  # died mid-run: no live .lock holder
    second = runstore.stage_replacement(run, preset("quick"))
    assert second == first and runstore.read_status(second).state == "queued"


def test_invalid_names_rejected(tmp_path):
    for bad in ("../x", "a b", ".hidden", "x" * 101):
        with pytest.raises(ConfigError, match="invalid"):
            runstore.validate_name(bad)
    for out in (".", "/", ".."):  # a path naming a folder, not a run in it
        with pytest.raises(ConfigError, match="a run needs a folder of its own"):
            runstore.create_run(Path(out), preset("smoke"))
    with pytest.raises(ConfigError, match="invalid"):
        runstore.create_run(tmp_path / "a b", preset("smoke"))
    assert not (tmp_path / "a b").exists()


def test_listing_survives_damaged_folders(tmp_path):
    good = make(tmp_path, "good")
    (tmp_path / "broken-json").mkdir()
    (tmp_path / "broken-json" / "config.json").write_text("{not json")
    (tmp_path / "bad-state").mkdir()
    runstore.write_json(tmp_path / "bad-state" / "config.json", preset("smoke").to_dict())
    runstore.write_json(tmp_path / "bad-state" / "status.json", {"state": "exploded"})
    (tmp_path / "empty").mkdir()
    runs = {r.name: r for r in runstore.list_runs(tmp_path)}
    assert set(runs) == {"good", "broken-json", "bad-state", "empty"}
    assert runs["good"].error is None and runs["good"].path == good
    for name in ("broken-json", "bad-state", "empty"):
        assert runs[name].error and "damaged" in runs[name].error
    assert "exploded" in runs["bad-state"].error and runs["bad-state"].config == preset("smoke")
    assert runstore.list_runs(tmp_path / "missing") == []


def test_dead_process_reads_as_failed(tmp_path):
    run = make(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    runstore.update_status(run, state="running", pid=proc.pid)
    status = runstore.read_status(run)
    assert status.state == "failed" and "died" in status.message
    runstore.update_status(run, state="running", pid=os.getpid())
    assert runstore.read_status(run).state == "running"


def test_a_running_run_is_alive_exactly_while_its_lock_is_held(tmp_path):
    run = make(tmp_path)
    with runstore.running(run):
        runstore.update_status(run, state="running", pid=os.getpid())
        assert runstore.read_status(run).state == "running"
        with pytest.raises(DDError, match="already being executed"), runstore.running(run):
            pass
    # the same pid is still alive, but nobody holds the lock: a reused pid cannot fake a live run
    assert runstore.read_status(run).state == "failed"


def test_cancel_queued_and_delete(tmp_path):
    run = make(tmp_path)
    with pytest.raises(DDError, match="cancel it"):
        runstore.delete_run(run)
    runstore.request_cancel(run)
    assert runstore.cancel_requested(run) and runstore.read_status(run).state == "cancelled"
    runstore.delete_run(run)
    assert not run.exists()
    (tmp_path / "not-a-run").mkdir()
    with pytest.raises(DDError, match="not a run folder"):
        runstore.delete_run(tmp_path / "not-a-run")


def test_claim_is_exclusive_and_a_dead_workers_claim_is_taken_over(tmp_path):
    run = make(tmp_path)
    assert runstore.claim(run) and not runstore.claim(run)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    (run / ".claim").write_text(str(proc.pid))
    assert runstore.claim(run) and (run / ".claim").read_text() == str(os.getpid())


def test_synthetic_round_trip_with_weights_only(tmp_path):
    run = make(tmp_path)
    images, labels = torch.rand(4, 3, 28, 28), torch.tensor([0, 0, 1, 1])
    SyntheticImages(images, labels).save(run)
    payload = torch.load(run / "synthetic.pt", weights_only=True)
    torch.testing.assert_close(payload["images"], images)
    got = SyntheticImages.load(run)
    assert got.labels.tolist() == [0, 0, 1, 1] and torch.equal(got.display(), images)


def test_json_writes_are_atomic_and_strict(tmp_path):
    path = tmp_path / "m.json"
    runstore.write_json(path, {"a": 1})
    with pytest.raises(ValueError):
        runstore.write_json(path, {"a": float("nan")})
    assert json.loads(path.read_text()) == {"a": 1}  # the failed write left the old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_export_zip(tmp_path):
    run = make(tmp_path)
    runstore.append_log(run, "hello")
    names = zipfile.ZipFile(io.BytesIO(runstore.export_run(run))).namelist()
    assert sorted(names) == ["run-a/config.json", "run-a/log.txt", "run-a/status.json"]


def test_cache_usage_and_clear(tmp_path):
    assert runstore.cache_usage(tmp_path) == [] and runstore.clear_cache(tmp_path) == 0
    cache = runstore.cache_dir(tmp_path)
    (cache / "experts-abc").mkdir(parents=True)
    (cache / "experts-abc" / "expert-000.pt").write_bytes(b"x" * 300)
    (cache / "experts-abc" / "expert-001.pt").write_bytes(b"x" * 200)
    (cache / "surrogate-def.pt").write_bytes(b"x" * 100)
    (cache / "map-0a1b.npy").write_bytes(b"x" * 40)
    (cache / "precision-0a-1b.json").write_bytes(b"x" * 20)
    usage = runstore.cache_usage(tmp_path)
    assert [(e.name, e.files, e.bytes) for e in usage] == [
        ("experts-abc", 2, 500), ("surrogate-def.pt", 1, 100), ("map-0a1b.npy", 1, 40), ("precision-0a-1b.json", 1, 20)]
    run = runstore.create_run(tmp_path / "busy", preset("smoke"))
    runstore.update_status(run, state="running", pid=os.getpid())  # a live job may be writing into the cache
    with pytest.raises(DDError, match="busy is running"):
        runstore.clear_cache(tmp_path)
    assert cache.exists()
    runstore.update_status(run, state="done")
    replacing = runstore.stage_replacement(run, preset("smoke"))  # hidden from the listing, running all the same
    with runstore.running(replacing), pytest.raises(DDError, match=".busy.new is running"):
        runstore.clear_cache(tmp_path)
    assert runstore.clear_cache(tmp_path) == 660 and not cache.exists()


def test_clear_cache_leaves_what_ddcore_did_not_write(tmp_path):
    make(tmp_path)
    cache = runstore.cache_dir(tmp_path)
    (cache / "pip").mkdir(parents=True)
    (cache / "pip" / "wheel").write_bytes(b"w" * 50)
    (cache / "surrogate-0123.pt").write_bytes(b"x" * 100)
    (cache / "experts-ff").mkdir()
    (cache / "experts-ff" / "expert-000.pt").write_bytes(b"x" * 10)
    (cache / "experts-ff" / "notes.txt").write_bytes(b"mine")  # a folder ddcore did not fill alone
    assert [e.name for e in runstore.cache_usage(tmp_path)] == ["surrogate-0123.pt"]
    assert runstore.clear_cache(tmp_path) == 100
    assert (cache / "pip" / "wheel").read_bytes() == b"w" * 50 and (cache / "experts-ff" / "notes.txt").exists()


def test_roots_expand_home_and_refuse_files_and_foreign_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert runstore.check_root("~/runs") == tmp_path / "runs" and not (tmp_path / "runs").exists()
    assert runstore.init_root("~/runs") == tmp_path / "runs" and (tmp_path / "runs" / runstore.MARKER).is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DDError, match="is a file, not a folder"):
        runstore.check_root(tmp_path / "file")
    (tmp_path / "models" / "bert").mkdir(parents=True)
    (tmp_path / "models" / "bert" / "config.json").write_text('{"hidden_size": 768}')
    (tmp_path / "models" / "bert" / "weights.bin").write_bytes(b"w")
    with pytest.raises(DDError, match="not a ddcore runs folder"):
        runstore.check_root(tmp_path / "models")
    with pytest.raises(DDError, match="not a ddcore runs folder"):
        runstore.create_run(tmp_path / "models" / "run", preset("smoke"))
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["bert"], "nothing written there"


def test_an_unmarked_folder_of_runs_is_adopted(tmp_path):
    make(tmp_path / "old")
    (tmp_path / "old" / runstore.MARKER).unlink()  # a runs folder written before the marker existed
    assert runstore.check_root(tmp_path / "old") == tmp_path / "old"
    assert (tmp_path / "old" / runstore.MARKER).is_file()


def test_delete_and_export_refuse_symlinks_and_foreign_files(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    (outside / "precious.txt").write_text("keep me")
    root = tmp_path / "runs"
    run = make(root)
    (root / "link").symlink_to(outside, target_is_directory=True)
    for action in (runstore.delete_run, runstore.export_run):
        with pytest.raises(DDError, match="symbolic link"):
            action(root / "link")
    assert (outside / "precious.txt").read_text() == "keep me"
    (run / "precious.txt").write_text("mine")
    runstore.update_status(run, state="done")
    with pytest.raises(DDError, match="did not write.*precious.txt"):
        runstore.delete_run(run)
    assert (run / "precious.txt").exists() and (run / "config.json").exists()
    (run / "precious.txt").unlink()
    (run / "synthetic.pt").symlink_to(outside / "precious.txt")
    with pytest.raises(DDError, match="did not write"):
        runstore.export_run(run)
    (run / "synthetic.pt").unlink()
    runstore.delete_run(run)
    assert not run.exists() and (outside / "precious.txt").read_text() == "keep me"
    listing = {r.name: r for r in runstore.list_runs(root)}
    assert "symbolic link" in listing["link"].error


def test_runs_watch_rereads_only_what_changed(tmp_path):
    for name in ("a", "b", "c"):
        runstore.update_status(make(tmp_path, name), state="done")
    watch = runstore.RunsWatch(tmp_path)
    runs, changed = watch.refresh()
    assert [r.name for r in runs] == ["c", "b", "a"] and changed and watch.reads == 3
    runs, changed = watch.refresh()
    assert not changed and watch.reads == 3, "nothing changed: nothing read"
    runstore.update_status(tmp_path / "b", state="failed", message="boom")
    runs, changed = watch.refresh()
    assert changed and watch.reads == 4 and {r.name: r.status.state for r in runs}["b"] == "failed"
    runstore.delete_run(tmp_path / "a")
    runs, changed = watch.refresh()
    assert changed and watch.reads == 4 and [r.name for r in runs] == ["c", "b"]


def done_run(root, name="run-a"):
    run = runstore.create_run(root / name, preset("smoke"))
    runstore.update_status(run, state="done")
    return run


def test_the_swap_never_deletes_through_a_link_or_what_ddcore_did_not_write(tmp_path):
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    run = done_run(runs)
    (runs / ".run-a.old").symlink_to(outside)  # where the swap retires the old run
    with pytest.raises(DDError, match="is in the way and ddcore did not make it"):
        runstore.stage_replacement(run, preset("quick"))  # said before a replacement runs
    (runs / ".run-a.old").unlink()
    staged = runstore.stage_replacement(run, preset("quick"))
    runstore.update_status(staged, state="done")
    (runs / ".run-a.old").symlink_to(outside)
    with pytest.raises(DDError, match=f"is in the way and ddcore did not make it.*; the new run is kept in {staged}"):
        runstore.replace_run(staged, run)  # and again at the swap, if it appeared meanwhile
    assert (outside / "keep.txt").read_text() == "precious"
    assert runstore.read_config(run).preset == "smoke" and runstore.read_config(staged).preset == "quick"
    (runs / ".run-a.old").unlink()
    (run / "notes.txt").write_text("mine")  # written into the old run while its replacement ran
    with pytest.raises(DDError, match=r"holds entries ddcore did not write \(notes.txt\)"):
        runstore.replace_run(staged, run)
    assert (run / "notes.txt").read_text() == "mine" and runstore.read_config(staged).preset == "quick"


def test_a_replacement_through_a_home_path_swaps_in(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    run = done_run(tmp_path / "runs")
    staged = runstore.stage_replacement("~/runs/run-a", preset("quick"))
    runstore.update_status(staged, state="done")
    assert runstore.replace_run(staged, "~/runs/run-a") == run and runstore.read_config(run).preset == "quick"
    assert not staged.exists()


def test_a_finished_replacement_never_swapped_in_is_kept(tmp_path):
    run = done_run(tmp_path)
    staged = runstore.stage_replacement(run, preset("quick"))
    runstore.update_status(staged, state="done")
    with pytest.raises(DDError, match="holds a finished run"):
        runstore.stage_replacement(run, preset("quick"))
    assert runstore.read_config(staged).preset == "quick"


def test_folders_without_a_status_file_read_as_failed_unless_their_lock_is_held(tmp_path):
    run = done_run(tmp_path)
    (run / "status.json").unlink()
    assert runstore.settled_state(run) == "failed"
    with runstore.running(run):
        assert runstore.settled_state(run) == "running"
    staged = runstore.stage_replacement(run, preset("quick"))  # the damaged run can be replaced
    shutil.rmtree(staged)
    staged.mkdir()  # a replacement killed between its mkdir and its first status
    assert runstore.stage_replacement(run, preset("quick")) == staged and runstore.settled_state(staged) == "queued"


def test_claiming_a_run_that_vanished_is_a_no_not_a_crash(tmp_path):
    run = make(tmp_path)
    shutil.rmtree(run)
    assert runstore.claim(run) is False


def test_a_run_made_claimed_is_never_taken_by_a_worker(tmp_path):
    from ddcore import jobs

    run = runstore.create_run(tmp_path / "cli-run", preset("smoke"), claimed=True)
    assert runstore.read_status(run).state == "queued" and jobs.next_queued(tmp_path) is None
    assert jobs.next_queued(tmp_path) is None and (run / ".claim").read_text() == str(os.getpid())


def finishes(fn, seconds=20.0):
    """fn() run in a thread: its result or its exception, or a failure if it is still blocked after `seconds`."""
    out = {}

    def call():
        try:
            out["value"] = fn()
        except Exception as exc:
            out["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn} blocked"
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_fifos_and_links_in_a_run_folder_neither_block_nor_lead_outside(tmp_path):
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    outside.mkdir()
    run = done_run(runs)
    runstore.update_status(run, state="running", pid=os.getpid())
    os.mkfifo(run / ".lock")
    assert finishes(lambda: runstore.read_status(run).state) == "failed"  # no lock ddcore made is held
    for name, load in (("synthetic.pt", SyntheticImages.load), ("embeddings.npz", EmbeddingMap.load)):
        os.mkfifo(run / name)
        with pytest.raises(DamagedRun, match=f"{name} is damaged"):
            finishes(lambda: load(run))
    os.mkfifo(run / "log.txt")
    assert finishes(lambda: runstore.read_log(run)) == []
    other = done_run(runs, "run-b")
    (outside / "victim.txt").write_text("")
    (other / "log.txt").symlink_to(outside / "victim.txt")
    (other / ".lock").symlink_to(outside / "made-by-ddcore")
    with pytest.raises(DamagedRun, match="log.txt is damaged: it is a symbolic link"):
        runstore.append_log(other, "stage data")
    with pytest.raises(DamagedRun, match=".lock is damaged: it is a symbolic link"):
        with runstore.running(other):
            pass
    assert (outside / "victim.txt").read_text() == "" and sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
