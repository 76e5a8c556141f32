"""Metric tables for the Compare page: accuracies with their spread, and conflicting-sample shares."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ddcore.runstore import Metrics, RunInfo

from .runs import data_label, label

SPLITS = ("unbiased", "aligned", "conflicting")
ACCURACY_COLUMNS = [
    *(c for s in SPLITS for c in (f"{s} %", f"{s} ± %")),
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
        for split in SPLITS:
            row[f"{split} %"] = _num(getattr(m, f"test_acc_{split}"))  # the core reports accuracy in %
            row[f"{split} ± %"] = _num(getattr(m, f"test_acc_{split}_std"))
        row["weight share conflicting %"] = _num(m.weight_share_conflicting, 100.0)  # a fraction
        row["count share conflicting %"] = _num(m.count_share_conflicting, 100.0)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["run", "name", *ACCURACY_COLUMNS])
    # identical settings run twice would share a legend entry: tell them apart by folder name
    dup = table["run"].duplicated(keep=False)
    table.loc[dup, "run"] = table.loc[dup, "run"] + " · " + table.loc[dup, "name"]
    return table


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The accuracy table as the reader sees it: 'mean ± std' strings, one column per split."""
    out = pd.DataFrame({"run": table["run"]})
    for split in SPLITS:
        out[split] = [_mean_std(m, s) for m, s in zip(table[f"{split} %"], table[f"{split} ± %"])]
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
        side = "reweighted %" if cfg.reweight.reweight == "kde" else "vanilla %"
        cell = cells.setdefault((data, cfg.distill.ipc, cfg.distill.method.upper()), {})
        cell.setdefault(side, _num(r.metrics.test_acc_unbiased if r.metrics else None))
    rows = []
    for (data, ipc, method), cell in cells.items():
        vanilla, reweighted = cell.get("vanilla %"), cell.get("reweighted %")
        gain = None if vanilla is None or reweighted is None else reweighted - vanilla
        rows.append({"data": data, "IPC": ipc, "method": method, "vanilla %": vanilla,
                     "reweighted %": reweighted, "gain (points)": gain})
    columns = ["data", "IPC", "method", "vanilla %", "reweighted %", "gain (points)"]
    return pd.DataFrame(rows, columns=columns).sort_values(["data", "IPC", "method"], ignore_index=True)
