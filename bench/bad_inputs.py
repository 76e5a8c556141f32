"""The sweep of bad inputs: each one through the CLI in this process, printed as a Markdown table
of input, exit status and the line the user sees (temporary paths shown as TMP). One smoke run
(the saturating image lr) is the only real work; everything else is refused before any starts.

    python bench/bad_inputs.py
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ddapp import examples
from ddcore import runstore
from ddcore.cli import main
from ddcore.config import preset
from ddcore.pipeline import execute_run
from ddcore.records import EmbeddingMap

RUN = ["distill", "--preset", "smoke", "--surrogate", "untrained", "--eval-epochs", "2"]
OPTIONS = [
    "--lr-img 1e300", "--lr-img inf", "--lr-img nan", "--lr-img 0", "--kde-sigma 1e-30", "--kde-sigma inf",
    "--kde-sigma -1", "--kde-sigma abc", "--kde-tau 0", "--kde-tau 1e-40", "--conflict-ratio abc",
    "--conflict-ratio nan", "--conflict-ratio 2", "--conflict-ratio none", "--ipc 0", "--ipc ten", "--ipc 100000",
    "--iterations -1", "--seed -1", "--seed 99999999999", "--supcon-temperature 0", "--surrogate-lr inf",
    "--surrogate-lr 1e9", "--eval-lr 1e9", "--momentum-img 1", "--map-min-dist 5", "--net-width 1000000",
    "--image-size 1000", "--max-start-epoch abc", "--dsa-strategy color_spin", "--method nope",
    "--dataset imagenet", "--source files --root /nonexistent/mnist",
    # a second pass (2026-12-02)
    "--root /nonexistent/mnist", "--download true", "--batch-real 100000000000", "--iterations 1000000000000",
    "--device tpu",
    # a fourth pass (2026-12-08)
    "--net-depth 100", "--net-depth 100000000000 --image-size 32",
]


def cli(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
    lines = [line for line in err.getvalue().splitlines() if line.startswith(("error:", "warning:"))]
    return code, lines[-1] if lines else "(nothing)"


def main_() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        done = runstore.create_run(t / "runs" / "done", preset("smoke").with_overrides(surrogate="untrained",
                                                                                        eval_epochs=2))
        execute_run(done)
        (t / "models" / "bert").mkdir(parents=True)
        (t / "models" / "bert" / "config.json").write_text('{"hidden_size": 768}')
        (t / "h" / ".cache" / "pip").mkdir(parents=True)
        (t / "h" / ".cache" / "pip" / "x").write_bytes(os.urandom(1024))
        (t / "a-file").write_text("x")
        (t / "runs" / "notes").mkdir()
        (t / "runs" / "notes" / "todo.txt").write_text("mine")
        damaged = {}
        for name, damage in (("truncated", "synthetic.pt"), ("pickle", "synthetic.pt"), ("wrong-type", "metrics.json"),
                             ("progress-abc", "status.json"), ("object-map", "embeddings.npz"),
                             ("fifo", "status.json"), ("dev-zero", "metrics.json"), ("deep", "metrics.json"),
                             ("pid-0", "status.json"), ("teleport", "config.json"), ("ratio-7.5", "config.json"),
                             ("label-57", "synthetic.pt")):
            run = t / "runs" / name
            shutil.copytree(done, run)
            damaged[name] = run
        data = (done / "synthetic.pt").read_bytes()
        (damaged["truncated"] / "synthetic.pt").write_bytes(data[: len(data) // 2])
        torch.save({"images": contextlib.nullcontext(), "labels": torch.zeros(1)}, damaged["pickle"] / "synthetic.pt")
        (damaged["wrong-type"] / "metrics.json").write_text(json.dumps({"test_acc_unbiased": "abc"}))
        (damaged["progress-abc"] / "status.json").write_text(json.dumps({"state": "done", "progress": "abc"}))
        np.savez(damaged["object-map"] / "embeddings.npz", real_map=np.array([{"x": 1}], dtype=object))
        (damaged["fifo"] / "status.json").unlink()
        os.mkfifo(damaged["fifo"] / "status.json")
        (damaged["dev-zero"] / "metrics.json").unlink()
        (damaged["dev-zero"] / "metrics.json").symlink_to("/dev/zero")
        (damaged["deep"] / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
        status = json.loads((done / "status.json").read_text())
        (damaged["pid-0"] / "status.json").write_text(json.dumps({**status, "state": "running", "pid": 0}))
        config = json.loads((done / "config.json").read_text())
        (damaged["teleport"] / "config.json").write_text(json.dumps({**config, "kind": "teleport"}))
        (damaged["ratio-7.5"] / "config.json").write_text(
            json.dumps({**config, "data": {**config["data"], "conflict_ratio": 7.5}}))
        synthetic = torch.load(done / "synthetic.pt", weights_only=True)
        torch.save({**synthetic, "labels": synthetic["labels"] + 57}, damaged["label-57"] / "synthetic.pt")
        runstore.init_root(t / "linked")
        (t / "linked" / ".cache").symlink_to(t / "h", target_is_directory=True)
        (t / "photos").mkdir()
        Image.new("RGB", (3000, 3000)).save(t / "photos" / "x.png")
        (t / "photos" / "d.csv").write_text("path,label,bias,split\n" + "".join(
            f"x.png,{c},{b},{split}\n" for c, b, split in (("a", "p", "train"), ("b", "q", "train"), ("a", "q", "test"))))
        (t / "tiny").mkdir()
        Image.new("RGB", (12, 12)).save(t / "tiny" / "x.png")
        (t / "tiny" / "no-test.csv").write_text("path,label,bias\nx.png,a,p\nx.png,a,p\nx.png,b,q\n")
        no_status, lock_fifo, old_link = (t / "runs" / n for n in ("no-status", "lock-fifo", "old-link"))
        for run in (no_status, lock_fifo, old_link):
            shutil.copytree(done, run)
        (no_status / "status.json").unlink()
        (lock_fifo / "status.json").write_text(json.dumps({**json.loads((done / "status.json").read_text()),
                                                           "state": "running", "pid": os.getpid()}))
        (lock_fifo / ".lock").unlink(missing_ok=True)
        os.mkfifo(lock_fifo / ".lock")
        (t / "mine").mkdir()
        (t / "mine" / "keep.txt").write_text("mine")
        (t / "runs" / ".old-link.old").symlink_to(t / "mine")
        (t / "huge.toml").write_text('name = "huge"\npreset = "smoke"\nseeds = [0, 1]\n[axes]\nipc = [%s]\nkde_tau = [%s]\n'
                                     % (", ".join(map(str, range(1, 101))), ", ".join(str(v / 10) for v in range(1, 101))))

        shutil.copytree(examples.ROOT, t / "examples")  # a copy: the repository's own are never at risk here
        (t / "latin1.toml").write_bytes('name = "x"\npreset = "smoke"\ndescription = "caf\u00e9"\n'.encode("latin-1"))

        cases: list[tuple[str, list[str]]] = [(f"distill {o}", [*RUN, "--out", str(t / "new"), *o.split()])
                                              for o in OPTIONS]
        cases += [
            ("distill --lr-img 1e6 (runs, saturates)", [*RUN, "--lr-img", "1e6", "--out", str(t / "runs" / "hot")]),
            ("distill --out <existing run>", [*RUN, "--out", str(done)]),
            ("distill --out <existing run> --overwrite --lr-img inf", [*RUN, "--out", str(done), "--overwrite",
                                                                       "--lr-img", "inf"]),
            ("distill --out <folder with a file of mine> --overwrite", [*RUN, "--out", str(t / "runs" / "notes"),
                                                                        "--overwrite"]),
            ("distill --out <a model folder>/run", [*RUN, "--out", str(t / "models" / "run")]),
            ("list --runs /", ["list", "--runs", "/"]),
            ("list --runs <a file>", ["list", "--runs", str(t / "a-file")]),
            ("cache --clear --runs <a folder holding .cache/pip>", ["cache", "--clear", "--runs", str(t / "h")]),
            ("evaluate <a model folder>", ["evaluate", str(t / "models" / "bert")]),
            ("evaluate <run with truncated synthetic.pt>", ["evaluate", str(damaged["truncated"])]),
            ("evaluate <run with a pickle in synthetic.pt>", ["evaluate", str(damaged["pickle"])]),
            ("evaluate <run whose synthetic labels are shifted by 57>", ["evaluate", str(damaged["label-57"])]),
            ("distill --out <root whose .cache links elsewhere>/run", [*RUN, "--out", str(t / "linked" / "run")]),
            ("distill --out 'a<newline>b'", [*RUN, "--out", str(t / "runs" / "a\nb")]),
            ("distill --dataset csv <3000x3000 images>", [*RUN, "--dataset", "csv", "--source", "files", "--csv-path",
                                                          str(t / "photos" / "d.csv"), "--conflict-ratio", "none",
                                                          "--ipc", "1", "--out", str(t / "new")]),
            ("sweep run <100 x 100 values x 2 seeds>", ["sweep", "run", str(t / "huge.toml"), "--runs", str(t / "new")]),
            ("worker --idle-exit nan", ["worker", "--runs", str(t / "new"), "--idle-exit", "nan"]),
            # a third pass (2026-12-02)
            ("evaluate <a shipped example run>", ["evaluate", str(t / "examples" / "dm-reweighted")]),
            ("distill --out <a shipped example run> --overwrite", [*RUN, "--out", str(t / "examples" / "dm-vanilla"),
                                                                   "--overwrite"]),
            ("sweep run <a spec in Latin-1>", ["sweep", "run", str(t / "latin1.toml"), "--runs", str(t / "new")]),
            # a fourth pass (2026-12-08)
            ("distill --dataset csv <every (label, bias) group of 1-2 rows, no split column>",
             [*RUN, "--dataset", "csv", "--source", "files", "--csv-path", str(t / "tiny" / "no-test.csv"),
              "--conflict-ratio", "none", "--ipc", "1", "--out", str(t / "new")]),
            ("evaluate <run without status.json>", ["evaluate", str(no_status), "--eval-epochs", "1"]),
            ("list --runs <a running run whose .lock is a FIFO>", ["list", "--runs", str(t / "runs")]),
            ("distill --out <run> --overwrite, its .NAME.old a link to a folder of mine",
             [*RUN, "--out", str(old_link), "--overwrite"]),
        ]
        print("| input | exit | what the user sees |")
        print("|---|---|---|")
        for label, args in cases:
            code, line = cli(*args)
            print(f"| `{label}` | {code} | {line.replace(tmp, 'TMP').replace('|', '/')} |", flush=True)
        kept = (t / "mine" / "keep.txt").read_text() == "mine"
        print(f"| (after the last row) the folder the link pointed to | - | {'untouched' if kept else 'EMPTIED'} |")
        print(f"| (after `list`) the FIFO-locked run's state | - | {runstore.read_status(lock_fifo).state} |")
        rows = {r.name: r for r in runstore.list_runs(t / "runs")}
        for name, what in (("wrong-type", 'metrics.json {"test_acc_unbiased": "abc"}'),
                           ("progress-abc", 'status.json {"progress": "abc"}'), ("fifo", "a FIFO for status.json"),
                           ("dev-zero", "metrics.json a link to /dev/zero"), ("deep", "metrics.json nested 100,000 deep"),
                           ("pid-0", 'status.json {"state": "running", "pid": 0}'),
                           ("teleport", 'config.json {"kind": "teleport"}'),
                           ("ratio-7.5", 'config.json {"data": {"conflict_ratio": 7.5, ...}}')):
            print(f"| `list` row of a run with {what} | 0 | {rows[name].error.replace(tmp, 'TMP')} |")
        try:
            EmbeddingMap.load(damaged["object-map"])
        except Exception as exc:  # noqa: BLE001 - printing what the Embedding map page shows
            print(f"| Embedding map page, embeddings.npz with an object array | - | {str(exc).replace(tmp, 'TMP')} |")


if __name__ == "__main__":
    main_()
