"""The Sweeps page's logic: the grid form as a spec, the progress matrix, the tables and plots."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from ddcore.errors import ConfigError
from ddcore.sweeps import results
from ddcore.sweeps.spec import SweepSpec, expand, parse_spec
from ddcore.sweeps.store import CellRecord

from .runs import debias_name

VARIANT_AXES = {"vanilla": ("distill", "none"), "reweighted": ("distill", "kde"), "full data": ("baseline", None)}
STATE_COLOURS = {"queued": "#e0e0e0", "running": "#9ecae1", "done": "#a1d99b", "failed": "#fc9272",
                 "cancelled": "#fdd0a2", "damaged": "#fc9272"}


@dataclass(frozen=True)
class GridForm:
    """The grid the user builds on the page; lists are typed as comma-separated text."""

    name: str = "my-grid"
    preset: str = "quick"
    methods: tuple[str, ...] = ("dm",)
    datasets: tuple[str, ...] = ("cmnist",)
    ratios: str = "1, 5"  # percent, as on the Distill page
    ipcs: str = "10"
    variants: tuple[str, ...] = ("vanilla", "reweighted")
    seeds: str = "0"


def _numbers(text: str, what: str, convert: type) -> list[Any]:
    try:
        values = [convert(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"{what}: give {'whole numbers' if convert is int else 'numbers'} separated by "
                          f"commas, got '{text}'") from None
    if not values:
        raise ConfigError(f"{what}: give at least one value")
    return values


def grid_spec(form: GridForm) -> SweepSpec:
    """The form as a spec, parsed and validated like a TOML file (so with the same one-line errors)."""
    if not form.variants:
        raise ConfigError("choose at least one of vanilla, reweighted, full data")
    if not form.methods or not form.datasets:
        raise ConfigError("choose at least one method and one dataset")
    kinds = sorted({VARIANT_AXES[v][0] for v in form.variants}, reverse=True)  # distill first
    reweights = [VARIANT_AXES[v][1] for v in form.variants if VARIANT_AXES[v][1] is not None]
    axes: dict[str, list[Any]] = {
        "dataset": list(form.datasets),
        "conflict_ratio": [p / 100.0 for p in _numbers(form.ratios, "bias-conflicting percentages", float)],
        "ipc": _numbers(form.ipcs, "IPCs", int),
        "kind": kinds,
    }
    if reweights:
        axes["reweight"] = reweights
    data: dict[str, Any] = {"name": form.name.strip(), "preset": form.preset,
                            "seeds": _numbers(form.seeds, "seeds", int), "axes": axes}
    if len(form.methods) > 1:
        axes["method"] = list(form.methods)
    else:
        data["method"] = form.methods[0]
    spec = parse_spec(data, "the grid")
    expand(spec)  # every cell's values, checked before the page says anything is queued
    return spec


def setting_label(cell: CellRecord) -> str:
    """A cell's axis values without its seed, e.g. 'conflict_ratio 0.05 · reweight kde'."""
    parts = [f"{k} {results.fmt(k, results.rule_text(k, v))}" for k, v in cell.tag.axes]
    return " · ".join(parts) or "(one setting)"


def progress_matrix(cells: Sequence[CellRecord]) -> pd.DataFrame:
    """Settings (rows) by seed (columns), each entry the cell's state."""
    table: dict[str, dict[str, str]] = {}
    for cell in cells:
        table.setdefault(setting_label(cell), {})[f"seed {cell.tag.seed}"] = "damaged" if cell.error else cell.state
    frame = pd.DataFrame.from_dict(table, orient="index")
    frame = frame[sorted(frame.columns, key=lambda c: int(c.split()[1]))]
    return frame.rename_axis("setting").fillna("")


def state_style(value: str) -> str:
    return f"background-color: {STATE_COLOURS[value]}" if value in STATE_COLOURS else ""


def frame(table: results.Table) -> pd.DataFrame:
    return pd.DataFrame(list(table.rows), columns=list(table.columns))


def _varying(agg: pd.DataFrame, exclude: Sequence[str]) -> list[str]:
    """Describing columns (other than `exclude`) that take more than one value."""
    describe = list(agg.columns[: list(agg.columns).index("seeds done")])
    return [c for c in describe if c not in exclude and agg[c].dropna().astype(str).nunique() > 1]


