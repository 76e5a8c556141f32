"""Sweeps: spec parsing and bad specs, expansion, resume, cancel, the tables of a finished smoke
sweep, the CLI, and the Ray backend on a local instance against the local backend."""
from __future__ import annotations

import csv
import io
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ddcore.records import EmbeddingMap, SyntheticImages, read_json, write_json
from ddcore import jobs, runstore
from ddcore.cli import main
from ddcore.config import KINDS, REWEIGHT_MODES, preset
from ddcore.data import dsa_strategy
from ddcore.sweeps import results, store
from ddcore.sweeps.backends import LocalBackend, RayBackend, make_backend, run_sweep
from ddcore.sweeps.spec import BASELINE_IGNORES, SpecError, expand, load_spec, parse_spec, shipped_specs

SHIPPED = {"lr-dm", "init-dm", "kde-defaults", "amplification", "full-mnist", "bandwidth", "surrogate", "debias", "methods", "smoke"}


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shipped_spec_expands_into_valid_cells() -> None:
    assert {p.stem for p in shipped_specs()} == SHIPPED
    for path in shipped_specs():
        spec = load_spec(path)
        assert spec.name == path.stem and spec.estimate and "CPU" in spec.estimate
        cells = expand(spec)
        assert len({c.name for c in cells}) == len({c.key for c in cells}) == len(cells)
        assert all(c.config.preset == spec.preset and c.name.startswith(f"{spec.name}-") for c in cells)
        assert all(len(c.name) <= 100 for c in cells)
    methods = expand(load_spec("methods"))
    assert {(c.config.distill.method, c.config.distill.ipc) for c in methods} == {
        (m, i) for m in ("dm", "dc", "dsa", "mtt") for i in (1, 10, 50)}
    # each method keeps its own preset values: DC's quick preset has 12 iterations, DM's 300
    assert {c.config.distill.method: c.config.distill.iterations for c in methods}["dc"] == 12
    assert {c.config.distill.method: c.config.distill.iterations for c in methods}["dm"] == 300


def test_auto_true_false_modes_take_toml_booleans(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, 'name = "m"\npreset = "smoke"\n[overrides]\nbf16 = true\n[axes]\n'
                                     'compile = [false, "auto"]\n'))  # (compile = true would need a C++ compiler)
    assert [(c.config.distill.bf16, c.config.distill.compile) for c in expand(spec)] == [("true", "false"),
                                                                                        ("true", "auto")]


def test_smoke_spec_cells_and_the_baseline_collapse() -> None:
    cells = expand(load_spec("smoke"))
    assert len(cells) == 12  # 2 ratios x (vanilla, reweighted, full data) x 2 seeds
    baselines = [c for c in cells if c.config.kind == "baseline"]
    assert len(baselines) == 4 and all("reweight" not in dict(c.axes) for c in baselines)
    assert {(c.config.data.conflict_ratio, c.seed) for c in baselines} == {(r, s) for r in (0.02, 0.05) for s in (0, 1)}
    assert all(c.config.seed == c.seed for c in cells)


def test_baselines_ignore_method_and_distillation_axes(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, 'name = "g"\npreset = "smoke"\n[axes]\nmethod = ["dm", "dc"]\n'
                                     'ipc = [1, 2]\nkind = ["distill", "baseline"]\n'))
    cells = expand(spec)
    assert sum(c.config.kind == "distill" for c in cells) == 4
    assert sum(c.config.kind == "baseline" for c in cells) == 1  # one baseline for the one data setting
    assert {"method", "ipc"} <= BASELINE_IGNORES and "dsa_strategy" not in BASELINE_IGNORES


