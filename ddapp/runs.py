"""Run listing: table rows, human labels, and finding which runs belong together."""
from __future__ import annotations

import time
from collections.abc import Sequence

import pandas as pd

from ddcore.config import RunConfig
from ddcore.runstore import Metrics, RunInfo


def data_label(cfg: RunConfig) -> str:
    """The dataset and its conflict ratio, e.g. 'cmnist 5.0%' or 'bffhq as distributed'."""
    ratio = cfg.data.conflict_ratio
    return f"{cfg.data.dataset} {'as distributed' if ratio is None else f'{ratio:.1%}'}"


DEBIAS_NAMES = {"lff": "LfF", "jtt": "JTT"}  # ddcore.debias, as the papers write them


def label(run: RunInfo, with_name: bool = True) -> str:
    """A short, readable description used in pickers, legends and tables; pickers need the
    unique folder name appended, chart legends read better without it."""
    cfg = run.config
    if cfg is None:
        return f"{run.name} (damaged)"
    data = data_label(cfg)
    if cfg.kind == "baseline":
        text = f"full-data baseline · {data} · seed {cfg.seed}"
    else:
        rw = "reweighted" if cfg.reweight.reweight == "kde" else "vanilla"
        text = f"{rw} {cfg.distill.method.upper()} · IPC {cfg.distill.ipc} · {data} · seed {cfg.seed}"
        if cfg.reweight.reweight == "kde" and cfg.reweight.surrogate_debias != "none":
            text += f" · {DEBIAS_NAMES.get(cfg.reweight.surrogate_debias, cfg.reweight.surrogate_debias)} surrogate"
    # `ddcore evaluate` may have re-evaluated with another method than config.json names
    evaluated = (run.metrics.eval_debias if run.metrics else None) or cfg.eval.eval_debias
    if evaluated != "none":
        text += f" · {DEBIAS_NAMES.get(evaluated, evaluated)} evaluation"
    return f"{text} · {run.name}" if with_name else text


def is_finished(run: RunInfo) -> bool:
    return run.error is None and run.status.state == "done"


def finished_distill(runs: Sequence[RunInfo]) -> list[RunInfo]:
    """Done distillation runs (the ones that have synthetic images and a map), newest first."""
    return [r for r in runs if is_finished(r) and r.config is not None and r.config.kind == "distill"]


def with_metrics(runs: Sequence[RunInfo]) -> list[RunInfo]:
    return [r for r in runs if is_finished(r) and r.metrics is not None]


def active(runs: Sequence[RunInfo]) -> list[RunInfo]:
    return [r for r in runs if r.error is None and r.status.state in ("queued", "running")]


def _without_reweighting(run: RunInfo) -> dict:
    d = run.config.to_dict()
    d.pop("reweight")
    return d


def partner(runs: Sequence[RunInfo], run: RunInfo) -> RunInfo | None:
    """The newest finished distill run with the same settings as `run` except the reweighting
    section and the opposite reweighting mode: the other half of a vanilla/reweighted pair."""
    if run.config is None:
        return None
    key = _without_reweighting(run)
    for other in finished_distill(runs):
        if other.name != run.name and other.config.reweight.reweight != run.config.reweight.reweight:
            if _without_reweighting(other) == key:
                return other
    return None


def as_pair(runs: Sequence[RunInfo], run: RunInfo) -> tuple[RunInfo | None, RunInfo | None]:
    """(vanilla, reweighted) for `run` and its partner, each None where missing."""
    other = partner(runs, run)
    return (run, other) if run.config.reweight.reweight == "none" else (other, run)


def latest_pair(runs: Sequence[RunInfo]) -> tuple[RunInfo | None, RunInfo | None]:
    """(vanilla, reweighted) of the newest complete pair, else the newest of each mode alone."""
    done = finished_distill(runs)
    for run in done:
        if partner(runs, run) is not None:
            return as_pair(runs, run)
    vanilla = next((r for r in done if r.config.reweight.reweight == "none"), None)
    reweighted = next((r for r in done if r.config.reweight.reweight != "none"), None)
    return vanilla, reweighted


def matching_baseline(runs: Sequence[RunInfo], run: RunInfo) -> RunInfo | None:
    """The newest finished full-data baseline trained on the same biased data as `run`."""
    if run.config is None:
        return None
    for other in runs:
        cfg = other.config
        if is_finished(other) and cfg is not None and cfg.kind == "baseline":
            if cfg.data == run.config.data and cfg.seed == run.config.seed:
                return other
    return None


def default_comparison(runs: Sequence[RunInfo]) -> list[str]:
    """Names preselected on the Compare page: the newest pair and its full-data baseline."""
    picked = [r for r in latest_pair(runs) if r is not None]
    if picked:
        base = matching_baseline(runs, picked[0])
        if base is not None:
            picked.append(base)
    else:
        picked = with_metrics(runs)[:1]
    return [r.name for r in picked]


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else ""


def listing_table(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """One row per run: status, the settings that tell runs apart, and the headline metrics."""
    rows = []
    for r in runs:
        cfg, m, s = r.config, r.metrics or Metrics(), r.status
        rows.append(
            {
                "name": r.name,
                "state": "damaged" if r.error else s.state,
                "stage": s.stage,
                "progress": float(s.progress or 0.0),
                "kind": cfg.kind if cfg else None,
                "dataset": cfg.data.dataset if cfg else None,
                "conflicting": cfg.data.conflict_ratio if cfg else None,
                "method": cfg.distill.method if cfg and cfg.kind == "distill" else None,
                "reweight": cfg.reweight.reweight if cfg and cfg.kind == "distill" else None,
                "IPC": cfg.distill.ipc if cfg and cfg.kind == "distill" else None,
                "preset": cfg.preset if cfg else None,
                "seed": cfg.seed if cfg else None,
                "unbiased acc": m.test_acc_unbiased,
                "conflicting acc": m.test_acc_conflicting,
                "created": _when(s.created),
                "message": r.error or s.message or s.warning,
            }
        )
    return pd.DataFrame(rows, columns=LISTING_COLUMNS)


LISTING_COLUMNS = [
    "name", "state", "stage", "progress", "kind", "dataset", "conflicting", "method", "reweight",
    "IPC", "preset", "seed", "unbiased acc", "conflicting acc", "created", "message",
]
