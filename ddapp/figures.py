"""Plotly figure builders: the embedding map (with per-class density contours) and the Compare charts."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ddcore.data import Naming
from ddcore.records import EmbeddingMap

from .metrics import SPLITS

COLOUR_MODES = ("log density", "weight", "class", "bias attribute", "aligned / conflicting")
SYNTHETIC = "synthetic"  # trace `meta` of the synthetic markers, so a selection can tell them apart
REAL = "real"
PAIRED = "paired"  # the other run's synthetic markers: drawn, never selected (their rows index another run)
# a selection keeps every other point as grey context (plotly applies this while a selection exists)
SELECTED = dict(marker=dict(opacity=1.0))
UNSELECTED = dict(marker=dict(color="#d0d0d0", opacity=0.35))
# Ten distinguishable class colours (Tableau 10) — deliberately not the bias palette, so
# "coloured by class" and "coloured by bias attribute" never look alike.
CLASS_COLOURS = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)


def relative_weight(emb: EmbeddingMap) -> np.ndarray:
    """Each mapped sample's weight times its class size in the training set, so 1 means 'as much
    as under uniform weighting'. The raw weights sum to 1 per class: unreadable across classes."""
    class_size = np.bincount(emb.train_label, minlength=len(emb.classes))
    return emb.real_weight.astype(np.float64) * class_size[emb.real_label]


def value_text(attribute: str, value: str) -> str:
    """'place indoor'; a value named after its attribute already ('colour 3') as it is."""
    return value if value.startswith(attribute) else f"{attribute} {value}"


def sample_text(naming: Naming, attribute: str, label: int, bias: int) -> str:
    """'class cat · place indoor'."""
    return f"class {naming.classes[label]} · {value_text(attribute, naming.bias_values[bias])}"


def _hover(emb: EmbeddingMap) -> list[str]:
    rel, naming = relative_weight(emb), emb.naming
    return [
        f"{sample_text(naming, emb.bias_attribute, c, b)} · {'conflicting' if x else 'aligned'}<br>"
        f"log density {ld:.2f} · weight ×{w:.2f}"
        for c, b, x, ld, w in zip(emb.real_label, emb.real_bias, emb.conflicting(), emb.real_log_density, rel)
    ]


def _continuous(emb: EmbeddingMap, mode: str, hover: list[str]) -> list[go.Scattergl]:
    xy = emb.real_map
    space = emb.density_space or "embedding"
    if mode == "log density":
        values = emb.real_log_density
        # the space description is long: one short line per comma-separated part
        colourbar = dict(title=dict(text="log density<br>" + "<br>".join(f"<sub>{p}</sub>" for p in space.split(", "))))
    else:
        values = np.log10(np.clip(relative_weight(emb), 1e-6, None))
        ticks = [t for t in (0.01, 0.1, 0.5, 1, 2, 10, 100) if values.min() - 0.3 <= np.log10(t) <= values.max() + 0.3]
        colourbar = dict(
            title=dict(text="weight<br><sub>× uniform</sub><br><sub>log scale</sub>"),
            tickvals=np.log10(ticks).tolist(), ticktext=[f"×{t:g}" for t in ticks],
        )
    # draw the rare samples last (on top): low density, high weight; dense clusters would hide them
    order = np.argsort(-values if mode == "log density" else values, kind="stable")
    return [
        go.Scattergl(
            x=xy[order, 0], y=xy[order, 1], mode="markers", name="real samples", meta=REAL,
            customdata=order, hovertext=np.asarray(hover, dtype=object)[order], hoverinfo="text",
            marker=dict(size=5, color=values[order], colorscale="Viridis", colorbar=colourbar, opacity=0.85),
            selected=SELECTED, unselected=UNSELECTED,
        )
    ]


def _categorical(emb: EmbeddingMap, mode: str, hover: list[str]) -> list[go.Scattergl]:
    xy, label, bias = emb.real_map, emb.real_label, emb.real_bias
    odd = emb.conflicting()
    if mode == "aligned / conflicting":
        # conflicting last and larger: there are few of them and they are the point of the map
        groups = [("aligned", ~odd, "#c7c7c7", 4), ("conflicting", odd, "#d62728", 7)]
    elif mode == "class":
        groups = [(f"class {emb.classes[c]}", label == c, CLASS_COLOURS[c % 10], 5) for c in np.unique(label)]
    else:
        groups = [(value_text(emb.bias_attribute, emb.bias_values[b]), bias == b, _rgb(emb.colours[b]), 5)
                  for b in np.unique(bias)]
    hover_arr = np.asarray(hover, dtype=object)
    return [
        go.Scattergl(
            x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=name, meta=REAL,
            customdata=np.flatnonzero(rows), hovertext=hover_arr[rows], hoverinfo="text",
            marker=dict(size=size, color=colour, opacity=0.85), selected=SELECTED, unselected=UNSELECTED,
        )
        for name, rows, colour, size in groups
        if rows.any()
    ]


