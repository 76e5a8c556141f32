"""The paper's Tables 3 and 4 on our data: debiasing after distillation against reweighting during it.

Table 3 (debiasing while training on the distilled set): rows full-data baseline, vanilla DM and
reweighted DM; columns the evaluation's training, plain, LfF, JTT, SelecMix or SelecMix+L
(--eval-debias). Table 4 (debiased surrogates): reweighted DM with the surrogate trained by SupCon,
cross-entropy, or cross-entropy with LfF, JTT, SelecMix or SelecMix+L (--surrogate-debias):
unbiased and conflicting accuracy, and the share of the weight the conflicting samples get.

    python bench/debias_tables.py                     # quick preset, bundled data, 5%, IPC 10
    python bench/debias_tables.py --ipc 10 50         # and IPC 50
    python bench/debias_tables.py --methods selecmix  # only SelecMix's cells (and plain, SupCon, CE)
    python bench/debias_tables.py --preset smoke      # seconds: checks the script, not the method

Extra `--name value` pairs are config overrides for every run (e.g. --conflict-ratio 0.02).
Runs go to --runs (default bench/runs/debias, ignored by git) as ordinary run folders. A finished
run there with the same config is reused, so a second call only prints. Table 3's debiased
cells of the distilled sets re-evaluate the plain run's synthetic set (`ddcore evaluate
--eval-debias`) in a copy of its folder, leaving the original as it was; the baseline's are
baseline runs of their own.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import time
from pathlib import Path

import torch

from ddcore import hardware, runstore
from ddcore.cli import main as ddcore_main
from ddcore.cli import parse_overrides
from ddcore.config import DEBIAS_NAMES, RunConfig, preset
from ddcore.errors import DDError
from ddcore.pipeline import execute_run, preflight
from ddcore.records import Metrics

EVALUATIONS = tuple((method, name.short) for method, name in DEBIAS_NAMES.items())
SURROGATES = (("SupCon", dict(surrogate="supcon")), ("CE", dict(surrogate="ce")),
              *((f"CE + {name.short}", dict(surrogate="ce", surrogate_debias=method))
                for method, name in DEBIAS_NAMES.items() if method != "none"))


def _done(root: Path, cfg: RunConfig, evaluated: str) -> runstore.RunInfo | None:
    """The newest finished run of `cfg` whose metrics come from the `evaluated` training."""
    for run in runstore.list_runs(root) if root.exists() else []:
        if run.error or run.status.state != "done" or run.config != cfg or run.metrics is None:
            continue
        if (run.metrics.eval_debias or cfg.eval.eval_debias) == evaluated:
            return run
    return None


def ensure_run(root: Path, cfg: RunConfig, name: str) -> runstore.RunInfo:
    """A finished run of `cfg` under root: reused if there is one, else run now, in this process."""
    found = _done(root, cfg, cfg.eval.eval_debias)
    if found is None:
        run_dir = runstore.create_run(root / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}", preflight(cfg))
        print(f"running {run_dir.name}", flush=True)
        execute_run(run_dir)
        found = runstore.read_run(run_dir)
    return found


def reevaluated(root: Path, source: runstore.RunInfo, method: str) -> Metrics:
    """`source`'s synthetic set evaluated with --eval-debias `method`, in a copy of its folder."""
    found = _done(root, source.config, method)
    if found is None:
        copy = root / f"{source.name}-eval-{method}"
        if copy.exists():  # an interrupted earlier attempt: ours, a plain run folder copy
            shutil.rmtree(copy)
        # the run's own files; not its lock, claim or cancel request, nor its sweep membership
        shutil.copytree(source.path, copy, ignore=shutil.ignore_patterns(".lock", ".claim", "cancel", "sweep.json"))
        print(f"re-evaluating {copy.name}", flush=True)
        if ddcore_main(["evaluate", str(copy), "--eval-debias", method]) != 0:
            raise DDError(f"re-evaluating {copy} with --eval-debias {method} failed")
        found = runstore.read_run(copy)
    return found.metrics


