"""What a careless or hostile user (or a crash) does to the CLI, the worker and the run folders:
one test per case of issue 10, plus kill -9 mid-run and three concurrent submitters. Every case
ends in one clear line or a damaged row, and nothing outside ddcore's own files is touched."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddcore import jobs, runstore
from ddcore.cli import main
from ddcore.config import preset
from ddcore.errors import DDError
from ddcore.pipeline import execute_run
from ddcore.records import Metrics
from runfiles import damaged_store

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(eval_epochs=2, map_points=200, surrogate="untrained")  # a whole run in a few seconds


def run_cli(capsys, *args: str) -> tuple[int, str, list[str]]:
    """main() in this process: (exit code, stdout, stderr lines)."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err.strip().splitlines()


def one_line(err: list[str], fragment: str, after_progress: bool = False) -> str:
    """The one error line, alone on stderr (or, for a run that had started, after its progress bars)."""
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and err[-1] == errors[0] and (after_progress or len(err) == 1), err
    assert fragment in errors[0] and not any("Traceback" in line for line in err), errors[0]
    return errors[0]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def done_run(tmp_path_factory) -> Path:
    run = runstore.create_run(tmp_path_factory.mktemp("done") / "done", preset("smoke").with_overrides(**TINY))
    execute_run(run)
    return run


def copy_run(done_run: Path, root: Path, name: str = "a") -> Path:
    runstore.init_root(root)
    shutil.copytree(done_run, root / name)
    return root / name


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# 1. Clear cache deleted any folder's .cache


def test_clear_cache_refuses_a_folder_ddcore_did_not_make(tmp_path, capsys):
    pip = tmp_path / "h" / ".cache" / "pip"
    pip.mkdir(parents=True)
    (pip / "x").write_bytes(os.urandom(2**20))
    code, _, err = run_cli(capsys, "cache", "--clear", "--runs", str(tmp_path / "h"))
    assert code == 2
    one_line(err, "is not a ddcore runs folder")
    assert (pip / "x").stat().st_size == 2**20


# 2. --overwrite deleted the finished run before the new one existed


def test_a_refused_overwrite_keeps_the_old_run(done_run, tmp_path, capsys):
    old = copy_run(done_run, tmp_path)
    before = files_of(old)
    code, _, err = run_cli(capsys, "distill", "--preset", "smoke", "--out", str(old), "--overwrite", "--lr-img", "inf")
    assert code == 2
    one_line(err, "image lr must be positive and at most 1e+06, got inf (--lr-img)")
    assert files_of(old) == before


def test_an_overwrite_that_fails_midway_keeps_the_old_run(done_run, tmp_path, capsys, monkeypatch):
    old = copy_run(done_run, tmp_path)
    before = files_of(old)

    def broken(*args, **kwargs):
        raise RuntimeError("the evaluation broke")

    monkeypatch.setattr("ddcore.pipeline.evaluate_set", broken)
    code, _, err = run_cli(capsys, "distill", "--preset", "smoke", "--surrogate", "untrained", "--out", str(old),
                           "--overwrite")
    assert code == 2
    line = one_line(err, "internal error (RuntimeError: the evaluation broke)", after_progress=True)
    assert f"the existing run at {old} was kept" in line
    assert files_of(old) == before
    monkeypatch.undo()
    code, _, err = run_cli(capsys, "distill", "--preset", "smoke", "--surrogate", "untrained", "--iterations", "3",
                           "--eval-epochs", "2", "--out", str(old), "--overwrite")
    assert code == 0, err
    assert runstore.read_config(old).distill.iterations == 3 and runstore.read_status(old).state == "done"
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != runstore.CACHE_DIR)
    assert left == [runstore.MARKER, "a"], "no staged folder left behind"


