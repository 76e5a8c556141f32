"""The CLI end to end: a real smoke run writes a complete run folder; bad input exits 2 with one line."""
import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

from ddcore.cli import main, parse_overrides
from ddcore.config import CHOICES, METHODS, SECTION_TYPES, RunConfig, preset, validate
from ddcore.data import dsa_strategy
from ddcore.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ddcore", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=600)


def main_in_process(capsys, *args):
    """The CLI's main() in this process (no interpreter start-up): (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke-kde"
    result = cli("distill", "--preset", "smoke", "--conflict-ratio", "0.05", "--reweight", "kde", "--seed", "0",
                 "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


def test_smoke_run_writes_a_complete_folder(smoke_run):
    out, result = smoke_run
    assert "unbiased" in result.stdout and "conflicting weight share" in result.stdout
    for name in ("config.json", "status.json", "log.txt", "synthetic.pt", "synthetic.png", "metrics.json",
                 "embeddings.npz"):
        assert (out / name).is_file(), name
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "done" and status["finished"] >= status["started"]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_acc_unbiased", "test_acc_unbiased_std", "test_acc_aligned", "test_acc_conflicting",
                "weight_share_conflicting", "count_share_conflicting", "seconds_total", "device"):
        assert key in metrics, key
    assert 0 <= metrics["test_acc_unbiased"] <= 100 and metrics["device"] == "cpu"
    assert metrics["count_share_conflicting"] == pytest.approx(0.05, abs=1e-6)
    assert set(metrics["seconds_per_stage"]) == {"data", "surrogate", "density", "distill", "evaluate", "map"}


def test_synthetic_tensors_and_embeddings(smoke_run):
    out, _ = smoke_run
    payload = torch.load(out / "synthetic.pt", weights_only=True)
    ipc = json.loads((out / "config.json").read_text())["distill"]["ipc"]
    assert payload["images"].shape == (10 * ipc, 3, 28, 28) and payload["labels"].tolist() == sorted(payload["labels"].tolist())
    with np.load(out / "embeddings.npz") as z:
        n = len(z["real_index"])
        for key in ("real_features", "real_density", "real_log_density", "real_weight", "real_label", "real_bias"):
            assert len(z[key]) == n, key
        assert z["real_map"].shape == (n, 2) and np.isfinite(z["real_map"]).all()
        assert z["syn_map"].shape == (10 * ipc, 2) and z["syn_neighbors"].shape[0] == 10 * ipc
        assert "sigma" in str(z["density_space"])
        # the weights of each class over the whole training set sum to 1
        sums = np.bincount(z["train_label"], weights=z["train_weight"])
        np.testing.assert_allclose(sums, 1.0, rtol=1e-4)


def test_list_shows_runs_and_survives_a_damaged_folder(smoke_run):
    out, _ = smoke_run
    (out.parent / "garbage").mkdir(exist_ok=True)
    (out.parent / "garbage" / "status.json").write_text("{{{")
    result = cli("list", "--runs", str(out.parent))
    assert result.returncode == 0, result.stderr
    assert "smoke-kde" in result.stdout and "done" in result.stdout
    assert "garbage" in result.stdout and "damaged" in result.stdout


def test_evaluate_recomputes_metrics(smoke_run):
    out, _ = smoke_run
    result = cli("evaluate", str(out), "--eval-models", "2", "--eval-epochs", "3")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_models"] == 2 and len(metrics["test_acc_unbiased_per_model"]) == 2
    assert "weight_share_conflicting" in metrics  # the distillation's diagnostics are kept


@pytest.mark.parametrize("args, message", [
    (["--conflict-ratio", "1.5"], "conflict ratio must be in [0, 1]"),
    (["--conflict-ratio", "-0.1"], "conflict ratio must be in [0, 1]"),
    (["--ipc", "0"], "IPC must be at least 1"),
    (["--ipc", "401"], "larger than the smallest class (400 images)"),
    (["--method", "nope"], "unknown method 'nope'"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--reweight", "maybe"], "unknown reweighting 'maybe'"),
    (["--preset", "huge"], "invalid choice: 'huge'"),
    (["--kde-sigma", "-1"], "KDE sigma must be between 0.001 and 1000"),
    (["--kde-scale", "0"], "KDE scale must be between 0.01 and 100"),
    (["--kde-scale", "inf"], "KDE scale must be between 0.01 and 100"),
    (["--ipc", "ten"], "invalid int value: 'ten'"),
    (["--source", "files", "--root", "/nonexistent/mnist"], "/nonexistent/mnist"),
    (["--root", "/nonexistent/mnist"], "--root applies to --source files"),
    (["--download", "true"], "--download applies to --source files"),
    (["--batch-real", "100000000000"], "--batch-real must be at most 65,536, got 100,000,000,000"),
    (["--method", "dc", "--batch-train", "70000"], "--batch-train must be at most 65,536"),
    (["--iterations", "1000000000000"], "--iterations must be at most 1,000,000, got 1,000,000,000,000"),
    (["--iterations", "1" + "0" * 400], "--iterations must be at most 1,000,000"),  # beyond any float
    (["--net-width", "1" + "0" * 400], "net width must be between 1 and 4096"),
    (["--net-depth", "100"], "net depth must be between 1 and 8 (each block halves the image"),
    (["--net-depth", "100000000000", "--image-size", "32"], "net depth must be between 1 and 8"),  # never 2 ** depth
])
def test_invalid_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    code, _, err = main_in_process(capsys, "distill", "--preset", "smoke", "--out", str(tmp_path / "run"), *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


@pytest.mark.parametrize("args", [["--device", "tpu"], ["--init", "zeros"], ["--bf16", "maybe"],
                                  ["--eval-debias", "mixup"], ["--net-norm", "batch"]])
def test_every_named_choice_is_checked(tmp_path, capsys, args):
    code, _, err = main_in_process(capsys, "distill", "--preset", "smoke", "--out", str(tmp_path / "run"), *args)
    assert code == 2 and f"'{args[1]}'; choose one of" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_help_lists_the_choices_of_every_named_option(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "2000")  # argparse wraps at the terminal's width, hyphens included
    code, out, _ = main_in_process(capsys, "distill", "--help")
    assert code == 0
    out = " ".join(out.split())  # argparse aligns the help column with runs of spaces
    for name, (_, options) in CHOICES.items():
        if name not in ("kind", "preset"):  # the command sets the kind; --preset lists its choices itself
            assert f"--{name.replace('_', '-')} {name.upper()}" in out and f"one of {', '.join(options)}" in out, name
    # every option says what it means, from its field's help
    for typ in (*SECTION_TYPES.values(), RunConfig):
        for f in fields(typ):
            if f.name not in SECTION_TYPES and f.name not in ("kind", "preset"):
                assert f"--{f.name.replace('_', '-')} {f.name.upper()} {f.metadata['help']} (" in out, f.name


def test_existing_output_needs_overwrite(smoke_run, capsys):
    out, _ = smoke_run
    before = (out / "metrics.json").read_bytes()
    code, _, err = main_in_process(capsys, "distill", "--preset", "smoke", "--out", str(out))
    assert code == 2 and "--overwrite" in err
    assert (out / "metrics.json").read_bytes() == before  # nothing saved was touched


def test_evaluate_on_a_non_run_folder(tmp_path, capsys):
    code, _, err = main_in_process(capsys, "evaluate", str(tmp_path))
    assert code == 2 and "not a run folder" in err


def test_evaluate_says_at_once_when_it_could_not_write_its_result(smoke_run, capsys, monkeypatch):
    import tempfile

    out, _ = smoke_run
    before = (out / "metrics.json").read_bytes()

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    code, _, err = main_in_process(capsys, "evaluate", str(out))
    assert code == 2 and err.strip() == f"error: cannot write in {out} (Permission denied); nothing was evaluated"
    assert (out / "metrics.json").read_bytes() == before


def test_a_refusal_of_the_file_system_is_one_line(tmp_path, capsys, monkeypatch):
    from ddcore import runstore

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "runs" / "a"))

    monkeypatch.setattr(runstore, "create_run", full)
    code, _, err = main_in_process(capsys, "distill", "--preset", "smoke", "--out", str(tmp_path / "runs" / "a"))
    assert code == 2 and err.strip().splitlines()[-1] == f"error: No space left on device: {tmp_path / 'runs' / 'a'}"


def test_parse_overrides_types_values_and_rejects_nonsense():
    assert parse_overrides(["--kde-tau", "2", "--method", "mtt", "--kde-sigma", "auto", "--bf16", "true"]) == {
        "kde_tau": 2.0, "method": "mtt", "kde_sigma": None, "bf16": "true"}
    for args, message in ((["--no-such", "1"], "unknown option '--no-such'"), (["--ipc"], "has no value"),
                          (["--ipc", "ten"], "bad value for --ipc"), (["ipc", "3"], "unknown option 'ipc'")):
        with pytest.raises(ConfigError, match=message):
            parse_overrides(args)


def test_dsa_strategy_none_means_no_augmentation_and_auto_the_datasets(tmp_path):
    assert parse_overrides(["--dsa-strategy", "none"]) == {"dsa_strategy": "none"}
    assert parse_overrides(["--dsa-strategy", "auto", "--kde-sigma", "none"]) == {"dsa_strategy": None,
                                                                                   "kde_sigma": None}
    result = cli("random-subset", "--preset", "smoke", "--dsa-strategy", "none", "--device", "cpu",
                 "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    cfg = RunConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    assert dsa_strategy(cfg) == "none" and dsa_strategy(preset("smoke")) != "none"


def test_the_paper_preset_means_full_data(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("DDBIAS_DATA", raising=False)
    assert preset("paper").data.source == "files" and preset("paper").data.root is None
    monkeypatch.setenv("DDBIAS_DATA", str(tmp_path))
    assert preset("paper").data.root == str(tmp_path)
    with pytest.raises(ConfigError, match="not the bundled 4,000-image sample"):
        validate(preset("paper").with_overrides(source="bundled"))
    code, _, err = main_in_process(capsys, "distill", "--preset", "paper", "--source", "bundled", "--runs", str(tmp_path))
    assert code == 2 and "--preset quick" in err and "Traceback" not in err


def test_the_full_preset_is_quick_on_the_full_datasets_with_smoothed_weights(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DDBIAS_DATA", str(tmp_path))
    for method in METHODS:
        full, quick = preset("full", method), preset("quick", method)
        assert full.data.source == "files" and full.data.root == str(tmp_path) and full.preset == "full"
        assert full.reweight.kde_smooth and not quick.reweight.kde_smooth
        assert full.with_overrides(source="bundled", root=None, kde_smooth=False, preset="quick") == quick
    with pytest.raises(ConfigError, match="the full preset runs on the full datasets"):
        validate(preset("full").with_overrides(source="bundled"))
    code, _, err = main_in_process(capsys, "distill", "--preset", "full", "--source", "bundled", "--runs", str(tmp_path))
    assert code == 2 and "--preset quick" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
    monkeypatch.delenv("DDBIAS_DATA")
    code, _, err = main_in_process(capsys, "distill", "--preset", "full", "--runs", str(tmp_path))
    assert code == 2 and "neither is set: pass --root DIR or set DDBIAS_DATA=DIR" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_closed_pipe_ends_the_output_quietly(smoke_run):
    """`python -m ddcore list | head -1`: the reader goes away; no traceback on stderr."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line is written
    try:
        result = subprocess.run([sys.executable, "-m", "ddcore", "list", "--runs", str(smoke_run[0].parent)], stdout=write, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT, timeout=120)
    finally:
        os.close(write)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
