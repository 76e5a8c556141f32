"""Background jobs: run folders are the queue, one worker process executes them.

`submit` writes a queued run folder and makes sure a worker is alive. The worker
(`python -m ddcore worker --runs ROOT`) takes queued runs oldest first, one at a time (the
machine's cores are the bottleneck), and records everything in the folders, so any number of
browser sessions can submit, a refresh re-attaches by reading the folder, and a worker crash
leaves a run that reads back as failed. A single worker per root is guaranteed by an exclusive
lock on ROOT/.worker.lock, taken by whoever starts the worker and held for its lifetime. Whoever
shows queued runs calls `supervise`, which starts a worker again if the last one died (killed, or
idle-exited while a run was being queued).
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import runstore
from .config import RunConfig
from .errors import ConfigError, DDError
from .records import open_regular

LOCK_NAME = ".worker.lock"
IDLE_EXIT_SECONDS = 1800  # a spawned worker leaves after 30 idle minutes; the next submit restarts it


def submit(root: Path, cfg: RunConfig, name: str | None = None, start_worker: bool = True) -> Path:
    """Check cfg (values, data source, IPC), write a queued run folder under root, make sure a
    worker will run it. Raises ConfigError / DatasetError with a user-facing message. A config
    that may download its files (torchvision, minutes) is checked as far as its values here, and
    as far as its data when the worker starts it: the app calls this in its script thread."""
    from .pipeline import preflight

    preflight(cfg, data=not cfg.data.download)
    root = runstore.init_root(root)
    run_dir = runstore.create_run(root / (name or runstore.new_run_name(cfg)), cfg)
    if start_worker:
        ensure_worker(root)
    return run_dir


def cancel(run_dir: Path) -> None:
    runstore.request_cancel(run_dir)


def worker_pid(root: Path) -> int | None:
    """The pid of the worker serving root, or None if no worker holds the lock."""
    if not worker_alive(root):
        return None
    try:
        text = (Path(root) / LOCK_NAME).read_text().strip()
    except (OSError, ValueError):  # gone since, or not text: no pid we can trust
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 2**31 else None  # never 0: kill(0) is our own group


def worker_alive(root: Path) -> bool:
    """True if some process holds the root's worker lock. Asking takes the lock for a moment, shared,
    which a worker's (exclusive) hold refuses and `_take_worker_lock` tells apart from a worker."""
    if not (Path(root) / LOCK_NAME).exists():
        return False
    fd = _open_lock(Path(root))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _take_worker_lock(fd: int, patience: float = 1.0) -> bool:
    """Take root's worker lock on `fd` (exclusive) unless a worker holds it or is being started.
    A `worker_alive` asking at that moment holds it shared: then wait it out (up to `patience`
    seconds), where an exclusive try alone read it as a live worker and started none."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # granted only while nobody holds it exclusively
        except BlockingIOError:
            return False  # a worker, or a caller starting one
        fcntl.flock(fd, fcntl.LOCK_UN)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)


def stop_worker(root: Path, timeout: float = 10.0) -> bool:
    """Ask root's worker to exit (SIGTERM) and wait for its lock to be released. The run it was
    executing, if any, reads back as failed. Returns False if no worker was running."""
    pid = worker_pid(root)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.time() + timeout
    while worker_alive(root) and time.time() < deadline:
        time.sleep(0.1)
    return not worker_alive(root)


def supervise(root: Path, runs: Sequence[runstore.RunInfo]) -> bool:
    """Start a worker for root if `runs` (its listing) holds queued runs and none is alive.
    Returns whether one was started."""
    if any(r.error is None and r.status.state == "queued" for r in runs) and not worker_alive(root):
        ensure_worker(root)
        return True
    return False


def ensure_worker(root: Path) -> None:
    """Start a detached worker for root unless one is running. The lock is taken here and handed
    to the new worker (an inherited descriptor, `--lock-fd`), so it is held from this moment: a
    worker spends seconds importing torch before it could take the lock itself, and every caller
    meanwhile (each page rerun, each submit) saw no worker and started another one (seven at
    once after a click in the app, bench/RESULTS.md 17)."""
    root = runstore.init_root(root)
    fd = _open_lock(root)
    try:
        if not _take_worker_lock(fd):
            return  # a worker holds it, or is being started by another caller
        os.ftruncate(fd, 0)  # no stale pid for worker_pid to find meanwhile
        log_path = root / ".worker.log"
        try:
            log_fd = open_regular(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        except (OSError, ValueError) as exc:  # read-only, or a folder or a link in its place
            why = getattr(exc, "strerror", None) or exc
            raise DDError(f"cannot write the worker's log {log_path} ({why})") from None
        with os.fdopen(log_fd, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "ddcore", "worker", "--runs", str(root),
                                     "--idle-exit", str(IDLE_EXIT_SECONDS), "--lock-fd", str(fd)],
                                    stdout=log, stderr=log, stdin=subprocess.DEVNULL, pass_fds=(fd,),
                                    start_new_session=True)
        _write_pid(fd, proc.pid)
    finally:
        os.close(fd)  # the worker's copy keeps the lock


def _open_lock(root: Path) -> int:
    with runstore.cannot("open the worker lock", root / LOCK_NAME):  # a read-only runs folder, a folder in its place
        return os.open(root / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o644)


def _check_handed_lock(root: Path, fd: int) -> None:
    """Raise ConfigError unless descriptor `fd` is open on root's lock file."""
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(root / LOCK_NAME))
    except OSError:
        same = False
    if not same:
        raise ConfigError(f"--lock-fd {fd} is not an open descriptor of {root / LOCK_NAME}: leave --lock-fd out "
                          f"(the app passes it when it starts a worker)")