def test_kill_9_midway_through_an_overwrite_keeps_the_old_run(done_run, tmp_path):
    old = copy_run(done_run, tmp_path)
    before = files_of(old)
    proc = subprocess.Popen([sys.executable, "-m", "ddcore", "distill", "--preset", "smoke", "--surrogate", "untrained",
                             "--iterations", "1000000", "--out", str(old), "--overwrite"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staged = tmp_path / ".a.new"
    try:
        wait_for(lambda: (staged / "status.json").exists() and runstore.read_status(staged).stage == "distill", 120,
                 "the replacement to start distilling")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert files_of(old) == before
    assert runstore.read_status(staged).state == "failed" and "died" in runstore.read_status(staged).message
    assert [r.name for r in runstore.list_runs(tmp_path)] == ["a"]


# 3. the free-text runs folder aimed Delete and Export anywhere


def test_a_foreign_folder_or_a_file_is_never_used_as_a_runs_folder(tmp_path, capsys, monkeypatch):
    models = tmp_path / "models"
    (models / "bert").mkdir(parents=True)
    (models / "bert" / "config.json").write_text('{"hidden_size": 768}')
    for args in (("list", "--runs", str(models)), ("cache", "--clear", "--runs", str(models)),
                 ("distill", "--preset", "smoke", "--out", str(models / "run"))):
        code, _, err = run_cli(capsys, *args)
        assert code == 2
        one_line(err, f"{models} is not a ddcore runs folder")
    with pytest.raises(Exception, match="not a ddcore runs folder"):
        jobs.ensure_worker(models)
    assert sorted(p.name for p in models.iterdir()) == ["bert"], "no .worker.lock, no run, no marker written there"
    (tmp_path / "a-file").write_text("x")
    code, _, err = run_cli(capsys, "list", "--runs", str(tmp_path / "a-file"))
    assert code == 2
    one_line(err, "is a file, not a folder")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "list", "--runs", "~/runs")
    assert code == 0 and out.startswith("NAME") and not (tmp_path / "~").exists()


# 4. and 5. damaged files and valid JSON of the wrong type


def test_list_shows_every_kind_of_damaged_run_as_a_row(done_run, tmp_path, capsys):
    root, outside = tmp_path / "runs", tmp_path / "outside"
    outside.mkdir()
    copy_run(done_run, root, "good")
    damaged = damaged_store(root, done_run, outside)
    code, out, err = run_cli(capsys, "list", "--runs", str(root))
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"good", *damaged}
    assert " done " in rows["good"]
    listed = {r.name: r for r in runstore.list_runs(root)}
    for name in ("config-not-json", "config-wrong-type", "status-wrong-type", "status-unknown-state",
                 "metrics-wrong-type", "metrics-newer-version", "empty-folder", "symlinked", "config-unknown-kind",
                 "config-out-of-range", "status-pid-zero", "status-pid-huge", "status-fifo", "metrics-symlink", "metrics-deep"):
        assert " damaged " in rows[name], rows[name]
        assert damaged[name] in listed[name].error, listed[name].error
    assert "failed" in rows["running-but-dead"] and "died" in rows["running-but-dead"]
    assert (outside / "canary").read_text() == "alive"


# 6. a dead worker stranded the queue; and kill -9 mid-run


def test_kill_9_of_the_worker_mid_run_fails_that_run_and_a_listing_restarts_the_queue(tmp_path, capsys):
    root = runstore.init_root(tmp_path / "runs")
    long = jobs.submit(root, preset("smoke").with_overrides(iterations=1_000_000, **TINY), "long")
    try:
        wait_for(lambda: runstore.read_status(long).stage == "distill", 180, "the worker to start the long run")
        short = jobs.submit(root, preset("smoke").with_overrides(iterations=2, **TINY), "short", start_worker=False)
        os.kill(jobs.worker_pid(root), signal.SIGKILL)
        wait_for(lambda: not jobs.worker_alive(root), 10, "the worker to die")
        status = runstore.read_status(long)
        assert status.state == "failed" and "died" in status.message
        assert runstore.read_status(short).state == "queued"
        code, out, err = run_cli(capsys, "list", "--runs", str(root))
        assert code == 0 and "started a worker" in err[-1]
        wait_for(lambda: runstore.read_status(short).final, 180, "the restarted worker to run the queued run")
        assert runstore.read_status(short).state == "done"
    finally:
        jobs.stop_worker(root)


