"""Run folders for tests: a small hand-made embedding map, and a store that holds every kind of
damaged run a careless or hostile user (or a crash) can leave behind."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from ddcore.records import EmbeddingMap


def fake_map(n: int = 50, m: int = 4, classes: int = 2, aligned=None, names=None) -> EmbeddingMap:
    """A map of n real samples of `classes` classes (bias value = class, except four conflicting
    samples) and m synthetic images; names are indices unless given as (classes, values, colours)."""
    rng = np.random.default_rng(0)
    label = np.arange(n) % classes
    bias = label.copy()
    bias[:4] = (label[:4] + 1) % classes  # four conflicting samples
    indices = tuple(str(c) for c in range(classes))
    class_names, values, colours = names or (indices, indices, rng.random((classes, 3)))

    def f32(a) -> np.ndarray:
        return np.asarray(a, dtype=np.float32)

    return EmbeddingMap(
        real_index=np.arange(n), real_features=f32(rng.normal(size=(n, 3))), real_log_density=f32(rng.normal(size=n)),
        real_density=f32(np.ones(n)), real_weight=f32(np.full(n, classes / n)), real_label=label, real_bias=bias,
        real_map=f32(rng.normal(size=(n, 2))), real_thumbs=np.zeros((n, 4, 4, 3), dtype=np.uint8),
        syn_features=f32(rng.normal(size=(m, 3))), syn_log_density=f32(np.zeros(m)), syn_label=np.arange(m) % classes,
        syn_map=f32(rng.normal(size=(m, 2))), syn_neighbors=np.zeros((m, 3), dtype=np.int64),
        train_log_density=f32(np.zeros(n)), train_weight=f32(np.full(n, classes / n)), train_label=label,
        train_bias=bias, aligned_bias=np.array(aligned or range(classes)), colours=f32(colours),
        classes=class_names, bias_values=values, bias_attribute="colour", density_space="test space, sigma=0.1",
    )


class Bomb:
    """Unpickling this would delete `canary`: a loader that executes pickled code fails the test."""

    def __init__(self, canary: Path) -> None:
        self.canary = str(canary)

    def __reduce__(self):
        return os.remove, (self.canary,)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damaged_store(root: Path, done_run: Path, outside: Path) -> dict[str, str]:
    """Fill `root` with copies of the finished distill run `done_run`, each damaged in one way,
    plus a symlink to `outside` (a folder that must never be touched). Returns {run name: what
    the app or CLI should say about it (a fragment of the message)}."""
    runs: dict[str, str] = {}

    def copy(name: str, says: str) -> Path:
        shutil.copytree(done_run, root / name)
        (root / name / ".lock").unlink(missing_ok=True)
        runs[name] = says
        return root / name

    (copy("config-not-json", "config.json") / "config.json").write_text("{not json")
    cfg = root / "config-wrong-type" / "config.json"
    copy("config-wrong-type", "distill.ipc should be a whole number")
    _edit_json(cfg, distill={**json.loads(cfg.read_text())["distill"], "ipc": "abc"})
    _edit_json(copy("status-wrong-type", "progress should be a number") / "status.json", progress="abc")
    _edit_json(copy("status-unknown-state", "state should be one of") / "status.json", state="exploded")
    _edit_json(copy("metrics-wrong-type", "test_acc_unbiased should be a number") / "metrics.json",
               test_acc_unbiased="abc")
    _edit_json(copy("metrics-newer-version", "newer ddcore") / "metrics.json", version=99)
    _truncate(copy("synthetic-truncated", "not a readable tensor file") / "synthetic.pt")
    canary = outside / "canary"
    canary.write_text("alive")
    torch.save({"images": Bomb(canary), "labels": torch.zeros(2)},
               copy("synthetic-pickle", "objects other than plain tensors") / "synthetic.pt")
    (copy("synthetic-missing", "has no synthetic images") / "synthetic.pt").unlink()
    np.savez(copy("map-object-arrays", "not a plain array file") / "embeddings.npz",
             real_map=np.array([{"x": 1}], dtype=object))
    _truncate(copy("map-truncated", "not a readable array file") / "embeddings.npz")
    with np.load(done_run / "embeddings.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(copy("map-wrong-shape", "real_map should be float32 [n, 2]") / "embeddings.npz",
             **{**arrays, "real_map": np.zeros((len(arrays["real_index"]), 3), dtype=np.float32)})
    np.savez(copy("map-index-out-of-range", "syn_neighbors should index") / "embeddings.npz",
             **{**arrays, "syn_neighbors": arrays["syn_neighbors"] + 10**6})
    _edit_json(copy("running-but-dead", "died") / "status.json", state="running", pid=dead_pid())
    # readers dispatch on the named options: an unknown one would be a KeyError on every page
    _edit_json(copy("config-unknown-kind", "unknown run kind 'teleport'") / "config.json", kind="teleport")
    # known names, values no run could have: checked as distill checks them before writing the file
    cfg = copy("config-out-of-range", "conflict ratio must be in [0, 1], got 7.5") / "config.json"
    _edit_json(cfg, data={**json.loads(cfg.read_text())["data"], "conflict_ratio": 7.5})
    # kill(0, 0) asks about our own process group (alive), kill(10**30, 0) overflows
    _edit_json(copy("status-pid-zero", "pid should lie in") / "status.json", state="running", pid=0)
    _edit_json(copy("status-pid-huge", "pid should lie in") / "status.json", state="running", pid=10**30)
    # a FIFO would block the reader, /dev/zero never end, deep nesting overflow the parser's stack
    fifo = copy("status-fifo", "not a regular file") / "status.json"
    fifo.unlink()
    os.mkfifo(fifo)
    metrics = copy("metrics-symlink", "symbolic link") / "metrics.json"
    metrics.unlink()
    metrics.symlink_to("/dev/zero")
    (copy("metrics-deep", "nested too deeply") / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "empty-folder").mkdir()
    runs["empty-folder"] = "is missing"
    (root / "symlinked").symlink_to(outside, target_is_directory=True)
    runs["symlinked"] = "symbolic link"
    return runs
