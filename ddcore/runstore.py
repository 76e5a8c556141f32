"""Run folders: the one on-disk format that the CLI, the worker, the app and the benchmarks share.

Layout of `<root>/<name>/` (every file is written atomically: temp file + rename):

    config.json      RunConfig.to_dict(); written once at creation
    status.json      {"state": queued|running|done|failed|cancelled, "stage", "progress" (0..1),
                      "iteration", "iterations", "loss", "eta_seconds", "message",
                      "created", "started", "updated", "finished" (unix seconds), "pid"}
    log.txt          human-readable log, appended line by line
    synthetic.pt     {"images": float32 [C*IPC, 3, H, W] in [0, 1], "labels": int64 [C*IPC]}
                     plain tensors: load with torch.load(..., weights_only=True)
    synthetic.png    grid of the synthetic images, one row per class
    metrics.json     test_acc_{unbiased,aligned,conflicting}[_std] in percent (0..100; None when the
                     test split lacks the group), weight_share_conflicting and count_share_conflicting
                     as fractions (0..1), kde_sigma, seconds_total, seconds_per_stage, device, ...
    embeddings.npz   real_*: index (row of the training split), features, density, log_density,
                     weight, label, bias, map (2-D) for the mapped subset (at most map_points);
                     syn_*: features, log_density, label, map, neighbors (rows of real_*);
                     train_*: log_density, weight, label, bias for the whole training split;
                     aligned_bias: class c's bias-aligned attribute value (int64 [num_classes];
                     absent in older runs, where it was c);
                     `density_space`: a 0-d string saying what the density was computed on
    cancel           present when the user asked the job to stop
    sweep.json       present when the run is a cell of a sweep: {"sweep", "key", "index", "axes", "seed"}
                     (read and written by ddcore.sweeps.store only)
    .claim           present once a worker has taken the run

`<root>/.cache/` holds work that runs share and that is safe to delete (it is recomputed when
missing): `surrogate-<key>.pt` (the surrogate encoder of a data/seed/settings key) and
`experts-<key>/expert-NNN.pt` (MTT's expert trajectories, ddcore.experts).

A run that dies without reaching "done" is shown as failed: a "running" status whose process
no longer exists reads back as failed. A damaged folder never breaks `list_runs`.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import RunConfig
from .errors import ConfigError, DDError

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; run folders are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    data = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False).encode()
    _atomic_write(path, lambda f: f.write(data))


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


@dataclass(frozen=True)
class Status:
    state: str = "queued"
    stage: str = ""
    progress: float = 0.0
    iteration: int = 0
    iterations: int = 0
    loss: float | None = None
    eta_seconds: float | None = None
    message: str = ""
    created: float = 0.0
    started: float | None = None
    updated: float = 0.0
    finished: float | None = None
    pid: int | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class RunInfo:
    """One row of the run listing. `error` is set (and the rest may be empty) for a damaged folder."""

    name: str
    path: Path
    config: RunConfig | None
    status: Status
    metrics: dict[str, Any] | None
    error: str | None = None


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise ConfigError(
            f"run name '{name}' is invalid: use letters, digits, '.', '_' or '-' (at most 100 characters)"
        )
    return name


def new_run_name(cfg: RunConfig) -> str:
    """A readable, unique-enough default name: what it is, then when it was made."""
    what = "baseline" if cfg.kind == "baseline" else f"{cfg.distill.method}-{cfg.reweight.reweight}-ipc{cfg.distill.ipc}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    ratio = "asis" if cfg.data.conflict_ratio is None else f"{cfg.data.conflict_ratio:g}"  # None: as the files come
    return f"{stamp}-{cfg.data.dataset}-r{ratio}-{what}-s{cfg.seed}-{os.urandom(2).hex()}"


def create_run(run_dir: Path, cfg: RunConfig, overwrite: bool = False) -> Path:
    """Make a run folder holding config.json and a queued status. Refuses to touch an existing,
    non-empty folder unless `overwrite` (then only a finished run may be replaced)."""
    run_dir = Path(run_dir)
    validate_name(run_dir.name)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise ConfigError(f"{run_dir} already exists and is not empty; pass --overwrite to replace it")
        if read_status(run_dir).state in ("queued", "running"):
            raise ConfigError(f"{run_dir} holds a run that is still {read_status(run_dir).state}; cancel it first")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", cfg.to_dict())
    now = time.time()
    write_json(run_dir / "status.json", asdict(Status(created=now, updated=now)))
    return run_dir


def read_config(run_dir: Path) -> RunConfig:
    return RunConfig.from_dict(read_json(Path(run_dir) / "config.json"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(run_dir: Path) -> Status:
    raw = read_json(Path(run_dir) / "status.json")
    status = Status(**{k: v for k, v in raw.items() if k in Status.__dataclass_fields__})
    if status.state not in STATES:
        raise DDError(f"unknown state '{status.state}' in {run_dir}/status.json")
    if status.state == "running" and status.pid is not None and not _pid_alive(status.pid):
        return replace(status, state="failed", message=status.message or "the process running this job died")
    return status


def update_status(run_dir: Path, **changes: Any) -> Status:
    run_dir = Path(run_dir)
    try:
        current = Status(**{k: v for k, v in read_json(run_dir / "status.json").items() if k in Status.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        current = Status(created=time.time())
    new = replace(current, updated=time.time(), **changes)
    write_json(run_dir / "status.json", asdict(new))
    return new


def append_log(run_dir: Path, line: str) -> None:
    with open(Path(run_dir) / "log.txt", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def read_log(run_dir: Path, max_lines: int = 200) -> list[str]:
    try:
        with open(Path(run_dir) / "log.txt") as f:
            return f.read().splitlines()[-max_lines:]
    except OSError:
        return []


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "metrics.json"
    return read_json(path) if path.exists() else None


def save_synthetic(run_dir: Path, images: torch.Tensor, labels: torch.Tensor) -> None:
    payload = {"images": images.detach().float().cpu().contiguous(), "labels": labels.detach().long().cpu()}
    _atomic_write(Path(run_dir) / "synthetic.pt", lambda f: torch.save(payload, f))


def load_synthetic(run_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    path = Path(run_dir) / "synthetic.pt"
    if not path.exists():
        raise DDError(f"{run_dir} has no synthetic images (state: {read_status(run_dir).state})")
    payload = torch.load(path, weights_only=True, map_location="cpu")
    return payload["images"], payload["labels"]


def save_embeddings(run_dir: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(f):
        np.savez_compressed(f, **arrays)

    _atomic_write(Path(run_dir) / "embeddings.npz", write)


def load_embeddings(run_dir: Path) -> dict[str, np.ndarray]:
    path = Path(run_dir) / "embeddings.npz"
    if not path.exists():
        raise DDError(f"{run_dir} has no embedding map yet")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(Path(path), lambda f: f.write(data))


def request_cancel(run_dir: Path) -> None:
    """Ask a job to stop. A queued job is cancelled at once; a running one at its next check."""
    run_dir = Path(run_dir)
    (run_dir / "cancel").touch()
    if read_status(run_dir).state == "queued":
        update_status(run_dir, state="cancelled", message="cancelled before it started", finished=time.time())


def cancel_requested(run_dir: Path) -> bool:
    return (Path(run_dir) / "cancel").exists()


def claim(run_dir: Path) -> bool:
    """Atomically take a queued run for one worker; False if someone else has it."""
    try:
        fd = os.open(Path(run_dir) / ".claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def read_run(run_dir: Path) -> RunInfo:
    """Everything the listing shows about one run; never raises for a damaged folder."""
    run_dir = Path(run_dir)
    try:
        cfg = read_config(run_dir)
        status = read_status(run_dir)
        metrics = read_metrics(run_dir)
        return RunInfo(run_dir.name, run_dir, cfg, status, metrics)
    except Exception as exc:  # a damaged folder is reported, not propagated
        return RunInfo(run_dir.name, run_dir, None, Status(state="failed"), None, error=f"damaged run folder: {exc}")


def list_runs(root: Path) -> list[RunInfo]:
    """All run folders under `root`, newest first. Missing root: empty list."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [read_run(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(runs, key=lambda r: (r.status.created, r.name), reverse=True)