def test_oracle_and_random_subsets_are_variants_of_their_own(tmp_path: Path) -> None:
    kinds = {results.variant(preset("smoke").with_overrides(kind=k)) for k in KINDS if k != "distill"}
    weightings = {results.variant(preset("smoke").with_overrides(reweight=r)) for r in REWEIGHT_MODES}
    assert len(kinds | weightings) == len(KINDS) - 1 + len(REWEIGHT_MODES) and kinds | weightings == set(
        results.VARIANTS)
    spec = load_spec(write(tmp_path, 'name = "v"\npreset = "smoke"\n[axes]\nkind = ["distill", "random-subset"]\n'
                                     'reweight = ["none", "kde", "oracle"]\nipc = [1, 2]\n'))
    cells = expand(spec)
    subsets = [c for c in cells if c.config.kind == "random-subset"]
    assert len(cells) == 8 and len(subsets) == 2  # the subsets read ipc, not reweight
    assert {dict(c.axes)["ipc"] for c in subsets} == {1, 2} and all("reweight" not in dict(c.axes) for c in subsets)
    run_sweep(tmp_path / "runs", spec, LocalBackend(start_worker=False))
    long = results.long_table(store.sweep_cells(tmp_path / "runs", "v"))
    assert [(r["variant"], r["method"], r["ipc"]) for r in long.records()][:4] == [
        ("vanilla", "dm", 1), ("vanilla", "dm", 2), ("reweighted", "dm", 1), ("reweighted", "dm", 2)]
    agg = results.aggregate(long).records()
    assert sorted((r["variant"], r["ipc"], r["seeds"]) for r in agg) == sorted(
        (v, i, 1) for v in ("vanilla", "reweighted", "oracle", "random subset") for i in (1, 2))
    assert {r["method"] for r in agg if r["variant"] == "random subset"} == {None}


def test_values_take_the_fields_types(tmp_path: Path) -> None:
    spec = parse_spec({"name": "t", "preset": "smoke", "overrides": {"kde_tau": 2},
                       "axes": {"kde_sigma": ["auto", 0.1], "conflict_ratio": [1]}})
    assert dict(spec.overrides) == {"kde_tau": 2.0} and isinstance(dict(spec.overrides)["kde_tau"], float)
    assert spec.axes[0].values == (None, 0.1)
    assert {c.config.reweight.kde_sigma for c in expand(spec)} == {None, 0.1}


def test_dsa_strategy_none_is_no_augmentation_and_auto_the_datasets() -> None:
    spec = parse_spec({"name": "aug", "preset": "smoke", "axes": {"dsa_strategy": ["none", "auto", "flip"]}})
    datasets = dsa_strategy(preset("smoke"))
    assert datasets != "none" and [dsa_strategy(c.config) for c in expand(spec)] == ["none", datasets, "flip"]
    spec = parse_spec({"name": "aug", "preset": "smoke", "overrides": {"dsa_strategy": "none"}})
    assert dsa_strategy(expand(spec)[0].config) == "none"


def test_tables_name_the_default_rule_and_leave_what_does_not_apply_blank(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, 'name = "rule"\npreset = "smoke"\n[axes]\nkde_sigma = ["auto", 0.1]\n'
                                     'kind = ["distill", "baseline"]\n'))
    run_sweep(tmp_path / "runs", spec, LocalBackend(start_worker=False))  # queued: no worker runs them
    long = results.long_table(store.sweep_cells(tmp_path / "runs", "rule"))
    assert [(r["variant"], r["kde_sigma"], r["state"]) for r in long.records()] == [
        ("reweighted", "auto", "queued"), ("full data", None, "queued"), ("reweighted", 0.1, "queued")]
    assert [line.split(",")[6] for line in long.to_csv().splitlines()[1:]] == ["2", "", "2"]  # ipc
    summary = results.summary(results.aggregate(long)).to_markdown()
    assert "| reweighted | 2 | auto | 0/1 |" in summary and "| full data |  |  | 0/1 |" in summary


