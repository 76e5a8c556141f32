"""Where a sweep's cells run: one interface, two backends.

- `LocalBackend`: the job queue of ddcore.jobs. Each cell is submitted as a queued run folder and
  the background worker (started if needed) runs them one at a time; `launch` returns at once.
- `RayBackend`: Ray Core, one task per cell with `num_cpus`/`num_gpus`. `ray.init()` starts a
  local instance when no address is given and joins a cluster when `address` or RAY_ADDRESS
  names one. The driver (this process) holds the cells' folders: a task runs its cell in a
  scratch folder on its node and returns the finished folder's files, which the driver writes,
  so workers need no shared disk. `launch` returns when every cell has finished. Ray is imported
  only here, only when this backend is used.

Cancelling works the same on both (ddcore.sweeps.store.cancel): the cells' cancel files. The
worker stops a running cell at its next progress check; the Ray driver cancels the cell's task.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .. import jobs, runstore
from ..config import RunConfig
from ..errors import ConfigError, DDError
from . import store
from .spec import Cell, SweepSpec, expand

BACKENDS = ("local", "ray")


class Backend(Protocol):
    name: str

    def check(self, spec: SweepSpec, cells: tuple[Cell, ...]) -> None:
        """Get ready to run these cells, or raise (one line) before anything on disk changes."""

    def launch(self, root: Path, spec: SweepSpec, cells: tuple[Cell, ...]) -> None:
        """Queue or run the checked cells (none of which has a folder now) under root, tagged with spec.name."""


@dataclass(frozen=True)
class Launch:
    """What `run_sweep` did: cells found done (skipped), left running or queued elsewhere, and queued now."""

    done: int
    active: int
    queued: int


def run_sweep(root: Path, spec: SweepSpec, backend: Backend) -> Launch:
    """Expand and check every cell, then hand the ones not done or in progress to the backend.
    Failed and cancelled cells are queued again; finished ones are kept (resume)."""
    root = runstore.check_writable_root(root)
    plan = store.plan(root, spec.name, expand(spec))
    backend.check(spec, plan.todo)
    for cell in plan.done + plan.active:  # a folder made just before a crash may lack its tag
        if store.read_tag(plan.paths[cell.key]) is None:
            store.write_tag(plan.paths[cell.key], spec.name, cell)
    for cell in plan.todo:
        store.clear_for_rerun(root, cell)
    backend.launch(root, spec, plan.todo)
    return Launch(len(plan.done), len(plan.active), len(plan.todo))


class LocalBackend:
    """The job queue every other run uses: nothing to install or start."""

    name = "local"

    def __init__(self, start_worker: bool = True) -> None:
        self.start_worker = start_worker  # False: the caller runs jobs.run_worker itself (tests)

    def check(self, spec: SweepSpec, cells: tuple[Cell, ...]) -> None:
        from ..pipeline import preflight

        for cell in cells:  # the data files and IPC of every cell, before any is queued
            try:
                preflight(cell.config)
            except DDError as exc:
                raise type(exc)(f"{spec.source}: cell {cell.describe()}: {exc}") from None

    def launch(self, root: Path, spec: SweepSpec, cells: tuple[Cell, ...]) -> None:
        for cell in cells:
            run_dir = jobs.submit(root, cell.config, cell.name, start_worker=False)
            store.write_tag(run_dir, spec.name, cell)
        # cells queued by an earlier run wait too, and the worker they were queued for may have died
        if self.start_worker and store.waits_for_worker(root, spec.name):
            jobs.ensure_worker(root)  # nothing when a worker is alive


def scratch_root(driver_root: str) -> Path:
    """Where a Ray task runs its cell on its node: one folder per driver runs root, so cells of
    that root on the node share the surrogate/expert cache (`.cache` inside it)."""
    digest = hashlib.sha256(f"{socket.gethostname()}:{driver_root}".encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "ddbias-ray" / digest


def run_cell_files(name: str, config: dict[str, Any], driver_root: str, threads: int) -> dict[str, Any]:
    """The Ray task: run one cell in a scratch folder, return its files (name -> bytes) and the
    node's name. Failures are recorded in the returned status.json, like any run's."""
    # results are deterministic for a given thread count: the task's CPUs. Without
    # NUMBA_NUM_THREADS, UMAP's first fit resets torch's thread count to numba's default (all cores)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))
    import torch

    from ..hardware import configure_allocator
    from ..pipeline import execute_run

    configure_allocator()  # as the CLI and the worker do for their jobs
    torch.set_num_threads(threads)
    run_dir = runstore.create_run(scratch_root(driver_root) / f"{name}-{uuid.uuid4().hex[:8]}",
                                  RunConfig.from_dict(config))
    try:
        execute_run(run_dir)
    except Exception:
        pass  # execute_run recorded why in status.json and log.txt, which go back to the driver
    files = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and not p.name.startswith(".")}
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"files": files, "node": socket.gethostname()}


class RayBackend:
    """Ray Core: one task per cell. `address` None: RAY_ADDRESS, else a new local instance with
    `num_cpus` CPUs (all of the machine's when None). `gpus_per_cell` None: 1 when the cluster
    has GPUs, else 0. `echo` receives a line as each cell ends (the CLI prints it)."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_cell: int = 1, gpus_per_cell: float | None = None,
                 num_cpus: int | None = None, poll_seconds: float = 0.5,
                 echo: Callable[[str], None] | None = None) -> None:
        if cpus_per_cell < 1:
            raise ConfigError(f"CPUs per cell must be at least 1, got {cpus_per_cell}")
        if gpus_per_cell is not None and not (math.isfinite(gpus_per_cell) and gpus_per_cell >= 0):
            raise ConfigError(f"GPUs per cell must be zero or more, got {gpus_per_cell}")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.cpus_per_cell, self.gpus_per_cell = cpus_per_cell, gpus_per_cell
        self.num_cpus, self.poll_seconds, self.echo = num_cpus, poll_seconds, echo
        self._ray: Any = None  # the ray module once `check` has connected
        self._started = False  # whether `check` started Ray (then `launch` shuts it down)

    def check(self, spec: SweepSpec, cells: tuple[Cell, ...]) -> None:
        """Connect (the data may exist only on the workers: each task checks its own cell)."""
        if cells:
            self._ray, self._started = self._connect()

    def _connect(self) -> tuple[Any, bool]:
        """(the ray module, whether this call started Ray and so shuts it down afterwards)."""
        import ray

        if ray.is_initialized():
            return ray, False
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise DDError(f"cannot start or reach {where}: {str(exc).splitlines()[0]}") from None
        return ray, True

    def launch(self, root: Path, spec: SweepSpec, cells: tuple[Cell, ...]) -> None:
        if not cells:
            return
        try:
            _Driver(self._ray, self, Path(root), spec.name).run(cells)
        finally:
            if self._started:
                self._ray.shutdown()


