"""The job queue: run folders are the queue; one worker per root runs them in order."""
import fcntl
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ddcore import jobs, runstore
from ddcore.config import preset
from ddcore.errors import ConfigError, DDError
from ddcore.records import Metrics


def test_worker_runs_queue_in_order_and_records_outcomes(tmp_path):
    smoke = preset("smoke").with_overrides(eval_epochs=2)
    ok = jobs.submit(tmp_path, smoke, "a-ok", start_worker=False)
    time.sleep(0.01)
    saturates = jobs.submit(tmp_path, smoke.with_overrides(lr_img=1e6, momentum_img=0.9), "b-saturates",
                            start_worker=False)
    time.sleep(0.01)
    fails = jobs.submit(tmp_path, smoke, "c-fails", start_worker=False)
    # valid when queued, not when run: the worker's own check must fail it with the message
    runstore.write_json(fails / "config.json", smoke.with_overrides(ipc=10_000).to_dict())
    time.sleep(0.01)
    cancelled = jobs.submit(tmp_path, smoke, "d-cancelled", start_worker=False)
    jobs.cancel(cancelled)
    assert runstore.read_status(cancelled).state == "cancelled"

    assert jobs.run_worker(tmp_path, poll_seconds=0.05, idle_exit_seconds=0.2) == 3

    assert runstore.read_status(ok).state == "done" and not runstore.read_status(ok).warning
    assert Metrics.load(ok).test_acc_unbiased >= 0
    status, metrics = runstore.read_status(saturates), Metrics.load(saturates)
    assert status.state == "done" and "saturated" in status.warning and "--lr-img 1e+06" in status.warning
    assert metrics.warning == status.warning and metrics.saturated_share > 0.5
    # the second run reused the first one's surrogate
    assert "surrogate loaded from cache" in "\n".join(runstore.read_log(saturates))
    failed = runstore.read_status(fails)
    assert failed.state == "failed" and "smallest class" in failed.message and "Traceback" not in failed.message
    assert (ok / "synthetic.pt").exists() and not (fails / "synthetic.pt").exists()
    assert runstore.read_status(cancelled).state == "cancelled" and not (cancelled / "synthetic.pt").exists()


def test_submit_rejects_bad_input_before_writing_anything(tmp_path):
    with pytest.raises(ConfigError, match="smallest class"):
        jobs.submit(tmp_path, preset("smoke").with_overrides(ipc=10_000), start_worker=False)
    with pytest.raises(ConfigError, match="conflict ratio"):
        jobs.submit(tmp_path, preset("smoke").with_overrides(conflict_ratio=2.0), start_worker=False)
    assert runstore.list_runs(tmp_path) == []



def test_a_run_that_may_download_checks_its_data_in_the_worker_not_at_submit(tmp_path, monkeypatch):
    """The app submits in its script thread: a torchvision download (CIFAR-10: 170 MB) there froze the page."""
    from ddcore import pipeline
    from ddcore.errors import DatasetError

    reads = []

    def offline(data):
        reads.append(data.root)
        raise DatasetError(f"could not download MNIST into {data.root}/MNIST/raw")

    monkeypatch.setattr(pipeline, "train_summary", offline)
    cfg = preset("smoke").with_overrides(source="files", root=str(tmp_path / "data"), download=True)
    run = jobs.submit(tmp_path / "runs", cfg, "fetches", start_worker=False)
    assert reads == [] and runstore.read_status(run).state == "queued"
    assert jobs.run_worker(tmp_path / "runs", poll_seconds=0.05, idle_exit_seconds=0.2, warm_up=lambda: None) == 1
    status = runstore.read_status(run)
    assert reads == [str(tmp_path / "data")] and status.state == "failed" and "could not download MNIST" in status.message
    with pytest.raises(DatasetError, match="could not download"):  # without --download, submit reads at once
        jobs.submit(tmp_path / "runs", cfg.with_overrides(download=False), start_worker=False)

def test_one_background_worker_per_root(tmp_path):
    jobs.ensure_worker(tmp_path)
    deadline = time.time() + 60
    while jobs.worker_pid(tmp_path) is None and time.time() < deadline:
        time.sleep(0.2)
    pid = jobs.worker_pid(tmp_path)
    assert pid is not None
    jobs.ensure_worker(tmp_path)  # a second call must not start a second worker
    time.sleep(1.0)
    assert jobs.worker_pid(tmp_path) == pid
    assert jobs.stop_worker(tmp_path)
    assert not jobs.worker_alive(tmp_path) and jobs.worker_pid(tmp_path) is None
    assert not jobs.stop_worker(tmp_path)


