"""The example runs shipped in examples/ (ddapp.examples): present, finished, readable by the
current run record at its current version, made from the current configs, and small. When one of
these fails after a change to the pipeline, the presets or the records, run
`python scripts/make_examples.py` and commit the new examples."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ddapp import examples
from ddcore import runstore
from ddcore.config import RunConfig, preset
from ddcore.records import VERSION, EmbeddingMap, Metrics, Status, SyntheticImages
from ddcore.sweeps import results
from ddcore.sweeps.spec import expand, load_spec

ROOT = examples.ROOT
CONFIGS = examples.configs()
MAX_MIB = 4.5  # the examples live in the repository, which must stay light (README: ./run.sh works offline)
REGENERATE = "run `python scripts/make_examples.py` to make the examples with the current code"
REGENERATE_SWEEP = "run `python scripts/make_examples.py --sweep` to make the example sweep again"


def keys(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return out


def test_the_examples_are_the_configured_runs_and_nothing_else() -> None:
    assert (ROOT / runstore.MARKER).is_file() and runstore.is_shipped(ROOT)
    # a runs root holding nothing but runs: `python -m ddcore list --runs examples/runs` lists them alone
    assert sorted(p.name for p in ROOT.iterdir()) == sorted([runstore.MARKER, runstore.SHIPPED, *CONFIGS])
    assert sorted(p.name for p in ROOT.parent.iterdir()) == ["runs", "sweeps"]
    assert sorted(p.name for p in examples.SWEEPS.iterdir()) == [f"{examples.SWEEP}.csv", f"{examples.SWEEP}.txt"]
    assert all(r.error is None for r in runstore.list_runs(ROOT))
    for name in CONFIGS:
        runstore.check_run_folder(ROOT / name, "checked", shipped_ok=True)  # only the layout's files, no lock or claim
        assert not [p.name for p in (ROOT / name).iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_example_was_made_by_the_current_config(name: str) -> None:
    raw = json.loads((ROOT / name / "config.json").read_text())
    assert keys(raw) == keys(RunConfig().to_dict()), f"{name} was made by an older config schema; {REGENERATE}"
    assert RunConfig.from_dict(raw) == CONFIGS[name], f"{name} was made with other settings; {REGENERATE}"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_example_loads_with_the_current_records(name: str) -> None:
    run_dir = ROOT / name
    for record in (Status, Metrics):
        assert json.loads((run_dir / record.FILE).read_text())["version"] == VERSION, REGENERATE
    status, metrics = Status.load(run_dir), Metrics.load(run_dir)
    assert status.state == "done" and not status.warning and metrics.test_acc_unbiased is not None
    assert metrics.group_accuracy and metrics.test_acc_worst_group is not None
    kind = CONFIGS[name].kind
    if kind != "baseline":
        assert torch.load(run_dir / SyntheticImages.FILE, weights_only=True)["version"] == VERSION, REGENERATE
        syn = SyntheticImages.load(run_dir)
        assert len(syn.labels) == 10 * CONFIGS[name].distill.ipc
    if kind == "distill":
        with np.load(run_dir / EmbeddingMap.FILE) as z:
            assert int(z["version"]) == VERSION, REGENERATE
        emb = EmbeddingMap.load(run_dir)
        assert emb.real_thumbs is not None and len(emb.real_map) == examples.MAP_POINTS


def test_the_app_lists_the_examples_as_finished_and_labelled() -> None:
    from ddapp import runs

    shipped = examples.runs()
    assert [r.name for r in shipped] == [examples.PREFIX + n for n in CONFIGS]
    assert all(runs.is_finished(r) and r.error is None for r in shipped)
    assert all(runs.label(r).startswith("example · ") for r in shipped)
    vanilla, reweighted = runs.latest_pair(shipped)
    assert (vanilla.name, reweighted.name) == ("example:dm-vanilla", "example:dm-reweighted")
    assert runs.default_comparison(shipped) == [examples.PREFIX + n for n in ("dm-vanilla", "dm-reweighted", "full-data")]


def test_the_examples_still_tell_the_story() -> None:
    """What the story page says of them: reweighting moves the weight to the bias-conflicting
    samples and beats vanilla distillation on unbiased test data."""
    vanilla, reweighted = Metrics.load(ROOT / "dm-vanilla"), Metrics.load(ROOT / "dm-reweighted")
    assert reweighted.weight_share_conflicting > reweighted.count_share_conflicting
    assert reweighted.test_acc_unbiased > vanilla.test_acc_unbiased


def test_the_examples_are_small() -> None:
    size = sum(f.stat().st_size for f in ROOT.parent.rglob("*") if f.is_file()) / 2**20
    assert size < MAX_MIB, f"examples/ holds {size:.1f} MiB"


def test_make_runs_every_example_and_replaces_the_old_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = {"random-subset": preset("smoke").with_overrides(kind="random-subset", eval_epochs=1)}
    monkeypatch.setattr(examples, "configs", lambda: configs)
    root = tmp_path / "examples"
    assert examples.make(root) == [root / "random-subset"]
    stamp = Status.load(root / "random-subset").created
    assert examples.make(root) == [root / "random-subset"]
    assert Status.load(root / "random-subset").created > stamp, "the old example was replaced"
    assert [r.name for r in examples.runs(root)] == ["example:random-subset"]
    runstore.check_run_folder(root / "random-subset", "checked", shipped_ok=True)  # only the layout's files
    made = RunConfig.from_dict(json.loads((root / "random-subset" / "config.json").read_text()))
    assert made == configs["random-subset"]
    assert sorted(p.name for p in root.iterdir()) == [runstore.MARKER, runstore.SHIPPED, "random-subset"], \
        "no cache was copied, and the examples are marked read-only"


# the Sweeps page's example: the shipped spec's long table


def test_the_example_sweep_is_every_cell_of_its_spec_done() -> None:
    example = examples.sweep()
    assert example is not None and example.name == examples.PREFIX + examples.SWEEP
    cells = expand(load_spec(examples.SWEEP))
    rows = example.cells.records()
    assert sorted(r["cell"] for r in rows) == sorted(c.name for c in cells), (
        f"sweeps/{examples.SWEEP}.toml changed since its example ran; {REGENERATE_SWEEP}")
    assert example.cells.columns == ("cell", "state", *results.CORE, "seed", *results.METRICS), REGENERATE_SWEEP
    assert all(r["state"] == "done" and isinstance(r["unbiased"], float) for r in rows)
    assert "CPU capability" in example.made and "cells in" in example.made


def test_the_example_sweep_shows_amplification_and_its_repair() -> None:
    """What its plot shows: at every conflict ratio of both datasets, reweighted DM beats vanilla DM
    on unbiased test data, and puts more weight on the conflicting samples than their count."""
    rows = examples.sweep().cells.records()
    by = {(r["dataset"], r["conflict_ratio"], r["variant"]): r for r in rows}
    settings = {(d, c) for d, c, _ in by}
    assert len(settings) == 8
    for d, c in settings:
        assert by[d, c, "reweighted"]["unbiased"] > by[d, c, "vanilla"]["unbiased"], (d, c)
        assert by[d, c, "reweighted"]["conflicting_weight_share"] > 100 * c, (d, c)


def test_make_sweep_runs_every_cell_and_writes_what_the_page_reads(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.toml"
    spec.write_text('name = "tiny"\npreset = "smoke"\nseeds = [0]\noverrides = { eval_epochs = 1 }\n'
                    '[axes]\nreweight = ["none", "kde"]\n')
    assert examples.make_sweep(tmp_path / "sweeps", spec) == tmp_path / "sweeps" / "tiny.csv"
    made = examples.sweep(tmp_path / "sweeps", "tiny")
    assert made.name == "example:tiny" and made.made.startswith("Made by")
    assert [r["variant"] for r in made.cells.records()] == ["vanilla", "reweighted"]
    assert all(r["state"] == "done" and 0 <= r["unbiased"] <= 100 for r in made.cells.records())
    assert results.Table.from_csv(made.cells.to_csv()) == made.cells
    assert examples.sweep(tmp_path / "sweeps", "other") is None
    (tmp_path / "sweeps" / "tiny.csv").write_bytes(b"\xff\xfe not text")
    assert examples.sweep(tmp_path / "sweeps", "tiny") is None  # the page then shows the user's sweeps alone


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_shipped_examples_are_read_only_to_every_write(tmp_path: Path, capsys) -> None:
    # a copy, so a failure cannot damage the repository's examples
    import shutil

    from ddcore.cli import main
    from ddcore.errors import DDError

    root = tmp_path / "examples"
    shutil.copytree(ROOT, root)
    (root / ".cache").mkdir()
    before = _tree(root)
    run = root / "dm-reweighted"
    for args in (["evaluate", str(run), "--eval-models", "1"],
                 ["distill", "--preset", "smoke", "--out", str(root / "new")],
                 ["distill", "--preset", "smoke", "--out", str(run), "--overwrite"],
                 ["cache", "--clear", "--runs", str(root)],
                 ["worker", "--runs", str(root), "--idle-exit", "0"],
                 ["sweep", "run", "smoke", "--runs", str(root)],
                 ["sweep", "run", "smoke", "--runs", str(root), "--backend", "ray"]):  # before Ray starts
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert "ship with ddbias, which are read-only" in err and len(err.strip().splitlines()) == 1, (args, err)
    with pytest.raises(DDError, match=r"read-only \(\.ddcore-shipped\); nothing was deleted"):
        runstore.delete_run(run)
    assert _tree(root) == before, "nothing shipped was touched"
    # reading stays open: listing, the cache's size, exporting
    assert main(["list", "--runs", str(root)]) == 0 and "dm-reweighted" in capsys.readouterr().out
    assert main(["cache", "--runs", str(root)]) == 0
    assert runstore.export_run(run)[:2] == b"PK"