BAD_SPECS = [
    ('[axes]\nkde_tua = [1.0]\n', "axes.kde_tua: unknown field 'kde_tua' (did you mean 'kde_tau'?)"),
    ('[axes]\nipc = []\n', "axes.ipc: empty axis"),
    ('[axes]\nconflict_ratio = [0.05, 2.0]\n', "axes.conflict_ratio = 2.0: conflict ratio must be in [0, 1]"),
    ('[axes]\nipc = ["ten"]\n', "axes.ipc: expected a whole number, got 'ten'"),
    ('[axes]\nipc = [1.5]\n', "axes.ipc: expected a whole number, got 1.5"),
    ('[overrides]\nkde_tau = -1\n', "overrides.kde_tau = -1.0: KDE tau must be between"),
    ('[overrides]\nbogus = 1\n', "overrides.bogus: unknown field 'bogus'"),
    ('[axes]\nmethod = ["dm", "dc"]\n[overrides]\nbf16 = "true"\n', "overrides.bf16 = 'true': bf16 autocast"),
    ('method = "dc"\n[overrides]\ncompile = true\n', "overrides.compile = 'true': --compile is not implemented for"),
    ('[overrides]\ncompile = 3\n', "overrides.compile: expected one of auto, true, false, got 3"),
    ('[axes]\nseed = [1, 2]\n', "axes.seed: 'seed' cannot be set here"),
    ('[axes]\nipc = [1, 1]\n', "axes.ipc: a value is listed twice"),
    ('seeds = []\n', "seeds: expected a non-empty list"),
    ('colour = "red"\n', "colour: unknown key"),
    ('[axes]\nipc = [10000]\n', "cell ipc=10000, seed 0: IPC 10000 is larger than the smallest class"),
    ('seeds = [0, 1]\n[axes]\nipc = [%s]\nkde_tau = [%s]\n' % (", ".join(map(str, range(1, 101))),
                                                        ", ".join(str(t / 10) for t in range(1, 101))),
     "axes: 20,000 cells (100 x 100 x 2 seeds); a sweep holds at most 1,000: split it"),
]


