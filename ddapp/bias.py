"""Bias explorer helpers: per-class counts, which samples to show, the bias-value legend."""
from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ddcore.data import Naming


def class_counts(labels: np.ndarray, conflicting: np.ndarray, num_classes: int,
                 naming: Naming | None = None) -> pd.DataFrame:
    """Per class: aligned and conflicting counts, total and the conflicting percentage; with a
    `naming`, also the class's name and its aligned bias value."""
    aligned = np.bincount(labels[~conflicting], minlength=num_classes)
    conflict = np.bincount(labels[conflicting], minlength=num_classes)
    total = aligned + conflict
    names = {}
    if naming is not None:
        names = {"name": list(naming.classes), "aligned value": [naming.bias_values[b] for b in naming.aligned]}
    return pd.DataFrame(
        {
            "class": np.arange(num_classes),
            **names,
            "aligned": aligned,
            "conflicting": conflict,
            "total": total,
            "conflicting %": np.round(100.0 * conflict / np.maximum(total, 1), 2),
        }
    )


def first_per_class(labels: np.ndarray, mask: np.ndarray, num_classes: int, k: int) -> np.ndarray:
    """Indices of the first `k` samples of each class where `mask` holds, class by class."""
    return np.concatenate([np.flatnonzero(mask & (labels == c))[:k] for c in range(num_classes)]).astype(np.int64)


def palette_legend_html(palette: np.ndarray, names: Sequence[str] | None = None) -> str:
    """A row of colour swatches, one per bias value, labelled with `names` (default: the index)."""
    swatches = []
    for i, colour in enumerate(np.asarray(palette)):
        r, g, b = (int(round(255 * float(v))) for v in colour[:3])
        text = "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"
        swatches.append(
            f'<span style="display:inline-block;min-width:2.6em;padding:0.35em 0.4em;margin:0 0.2em 0.2em 0;'
            f'text-align:center;border-radius:4px;background:rgb({r},{g},{b});color:{text}">'
            f"{html.escape(str(names[i] if names is not None else i))}</span>"
        )
    return "<div>" + "".join(swatches) + "</div>"
