import json
import os
import subprocess
import sys
import zipfile
import io

import pytest
import torch

from ddcore import runstore
from ddcore.config import preset
from ddcore.errors import ConfigError, DDError


def make(tmp_path, name="run-a"):
    return runstore.create_run(tmp_path / name, preset("smoke"))


def test_create_and_read_back(tmp_path):
    run = make(tmp_path)
    assert runstore.read_config(run) == preset("smoke")
    status = runstore.read_status(run)
    assert status.state == "queued" and status.created > 0
    assert not list(run.glob(".*.tmp"))  # no temp files left behind


def test_refuses_existing_non_empty_folder(tmp_path):
    run = make(tmp_path)
    with pytest.raises(ConfigError, match="--overwrite"):
        runstore.create_run(run, preset("smoke"))
    with pytest.raises(ConfigError, match="still queued"):
        runstore.create_run(run, preset("smoke"), overwrite=True)
    runstore.update_status(run, state="done")
    (run / "metrics.json").write_text("{}")
    runstore.create_run(run, preset("quick"), overwrite=True)
    assert runstore.read_config(run).preset == "quick" and not (run / "metrics.json").exists()


def test_invalid_names_rejected(tmp_path):
    for bad in ("", "../x", "a b", ".hidden", "x" * 101):
        with pytest.raises(ConfigError, match="invalid"):
            runstore.validate_name(bad)
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


def test_claim_is_exclusive(tmp_path):
    run = make(tmp_path)
    assert runstore.claim(run) and not runstore.claim(run)


def test_synthetic_round_trip_with_weights_only(tmp_path):
    run = make(tmp_path)
    images, labels = torch.rand(4, 3, 28, 28), torch.tensor([0, 0, 1, 1])
    runstore.save_synthetic(run, images, labels)
    payload = torch.load(run / "synthetic.pt", weights_only=True)
    torch.testing.assert_close(payload["images"], images)
    got_images, got_labels = runstore.load_synthetic(run)
    assert got_labels.tolist() == [0, 0, 1, 1]


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
    usage = runstore.cache_usage(tmp_path)
    assert [(e.name, e.files, e.bytes) for e in usage] == [("experts-abc", 2, 500), ("surrogate-def.pt", 1, 100)]
    run = runstore.create_run(tmp_path / "busy", preset("smoke"))
    runstore.update_status(run, state="running", pid=os.getpid())  # a live job may be writing into the cache
    with pytest.raises(DDError, match="busy is running"):
        runstore.clear_cache(tmp_path)
    assert cache.exists()
    runstore.update_status(run, state="done")
    assert runstore.clear_cache(tmp_path) == 600 and not cache.exists()
