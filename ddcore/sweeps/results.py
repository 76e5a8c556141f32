"""A sweep's results: the long table (one row per cell) and its aggregate over seeds, as CSV or
markdown. Accuracies and the conflicting weight share are in percent."""
from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from typing import Any

from ..config import FLAT_FIELDS, KIND_VARIANTS, REWEIGHT_VARIANTS, RunConfig, variant
from .spec import IGNORES
from .store import CellRecord, cell_metrics

# what every row says about its cell, axes or not: the data, the method and how it was weighted
CORE = ("dataset", "conflict_ratio", "method", "variant", "ipc")
# `variant` stands for both: the kind of run, and how a distillation was weighted
FOLDED = {"kind", "reweight"}
# the first four in percent; sigma_used: the bandwidth the KDE used (the adaptive rule's value
# where kde_sigma is "auto")
METRICS = ("unbiased", "aligned", "conflicting", "conflicting_weight_share", "sigma_used", "seconds")
PERCENT = METRICS[:4]
VARIANTS = (*REWEIGHT_VARIANTS.values(), *KIND_VARIANTS.values())


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([["" if v is None else v for v in row] for row in self.rows])
        return out.getvalue()

    @classmethod
    def from_csv(cls, text: str) -> Table:
        """A table written by `to_csv`, read back: blanks are None, numbers numbers (whole ones
        int, the metrics float), the rest text. Raises ValueError on text that is not such a table."""
        try:
            header, *body = list(csv.reader(io.StringIO(text)))
        except csv.Error as exc:
            raise ValueError(f"not CSV: {exc}") from None
        except ValueError:
            raise ValueError("no header line") from None
        rows = []
        for i, row in enumerate(body, start=2):
            if len(row) != len(header):
                raise ValueError(f"line {i} has {len(row)} values, the header {len(header)}")
            rows.append(tuple(_value(c, v) for c, v in zip(header, row)))
        return cls(tuple(header), tuple(rows))

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(fmt(c, v) for c, v in zip(self.columns, row)) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


def _value(column: str, text: str) -> Any:
    if text == "":
        return None
    if column in METRICS:
        return float(text)
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def rule_text(name: str, value: Any) -> Any:
    """An optional field's None as the rule it stands for: 'auto' (kde_sigma: the adaptive
    bandwidth), or 'as-is' for conflict_ratio (the files' own share)."""
    return ("as-is" if name == "conflict_ratio" else "auto") if value is None else value


def fmt(column: str, value: Any) -> str:
    """A value as a reader sees it: blank where it does not apply, one decimal for percentages."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if column.split(" ")[0] in PERCENT else f"{value:.4g}"
    return str(value)


def field_value(cfg: RunConfig, name: str, as_configured: bool = False) -> Any:
    """A config field by its flat name (an optional one's default rule as text); None where the
    cell's kind does not read it, unless `as_configured`."""
    if name == "variant":
        return variant(cfg)
    if name in IGNORES[cfg.kind] and not as_configured:
        return None
    section = FLAT_FIELDS[name]
    return rule_text(name, getattr(getattr(cfg, section), name) if section else getattr(cfg, name))


def _setting(cfg: RunConfig) -> dict[str, Any]:
    """What a cell computes but its seed (`RunConfig.result_dict`), by flat field name."""
    flat: dict[str, Any] = {}
    for name, value in cfg.result_dict().items():
        flat.update(value if isinstance(value, dict) else {name: value})
    del flat["seed"]
    return flat


def describing_columns(cells: list[CellRecord]) -> tuple[tuple[str, ...], frozenset[str]]:
    """CORE, then every other axis of the sweep in spec order, then any other field that tells
    apart cells these would show as one setting (a spec edited after some cells ran: eval_epochs
    2 for those, 3 for the rest). The second part names those fields (axes among them): they are
    shown as configured even where the cell's kind ignores them, as that may be all that differs."""
    shown = list(CORE)
    for cell in cells:
        shown += [k for k, _ in cell.tag.axes if k not in shown and k not in FOLDED]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for cell in cells:
        if cell.config is not None:
            groups.setdefault(tuple(field_value(cell.config, c) for c in shown), []).append(_setting(cell.config))
    differing = {name for members in groups.values() for name in members[0]
                 if any(m[name] != members[0][name] for m in members)}
    return (*shown, *(name for name in FLAT_FIELDS if name in differing and name not in shown)), frozenset(differing)


def long_table(cells: list[CellRecord]) -> Table:
    """One row per cell: what it is, its seed and state, its metrics (blank until done)."""
    describe, as_configured = describing_columns(cells)
    rows = []
    for cell in cells:
        if cell.config is None:  # a damaged folder: only its name and axes are known
            axes = {k: rule_text(k, v) for k, v in cell.tag.axes}
            rows.append((cell.name, "damaged", *(axes.get(c) for c in describe), cell.tag.seed,
                         *([None] * len(METRICS))))
            continue
        m = cell_metrics(cell.path) if cell.state == "done" else None
        values = [None] * len(METRICS) if m is None else [
            m.unbiased, m.aligned, m.conflicting,
            None if m.weight_share_conflicting is None else 100.0 * m.weight_share_conflicting,
            m.kde_sigma, m.seconds,
        ]
        rows.append((cell.name, cell.state, *(field_value(cell.config, c, c in as_configured) for c in describe),
                     cell.config.seed, *values))
    return Table(("cell", "state", *describe, "seed", *METRICS), tuple(rows))


def aggregate(long: Table) -> Table:
    """Mean and sample std over the seeds of each setting (done cells only; std needs two). A row
    is one setting: the long table shows what tells settings apart, so cells of different configs
    (an edited spec's earlier cells beside its new ones) are rows of their own, never extra seeds."""
    describe = long.columns[2: long.columns.index("seed")]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in long.records():
        groups.setdefault(tuple(row[c] for c in describe), []).append(row)
    rows = []
    for key, members in groups.items():
        done = [r for r in members if r["state"] == "done"]
        stats: list[Any] = []
        for metric in METRICS:
            values = [r[metric] for r in done if r[metric] is not None]
            stats += [statistics.fmean(values) if values else None,
                      statistics.stdev(values) if len(values) > 1 else None]
        rows.append((*key, len(done), len(members), *stats))
    metric_columns = tuple(c for m in METRICS for c in (f"{m} mean", f"{m} std"))
    return Table((*describe, "seeds done", "seeds", *metric_columns), tuple(rows))


def summary(agg: Table) -> Table:
    """The aggregate as a reader wants it: text, one 'mean ± std' column per metric."""
    describe = agg.columns[: agg.columns.index("seeds done")]
    rows = []
    for r in agg.records():
        stats = []
        for m in METRICS:
            mean, std = r[f"{m} mean"], r[f"{m} std"]
            stats.append("" if mean is None else fmt(m, mean) + ("" if std is None else f" ± {fmt(m, std)}"))
        rows.append((*(fmt(c, r[c]) for c in describe), f"{r['seeds done']}/{r['seeds']}", *stats))
    return Table((*describe, "seeds", *METRICS), tuple(rows))