def _acc(m: Metrics, key: str = "unbiased") -> str:
    mean, std = getattr(m, f"test_acc_{key}"), getattr(m, f"test_acc_{key}_std")
    return "–" if mean is None else f"{mean:.1f} ± {std or 0.0:.1f}"


def table3(root: Path, base: RunConfig, ipc: int, methods: set[str]) -> list[str]:
    columns = [(m, label) for m, label in EVALUATIONS if m in methods]
    rows = ["| training set (IPC %d) | %s |" % (ipc, " | ".join(f"{label} evaluation" for _, label in columns)),
            "|---" * (1 + len(columns)) + "|"]
    baseline = [ensure_run(root, base.with_overrides(kind="baseline", eval_debias=m), f"baseline-eval-{m}").metrics
                for m, _ in columns]
    rows.append("| full-data baseline | " + " | ".join(_acc(m) for m in baseline) + " |")
    for label, reweight in (("vanilla DM", "none"), ("reweighted DM", "kde")):
        plain = ensure_run(root, base.with_overrides(ipc=ipc, reweight=reweight), f"dm-{reweight}-ipc{ipc}")
        cells = [plain.metrics if m == "none" else reevaluated(root, plain, m) for m, _ in columns]
        rows.append(f"| {label} | " + " | ".join(_acc(m) for m in cells) + " |")
    return rows


def table4(root: Path, base: RunConfig, ipc: int, methods: set[str]) -> list[str]:
    rows = [f"| surrogate (reweighted DM, IPC {ipc}) | unbiased | conflicting | conflicting weight share |",
            "|---|---|---|---|"]
    for label, overrides in SURROGATES:
        if overrides.get("surrogate_debias", "none") not in methods:
            continue
        cfg = base.with_overrides(ipc=ipc, reweight="kde", **overrides)
        name = "-".join(v for v in (overrides["surrogate"], overrides.get("surrogate_debias")) if v)
        m = ensure_run(root, cfg, f"dm-kde-ipc{ipc}-{name}").metrics
        share = "–" if m.weight_share_conflicting is None else f"{100 * m.weight_share_conflicting:.1f}%"
        rows.append(f"| {label} | {_acc(m)} | {_acc(m, 'conflicting')} | {share} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick")
    p.add_argument("--ipc", type=int, nargs="+", default=[10], help="IPC values (default 10; add 50 for IPC 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=str(Path(__file__).parent / "runs" / "debias"))
    p.add_argument("--methods", nargs="+", choices=[m for m, _ in EVALUATIONS[1:]],
                   default=[m for m, _ in EVALUATIONS[1:]],
                   help="the debiasing methods whose cells to run (default all; plain, SupCon and CE always)")
    args, rest = p.parse_known_args()
    hardware.configure_process()  # as the CLI's evaluate does: every run of the call gets the same count
    overrides = parse_overrides(rest)
    base = preset(args.preset, "dm").with_overrides(seed=args.seed, **overrides)
    root, t0 = Path(args.runs), time.time()
    out = []
    for ipc in args.ipc:
        out += ["", "Table 3: debiasing the evaluation's training (unbiased test accuracy, %)", ""]
        methods = {"none", *args.methods}
        out += table3(root, base, ipc, methods)
        out += ["", "Table 4: debiasing the surrogate", ""]
        out += table4(root, base, ipc, methods)
    print(f"\n{time.strftime('%Y-%m-%d')} | preset {args.preset} | seed {args.seed} | overrides {overrides or '-'} | "
          f"torch {torch.__version__} | {platform.machine()}, CPU capability {hardware.cpu_capability()}, "
          f"{torch.get_num_threads()} threads | runs under {root} | {time.time() - t0:.0f} s in this call")
    print("\n".join(out))


if __name__ == "__main__":
    main()