def _write_pid(fd: int, pid: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(pid).encode(), 0)


def next_queued(root: Path) -> Path | None:
    queued = [r for r in runstore.list_runs(root) if r.error is None and r.status.state == "queued"]
    for info in sorted(queued, key=lambda r: r.status.created):
        if runstore.claim(info.path):
            return info.path
    return None


def _warm_up() -> None:
    """Pay UMAP's import and JIT costs (numba) before a job's map stage needs them."""
    import numpy as np
    import torch

    from .embedmap import fit_map

    fit_map(torch.from_numpy(np.random.default_rng(0).random((64, 8), dtype=np.float32)), 5, 0.1, 0)


def run_worker(root: Path, poll_seconds: float = 0.5, idle_exit_seconds: float | None = None,
               warm_up: Callable[[], None] = _warm_up, lock_fd: int | None = None) -> int:
    """Execute queued runs until idle for idle_exit_seconds (forever if None). Returns the count run.
    `warm_up` runs the first time the queue is empty, never before a job already waiting: the app
    starts the worker when its Distill page opens, and a click soon after waited for its imports
    and UMAP's JIT (bench/RESULTS.md 16); a job imports UMAP at its map stage anyway. `lock_fd`:
    root's lock file, open and locked by the `ensure_worker` that started this worker."""
    from .pipeline import execute_run

    root = runstore.init_root(root)
    if lock_fd is not None:
        _check_handed_lock(root, lock_fd)
        os.set_inheritable(lock_fd, False)  # as our own open: programs this worker runs must not hold it
    fd = _open_lock(root) if lock_fd is None else lock_fd
    try:
        if not _take_worker_lock(fd):  # a handed-over lock is ours already
            return 0  # another worker owns this root
        _write_pid(fd, os.getpid())
        count, idle_since, warmed = 0, time.time(), False
        while True:
            run_dir = next_queued(root)
            if run_dir is None and not warmed:
                warm_up()
                warmed = True
                continue
            if run_dir is None:
                if idle_exit_seconds is not None and time.time() - idle_since > idle_exit_seconds:
                    return count
                time.sleep(poll_seconds)
                continue
            try:
                execute_run(run_dir)
            except Exception:
                pass  # execute_run recorded why in the run's status and log; the worker carries on
            count += 1
            idle_since = time.time()
    finally:
        os.close(fd)  # releases the lock
