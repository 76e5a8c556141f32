"""Sweep cells on disk: ordinary run folders (ddcore.runstore) tagged with `sweep.json`.

    sweep.json   {"sweep": name, "key": config hash, "index": order in the spec,
                  "axes": {field: value} (the cell's axis values), "seed": int}

A sweep is every run folder under the root whose tag names it, so `list`, the Runs page and
every other tool see its cells as plain runs. A cell whose process died reads back as failed
(runstore's rule); a queued cell held by a Ray driver that is gone (its status `pid`) too.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import runstore
from ..config import FLAT_FIELDS, RunConfig
from ..errors import ConfigError
from ..records import STATES, DamagedRun, Metrics
from ..runstore import Status
from .spec import Cell, result_key

TAG = "sweep.json"
STALE_MESSAGE = "the sweep driver holding it stopped before it ran"


@dataclass(frozen=True)
class Tag:
    sweep: str
    key: str
    index: int
    axes: tuple[tuple[str, Any], ...]
    seed: int


@dataclass(frozen=True)
class CellRecord:
    """One cell as found on disk. `config` is None (and `error` set) for a damaged folder."""

    name: str
    path: Path
    tag: Tag
    config: RunConfig | None
    status: Status
    error: str | None = None

    @property
    def state(self) -> str:
        return self.status.state


@dataclass(frozen=True)
class CellMetrics:
    """What the sweep tables read of a finished cell: accuracies in percent, weight share as a
    fraction, the bandwidth the KDE used (None for a baseline) and the run's wall time."""

    unbiased: float | None
    aligned: float | None
    conflicting: float | None
    weight_share_conflicting: float | None
    kde_sigma: float | None
    seconds: float | None


def cell_metrics(run_dir: Path) -> CellMetrics | None:
    """The one place sweeps read a run's metrics; None until the run has written them, or when
    its metrics.json is damaged (the Runs page and `list` say why)."""
    try:
        m = Metrics.load(run_dir)
    except DamagedRun:
        return None
    if m is None:
        return None
    return CellMetrics(m.test_acc_unbiased, m.test_acc_aligned, m.test_acc_conflicting, m.weight_share_conflicting,
                       m.kde_sigma, m.seconds_total)


def write_tag(run_dir: Path, sweep: str, cell: Cell) -> None:
    runstore.write_json(Path(run_dir) / TAG, {"sweep": sweep, "key": cell.key, "index": cell.index,
                                              "axes": dict(cell.axes), "seed": cell.seed})


def _plain(value: Any) -> bool:
    """A config value as the tables print it: a number, a printable string, true/false or null."""
    return value is None or isinstance(value, bool | int | float) or (isinstance(value, str) and value.isprintable())


def read_tag(run_dir: Path) -> Tag | None:
    """The folder's tag, or None when it has none (or an unreadable one: not a sweep cell then)."""
    try:
        raw = runstore.read_json(Path(run_dir) / TAG)
        tag = Tag(str(raw["sweep"]), str(raw["key"]), int(raw["index"]), tuple(raw["axes"].items()), int(raw["seed"]))
        if any(name not in FLAT_FIELDS or not _plain(value) for name, value in tag.axes):  # not as ddcore wrote it
            return None
        return tag
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError):  # OverflowError: int(inf)
        return None


def _driver_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


def _record(path: Path, tag: Tag) -> CellRecord:
    info = runstore.read_run(path)
    status = info.status
    if status.state == "queued" and status.pid is not None and _driver_gone(status.pid):
        status = replace(status, state="failed", message=STALE_MESSAGE)
    return CellRecord(path.name, path, tag, info.config, status, info.error)


def _tagged(root: Path) -> list[tuple[Path, Tag]]:
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    return [(p, tag) for p in folders if (tag := read_tag(p)) is not None]


def sweep_cells(root: Path, sweep: str) -> list[CellRecord]:
    """Every cell of sweep `sweep` under root, in spec order."""
    found = [_record(p, tag) for p, tag in _tagged(root) if tag.sweep == sweep]
    return sorted(found, key=lambda c: (c.tag.index, c.name))


