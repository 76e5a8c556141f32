"""Run listing: table rows, human labels, and finding which runs belong together."""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ddcore import jobs
from ddcore.config import DEBIAS_NAMES, RunConfig, variant
from ddcore.runstore import Metrics, RunInfo

from .examples import is_example


def data_label(cfg: RunConfig) -> str:
    """The dataset and its conflict ratio, e.g. 'cmnist 5.0%' or 'bffhq as distributed'."""
    ratio = cfg.data.conflict_ratio
    return f"{cfg.data.dataset} {'as distributed' if ratio is None else f'{ratio:.1%}'}"


def debias_name(method: str) -> str:
    """A debiasing method's short name; an unknown code (a newer run's) as it is."""
    return DEBIAS_NAMES[method].short if method in DEBIAS_NAMES else method


def label(run: RunInfo, with_name: bool = True) -> str:
    """A short, readable description used in pickers, legends and tables; pickers need the
    unique folder name appended, chart legends read better without it. The shipped example
    runs say so first."""
    cfg = run.config
    if cfg is None:
        return f"{run.name} (damaged)"
    data = data_label(cfg)
    if cfg.kind == "baseline":
        text = f"full-data baseline · {data} · seed {cfg.seed}"
    elif cfg.kind == "random-subset":
        text = f"random subset · IPC {cfg.distill.ipc} · {data} · seed {cfg.seed}"
    else:
        text = f"{variant(cfg)} {cfg.distill.method.upper()} · IPC {cfg.distill.ipc} · {data} · seed {cfg.seed}"
        if cfg.reweight.reweight == "kde" and cfg.reweight.surrogate_debias != "none":
            text += f" · {debias_name(cfg.reweight.surrogate_debias)} surrogate"
    # `ddcore evaluate` may have re-evaluated with another method than config.json names
    evaluated = (run.metrics.eval_debias if run.metrics else None) or cfg.eval.eval_debias
    if evaluated != "none":
        text += f" · {debias_name(evaluated)} evaluation"
    if is_example(run):
        return f"example · {text}"
    return f"{text} · {run.name}" if with_name else text


def file_stem(run: RunInfo) -> str:
    """The run's name as the start of a downloaded file's name (an example's ':' is not portable)."""
    return run.name.replace(":", "-")


def is_finished(run: RunInfo) -> bool:
    return run.error is None and run.status.state == "done"


def finished_distill(runs: Sequence[RunInfo]) -> list[RunInfo]:
    """Done distillation runs (the ones that have synthetic images and a map), newest first."""
    return [r for r in runs if is_finished(r) and r.config is not None and r.config.kind == "distill"]


def with_metrics(runs: Sequence[RunInfo]) -> list[RunInfo]:
    return [r for r in runs if is_finished(r) and r.metrics is not None]


def active(runs: Sequence[RunInfo]) -> list[RunInfo]:
    return [r for r in runs if r.error is None and r.status.state in ("queued", "running")]


def _scored_alike(a: RunConfig, b: RunConfig) -> bool:
    """Same biased data, seed, network and evaluation protocol: results that can stand side by side."""
    return (a.data, a.seed, a.net, a.eval) == (b.data, b.seed, b.net, b.eval)


def same_result(a: RunConfig, b: RunConfig) -> bool:
    """Whether runs of `a` and `b` stand for the same result: full-data baselines scored alike (they
    read nothing else), random subsets scored alike with the same IPC, oracle runs alike but for the
    reweighting section (the bias labels give their weights); any other runs only when identical."""
    if a.kind != b.kind:
        return False
    if a.kind == "baseline":
        return _scored_alike(a, b)
    if a.kind == "random-subset":
        return _scored_alike(a, b) and a.distill.ipc == b.distill.ipc
    if a.reweight.reweight == b.reweight.reweight == "oracle":  # its weights come from the bias labels alone
        return _without_reweighting(a) == _without_reweighting(b) and a.reweight.weighting == b.reweight.weighting
    return a == b


def pending_twin(runs: Sequence[RunInfo], cfg: RunConfig) -> RunInfo | None:
    """A queued or running run with the result of `cfg` (`same_result`): queueing it again would only
    repeat it."""
    return next((r for r in active(runs) if r.config is not None and same_result(r.config, cfg)), None)


def queue_new(root: Path, runs: Sequence[RunInfo], configs: Sequence[RunConfig]) -> tuple[list[str], list[str]]:
    """Queue each config under root unless `runs` (root's listing) already has it queued or running
    (a second click of the same button): (names queued now, names of the twins already there)."""
    queued, already = [], []
    for cfg in configs:
        twin = pending_twin(runs, cfg)
        if twin is None:
            queued.append(jobs.submit(root, cfg).name)
        else:
            already.append(twin.name)
    return queued, already


