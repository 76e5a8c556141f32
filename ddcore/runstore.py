"""Run folders: the one on-disk format that the CLI, the worker, the app and the benchmarks share.

A runs root is a folder ddcore made: it holds the marker file `.ddcore-runs`, and ddcore uses no
other folder as a root except an empty or new one (`init_root` marks it; a folder of runs written
before the marker existed is adopted when it holds nothing else). Layout of `<root>/<name>/`
(every file is written atomically: temp file + rename; the typed records are in ddcore.records):

    config.json      RunConfig.to_dict(); written once at creation
    status.json      records.Status: {"state": queued|running|done|failed|cancelled, "stage",
                      "progress" (0..1), "iteration", "iterations", "loss", "eta_seconds", "message",
                      "warning", "created", "started", "updated", "finished" (unix seconds), "pid",
                      "version"}
    log.txt          human-readable log, appended line by line
    synthetic.pt     records.SyntheticImages: {"images": float32 [C*IPC, 3, H, W] normalised by
                     "mean"/"std" (float32 [3]: the training split's; runs before normalisation: 0 and 1), "labels":
                     int64 [C*IPC], "version"}; plain tensors: torch.load(..., weights_only=True)
    synthetic.png    grid of the synthetic images, one row per class
    metrics.json     records.Metrics, flat: test_acc_{unbiased,aligned,conflicting}[_std] in percent
                     (0..100; None when the test split lacks the group), weight_share_conflicting
                     and count_share_conflicting as fractions (0..1), kde_sigma, seconds_total,
                     seconds_per_stage, device, warning, ..., then a method's own results
    embeddings.npz   records.EmbeddingMap: real_* (the mapped subset of the training split, with
                     thumbnails), syn_*, train_*, aligned_bias, the class and bias-value names and
                     colours, the density space in words, "version"
    cancel           present when the user asked the job to stop
    sweep.json       present when the run is a cell of a sweep: {"sweep", "key", "index", "axes", "seed"}
                     (read and written by ddcore.sweeps.store only)
    .claim           present once a worker has taken the run (holds the worker's pid)
    .lock            held (flock) by the process executing the run

A run folder holds nothing else, and Delete and Export touch nothing else: a folder with other
entries, or one that is a symbolic link, is refused with a message.

A root that also holds `.ddcore-shipped` ships with ddbias (`examples/runs/`): its runs are listed,
read and exported, never written: no new run, replacement, re-evaluation, deletion or cache clearing
there (only scripts/make_examples.py remakes them).

`<root>/.cache/` holds work that runs share and that is safe to delete (it is recomputed when
missing): `surrogate-<key>.pt` (the surrogate encoder of a data/seed/settings key),
`experts-<key>/expert-NNN.pt` (MTT's expert trajectories, ddcore.methods.experts),
`map-<key>.npy` (a UMAP layout of the real samples, ddcore.embedmap: the vanilla and reweighted
run of a pair share it) and `precision-<machine>-<sizes>.json` (bf16's measured speed,
ddcore.hardware).
`<root>/.worker.lock` and `.worker.log` belong to the job worker (ddcore.jobs).

A run that dies without reaching "done" reads back as failed: a "running" status whose `.lock`
nobody holds any more. A damaged folder never breaks `list_runs`; it is a row with an `error`.
"""
from __future__ import annotations

import fcntl
import io
import os
import re
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .config import SECTION_TYPES, RunConfig, validate
from .errors import ConfigError, DDError
from .records import (DamagedRun, Metrics, RecordError, Status, atomic_write, check_fields, open_regular, read_json,
                      write_json)

MARKER = ".ddcore-runs"
SHIPPED = ".ddcore-shipped"  # beside MARKER in a root whose runs ship with ddbias: read-only
CACHE_DIR = ".cache"
WORKER_FILES = (".worker.lock", ".worker.log")
RUN_FILES = frozenset({"config.json", "status.json", "log.txt", "synthetic.pt", "synthetic.png", "metrics.json",
                       "embeddings.npz", "sweep.json", "cancel", ".claim", ".lock"})
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")  # records.atomic_write's temp files
_CACHE_RE = re.compile(r"^(surrogate-[0-9a-f]+\.pt|experts-[0-9a-f]+|map-[0-9a-f]+\.npy|precision-[0-9a-f]+-[0-9a-f]+\.json)$")
_EXPERT_RE = re.compile(r"^expert-\d{3,}\.pt$")