def sweep_names(root: Path) -> list[str]:
    """The sweeps that have cells under root, newest first."""
    newest: dict[str, float] = {}
    for path, tag in _tagged(root):
        newest[tag.sweep] = max(newest.get(tag.sweep, 0.0), path.stat().st_mtime)
    return sorted(newest, key=lambda s: -newest[s])


def require_cells(root: Path, sweep: str) -> list[CellRecord]:
    cells = sweep_cells(root, sweep)
    if not cells:
        known = ", ".join(sweep_names(root)) or "none"
        raise ConfigError(f"no sweep named '{sweep}' under {root} (sweeps there: {known})")
    return cells


def waits_for_worker(root: Path, sweep: str) -> bool:
    """Whether a cell of the sweep is queued for the local worker (not held by a Ray driver, which
    its status' pid names)."""
    return any(c.state == "queued" and c.status.pid is None for c in sweep_cells(root, sweep))


def state_counts(cells: list[CellRecord]) -> dict[str, int]:
    counts = Counter(c.state for c in cells)
    return {s: counts[s] for s in STATES if counts[s]}


@dataclass(frozen=True)
class Plan:
    """What a (re-)run of a sweep does: cells already done are skipped, cells queued or running
    are left to whoever runs them, the rest (new, failed, cancelled) are queued. `paths` names the
    folder of each done or active cell (its own name, or an older name: see `plan`)."""

    done: tuple[Cell, ...]
    active: tuple[Cell, ...]
    todo: tuple[Cell, ...]
    paths: dict[str, Path]  # cell key -> folder


def plan(root: Path, sweep: str, cells: tuple[Cell, ...]) -> Plan:
    """Sort the cells of sweep `sweep` by what is on disk. A cell's folder is named by the hash of
    its whole configuration; when a later version adds a configuration field or changes an
    execution setting's default (--compile), that hash changes though the run is the same, so a
    finished or running cell of the sweep found under another name with the same run's
    configuration (its config.json read with the new field's default; execution settings aside,
    `RunConfig.result_dict`) counts as that cell: an upgrade never reruns finished work."""
    root = Path(root)
    elsewhere: dict[str, Path] = {}
    for path, tag in _tagged(root):
        record = _record(path, tag) if tag.sweep == sweep else None
        if record is not None and record.config is not None and record.state in ("done", "queued", "running"):
            elsewhere.setdefault(result_key(record.config), path)
    done, active, todo, paths = [], [], [], {}
    for cell in cells:
        path = root / cell.name
        if not path.exists():
            path = elsewhere.get(result_key(cell.config), path)
        if not path.exists():
            todo.append(cell)
            continue
        tag = read_tag(path)
        record = _record(path, tag) if tag else None
        if record is not None and record.config is not None and result_key(record.config) != result_key(cell.config):
            raise ConfigError(f"{path} holds a different configuration than the cell it is named after; "
                              "move it away before re-running the sweep")
        state = record.state if record is not None else runstore.read_run(path).status.state
        (done if state == "done" else active if state in ("queued", "running") else todo).append(cell)
        if state in ("done", "queued", "running"):
            paths[cell.key] = path
    return Plan(tuple(done), tuple(active), tuple(todo), paths)


def clear_for_rerun(root: Path, cell: Cell) -> None:
    """Remove a failed, cancelled or stale cell's folder so the cell can be queued anew."""
    path = Path(root) / cell.name
    if not path.exists():
        return
    status = runstore.read_run(path).status
    if status.state == "queued":  # a stale one (plan() queues no live queued cell again)
        runstore.update_status(path, state="failed", message=STALE_MESSAGE, finished=time.time())
    runstore.delete_run(path)


def cancel(root: Path, sweep: str) -> list[str]:
    """Ask every queued or running cell of the sweep to stop (both backends watch the cells'
    cancel files); returns their names."""
    asked = []
    for cell in require_cells(root, sweep):
        if cell.error is None and cell.state in ("queued", "running"):
            runstore.request_cancel(cell.path)
            asked.append(cell.name)
    return asked