def _without_reweighting(cfg: RunConfig) -> dict:
    d = cfg.to_dict()
    d.pop("reweight")
    return d


def partner(runs: Sequence[RunInfo], run: RunInfo, keys: dict[str, dict] | None = None) -> RunInfo | None:
    """The newest finished distill run with the same settings as `run` except the reweighting
    section, on the other side of a vanilla/reweighted pair: the KDE-reweighted run of a vanilla
    one, the vanilla run of a reweighted (or oracle) one. A caller looking for many partners among
    the same runs passes them all one `keys` dict, so that each run's settings are compared as
    computed once (by name), not anew for every pair: seconds per rerun with a sweep's 300 runs."""
    if run.config is None or run.config.kind != "distill":
        return None
    wanted = "kde" if run.config.reweight.reweight == "none" else "none"
    keys = {} if keys is None else keys

    def key(r: RunInfo) -> dict:
        if r.name not in keys:
            keys[r.name] = _without_reweighting(r.config)
        return keys[r.name]

    return next((other for other in finished_distill(runs) if other.name != run.name
                 and other.config.reweight.reweight == wanted and key(other) == key(run)), None)


def as_pair(runs: Sequence[RunInfo], run: RunInfo) -> tuple[RunInfo | None, RunInfo | None]:
    """(vanilla, reweighted) for `run` and its partner, each None where missing."""
    other = partner(runs, run)
    return (run, other) if run.config.reweight.reweight == "none" else (other, run)


def preferring_own(runs: Sequence[RunInfo]) -> list[RunInfo]:
    """The user's own runs when any of them has a result, else all (the shipped examples too):
    what pages choose their defaults from, so that the examples never hide the user's work."""
    own = [r for r in runs if not is_example(r)]
    return own if with_metrics(own) else list(runs)


def latest_pair(runs: Sequence[RunInfo]) -> tuple[RunInfo | None, RunInfo | None]:
    """(vanilla, reweighted) of the newest complete pair, else the newest of each mode alone; the
    user's own finished distill runs first (`preferring_own`: a baseline of theirs has no pair)."""
    done = preferring_own(finished_distill(runs))
    keys: dict[str, dict] = {}
    for run in done:
        if run.config.reweight.reweight == "kde" and (other := partner(done, run, keys)) is not None:
            return other, run
    vanilla = next((r for r in done if r.config.reweight.reweight == "none"), None)
    reweighted = next((r for r in done if r.config.reweight.reweight == "kde"), None)
    return vanilla, reweighted


# what a distill run is read against: name -> the overrides that make it from the run's config
REFERENCES = {"full-data baseline": {"kind": "baseline"}, "oracle": {"reweight": "oracle"},
              "random subset": {"kind": "random-subset"}}


def reference_configs(run: RunInfo) -> dict[str, RunConfig]:
    """The distill run `run`'s references as configs, by name ({} for any other run)."""
    if run.config is None or run.config.kind != "distill":
        return {}
    return {name: run.config.with_overrides(**overrides) for name, overrides in REFERENCES.items()}


def _newest_finished(runs: Sequence[RunInfo], cfg: RunConfig) -> RunInfo | None:
    return next((r for r in runs if is_finished(r) and r.config is not None and same_result(r.config, cfg)), None)


def matching_reference(runs: Sequence[RunInfo], run: RunInfo, name: str) -> RunInfo | None:
    """The newest finished run with the result (`same_result`) of the distill run `run`'s reference
    `name`: the full-data baseline trained on the same biased data with the same seed, network and
    evaluation settings; the oracle run (equal weight per (class, bias) group; an oracle run is its
    own); the random subset (IPC real images per class instead of distilled ones)."""
    cfg = reference_configs(run).get(name)
    return None if cfg is None else _newest_finished(runs, cfg)


def missing_references(runs: Sequence[RunInfo], run: RunInfo) -> dict[str, RunConfig]:
    """The configs to queue so that the distill run `run` can be read against every reference
    (full-data baseline, oracle, random subset) that is not done yet, by name."""
    return {name: cfg for name, cfg in reference_configs(run).items() if _newest_finished(runs, cfg) is None}


def default_comparison(runs: Sequence[RunInfo], around: RunInfo | None = None) -> list[str]:
    """Names preselected on the Compare page: the pair of `around` (a finished distill run, with
    references from the same runs as it), else the newest pair with the user's own runs first
    (`preferring_own`); then the pair's full-data baseline, oracle and random subset where done."""
    runs = preferring_own(runs) if around is None else list(runs)
    pair = latest_pair(runs) if around is None else as_pair(runs, around)
    picked = [r for r in pair if r is not None]
    if picked:
        for name in REFERENCES:
            found = matching_reference(runs, picked[0], name)
            if found is not None and found not in picked:
                picked.append(found)
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
