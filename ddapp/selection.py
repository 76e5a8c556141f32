"""What the Embedding map page does with points: a selection as a table, a CSV and an image grid;
a clicked point's nearest neighbours in the surrogate's embedding and in pixel space."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ddcore.errors import DDError
from ddcore.records import EmbeddingMap, thumbnails

from .figures import REAL, SYNTHETIC, relative_weight
from .images import tile

SELECTION_COLUMNS = ["kind", "index", "label", "class", "bias", "bias value", "conflicting", "log density",
                     "density", "weight", "weight x uniform"]


@dataclass(frozen=True)
class Point:
    """One point of the map: a real sample (row of real_*) or a synthetic image (row of syn_*)."""

    kind: str  # figures.REAL or figures.SYNTHETIC
    row: int


def selection_table(emb: EmbeddingMap, real_rows: np.ndarray, syn_rows: np.ndarray = ()) -> pd.DataFrame:
    """One row per selected point: kind, index (into the training split for a real sample, into
    the synthetic set for a synthetic image), label and class name, bias value (real samples
    only), whether it is bias-conflicting, KDE log density and density in the surrogate's
    embedding, weight (sums to 1 per class) and weight x uniform (1: what every sample of its
    class gets without reweighting). Synthetic images have no bias label and no weight."""
    real_rows, syn_rows = np.asarray(real_rows, dtype=np.int64), np.asarray(syn_rows, dtype=np.int64)
    rel = relative_weight(emb)
    real = pd.DataFrame({
        "kind": REAL, "index": emb.real_index[real_rows], "label": emb.real_label[real_rows],
        "class": [emb.classes[c] for c in emb.real_label[real_rows]], "bias": emb.real_bias[real_rows],
        "bias value": [emb.bias_values[b] for b in emb.real_bias[real_rows]],
        "conflicting": emb.conflicting()[real_rows], "log density": emb.real_log_density[real_rows],
        "density": emb.real_density[real_rows], "weight": emb.real_weight[real_rows],
        "weight x uniform": rel[real_rows],
    })
    syn = pd.DataFrame({
        "kind": SYNTHETIC, "index": syn_rows, "label": emb.syn_label[syn_rows],
        "class": [emb.classes[c] for c in emb.syn_label[syn_rows]], "log density": emb.syn_log_density[syn_rows],
        "density": np.exp(emb.syn_log_density[syn_rows].astype(np.float64)),
    })
    parts = [p for p in (real, syn) if len(p)]
    return pd.concat(parts, ignore_index=True)[SELECTION_COLUMNS] if parts else pd.DataFrame(columns=SELECTION_COLUMNS)


def selection_csv(table: pd.DataFrame) -> str:
    return table.to_csv(index=False)


def selection_grid(emb: EmbeddingMap, real_rows: np.ndarray, syn_thumbs: np.ndarray | None = None,
                   syn_rows: np.ndarray = (), per_row: int = 16) -> np.ndarray | None:
    """The selected real samples' thumbnails (in the order given), then the selected synthetic
    images', tiled `per_row` to a row; None when the map kept no thumbnails."""
    if emb.real_thumbs is None:
        return None
    pictures = [emb.real_thumbs[np.asarray(real_rows, dtype=np.int64)]]
    if syn_thumbs is not None and len(syn_rows):
        pictures.append(syn_thumbs[np.asarray(syn_rows, dtype=np.int64)])
    stack = np.concatenate(pictures)
    return tile(stack, min(per_row, max(len(stack), 1))) if len(stack) else None


def _nearest(distances: np.ndarray, k: int, exclude: int | None) -> np.ndarray:
    if exclude is not None:
        distances = distances.copy()
        distances[exclude] = np.inf
    k = min(k, int(np.isfinite(distances).sum()))
    rows = np.argpartition(distances, k - 1)[:k] if k else np.array([], dtype=np.int64)
    return rows[np.argsort(distances[rows], kind="stable")].astype(np.int64)


def embedding_neighbours(emb: EmbeddingMap, point: Point, k: int = 8) -> np.ndarray:
    """Rows of real_* nearest to `point` in the surrogate's embedding (the space the KDE works
    in), nearest first, the point itself left out."""
    query = emb.real_features[point.row] if point.kind == REAL else emb.syn_features[point.row]
    distances = np.linalg.norm(emb.real_features - query[None, :], axis=1)
    return _nearest(distances, k, point.row if point.kind == REAL else None)


def pixel_neighbours(emb: EmbeddingMap, point: Point, syn_thumbs: np.ndarray | None = None,
                     k: int = 8) -> np.ndarray | None:
    """Rows of real_* nearest to `point` in pixel space (Euclidean over its thumbnail), nearest
    first, the point itself left out; None when thumbnails are missing. On biased data these
    share the point's colour more than its class: what a model that reads pixels sees."""
    if emb.real_thumbs is None or (point.kind == SYNTHETIC and syn_thumbs is None):
        return None
    query = (emb.real_thumbs if point.kind == REAL else syn_thumbs)[point.row].astype(np.float32)
    if query.shape != emb.real_thumbs.shape[1:]:
        return None
    flat = emb.real_thumbs.reshape(len(emb.real_thumbs), -1).astype(np.float32)
    distances = np.linalg.norm(flat - query.reshape(1, -1), axis=1)
    return _nearest(distances, k, point.row if point.kind == REAL else None)


def clicked(real_rows: np.ndarray, syn_rows: np.ndarray) -> Point | None:
    """The point a click selected (exactly one point in the selection), else None."""
    if len(real_rows) + len(syn_rows) != 1:
        return None
    return Point(REAL, int(real_rows[0])) if len(real_rows) else Point(SYNTHETIC, int(syn_rows[0]))


def check_synthetic(emb: EmbeddingMap, images: np.ndarray, run_dir: Path) -> None:
    """DDError naming the run folder unless the map places one point per synthetic image: rows of
    syn_* index the images, so a folder whose two files disagree (damaged, or pieced together from
    two runs) would show the wrong image for a point, or none."""
    if len(images) != len(emb.syn_label):
        raise DDError(f"{run_dir} is damaged: its synthetic.pt holds {len(images)} images, but its embedding map "
                      f"places {len(emb.syn_label)}")


def synthetic_thumbs(images: np.ndarray) -> np.ndarray:
    """Synthetic images as displayed (uint8 [M, H, W, 3]) at the map's thumbnail size, so they
    can be compared with and tiled beside the real samples' thumbnails."""
    return thumbnails(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0)
