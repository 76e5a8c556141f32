"""Metric tables for the Compare page: accuracies with their spread, group metrics, conflicting-sample
shares, the per-(class, bias value) accuracy matrix, and the metrics as CSV."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import numpy as np
import pandas as pd

from ddcore.data import describe
from ddcore.runstore import Metrics, RunInfo

from .runs import data_label, label, variant

SPLITS = ("unbiased", "aligned", "conflicting", "worst group")  # accuracies, shown as bars
# column name -> the Metrics field holding its mean (its std: the same name + "_std"); all in percent
PERCENT_FIELDS = {
    "unbiased": "test_acc_unbiased", "aligned": "test_acc_aligned", "conflicting": "test_acc_conflicting",
    "worst group": "test_acc_worst_group", "DEO-M": "deo_max", "DEO-A": "deo_mean",
}
ACCURACY_COLUMNS = [
    *(c for s in PERCENT_FIELDS for c in (f"{s} %", f"{s} ± %")),
    "weight share conflicting %",
    "count share conflicting %",
]


def _num(value: object, scale: float = 1.0) -> float | None:
    return None if value is None else scale * float(value)


def accuracy_table(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """One row per run: mean and std (in %) of unbiased, aligned and conflicting test accuracy,
    plus the share of the weight and of the count that bias-conflicting samples hold."""
    rows = []
    for r in runs:
        m = r.metrics or Metrics()
        row: dict[str, object] = {"run": label(r, with_name=False), "name": r.name}
        for column, name in PERCENT_FIELDS.items():
            row[f"{column} %"] = _num(getattr(m, name))  # the core reports accuracy in %
            row[f"{column} ± %"] = _num(getattr(m, f"{name}_std"))
        row["weight share conflicting %"] = _num(m.weight_share_conflicting, 100.0)  # a fraction
        row["count share conflicting %"] = _num(m.count_share_conflicting, 100.0)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["run", "name", *ACCURACY_COLUMNS])
    # identical settings run twice would share a legend entry: tell them apart by folder name
    dup = table["run"].duplicated(keep=False)
    table.loc[dup, "run"] = table.loc[dup, "run"] + " · " + table.loc[dup, "name"]
    return table


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The accuracy table as the reader sees it: 'mean ± std' strings, one column per metric
    (DEO-M and DEO-A: the largest and the mean spread of a class's group accuracies; lower is fairer)."""
    out = pd.DataFrame({"run": table["run"]})
    for column in PERCENT_FIELDS:
        out[column] = [_mean_std(m, s) for m, s in zip(table[f"{column} %"], table[f"{column} ± %"])]
    out["weight share conflicting"] = [_mean_std(v, None) for v in table["weight share conflicting %"]]
    out["count share conflicting"] = [_mean_std(v, None) for v in table["count share conflicting %"]]
    return out


def _mean_std(mean: object, std: object) -> str:
    if mean is None or pd.isna(mean):
        return "–"
    if std is None or pd.isna(std):
        return f"{mean:.1f}%"
    return f"{mean:.1f} ± {std:.1f}%"


def method_table(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """Methods side by side: one row per (data, IPC, method) among the distill runs given, with
    the unbiased accuracy of its vanilla and its reweighted run and the gain in points. Where a
    setting was run more than once, the first run given (the newest, in listing order) counts."""
    cells: dict[tuple[str, int, str], dict[str, float | None]] = {}
    for r in runs:
        cfg = r.config
        if cfg is None or cfg.kind != "distill":
            continue
        data = data_label(cfg)
        side = f"{variant(cfg)} %"
        cell = cells.setdefault((data, cfg.distill.ipc, cfg.distill.method.upper()), {})
        cell.setdefault(side, _num(r.metrics.test_acc_unbiased if r.metrics else None))
    rows = []
    for (data, ipc, method), cell in cells.items():
        vanilla, reweighted = cell.get("vanilla %"), cell.get("reweighted %")
        gain = None if vanilla is None or reweighted is None else reweighted - vanilla
        rows.append({"data": data, "IPC": ipc, "method": method, "vanilla %": vanilla,
                     "reweighted %": reweighted, "gain (points)": gain, "oracle %": cell.get("oracle %")})
    columns = ["data", "IPC", "method", "vanilla %", "reweighted %", "gain (points)", "oracle %"]
    return pd.DataFrame(rows, columns=columns).sort_values(["data", "IPC", "method"], ignore_index=True)


def group_matrix(run: RunInfo) -> tuple[pd.DataFrame, tuple[int, ...]] | None:
    """The run's test accuracy (%) of each (class, bias value) group: rows are classes, columns
    bias values, by name where the run's data still describes them (NaN where the test split has
    no such sample), and each class's bias-aligned value (empty when unknown). None when the run
    recorded no matrix (made before group metrics existed)."""
    m = run.metrics
    if m is None or not m.group_accuracy:
        return None
    values = np.array([[np.nan if a is None else a for a in row] for row in m.group_accuracy], dtype=float)
    classes, bias_values = [str(c) for c in range(values.shape[0])], [str(b) for b in range(values.shape[1])]
    aligned: tuple[int, ...] = ()
    try:
        naming = describe(run.config.data)
        if len(naming.classes) == values.shape[0] and len(naming.bias_values) >= values.shape[1]:
            classes, bias_values = list(naming.classes), list(naming.bias_values[: values.shape[1]])
            aligned = tuple(naming.aligned)
    except Exception:  # noqa: BLE001 - the names are a nicety: a CSV moved away, say
        pass
    frame = pd.DataFrame(values, index=pd.Index(classes, name="class"),
                         columns=pd.Index(bias_values, name="bias value"))
    return frame, aligned


def metrics_csv(runs: Sequence[RunInfo]) -> str:
    """One row per run: its name, what it is, and every metric it recorded (accuracies in %,
    shares as fractions); the group matrix is left to `groups_csv`."""
    scalar = [f.name for f in fields(Metrics) if f.name not in ("group_accuracy", "extra", "seconds_per_stage",
                                                                 "test_acc_unbiased_per_model")]
    rows = []
    for r in runs:
        cfg, m = r.config, r.metrics or Metrics()
        rows.append({
            "run": r.name, "label": label(r, with_name=False), "kind": cfg.kind if cfg else None,
            "variant": variant(cfg) if cfg else None,
            "method": cfg.distill.method if cfg and cfg.kind == "distill" else None,
            "ipc": cfg.distill.ipc if cfg and cfg.kind != "baseline" else None,
            "dataset": cfg.data.dataset if cfg else None, "conflict_ratio": cfg.data.conflict_ratio if cfg else None,
            "seed": cfg.seed if cfg else None,
            **{name: getattr(m, name) for name in scalar},
        })
    return pd.DataFrame(rows).to_csv(index=False)


def groups_csv(runs: Sequence[RunInfo]) -> str:
    """The group accuracy matrices in long form: run, class, bias value, accuracy (%)."""
    rows = []
    for r in runs:
        found = group_matrix(r)
        if found is not None:
            long = found[0].stack(future_stack=True).rename("accuracy %").reset_index()
            rows.append(long.assign(run=r.name)[["run", "class", "bias value", "accuracy %"]])
    columns = ["run", "class", "bias value", "accuracy %"]
    return (pd.concat(rows) if rows else pd.DataFrame(columns=columns)).to_csv(index=False)