def _rgb(colour: np.ndarray) -> str:
    r, g, b = (int(round(255 * float(v))) for v in colour[:3])
    return f"rgb({r},{g},{b})"


CONTOUR_LEVELS = (0.2, 0.5, 0.8)  # of each class's peak density: its outskirts, body and core


def density_grid(xy: np.ndarray, labels: np.ndarray,
                 size: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """A 2-D Gaussian KDE of each class's points on the map (Scott's bandwidth), on one shared
    size x size grid: (grid x [size], grid y [size], the classes, {class: density [size, size]
    scaled to a peak of 1}). The density the weights come from lives in the surrogate's
    embedding, not on this map; these contours show where each class's samples crowd."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    margin = 0.05 * (hi - lo) + 1e-6
    gx, gy = (np.linspace(lo[i] - margin[i], hi[i] + margin[i], size) for i in range(2))
    classes = np.unique(labels)
    out = {}
    for c in classes:
        pts = xy[labels == c].astype(np.float64)
        h = max(float(pts.std(axis=0).mean()), 1e-3) * len(pts) ** (-1 / 6)  # Scott's rule in 2-D
        # the Gaussian kernel factorises over x and y: density[y, x] = sum_p ky[y, p] * kx[x, p]
        kx = np.exp(-((gx[:, None] - pts[None, :, 0]) ** 2) / (2 * h * h))
        ky = np.exp(-((gy[:, None] - pts[None, :, 1]) ** 2) / (2 * h * h))
        dens = ky @ kx.T
        out[int(c)] = dens / dens.max()
    return gx, gy, classes, out


def density_contours(emb: EmbeddingMap) -> list[go.Contour]:
    """Per class, contour lines of its 2-D density on the map, in the class's colour."""
    gx, gy, _, grids = density_grid(emb.real_map, emb.real_label)
    return [
        go.Contour(
            x=gx, y=gy, z=z, name=f"density of class {emb.classes[c]}", showlegend=False, showscale=False,
            hoverinfo="skip", colorscale=[[0, CLASS_COLOURS[c % 10]], [1, CLASS_COLOURS[c % 10]]],
            contours=dict(coloring="lines", start=CONTOUR_LEVELS[0], end=CONTOUR_LEVELS[-1],
                          size=CONTOUR_LEVELS[1] - CONTOUR_LEVELS[0]),
            line=dict(width=1.2),
        )
        for c, z in grids.items()
    ]


@dataclass(frozen=True)
class Paired:
    """Another run's synthetic images drawn on this run's map (`same_real_map` must hold): the
    vanilla and the reweighted set of a pair on one picture. `this` and `other` name the two sets
    in the legend (e.g. "reweighted", "vanilla")."""

    this: str
    other: str
    emb: EmbeddingMap


def same_real_map(a: EmbeddingMap, b: EmbeddingMap) -> bool:
    """Whether two runs mapped the same real samples to the same places (a pair sharing its
    surrogate and map does), so that one's synthetic images can be drawn on the other's map."""
    return (a.real_index.shape == b.real_index.shape and bool(np.array_equal(a.real_index, b.real_index))
            and bool(np.allclose(a.real_map, b.real_map)))


def _synthetic(emb: EmbeddingMap, name: str, meta: str, fill: str, edge: str) -> go.Scattergl:
    syn = emb.syn_map
    return go.Scattergl(
        x=syn[:, 0], y=syn[:, 1], mode="markers", name=name, meta=meta,
        customdata=np.arange(len(syn)), hoverinfo="text",
        hovertext=[f"{name} #{j} · class {emb.classes[c]}" for j, c in enumerate(emb.syn_label)],
        marker=dict(symbol="diamond", size=11, color=fill, line=dict(color=edge, width=2)),
        selected=SELECTED, unselected=dict(marker=dict(opacity=0.35)),
    )


def embedding_map(emb: EmbeddingMap, mode: str, show_synthetic: bool = True, contours: bool = False,
                  height: int = 600, paired: Paired | None = None) -> go.Figure:
    """The run's 2-D map of real samples coloured by `mode`, with the synthetic images drawn on
    top as outlined diamonds (and, `paired`, another run's as dark ones) and, with `contours`, each
    class's density contours underneath; the map's own names and colours label classes and bias
    values (e.g. "corruption frost") in legends and hover text. Every point trace carries the row
    index (into real_* or syn_*) as customdata and REAL, SYNTHETIC or PAIRED as meta, which
    `selected_rows` reads back; while a selection exists the other points are drawn grey."""
    if mode not in COLOUR_MODES:
        raise ValueError(f"unknown colour mode {mode!r}")
    if paired is not None and not same_real_map(emb, paired.emb):
        raise ValueError("the paired run mapped its real samples elsewhere: its synthetic images cannot be drawn here")
    hover = _hover(emb)
    traces: list = density_contours(emb) if contours else []
    if mode in ("log density", "weight"):
        traces += _continuous(emb, mode, hover)
    else:
        traces += _categorical(emb, mode, hover)
    if show_synthetic and len(emb.syn_map):
        name = "synthetic images" if paired is None else f"{paired.this} synthetic images"
        traces.append(_synthetic(emb, name, SYNTHETIC, "white", "black"))
    if show_synthetic and paired is not None and len(paired.emb.syn_map):
        traces.append(_synthetic(paired.emb, f"{paired.other} synthetic images", PAIRED, "black", "white"))
    fig = go.Figure(traces)
    fig.update_layout(
        # zoom, not lasso, on drag: Streamlit selects a clicked point only outside the lasso and box
        # modes (the tight clusters need zooming anyway); lasso and box are in the modebar
        height=height, margin=dict(l=10, r=10, t=40, b=10), dragmode="zoom",
        legend=dict(itemsizing="constant", orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0.0),
        xaxis=dict(showticklabels=False, showgrid=False, zeroline=False, title=None),
        yaxis=dict(showticklabels=False, showgrid=False, zeroline=False, title=None),
        uirevision=mode,  # keep zoom while the user changes the selection
    )
    return fig


def selected_rows(points: list[dict], fig: go.Figure) -> tuple[np.ndarray, np.ndarray]:
    """Plotly selection points -> (rows of real_*, rows of syn_*) in selection order, unique."""
    real: list[int] = []
    syn: list[int] = []
    for p in points:
        curve, row = p.get("curve_number"), p.get("customdata")
        if curve is None or row is None or not (0 <= curve < len(fig.data)):
            continue
        if fig.data[curve].meta not in (REAL, SYNTHETIC):  # density contours are never selected points
            continue
        (syn if fig.data[curve].meta == SYNTHETIC else real).append(int(np.ravel(row)[0]))
    return np.array(list(dict.fromkeys(real)), dtype=np.int64), np.array(list(dict.fromkeys(syn)), dtype=np.int64)


def accuracy_chart(table: pd.DataFrame) -> go.Figure:
    """Grouped bars: for each split (unbiased, aligned, conflicting), one bar per run with its std."""
    fig = go.Figure(
        [
            go.Bar(
                name=row["run"], x=list(SPLITS),
                y=[row[f"{s} %"] for s in SPLITS],
                error_y=dict(type="data", array=[row[f"{s} ± %"] or 0.0 for s in SPLITS]),
                hovertext=row["name"],
            )
            for _, row in table.iterrows()
        ]
    )
    fig.update_layout(
        barmode="group", height=420, yaxis=dict(title="test accuracy (%)", range=[0, 100]),
        legend=dict(orientation="h", yanchor="top", y=-0.15), margin=dict(t=30),
    )
    return fig


def share_chart(table: pd.DataFrame) -> go.Figure:
    """Per run: the share of samples that are bias-conflicting vs the share of weight they get."""
    names = list(table["run"])
    fig = go.Figure(
        [
            go.Bar(name="count share", x=names, y=table["count share conflicting %"], marker_color="#bab0ac"),
            go.Bar(name="weight share", x=names, y=table["weight share conflicting %"], marker_color="#d62728"),
        ]
    )
    fig.update_layout(barmode="group", height=360, yaxis=dict(title="bias-conflicting share (%)"), margin=dict(t=30))
    return fig


def group_heatmap(matrix: pd.DataFrame, title: str, aligned: Sequence[int] | None = None) -> go.Figure:
    """Test accuracy of each (class, bias value) group as a heat map (0-100%, red to green),
    the number in each cell; `aligned[c]` (class c's bias-aligned value) is outlined."""
    z = matrix.to_numpy(dtype=float)
    text = [["" if np.isnan(v) else f"{v:.0f}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(c) for c in matrix.columns], y=[str(r) for r in matrix.index], zmin=0, zmax=100,
        colorscale="RdYlGn", text=text, texttemplate="%{text}", colorbar=dict(title="acc. %"),
        hovertemplate="class %{y} · bias value %{x}<br>accuracy %{z:.1f}%<extra></extra>",
    ))
    for c, b in enumerate(aligned or ()):
        if c < z.shape[0] and b < z.shape[1]:
            fig.add_shape(type="rect", x0=b - 0.5, x1=b + 0.5, y0=c - 0.5, y1=c + 0.5,
                          line=dict(color="black", width=2))
    fig.update_layout(title=dict(text=title, font=dict(size=13)), height=380, margin=dict(l=10, r=10, t=50, b=10),
                      xaxis=dict(title=matrix.columns.name, type="category"),
                      yaxis=dict(title=matrix.index.name, type="category", autorange="reversed"))
    return fig
