"""Cached loads from run folders and datasets. Each cache key holds the file's mtime, so a run
that is rewritten (re-evaluated, overwritten) is read afresh while unchanged ones cost nothing.
A damaged file raises ddcore.records.DamagedRun (a DDError) and is not cached."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from ddcore.config import DataConfig
from ddcore.data import load_biased
from ddcore.errors import DDError
from ddcore.records import EmbeddingMap, SyntheticImages

from .images import to_uint8


def _mtime(path: Path, what: str) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        raise DDError(f"{path.parent.name} has no {what}") from None


# cache_resource: records are immutable (read-only arrays), so sessions share one copy
@st.cache_resource(max_entries=32, show_spinner=False)
def _embeddings(run_dir: str, mtime: float) -> EmbeddingMap:
    return EmbeddingMap.load(Path(run_dir))


def embeddings(run_dir: Path) -> EmbeddingMap:
    return _embeddings(str(run_dir), _mtime(Path(run_dir) / EmbeddingMap.FILE, "embedding map"))


@st.cache_resource(max_entries=64, show_spinner=False)
def _synthetic(run_dir: str, mtime: float) -> tuple[np.ndarray, np.ndarray]:
    record = SyntheticImages.load(Path(run_dir))
    arrays = to_uint8(record.display().numpy()), record.labels.numpy()
    for a in arrays:
        a.setflags(write=False)
    return arrays


def synthetic(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [M, H, W, 3], labels [M]) of a finished run's synthetic images, as displayed."""
    return _synthetic(str(run_dir), _mtime(Path(run_dir) / SyntheticImages.FILE, "synthetic images"))


@dataclass(frozen=True)
class Split:
    """A biased split as display-ready, read-only arrays (uint8 images use a quarter of the
    memory of the float tensors, which matters for full MNIST)."""

    images: np.ndarray  # uint8 [N, H, W, 3]
    labels: np.ndarray
    bias: np.ndarray
    conflicting: np.ndarray
    num_classes: int


# cache_resource, not cache_data: the arrays are large and shared read-only, so copying them on
# every rerun (what cache_data does) would cost more than loading them once
@st.cache_resource(max_entries=4, show_spinner="Building the biased dataset…")
def _split(data_json: str, train: bool, seed: int) -> Split:
    t = load_biased(DataConfig(**json.loads(data_json)), train=train, seed=seed)
    arrays = [to_uint8(t.images.numpy()), t.labels.numpy(), t.bias.numpy(), t.conflicting.numpy()]
    for a in arrays:
        a.setflags(write=False)
    return Split(*arrays, num_classes=t.num_classes)


def split(data: DataConfig, train: bool, seed: int) -> Split:
    return _split(json.dumps(asdict(data), sort_keys=True), train, seed)