def delete_run(run_dir: Path) -> None:
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists() and not (run_dir / "status.json").exists():
        raise DDError(f"{run_dir} is not a run folder; refusing to delete it")
    info = read_run(run_dir)
    if info.error is None and info.status.state in ("queued", "running"):
        raise DDError(f"run {run_dir.name} is {info.status.state}; cancel it before deleting")
    shutil.rmtree(run_dir)


def export_run(run_dir: Path) -> bytes:
    """The whole run folder as a zip archive (in memory), for download."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(run_dir.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                z.write(p, arcname=f"{run_dir.name}/{p.name}")
    return buf.getvalue()


CACHE_DIR = ".cache"


def cache_dir(root: Path) -> Path:
    """Where runs under `root` share reusable work (see the layout above)."""
    return Path(root) / CACHE_DIR


@dataclass(frozen=True)
class CacheEntry:
    name: str  # "surrogate-<key>.pt" or "experts-<key>"
    files: int
    bytes: int


def cache_usage(root: Path) -> list[CacheEntry]:
    """Every entry of `root`'s cache with its size, largest first (empty when there is none)."""
    entries = []
    folder = cache_dir(root)
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
        entries.append(CacheEntry(path.name, len(files), sum(f.stat().st_size for f in files)))
    return sorted(entries, key=lambda e: -e.bytes)


def clear_cache(root: Path) -> int:
    """Delete `root`'s cache; returns the bytes freed. Runs only ever recompute what is missing,
    so this loses time, never results; a running job may be writing into it, so that refuses."""
    running = [r.name for r in list_runs(root) if r.status.state == "running"]
    if running:
        raise DDError(f"run {running[0]} is running under {root}; clear the cache once it has finished")
    freed = sum(e.bytes for e in cache_usage(root))
    shutil.rmtree(cache_dir(root), ignore_errors=True)
    return freed