# roots -------------------------------------------------------------------------------------------


@contextmanager
def cannot(action: str, path: Path) -> Iterator[None]:
    """An OSError in the body as one line for the user, "cannot <action> <path> (<reason>)" (a
    DDError): a read-only runs folder, or something other than what ddcore writes in the way."""
    try:
        yield
    except OSError as exc:
        raise DDError(f"cannot {action} {path} ({exc.strerror or exc})") from None


def check_root(root: str | Path) -> Path:
    """`root` (`~` expanded) as an absolute path, if ddcore may keep runs there: a folder it
    marked, an empty or missing one, or an unmarked one that holds only run folders and ddcore's
    own files (written before the marker existed: it is marked now). DDError otherwise."""
    text = os.path.expanduser(str(root))
    if text.startswith("~"):  # expanduser leaves ~name as it is when there is no such user
        raise DDError(f"runs folder {str(root)!r}: there is no user {text[1:].split(os.sep)[0]!r} whose home '~' could name")
    try:
        path = Path(text).resolve()
        exists, is_dir, marked = path.exists(), path.is_dir(), (path / MARKER).is_file()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        raise DDError(f"runs folder {str(root)!r} is not a usable path ({exc})") from None
    if exists and not is_dir:
        raise DDError(f"runs folder {path} is a file, not a folder; choose a folder for the runs")
    if not exists or marked:
        return path
    try:
        entries = list(path.iterdir())
    except OSError as exc:
        raise DDError(f"cannot read the runs folder {path} ({exc.strerror})") from None
    foreign = [e.name for e in entries if not _ours_in_root(e)]
    if foreign:
        count = f"{len(foreign)} entr{'y' if len(foreign) == 1 else 'ies'}"
        raise DDError(f"{path} is not a ddcore runs folder: it holds {count} "
                      f"ddcore did not make ('{min(foreign)}'{', ...' if len(foreign) > 1 else ''}); choose an "
                      "empty or new folder, or one ddcore created")
    if entries:
        try:
            _write_marker(path)
        except OSError:  # a read-only folder of runs can still be listed
            pass
    return path


def check_writable_root(root: str | Path) -> Path:
    """check_root, refusing a shipped root too: for commands that will write runs there, before
    they do anything slow (a sweep on Ray connects to a cluster first)."""
    path = check_root(root)
    _refuse_shipped(path, "made there")
    return path


def init_root(root: str | Path, shipped_ok: bool = False) -> Path:
    """check_root, then make the folder (and its marker) if it is not there yet. A shipped root
    is refused unless `shipped_ok` (scripts/make_examples.py remaking the examples)."""
    path = check_root(root) if shipped_ok else check_writable_root(root)
    cache_dir(path)  # before any run is made there
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DDError(f"cannot create the runs folder {path} ({exc.strerror})") from None
    try:
        _write_marker(path)
    except OSError as exc:
        raise DDError(f"cannot write in the runs folder {path} ({exc.strerror})") from None
    return path


def mark_shipped(root: Path) -> None:
    """Mark a runs root as one whose runs ship with ddbias (read-only; see the module docstring)."""
    write_bytes(Path(root) / SHIPPED, b"runs that ship with ddbias: read-only; scripts/make_examples.py makes them\n")


def is_shipped(root: Path) -> bool:
    return (Path(root) / SHIPPED).is_file()


def _refuse_shipped(root: Path, action: str) -> None:
    if is_shipped(root):
        raise DDError(f"{root} holds the example runs that ship with ddbias, which are read-only ({SHIPPED}); "
                      f"nothing was {action} (copy a run into your own runs folder to work on it)")