def test_callers_while_a_worker_starts_start_no_other(tmp_path, monkeypatch):
    """The lock is held from the moment ensure_worker returns, long before the new worker has
    imported torch: the page reruns and submits meanwhile start no second worker, and the one
    started takes the lock over and runs the job."""
    started, popen = [], subprocess.Popen

    def spawn(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(jobs.subprocess, "Popen", spawn)
    for _ in range(3):
        jobs.ensure_worker(tmp_path)
        assert jobs.worker_alive(tmp_path) and jobs.worker_pid(tmp_path) == started[0].pid
    run = jobs.submit(tmp_path, preset("smoke").with_overrides(eval_epochs=2))
    deadline = time.time() + 120
    while not runstore.read_status(run).final and time.time() < deadline:
        time.sleep(0.2)
    assert runstore.read_status(run).state == "done"
    assert len(started) == 1 and started[0].poll() is None, "one worker, still serving the root"
    assert jobs.worker_pid(tmp_path) == started[0].pid
    assert jobs.stop_worker(tmp_path) and started[0].wait(timeout=10) is not None


def test_a_caller_asking_about_the_worker_never_stops_one_being_started(tmp_path, monkeypatch):
    """worker_alive takes the lock for a moment to ask; an ensure_worker at that very moment used to
    read it as a live worker and start none, leaving a submitted run waiting for the next poll."""
    root = runstore.init_root(tmp_path / "runs")
    started, popen = [], subprocess.Popen
    monkeypatch.setattr(jobs.subprocess, "Popen", lambda *a, **k: started.append(a[0]) or popen(["true"]))

    def hold(mode: int) -> int:
        fd = os.open(root / jobs.LOCK_NAME, os.O_RDONLY | os.O_CREAT)
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return fd

    with ThreadPoolExecutor(1) as pool:
        asking = hold(fcntl.LOCK_SH)  # as worker_alive holds it while it asks
        done = pool.submit(lambda: time.sleep(0.1) or os.close(asking))  # and lets go
        jobs.ensure_worker(root)
        done.result()
    assert len(started) == 1 and "--lock-fd" in started[0]

    worker = hold(fcntl.LOCK_EX)  # a live worker's hold: no second one, and no waiting for it
    try:
        begin = time.monotonic()
        jobs.ensure_worker(root)
        assert len(started) == 1 and time.monotonic() - begin < 0.5
        assert jobs.worker_alive(root)
    finally:
        os.close(worker)
    assert not jobs.worker_alive(root)


def test_a_handed_over_lock_is_held_by_the_worker_alone(tmp_path):
    """What a started worker receives: the root's lock, locked, and inheritable (Popen's pass_fds).
    The worker keeps it, records its pid, passes it to no program it runs, and releases it on exit."""
    root = runstore.init_root(tmp_path / "runs")
    fd = os.open(root / jobs.LOCK_NAME, os.O_WRONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.set_inheritable(fd, True)
    seen = []
    assert jobs.run_worker(root, poll_seconds=0.05, idle_exit_seconds=0, lock_fd=fd, warm_up=lambda: seen.append(
        (jobs.worker_alive(root), jobs.worker_pid(root), os.get_inheritable(fd)))) == 0
    assert seen == [(True, os.getpid(), False)]
    assert not jobs.worker_alive(root)


def test_a_worker_refuses_a_lock_descriptor_not_of_its_root(tmp_path):
    root = tmp_path / "runs"
    with open(tmp_path / "elsewhere", "w") as other:
        with pytest.raises(ConfigError, match="is not an open descriptor of"):
            jobs.run_worker(root, idle_exit_seconds=0, lock_fd=other.fileno())
    assert not jobs.worker_alive(root)


def test_the_warm_up_never_delays_a_waiting_job(tmp_path):
    """A job queued before the worker is ready runs first; the warm-up (UMAP's import and JIT)
    waits for the first idle moment, and happens once."""
    first = tmp_path / "first"
    waiting = jobs.submit(first, preset("smoke").with_overrides(eval_epochs=2), start_worker=False)
    seen = []
    assert jobs.run_worker(first, poll_seconds=0.05, idle_exit_seconds=0.2,
                           warm_up=lambda: seen.append(runstore.read_status(waiting).state)) == 1
    assert seen == ["done"]

    idle, calls = tmp_path / "idle", []
    assert jobs.run_worker(idle, poll_seconds=0.05, idle_exit_seconds=0.2, warm_up=lambda: calls.append(1)) == 0
    assert calls == [1]


def test_a_worker_log_that_cannot_be_written_is_one_line_and_starts_nothing(tmp_path):
    root = runstore.init_root(tmp_path / "runs")
    (root / ".worker.log").mkdir()  # a folder where the worker's log goes
    with pytest.raises(DDError, match=r"cannot write the worker's log .*\.worker\.log"):
        jobs.ensure_worker(root)
    assert not jobs.worker_alive(root)  # the lock taken for it was let go
    (root / ".worker.log").rmdir()
    (root / ".worker.log").symlink_to(tmp_path / "elsewhere.log")
    with pytest.raises(DDError, match="symbolic link"):
        jobs.ensure_worker(root)
    assert not (tmp_path / "elsewhere.log").exists()