@pytest.mark.parametrize(("body", "message"), BAD_SPECS)
def test_a_bad_spec_is_one_line_naming_file_and_field(tmp_path: Path, capsys, body: str, message: str) -> None:
    path = write(tmp_path, f'name = "bad"\npreset = "smoke"\n{body}')
    assert main(["sweep", "run", str(path), "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: ") and message in err, err
    assert not (tmp_path / "runs").exists()  # nothing queued, nothing written


@pytest.mark.parametrize(("text", "message"), [
    ('name = "x"\n', "preset: missing (required)"),
    ('name = "a b"\npreset = "smoke"\n', "name: 'a b' is invalid"),
    ('name = "x"\npreset = "huge"\n', "preset: unknown preset 'huge'"),
    ('name = "x"\npreset = "smoke\n', "invalid TOML"),
])
def test_spec_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError, match="^" + str(path).replace(".", r"\.")) as info:
        load_spec(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_spec_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "x"\npreset = "smoke"\ndescription = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8 text") as info:
        load_spec(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_cli_refuses_missing_specs_sweeps_and_misplaced_options(tmp_path: Path, capsys) -> None:
    assert main(["sweep", "run", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read the spec" in capsys.readouterr().err
    assert main(["sweep", "status", "ghost", "--runs", str(tmp_path)]) == 2
    assert "no sweep named 'ghost'" in capsys.readouterr().err
    assert main(["sweep", "run", "smoke", "--cpus-per-cell", "2", "--runs", str(tmp_path)]) == 2
    assert "--cpus-per-cell goes with --backend ray" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "run", "smoke", "--backend", "slurm"])
    assert exc.value.code == 2
    assert isinstance(make_backend("ray", "ray://nowhere:1"), RayBackend)  # nothing connects until launch


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_resume_skips_done_cells_and_requeues_failed_cancelled_and_stale(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    spec = load_spec(write(tmp_path, 'name = "res"\npreset = "smoke"\n[overrides]\neval_epochs = 1\n'
                                     '[axes]\nkind = ["distill", "baseline"]\n'))
    bad, ok = expand(spec)
    launch = run_sweep(root, spec, LocalBackend(start_worker=False))
    assert (launch.done, launch.active, launch.queued) == (0, 0, 2)
    assert [c.state for c in store.sweep_cells(root, "res")] == ["queued", "queued"]
    assert run_sweep(root, spec, LocalBackend(start_worker=False)).active == 2  # in progress: left alone
    jobs.run_worker(root, poll_seconds=0.05, idle_exit_seconds=0.2)
    # the distill cell fails as a run whose process died would (every value that could make it
    # fail for real is now refused by validation before a cell is written)
    runstore.update_status(root / bad.name, state="failed", message="the process running this job died")
    cells = store.sweep_cells(root, "res")
    assert [c.state for c in cells] == ["failed", "done"]
    assert all(runstore.read_run(c.path).error is None for c in cells)  # ordinary run folders
    done_files = sorted(p.name for p in (root / ok.name).iterdir())

    launch = run_sweep(root, spec, LocalBackend(start_worker=False))
    assert (launch.done, launch.active, launch.queued) == (1, 0, 1)
    assert [c.state for c in store.sweep_cells(root, "res")] == ["queued", "done"]
    assert sorted(p.name for p in (root / ok.name).iterdir()) == done_files  # the finished cell is untouched

    assert main(["sweep", "cancel", "res", "--runs", str(root)]) == 0
    assert [c.state for c in store.sweep_cells(root, "res")] == ["cancelled", "done"]
    assert run_sweep(root, spec, LocalBackend(start_worker=False)).queued == 1

    # a queued cell held by a Ray driver that died reads back as failed, and is queued again
    runstore.update_status(root / bad.name, pid=_dead_pid())
    stale = store.sweep_cells(root, "res")[0]
    assert stale.state == "failed" and stale.status.message == store.STALE_MESSAGE
    assert run_sweep(root, spec, LocalBackend(start_worker=False)).queued == 1
    assert runstore.read_status(root / bad.name).pid is None


def test_cells_of_an_edited_spec_are_settings_of_their_own_not_extra_seeds(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for epochs in (1, 2):  # the spec edited and run again under its name
        spec = load_spec(write(tmp_path, f'name = "ed"\npreset = "smoke"\n[overrides]\neval_epochs = {epochs}\n'
                                         '[axes]\nkind = ["distill", "baseline"]\n'))
        run_sweep(root, spec, LocalBackend(start_worker=False))
        for cell in expand(spec):
            runstore.update_status(root / cell.name, state="done")
    long = results.long_table(store.sweep_cells(root, "ed"))
    assert long.columns[2:long.columns.index("seed")] == (*results.CORE, "eval_epochs")
    agg = results.aggregate(long)
    assert sorted((r["variant"], r["eval_epochs"], r["seeds done"], r["seeds"]) for r in agg.records()) == [
        ("full data", 1, 1, 1), ("full data", 2, 1, 1), ("reweighted", 1, 1, 1), ("reweighted", 2, 1, 1)]
    assert results.summary(agg).to_markdown().count("| 1/1 |") == 4
    # settings that differ only where their kind reads nothing still show what differs
    spec = load_spec(write(tmp_path, 'name = "ed"\npreset = "smoke"\n[overrides]\neval_epochs = 2\nkde_tau = 2.0\n'
                                     '[axes]\nkind = ["baseline"]\n'))
    run_sweep(root, spec, LocalBackend(start_worker=False))
    rows = results.aggregate(results.long_table(store.sweep_cells(root, "ed"))).records()
    assert sorted((r["variant"], r["eval_epochs"], r["kde_tau"], r["seeds"]) for r in rows
                  if r["variant"] == "full data") == [("full data", 1, 0.75, 1), ("full data", 2, 0.75, 1),
                                                      ("full data", 2, 2.0, 1)]


def test_a_rerun_starts_a_worker_for_cells_an_earlier_run_queued(tmp_path: Path, capsys, monkeypatch) -> None:
    started: list[Path] = []
    monkeypatch.setattr(jobs, "ensure_worker", started.append)  # a test leaves no worker process behind
    root = tmp_path / "runs"
    path = write(tmp_path, 'name = "w"\npreset = "smoke"\n[axes]\nipc = [1, 2]\n')
    assert run_sweep(root, load_spec(path), LocalBackend()).queued == 2 and len(started) == 1
    # the worker died before running them: running the sweep again starts one (a live one stays alone)
    assert main(["sweep", "run", str(path), "--runs", str(root)]) == 0
    assert "0 cell(s) queued, 0 already done, 2 already queued or running" in capsys.readouterr().out
    assert len(started) == 2
    # nothing waits for the worker once the cells are done or a Ray driver holds them
    first, second = expand(load_spec(path))
    runstore.update_status(root / first.name, state="done")
    runstore.update_status(root / second.name, pid=os.getpid())
    assert run_sweep(root, load_spec(path), LocalBackend()).active == 1 and len(started) == 2


def test_table_from_a_finished_smoke_sweep(smoke_sweep: Path) -> None:
    cells = store.sweep_cells(smoke_sweep, "smoke")
    assert len(cells) == 12 and {c.state for c in cells} == {"done"}
    long = results.long_table(cells)
    rows = long.records()
    assert long.columns[:7] == ("cell", "state", "dataset", "conflict_ratio", "method", "variant", "ipc")
    assert {r["variant"] for r in rows} == {"vanilla", "reweighted", "full data"}
    for r in rows:
        assert all(0 <= r[k] <= 100 for k in ("unbiased", "aligned", "conflicting"))
        if r["variant"] == "full data":
            assert r["method"] is None and r["ipc"] is None and r["sigma_used"] is None
            assert r["conflicting_weight_share"] == pytest.approx(100 * r["conflict_ratio"], abs=0.5)
        else:
            assert r["method"] == "dm" and r["ipc"] == 2 and r["sigma_used"] > 0
        if r["variant"] == "reweighted":  # the KDE weights lift the conflicting samples' share
            assert r["conflicting_weight_share"] > 3 * 100 * r["conflict_ratio"]

    agg = results.aggregate(long)
    assert len(agg.rows) == 6
    for a in agg.records():
        assert (a["seeds done"], a["seeds"]) == (2, 2)
        setting = (a["conflict_ratio"], a["variant"])
        members = [r["unbiased"] for r in rows if (r["conflict_ratio"], r["variant"]) == setting]
        assert a["unbiased mean"] == pytest.approx(statistics.fmean(members))
        assert a["unbiased std"] == pytest.approx(statistics.stdev(members))

    parsed = list(csv.DictReader(io.StringIO(agg.to_csv())))
    assert len(parsed) == 6 and float(parsed[0]["unbiased mean"]) == pytest.approx(agg.records()[0]["unbiased mean"])
    assert len(list(csv.DictReader(io.StringIO(long.to_csv())))) == 12
    assert results.Table.from_csv(long.to_csv()) == long  # blanks, ints, floats and text come back as they were
    with pytest.raises(ValueError, match="line 3 has 2 values, the header 3"):
        results.Table.from_csv("a,b,c\n1,2,3\n1,2\n")
    with pytest.raises(ValueError, match="no header line"):
        results.Table.from_csv("")
    markdown = results.summary(agg).to_markdown().splitlines()
    assert len(markdown) == 2 + 6 and markdown[0].startswith("| dataset | conflict_ratio |")
    assert all("±" in line and "2/2" in line for line in markdown[2:])


def test_cli_status_and_table(smoke_sweep: Path, capsys) -> None:
    assert main(["sweep", "status", "smoke", "--runs", str(smoke_sweep)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("12 cells: 12 done") and len(out) == 2 + 12
    assert main(["sweep", "table", "smoke", "--runs", str(smoke_sweep)]) == 0
    assert capsys.readouterr().out.count("\n") == 2 + 6
    assert main(["sweep", "table", "smoke", "--csv", "--long", "--runs", str(smoke_sweep)]) == 0
    assert len(list(csv.DictReader(io.StringIO(capsys.readouterr().out)))) == 12
    assert main(["sweep", "cancel", "smoke", "--runs", str(smoke_sweep)]) == 0
    assert "no queued or running cell" in capsys.readouterr().out
    assert main(["list", "--runs", str(smoke_sweep)]) == 0  # the cells are ordinary runs
    assert capsys.readouterr().out.count("smoke-cmnist-") == 12


def files(run_dir: Path) -> set[str]:
    return {p.name for p in run_dir.iterdir() if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance with 2 CPUs for this module's Ray tests (the backend joins it)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_backend_runs_the_same_cells_with_the_same_results(local_ray, smoke_sweep: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    launch = run_sweep(tmp_path, load_spec("smoke"), RayBackend(cpus_per_cell=1, echo=lines.append))
    assert launch.queued == 12 and len(lines) == 12 and lines[-1].startswith("[12/12]")
    local = {c.tag.key: c for c in store.sweep_cells(smoke_sweep, "smoke")}
    remote = {c.tag.key: c for c in store.sweep_cells(tmp_path, "smoke")}
    assert remote.keys() == local.keys() and {c.state for c in remote.values()} == {"done"}
    for key, cell in remote.items():
        mine, theirs = store.cell_metrics(cell.path), store.cell_metrics(local[key].path)
        assert replace(mine, seconds=None) == replace(theirs, seconds=None)  # everything but the wall time
        assert files(cell.path) == files(local[key].path)
        assert "ran on Ray node" in "\n".join(runstore.read_log(cell.path))
        assert runstore.read_status(cell.path).pid is None
    # every file of a distill cell came back: the driver holds the whole run folder
    distill = next(c for c in remote.values() if c.config.kind == "distill")
    assert SyntheticImages.load(distill.path).images.shape[0] == 10 * 2
    assert len(EmbeddingMap.load(distill.path).real_map) > 0
    assert run_sweep(tmp_path, load_spec("smoke"), RayBackend()).done == 12  # resume: nothing to run


def test_ray_backend_cancels_running_cells(local_ray, tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, 'name = "long"\npreset = "smoke"\n[overrides]\niterations = 1000000\n'
                                     '[axes]\nreweight = ["none", "kde"]\nkde_tau = [1.0, 2.0]\n'))
    root = tmp_path / "runs"
    driver = threading.Thread(target=run_sweep, args=(root, spec, RayBackend(cpus_per_cell=1, poll_seconds=0.1)))
    driver.start()
    deadline = time.time() + 120
    while time.time() < deadline and sum(c.state == "running" for c in store.sweep_cells(root, "long")) < 2:
        time.sleep(0.2)
    cells = store.sweep_cells(root, "long")
    assert sorted(c.state for c in cells) == ["queued", "queued", "running", "running"]  # 2 CPUs, 1 per cell
    assert len(store.cancel(root, "long")) == 4
    driver.join(timeout=60)
    assert not driver.is_alive()
    cells = store.sweep_cells(root, "long")
    assert {c.state for c in cells} == {"cancelled"} and not any((c.path / "synthetic.pt").exists() for c in cells)


def test_resume_finds_finished_cells_whose_config_gained_a_field_since(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    spec = load_spec(write(tmp_path, 'name = "old"\npreset = "smoke"\n[axes]\nipc = [1, 2]\n'))
    run_sweep(root, spec, LocalBackend(start_worker=False))
    first, second = expand(spec)
    runstore.update_status(root / first.name, state="done")
    # as an older version wrote it: no `init` field, so its whole-config hash (the name) differed
    old = root / "20250101-old-cell"
    (root / first.name).rename(old)
    config = read_json(old / "config.json")
    assert config["distill"].pop("init") == "weighted"  # today's default: the same run
    write_json(old / "config.json", config)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in old.iterdir())

    launch = run_sweep(root, spec, LocalBackend(start_worker=False))
    assert (launch.done, launch.active, launch.queued) == (1, 1, 0)
    assert not (root / first.name).exists()  # not run again under its new name
    assert sorted((p.name, p.stat().st_mtime_ns) for p in old.iterdir()) == before  # nor touched
    assert [c.name for c in store.sweep_cells(root, "old")] == [old.name, second.name]

    config["distill"]["init"] = "noise"  # a different run after all: a new cell
    write_json(old / "config.json", config)
    assert run_sweep(root, spec, LocalBackend(start_worker=False)).queued == 1
    assert (root / first.name).exists()


def test_resume_counts_finished_cells_made_under_another_compile_setting(tmp_path: Path) -> None:
    """--compile changes how DM computes, not what (float rounding): when its default became auto,
    every cell's whole-config hash changed, and finished cells must not run again."""
    root = tmp_path / "runs"
    spec = load_spec(write(tmp_path, 'name = "old"\npreset = "smoke"\n[axes]\nipc = [1, 2]\n'))
    run_sweep(root, spec, LocalBackend(start_worker=False))
    first, second = expand(spec)
    assert first.config.distill.compile == "auto"
    runstore.update_status(root / first.name, state="done")
    old = root / "20251201-old-cell"
    (root / first.name).rename(old)
    config = read_json(old / "config.json")
    config["distill"]["compile"] = False  # as versions before auto|true|false wrote it
    write_json(old / "config.json", config)

    launch = run_sweep(root, spec, LocalBackend(start_worker=False))
    assert (launch.done, launch.active, launch.queued) == (1, 1, 0)
    assert not (root / first.name).exists()
    assert [c.name for c in store.sweep_cells(root, "old")] == [old.name, second.name]