class _Driver:
    """Feeds cells to Ray as fast as the cluster takes them and writes back what they return."""

    def __init__(self, ray: Any, backend: RayBackend, root: Path, sweep: str) -> None:
        self.ray, self.backend, self.root, self.sweep = ray, backend, root, sweep
        gpus = backend.gpus_per_cell
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        self.gpus = gpus
        self.task = ray.remote(num_cpus=backend.cpus_per_cell, num_gpus=gpus, max_retries=0)(run_cell_files)

    def capacity(self) -> int:
        """Cells the cluster can run at once (re-read each round: an autoscaler may add nodes)."""
        res = self.ray.cluster_resources()
        slots = int(res.get("CPU", 0) // self.backend.cpus_per_cell)
        if self.gpus:
            slots = min(slots, int(res.get("GPU", 0) // self.gpus))
        return max(slots, 1)

    def run(self, cells: tuple[Cell, ...]) -> None:
        pending: list[Path] = []
        for cell in cells:
            run_dir = runstore.create_run(self.root / cell.name, cell.config)
            store.write_tag(run_dir, self.sweep, cell)
            if runstore.claim(run_dir):  # else a local worker took it first and runs it
                # queued and held by this driver: if the driver dies, the cell reads back as failed
                runstore.update_status(run_dir, pid=os.getpid(), message="waiting for a Ray worker")
                pending.append(run_dir)
        inflight: dict[Any, Path] = {}
        cancelled: set[Any] = set()
        total, ended = len(pending), 0
        try:
            while pending or inflight:
                pending = [p for p in pending if runstore.read_status(p).state == "queued"]  # drop cancelled
                room = self.capacity() - len(inflight)
                while pending and room > 0:
                    run_dir = pending.pop(0)
                    inflight[self._dispatch(run_dir)] = run_dir
                    room -= 1
                if not inflight:
                    continue
                ready, _ = self.ray.wait(list(inflight), num_returns=1, timeout=self.backend.poll_seconds)
                for ref in ready:
                    run_dir = inflight.pop(ref)
                    self._collect(ref, run_dir)
                    ended += 1
                    if self.backend.echo:
                        self.backend.echo(f"[{ended}/{total}] {run_dir.name}: {runstore.read_status(run_dir).state}")
                for ref, run_dir in inflight.items():
                    if ref not in cancelled and runstore.cancel_requested(run_dir):
                        self.ray.cancel(ref, force=True)
                        cancelled.add(ref)
        finally:  # interrupted (Ctrl-C, an error): stop what runs, release what waits
            for ref, run_dir in inflight.items():
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 (Ray already shut down: its tasks went with it)
                    pass
                self._finish(run_dir, "cancelled", "the sweep driver stopped")
            for run_dir in pending:
                self._finish(run_dir, "cancelled", "the sweep driver stopped before it ran")

    def _dispatch(self, run_dir: Path) -> Any:
        runstore.append_log(run_dir, "sent to Ray")
        runstore.update_status(run_dir, state="running", stage="ray", started=time.time(), pid=os.getpid(),
                               message="running on a Ray worker")
        config = runstore.read_json(run_dir / "config.json")
        return self.task.remote(run_dir.name, config, str(self.root.resolve()), self.backend.cpus_per_cell)

    def _collect(self, ref: Any, run_dir: Path) -> None:
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.TaskCancelledError:
            self._finish(run_dir, "cancelled", "cancelled by the user")
            return
        except self.ray.exceptions.RayError as exc:
            if runstore.cancel_requested(run_dir):  # a force-cancelled task may also read as crashed
                self._finish(run_dir, "cancelled", "cancelled by the user")
            else:
                self._finish(run_dir, "failed", f"the Ray task failed: {str(exc).strip().splitlines()[0]}")
            return
        files = result["files"]
        for name, data in files.items():
            if name not in ("status.json", "config.json"):
                runstore.write_bytes(run_dir / name, data)
        runstore.append_log(run_dir, f"ran on Ray node {result['node']}")
        status = {**json.loads(files["status.json"]), "pid": None}
        runstore.write_json(run_dir / "status.json", status)

    def _finish(self, run_dir: Path, state: str, message: str) -> None:
        runstore.append_log(run_dir, f"{state}: {message}")
        runstore.update_status(run_dir, state=state, message=message, finished=time.time(), pid=None)


def make_backend(name: str, ray_address: str | None = None, cpus_per_cell: int | None = None,
                 gpus_per_cell: float | None = None, echo: Callable[[str], None] | None = None) -> Backend:
    """A backend by name, from the CLI's options; the Ray-only ones are refused for `local`."""
    if name == "local":
        given = [o for o, v in (("--ray-address", ray_address), ("--cpus-per-cell", cpus_per_cell),
                                ("--gpus-per-cell", gpus_per_cell)) if v is not None]
        if given:
            raise ConfigError(f"{given[0]} goes with --backend ray")
        return LocalBackend()
    if name == "ray":
        return RayBackend(ray_address, cpus_per_cell or 1, gpus_per_cell, echo=echo)
    raise ConfigError(f"unknown backend '{name}'; choose one of {', '.join(BACKENDS)}")