def _write_marker(path: Path) -> None:
    # O_EXCL, not a temp file and a rename: a concurrent check must never see a stray temp file
    try:
        fd = os.open(path / MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write("ddcore runs folder: python -m ddcore list --runs <this folder>\n")


def _ours_in_root(entry: Path) -> bool:
    """Whether an entry of an unmarked root looks like ddcore's (see check_root)."""
    if entry.is_symlink():
        return False
    if entry.name in WORKER_FILES:
        return entry.is_file()
    if entry.name == CACHE_DIR:
        return entry.is_dir() and not _foreign_cache_entries(entry)
    return entry.is_dir() and _made_by_ddcore(entry)


def _require_marked(root: Path) -> Path:
    root = check_root(root)
    if not (root / MARKER).is_file():
        raise DDError(f"{root} is not a ddcore runs folder (it has no {MARKER} marker); nothing was changed")
    return root


# run folders ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """One row of the run listing. `error` is set for a damaged folder; what could still be read
    of it is kept (config, status), the rest is None or a failed status."""

    name: str
    path: Path
    config: RunConfig | None
    status: Status
    metrics: Metrics | None
    error: str | None = None


def validate_name(name: str) -> str:
    if name in ("", ".", ".."):  # what `--out .`, `--out /` or `--out ..` leave as the last part
        raise ConfigError("a run needs a folder of its own: end the path with the run's name (e.g. runs/my-run)")
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"run name '{name}' is invalid: use letters, digits, '.', '_' or '-' (at most 100 characters)"
        )
    return name


def new_run_name(cfg: RunConfig) -> str:
    """A readable, unique-enough default name: what it is, then when it was made."""
    what = {"baseline": "baseline", "random-subset": f"random-subset-ipc{cfg.distill.ipc}"}.get(
        cfg.kind, f"{cfg.distill.method}-{cfg.reweight.reweight}-ipc{cfg.distill.ipc}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    ratio = "asis" if cfg.data.conflict_ratio is None else f"{cfg.data.conflict_ratio:g}"  # None: as the files come
    return f"{stamp}-{cfg.data.dataset}-r{ratio}-{what}-s{cfg.seed}-{os.urandom(2).hex()}"


def foreign_entries(run_dir: Path) -> list[str]:
    """Names in run_dir that are not part of a run folder's layout (sorted; empty for a run)."""
    out = []
    for entry in Path(run_dir).iterdir():
        if _base_name(entry.name) not in RUN_FILES or entry.is_symlink() or not entry.is_file():
            out.append(entry.name)
    return sorted(out)


def check_run_folder(run_dir: Path, action: str, shipped_ok: bool = False) -> Path:
    """run_dir, if it is a run folder directly inside a marked root, holding nothing but the
    layout's files; DDError saying why not and that nothing was `action` ("deleted", ...). A run
    in a shipped root passes only if `shipped_ok` (the action only reads it, or remakes examples)."""
    run_dir = Path(os.path.expanduser(str(run_dir)))
    if run_dir.is_symlink():
        raise DDError(f"{run_dir} is a symbolic link, not a run folder; nothing was {action}")
    if not run_dir.is_dir() or not _made_by_ddcore(run_dir):
        raise DDError(f"{run_dir} is not a run folder (no config.json or status.json that ddcore wrote); "
                      f"nothing was {action}")
    root = _require_marked(run_dir.parent)
    if not shipped_ok:
        _refuse_shipped(root, action)
    run_dir = root / run_dir.name
    foreign = foreign_entries(run_dir)
    if foreign:
        raise DDError(f"{run_dir} holds entries ddcore did not write ({', '.join(foreign[:3])}"
                      f"{', ...' if len(foreign) > 3 else ''}); move them out first; nothing was {action}")
    return run_dir


def _made_by_ddcore(run_dir: Path) -> bool:
    """Whether run_dir holds a config.json or a status.json that reads as ddcore's (one of them
    may be damaged: such a run is still ours to delete; a folder that merely holds a file called
    config.json is not)."""
    for read in (read_config, Status.load):
        try:
            read(run_dir)
            return True
        except (OSError, DDError):
            pass
    return False


def _make_run(run_dir: Path, cfg: RunConfig, claimed: bool = False) -> Path:
    with cannot("make the run folder", run_dir):
        run_dir.mkdir()
        if claimed:  # before the queued status exists, so that no worker can take it first
            claim(run_dir)
        write_json(run_dir / "config.json", cfg.to_dict())
        now = time.time()
        Status(created=now, updated=now).save(run_dir)
    return run_dir


def create_run(run_dir: Path, cfg: RunConfig, claimed: bool = False) -> Path:
    """Make a run folder holding config.json and a queued status, inside a runs root (made if
    missing). Refuses an existing folder: replacing a run is `stage_replacement`'s job.
    claimed: this process runs it (the CLI); a worker serving the same root never takes it."""
    run_dir = Path(os.path.expanduser(str(run_dir)))
    validate_name(run_dir.name)
    root = init_root(run_dir.parent)
    run_dir = root / run_dir.name
    if run_dir.exists() or run_dir.is_symlink():
        raise ConfigError(f"{run_dir} already exists; pass --overwrite to replace a finished run there")
    return _make_run(run_dir, cfg, claimed)


def stage_replacement(run_dir: Path, cfg: RunConfig) -> Path:
    """A new queued run beside the finished run at run_dir, in a hidden folder; once it has
    succeeded, `replace_run` swaps it in. Until then the old run is untouched, so a failed or
    killed replacement loses nothing (its folder stays, hidden, until the next replacement)."""
    old = check_run_folder(run_dir, "replaced")
    state = settled_state(old)
    if state in ("queued", "running"):
        raise ConfigError(f"{old} holds a run that is still {state}; cancel it first")
    staged, retired = old.parent / f".{old.name}.new", old.parent / f".{old.name}.old"
    if staged.exists() or staged.is_symlink():  # left by a replacement that was killed
        _clear_leftover(staged, "replacing", f"the finished replacement of {old} there was never swapped in")
    if retired.exists() or retired.is_symlink():  # now, not after the run: the swap needs the name
        _clear_leftover(retired, "retiring", "a retired run left there")
    return _make_run(staged, cfg, claimed=True)


def replace_run(staged: Path, run_dir: Path) -> Path:
    """Swap the succeeded run at `staged` in for the one at run_dir (then delete the old one).
    Both are checked again: they may have changed while the replacement ran."""
    staged = Path(os.path.expanduser(str(staged)))
    try:
        run_dir = check_run_folder(run_dir, "replaced")
        retired = run_dir.parent / f".{run_dir.name}.old"
        if retired.exists() or retired.is_symlink():
            _clear_leftover(retired, "retiring", "a retired run left there")
    except DDError as exc:
        raise type(exc)(f"{exc}; the new run is kept in {staged}") from None
    os.replace(run_dir, retired)
    os.replace(staged, run_dir)
    _remove_flat_folder(retired)
    return run_dir


def _clear_leftover(folder: Path, doing: str, done_note: str) -> None:
    """Remove a hidden run folder a killed replacement left, only if ddcore made it and nothing
    still runs or holds a result there; DDError otherwise, saying why (`done_note` for a result)."""
    if folder.is_symlink() or not folder.is_dir() or foreign_entries(folder):
        raise DDError(f"{folder} is in the way and ddcore did not make it; move it out first")
    state = settled_state(folder)
    if state == "running":
        raise ConfigError(f"another run is already {doing} {folder.name}")
    if state == "done":
        raise DDError(f"{folder} holds a finished run ({done_note}); move it out, or delete it, first")
    _remove_flat_folder(folder)


def settled_state(run_dir: Path) -> str:
    """The run's state, where a folder without status.json (a run killed as it was made) reads as
    running while its .lock is held and as failed once not. DamagedRun for a damaged status."""
    try:
        return read_status(run_dir).state
    except FileNotFoundError:
        return "running" if _lock_held(Path(run_dir) / ".lock") else "failed"


def _remove_flat_folder(folder: Path) -> None:
    """Delete a folder of files checked to be ddcore's (a run folder, an experts folder)."""
    for entry in folder.iterdir():
        entry.unlink()  # a file or a symlink itself, never what a link points to
    folder.rmdir()


def read_config(run_dir: Path) -> RunConfig:
    """The run's config with every field's type and value checked (as `distill` checks them before
    it writes one); FileNotFoundError when there is none, DamagedRun when it cannot be trusted."""
    path = Path(run_dir) / "config.json"
    try:
        raw = read_json(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise DamagedRun(path, f"not readable JSON ({exc})") from None
    try:
        if not isinstance(raw, dict) or not all(isinstance(raw.get(s, {}), dict) for s in SECTION_TYPES):
            raise RecordError("should hold a JSON object with one object per section")
        cfg = RunConfig.from_dict(raw)
        check_fields(cfg)
        return validate(cfg)
    except (ValueError, TypeError) as exc:  # ConfigError (an unknown option, a value out of range), RecordError
        raise DamagedRun(path, str(exc)) from None


def _lock_held(path: Path) -> bool:
    try:
        fd = open_regular(path)
    except (OSError, ValueError):  # missing, or not a lock ddcore made
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(run_dir: Path, status: Status) -> bool:
    """Whether the process executing a "running" run still exists: it holds the run's .lock (a
    pid alone could have been reused); folders from before .lock existed fall back to the pid."""
    lock = run_dir / ".lock"
    if lock.exists():
        return _lock_held(lock)
    return status.pid is not None and _pid_alive(status.pid)


def read_status(run_dir: Path) -> Status:
    """The run's status; a "running" one whose process died reads back as failed, saying so.
    FileNotFoundError when there is none, DamagedRun when it cannot be trusted."""
    run_dir = Path(run_dir)
    status = Status.load(run_dir)
    if status.state == "running" and not _alive(run_dir, status):
        return replace(status, state="failed", message=status.message or
                       "the process running this job died (killed, out of memory, or the machine restarted)")
    return status


def update_status(run_dir: Path, **changes: Any) -> Status:
    run_dir = Path(run_dir)
    try:
        current = Status.load(run_dir)
    except (FileNotFoundError, DamagedRun):
        current = Status(created=time.time())
    new = replace(current, updated=time.time(), **changes)
    new.save(run_dir)
    return new


@contextmanager
def running(run_dir: Path) -> Iterator[None]:
    """Hold run_dir's .lock while the body executes the run (see `read_status`)."""
    try:
        fd = open_regular(Path(run_dir) / ".lock", os.O_CREAT | os.O_WRONLY)
    except ValueError as exc:
        raise DamagedRun(Path(run_dir) / ".lock", str(exc)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DDError(f"run {Path(run_dir).name} is already being executed by another process") from None
    try:
        yield
    finally:
        os.close(fd)


def append_log(run_dir: Path, line: str) -> None:
    path = Path(run_dir) / "log.txt"
    try:
        fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except ValueError as exc:
        raise DamagedRun(path, str(exc)) from None
    with os.fdopen(fd, "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def read_log(run_dir: Path, max_lines: int = 200) -> list[str]:
    try:
        with os.fdopen(open_regular(Path(run_dir) / "log.txt"), errors="replace") as f:
            return f.read().splitlines()[-max_lines:]
    except (OSError, ValueError):  # none yet, or not a log ddcore wrote
        return []


def save_metrics(run_dir: Path, values: dict[str, Any]) -> Metrics:
    """Check `values` (metrics.json's flat keys) as a Metrics record, write it, return it."""
    metrics = Metrics.from_json(values)
    metrics.save(run_dir)
    return metrics


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write(Path(path), lambda f: f.write(data))


def request_cancel(run_dir: Path) -> None:
    """Ask a job to stop. A queued job is cancelled at once; a running one at its next check."""
    run_dir = Path(run_dir)
    with cannot("cancel", run_dir):
        (run_dir / "cancel").touch()
        if read_status(run_dir).state == "queued":
            update_status(run_dir, state="cancelled", message="cancelled before it started", finished=time.time())


def cancel_requested(run_dir: Path) -> bool:
    return (Path(run_dir) / "cancel").exists()


def claim(run_dir: Path) -> bool:
    """Atomically take a queued run for one worker; False if a live process has it. A claim left
    by a worker that died before starting the run is taken over."""
    path = Path(run_dir) / ".claim"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                with os.fdopen(open_regular(path), "rb") as f:
                    holder = f.read(32).decode().strip()
            except (OSError, ValueError):  # unreadable or not text: not a claim we can judge
                return False
            if holder.isdigit() and not _pid_alive(int(holder)):
                path.unlink(missing_ok=True)
                continue
            return False
        except OSError:  # a folder we may not write in, or one deleted since it was listed: not ours to run
            return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


# listing -----------------------------------------------------------------------------------------


def read_run(run_dir: Path) -> RunInfo:
    """Everything the listing shows about one run; never raises for a damaged folder."""
    run_dir = Path(run_dir)
    if run_dir.is_symlink():
        return RunInfo(run_dir.name, run_dir, None, Status(state="failed"), None,
                       error="a symbolic link, not a run folder (ddcore does not follow it)")
    errors: list[str] = []

    def attempt(read, missing: str | None):
        try:
            return read(run_dir)
        except FileNotFoundError:
            if missing:
                errors.append(missing)
        except DDError as exc:
            errors.append(str(exc))
        except OSError as exc:
            errors.append(f"{run_dir} is unreadable ({exc.strerror})")
        return None

    cfg = attempt(read_config, f"{run_dir / 'config.json'} is missing")
    status = attempt(read_status, f"{run_dir / 'status.json'} is missing")
    metrics = attempt(Metrics.load, None)
    error = f"damaged run folder: {errors[0]}" if errors else None
    return RunInfo(run_dir.name, run_dir, cfg, status or Status(state="failed"), metrics, error)


def _run_entries(root: Path) -> list[Path]:
    """The run folders under root (and symlinks to folders, which are shown as damaged)."""
    try:
        return [p for p in Path(root).iterdir() if not p.name.startswith(".") and p.is_dir()]
    except OSError:
        return []


def _newest_first(runs: list[RunInfo]) -> list[RunInfo]:
    return sorted(runs, key=lambda r: (r.status.created, r.name), reverse=True)


def list_runs(root: Path) -> list[RunInfo]:
    """All run folders under `root`, newest first. Missing root: empty list."""
    return _newest_first([read_run(p) for p in _run_entries(root)])


class RunsWatch:
    """`list_runs` for a caller that asks again and again (the app's jobs panel): each call stats
    the run files and re-reads only the runs whose files changed, plus the running ones (whose
    process may have died without a file changing). `reads` counts the runs read, for tests."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.reads = 0
        self._seen: dict[str, tuple[tuple, RunInfo]] = {}

    @staticmethod
    def _signature(run_dir: Path) -> tuple:
        out = []
        for name in ("config.json", "status.json", "metrics.json"):
            try:
                st = os.stat(run_dir / name)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def refresh(self) -> tuple[list[RunInfo], bool]:
        """(the listing, whether anything changed since the last call)."""
        seen, changed = {}, False
        for path in _run_entries(self.root):
            signature = self._signature(path)
            old = self._seen.get(path.name)
            if old is not None and old[0] == signature and old[1].status.state != "running":
                seen[path.name] = old
                continue
            info = read_run(path)
            self.reads += 1
            changed |= old is None or old[1] != info
            seen[path.name] = (signature, info)
        changed |= set(seen) != set(self._seen)
        self._seen = seen
        return _newest_first([info for _, info in seen.values()]), changed


# delete and export -------------------------------------------------------------------------------


def delete_run(run_dir: Path) -> None:
    """Delete a finished (or damaged) run folder of a marked root, file by file: only the layout's
    files, never through a symlink, never a folder holding anything else."""
    run_dir = check_run_folder(run_dir, "deleted")
    info = read_run(run_dir)
    # a damaged queued run is never started, so it may go; a running one may be writing
    if info.status.state == "running" or (info.status.state == "queued" and info.error is None):
        raise DDError(f"run {run_dir.name} is {info.status.state}; cancel it before deleting")
    with cannot("delete", run_dir):
        _remove_flat_folder(run_dir)


def export_run(run_dir: Path) -> bytes:
    """The run folder's files as a zip archive (in memory), for download."""
    run_dir = check_run_folder(run_dir, "exported", shipped_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(run_dir.iterdir()):
            if not p.name.startswith("."):
                z.write(p, arcname=f"{run_dir.name}/{p.name}")
    return buf.getvalue()


# the shared cache --------------------------------------------------------------------------------


def cache_dir(root: Path) -> Path:
    """Where runs under `root` share reusable work (see the layout above). DDError when something
    other than a folder is in its place: a symbolic link there would have runs write elsewhere."""
    folder = Path(root) / CACHE_DIR
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise DDError(f"{folder} is {'a symbolic link' if folder.is_symlink() else 'not a folder'}; ddcore keeps "
                      "its cache only in a folder of its own there: move it out of the way")
    return folder


def _base_name(name: str) -> str:
    """The file an atomic-write temp file is for (the name itself otherwise)."""
    temp = _TEMP_RE.match(name)
    return temp.group("name") if temp else name


def _foreign_cache_entries(folder: Path) -> list[str]:
    """Entries of a cache folder that ddcore did not write (sorted): anything but surrogate, map
    and precision files and experts folders holding only expert files, and any symlink."""
    def ours(entry: Path) -> bool:
        name = _base_name(entry.name)
        if entry.is_symlink() or not _CACHE_RE.match(name):
            return False
        if name.startswith("experts-") and name == entry.name:
            return entry.is_dir() and all(not e.is_symlink() and e.is_file() and _EXPERT_RE.match(_base_name(e.name))
                                          for e in entry.iterdir())
        return entry.is_file()

    return sorted(e.name for e in folder.iterdir() if not ours(e))


@dataclass(frozen=True)
class CacheEntry:
    name: str  # "surrogate-<key>.pt", "experts-<key>", "map-<key>.npy" or "precision-<machine>-<sizes>.json"
    files: int
    bytes: int


def cache_usage(root: Path) -> list[CacheEntry]:
    """Every entry ddcore wrote in `root`'s cache with its size, largest first (empty when none)."""
    folder = cache_dir(root)
    if not folder.is_dir():
        return []
    foreign = set(_foreign_cache_entries(folder))
    entries = []
    for path in sorted(folder.iterdir()):
        if path.name in foreign:
            continue
        files = list(path.iterdir()) if path.is_dir() else [path]
        entries.append(CacheEntry(path.name, len(files), sum(f.lstat().st_size for f in files)))
    return sorted(entries, key=lambda e: -e.bytes)


def clear_cache(root: Path) -> int:
    """Delete what ddcore wrote in `root`'s cache; returns the bytes freed. Runs only ever
    recompute what is missing, so this loses time, never results; a running job may be writing
    into it, so that refuses. Anything else found there is left where it is."""
    folder = cache_dir(check_root(root))
    if not (folder.exists() or folder.is_symlink()):
        return 0
    root = _require_marked(folder.parent)
    _refuse_shipped(root, "cleared")
    running = [r.name for r in list_runs(root) if r.status.state == "running"]
    running += [p.name for p in root.glob(".*.new") if p.is_dir() and not p.is_symlink()  # --overwrite's runs
                and _lock_held(p / ".lock")]
    if running:
        raise DDError(f"run {running[0]} is running under {root}; clear the cache once it has finished")
    usage = cache_usage(root)
    with cannot("clear", folder):
        for entry in usage:
            path = folder / entry.name
            if path.is_dir():
                _remove_flat_folder(path)  # expert files only (checked by cache_usage)
            else:
                path.unlink()
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return sum(e.bytes for e in usage)