def test_three_concurrent_submitters_get_three_runs_and_one_worker(tmp_path):
    root, go = tmp_path / "runs", tmp_path / "go"
    script = (
        "import sys, time, pathlib\n"
        "from ddcore import jobs\n"
        "from ddcore.config import preset\n"
        "while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.01)\n"
        f"cfg = preset('smoke').with_overrides(iterations=2, **{TINY!r})\n"
        "print(jobs.submit(pathlib.Path(sys.argv[1]), cfg).name)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(root), str(go)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        time.sleep(1.0)
        go.touch()
        results = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
        names = {r[0].strip() for r in results}
        assert len(names) == 3 and (root / runstore.MARKER).is_file()
        wait_for(lambda: all(runstore.read_status(root / n).final for n in names), 300, "the three runs")
        assert all(runstore.read_status(root / n).state == "done" for n in names)
        log = (root / ".worker.log").read_text()
        assert "Traceback" not in log, log
    finally:
        jobs.stop_worker(root)


# 7. and 8. tracebacks instead of one line, and silent nonsense


@pytest.mark.parametrize(("args", "message"), [
    (["--lr-img", "1e300"], "image lr must be positive and at most 1e+06, got 1e+300 (--lr-img)"),
    (["--lr-img", "inf"], "image lr must be positive and at most 1e+06, got inf"),
    (["--lr-img", "nan"], "image lr must be positive and at most 1e+06, got nan"),
    (["--kde-sigma", "1e-30"], "KDE sigma must be between 0.001 and 1000"),
    (["--kde-sigma", "inf"], "KDE sigma must be between 0.001 and 1000"),
    (["--kde-tau", "1e-40"], "KDE tau must be between 0.001 and 1e+06"),
    (["--conflict-ratio", "abc"], "argument --conflict-ratio: expected a number (or auto/none); got 'abc'"),
    (["--conflict-ratio", "nan"], "conflict ratio must be in [0, 1], got nan"),
    (["--supcon-temperature", "0"], "SupCon temperature must be between 0.001 and 100"),
    (["--surrogate-lr", "1e9"], "surrogate lr must be positive and at most 10"),
    (["--eval-lr", "inf"], "evaluation lr must be positive and at most 10"),
    (["--momentum-img", "inf"], "image momentum must be in [0, 1)"),
    (["--map-min-dist", "5"], "map minimum distance must be between 0 and 1"),
    (["--seed", "99999999999"], "seed must be a whole number in 0..2147483647"),
    (["--net-width", "1000000"], "net width must be between 1 and 4096"),
    (["--max-start-epoch", "abc"], "expected a whole number (or auto/none); got 'abc'"),
])
def test_bad_values_are_one_line(tmp_path, capsys, args, message):
    code, _, err = run_cli(capsys, "distill", "--preset", "smoke", "--out", str(tmp_path / "run"), *args)
    assert code == 2
    assert "<lambda>" not in one_line(err, message)
    assert not (tmp_path / "run").exists()


def test_overwriting_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    runstore.init_root(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    code, _, err = run_cli(capsys, "distill", "--preset", "smoke", "--out", str(tmp_path / "notes"), "--overwrite")
    assert code == 2
    one_line(err, "is not a run folder (no config.json or status.json that ddcore wrote); nothing was replaced")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_saturated_images_end_done_with_a_warning(tmp_path, capsys):
    out = tmp_path / "runs" / "hot"
    code, summary, err = run_cli(capsys, "distill", "--preset", "smoke", "--surrogate", "untrained", "--eval-epochs",
                                 "2", "--lr-img", "1e6", "--out", str(out))
    assert code == 0 and "unbiased" in summary
    assert err[-1].startswith("warning: the synthetic images saturated") and "--lr-img 1e+06" in err[-1]
    status, metrics = runstore.read_status(out), Metrics.load(out)
    assert status.state == "done" and status.warning == metrics.warning and metrics.saturated_share > 0.5
    assert json.loads((out / "metrics.json").read_text())["warning"] == metrics.warning
    code, listing, _ = run_cli(capsys, "list", "--runs", str(tmp_path / "runs"))
    assert "the synthetic images saturated" in listing


# A second hostile pass (2026-12-02): what it found, one test per cause


def _tiny_args() -> list[str]:
    return [arg for key, value in TINY.items() for arg in (f"--{key.replace('_', '-')}", str(value))]


def test_a_symlinked_cache_is_refused_before_any_run_is_made(tmp_path, capsys):
    root, outside = tmp_path / "runs", tmp_path / "outside"
    outside.mkdir()
    runstore.init_root(root)
    (root / ".cache").symlink_to(outside, target_is_directory=True)
    code, _, err = run_cli(capsys, "distill", "--preset", "smoke", "--out", str(root / "a"), *_tiny_args())
    assert code == 2
    one_line(err, ".cache is a symbolic link; ddcore keeps its cache only in a folder of its own")
    for args in (["cache", "--runs", str(root)], ["cache", "--clear", "--runs", str(root)]):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and "symbolic link" in one_line(err, ".cache")
    assert not (root / "a").exists() and list(outside.iterdir()) == []


def test_evaluate_refuses_a_live_run_and_a_set_that_does_not_fit_its_data(done_run, tmp_path, capsys):
    run = copy_run(done_run, tmp_path / "runs")
    before = (run / "metrics.json").read_bytes()
    runstore.update_status(run, state="queued")
    code, _, err = run_cli(capsys, "evaluate", str(run))
    assert code == 2
    one_line(err, "holds a run that is still queued; evaluate it once it has finished")
    runstore.update_status(run, state="done")
    synthetic = torch.load(run / "synthetic.pt", weights_only=True)
    for damage, says in (({"labels": synthetic["labels"] + 57}, "an image's label is 66, the run's data has 10 classes (0..9)"),
                         ({"images": synthetic["images"][:, :, :5, :5].contiguous()}, "the run's data [3, 28, 28]")):
        torch.save({**synthetic, **damage}, run / "synthetic.pt")
        code, _, err = run_cli(capsys, "evaluate", str(run))
        assert code == 2
        one_line(err, says)
    assert (run / "metrics.json").read_bytes() == before


def test_a_sweep_tag_that_cannot_be_read_is_no_cell(done_run, tmp_path, capsys):
    from ddcore.sweeps import store

    for name, tag in (("inf-seed", '{"sweep": "s", "key": "k", "index": 0, "axes": {}, "seed": 1e999}'),
                      ("unknown-axis", '{"sweep": "s", "key": "k", "index": 0, "axes": {"bogus": 1}, "seed": 0}'),
                      ("newline", '{"sweep": "s", "key": "k", "index": 0, "axes": {"dataset": "a\\nb"}, "seed": 0}'),
                      ("nested", '{"sweep": "s", "key": "k", "index": 0, "axes": {"ipc": [[1]]}, "seed": 0}')):
        (copy_run(done_run, tmp_path / "runs", name) / store.TAG).write_text(tag)
        assert store.read_tag(tmp_path / "runs" / name) is None
    code, _, err = run_cli(capsys, "sweep", "table", "s", "--long", "--runs", str(tmp_path / "runs"))
    assert code == 2 and not any("Traceback" in line for line in err)


def test_worker_idle_exit_and_control_characters_are_one_line(tmp_path, capsys):
    for value in ("nan", "-5", "inf"):
        code, _, err = run_cli(capsys, "worker", "--runs", str(tmp_path / "runs"), "--idle-exit", value)
        assert code == 2
        one_line(err, f"expected a number of seconds (0 or more), got '{value}'")
    code, _, err = run_cli(capsys, "distill", "--preset", "smoke", "--out", str(tmp_path / "a\nb"))
    assert code == 2
    one_line(err, "run name 'a\\nb' is invalid")


def test_evaluating_a_saturated_set_warns_however_it_got_there(done_run, tmp_path, capsys):
    run = copy_run(done_run, tmp_path / "runs")
    assert Metrics.load(run).warning == ""
    synthetic = torch.load(run / "synthetic.pt", weights_only=True)
    torch.save({**synthetic, "images": torch.full_like(synthetic["images"], 3e38)}, run / "synthetic.pt")
    code, summary, err = run_cli(capsys, "evaluate", str(run))
    assert code == 0 and "unbiased" in summary and err[-1].startswith("warning: the synthetic images saturated")
    assert Metrics.load(run).saturated_share == 1.0 and "saturated" in runstore.read_status(run).warning


def _read_only(monkeypatch, root: Path) -> None:
    """Writes under `root` refused as on a read-only file system (as root, chmod does not stop them)."""
    def refuse(real):
        def method(self, *args, **kwargs):
            if root in self.parents:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
            return real(self, *args, **kwargs)
        return method

    for name in ("mkdir", "touch", "unlink", "rmdir"):
        monkeypatch.setattr(Path, name, refuse(getattr(Path, name)))


def test_a_runs_folder_ddcore_cannot_write_in_is_one_line(done_run, tmp_path, capsys, monkeypatch):
    root = tmp_path / "runs"
    done = copy_run(done_run, root, "done")
    queued = runstore.create_run(root / "queued", preset("smoke"))
    runstore.cache_dir(root).mkdir()
    (runstore.cache_dir(root) / "surrogate-abc.pt").write_bytes(b"x")
    (root / jobs.LOCK_NAME).mkdir()  # a folder where the worker lock goes
    lock = f"cannot open the worker lock {root / jobs.LOCK_NAME} (Is a directory)"
    with pytest.raises(DDError, match=re.escape(lock)):
        jobs.ensure_worker(root)
    code, listing, err = run_cli(capsys, "list", "--runs", str(root))  # the listing restarts the queue's worker
    assert code == 0 and "queued" in listing  # a folder ddcore cannot start a worker for is still listed
    assert err == [f"note: no worker could be started for its queued runs ({lock})"]
    _read_only(monkeypatch, root)
    code, _, err = run_cli(capsys, "distill", "--preset", "smoke", "--out", str(root / "new"), *_tiny_args())
    assert code == 2
    one_line(err, f"cannot make the run folder {root / 'new'} (Read-only file system)")
    for call, message in ((lambda: runstore.delete_run(done), f"cannot delete {done}"),
                          (lambda: jobs.cancel(queued), f"cannot cancel {queued}"),
                          (lambda: runstore.clear_cache(root), f"cannot clear {runstore.cache_dir(root)}")):
        with pytest.raises(DDError, match=re.escape(f"{message} (Read-only file system)")):
            call()
    assert (done / "config.json").exists() and runstore.read_status(queued).state == "queued"