def _panels(agg: pd.DataFrame, exclude: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """One (subtitle, rows) panel per combination of the other varying settings. A row without a
    value for one of them (the full-data baseline has no IPC or method) belongs to every panel."""
    others = _varying(agg, exclude)
    if not others:
        return [("", agg)]
    panels = []
    for key in agg[others].dropna().drop_duplicates().itertuples(index=False):
        mask = pd.Series(True, index=agg.index)
        for column, value in zip(others, key):
            mask &= (agg[column] == value) | agg[column].isna()
        panels.append((" · ".join(f"{c} {results.fmt(c, v)}" for c, v in zip(others, key)), agg[mask]))
    return panels


def _line_name(row: pd.Series) -> str:
    # the full data and a random subset have no method: their variant names them
    return row["variant"] if pd.isna(row["method"]) else f"{str(row['method']).upper()} {row['variant']}"


def _line_figure(agg: pd.DataFrame, x: str, title: str, x_title: str, scale: float = 1.0) -> list[go.Figure]:
    figures = []
    for subtitle, rows in _panels(agg, (x, "method", "variant")):
        fig = go.Figure()
        # an 'as-is' conflict ratio has no place on a numeric axis: that point is left out
        rows = rows.assign(line=rows.apply(_line_name, axis=1), x=pd.to_numeric(rows[x], errors="coerce") * scale)
        for name, line in rows.dropna(subset="x").groupby("line", sort=False):
            line = line.sort_values("x")
            fig.add_trace(go.Scatter(
                x=line["x"], y=line["unbiased mean"], name=name, mode="lines+markers",
                error_y=dict(type="data", array=line["unbiased std"].fillna(0).tolist(), visible=True),
                line=dict(dash="dot" if name == "full data" else "solid"),
            ))
        fig.update_layout(title=title + (f" · {subtitle}" if subtitle else ""), xaxis_title=x_title,
                          yaxis_title="unbiased test accuracy (%)", legend_title="", height=420)
        figures.append(fig)
    return figures


def ratio_figures(agg: pd.DataFrame) -> list[go.Figure]:
    """Accuracy vs conflict ratio: a line per method x vanilla / reweighted / full data."""
    return _line_figure(agg, "conflict_ratio", "Accuracy vs conflict ratio", "bias-conflicting samples (%)", 100.0)


def ipc_figures(agg: pd.DataFrame) -> list[go.Figure]:
    """Accuracy vs images per class (the full-data baseline has no IPC, so it has no line here)."""
    return _line_figure(agg[agg["variant"] != "full data"], "ipc", "Accuracy vs IPC", "images per class")


def bandwidth_figures(agg: pd.DataFrame, x: str = "kde_sigma") -> list[go.Figure]:
    """Heat map of unbiased accuracy over the kernel's width x temperature tau: the bandwidth sigma
    (`x` = "kde_sigma"; the adaptive rule's column placed and labelled by the bandwidth it actually
    used, its mean over cells) or the adaptive rule's multiple (`x` = "kde_scale")."""
    figures = []
    for subtitle, rows in _panels(agg[agg["variant"] == "reweighted"], (x, "kde_tau")):
        if x == "kde_sigma":
            auto = rows[x] == "auto"
            used = rows.loc[auto, "sigma_used mean"].mean()
            labels = [f"auto (σ = {used:.3g})" if a else f"{s:g}" for a, s in zip(auto, rows[x])]
            rows = rows.assign(x_value=pd.to_numeric(rows[x].where(~auto, used)), x_label=labels)
        else:
            rows = rows.assign(x_value=pd.to_numeric(rows[x]), x_label=[f"{v:g}" for v in rows[x]])
        columns = rows.drop_duplicates("x_label").sort_values("x_value")["x_label"].tolist()
        grid = rows.pivot_table(index="kde_tau", columns="x_label", values="unbiased mean", aggfunc="first")
        grid = grid.reindex(columns=columns).sort_index()
        fig = go.Figure(go.Heatmap(
            z=grid.values, x=columns, y=[f"{t:g}" for t in grid.index], colorscale="Viridis",
            text=[[("" if pd.isna(v) else f"{v:.1f}") for v in row] for row in grid.values], texttemplate="%{text}",
            colorbar=dict(title="unbiased %"),
        ))
        width, x_title = (("bandwidth σ", "kernel bandwidth σ") if x == "kde_sigma" else
                          ("bandwidth scale", "σ as a multiple of the median within-class distance (kde_scale)"))
        title = f"Unbiased accuracy over {width} x temperature τ" + (f" · {subtitle}" if subtitle else "")
        fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="temperature τ", height=420)
        figures.append(fig)
    return figures


def debias_figures(agg: pd.DataFrame) -> list[go.Figure]:
    """The paper's Table 3 as grouped bars: for each training set (the full data, each method's
    vanilla and reweighted sets) one bar per way of training the evaluation models."""
    figures = []
    for subtitle, rows in _panels(agg, ("eval_debias", "method", "variant")):
        rows = rows.assign(training=rows.apply(_line_name, axis=1))
        fig = go.Figure()
        for method, bars in rows.groupby("eval_debias", sort=False):
            name = debias_name(method)
            fig.add_trace(go.Bar(
                x=bars["training"], y=bars["unbiased mean"], name=name,
                error_y=dict(type="data", array=bars["unbiased std"].fillna(0).tolist(), visible=True),
            ))
        title = "Debiasing the evaluation's training" + (f" · {subtitle}" if subtitle else "")
        fig.update_layout(title=title, barmode="group", xaxis_title="training set", height=420,
                          yaxis_title="unbiased test accuracy (%)", legend_title="evaluation trained with")
        figures.append(fig)
    return figures


def figures(agg: pd.DataFrame) -> list[go.Figure]:
    """The plots this sweep's axes allow: each needs its x axis (and the heat map both axes) to vary."""
    out: list[go.Figure] = []
    if agg.empty or agg["unbiased mean"].isna().all():
        return out
    if agg["conflict_ratio"].nunique() > 1:
        out += ratio_figures(agg)
    if agg["ipc"].dropna().nunique() > 1:
        out += ipc_figures(agg)
    for x in ("kde_sigma", "kde_scale"):
        if {x, "kde_tau"} <= set(agg.columns) and (agg["variant"] == "reweighted").any():
            out += bandwidth_figures(agg, x)
    if "eval_debias" in agg.columns and agg["eval_debias"].nunique() > 1:
        out += debias_figures(agg)
    return out
