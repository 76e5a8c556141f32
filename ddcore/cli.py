"""`python -m ddcore {distill,baseline,random-subset,evaluate,list,cache,worker,sweep}`.

Every config field is an option named after it (`--kde-tau`, `--eval-models`, ...), applied on
top of the chosen preset. Bad input exits with status 2 and one line saying what is wrong.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from . import runstore
from .config import (CHOICES, CONFIG_FIELDS, FLAT_FIELDS, PRESETS, RunConfig, default_words, field_help, means_default,
                     preset, validate)
from .errors import Cancelled, ConfigError, DDError
from .hardware import configure_process
from .records import Metrics, SyntheticImages
from .sweeps import cli as sweep_cli

_TOP_LEVEL = {"preset", "kind"}  # set by the command itself, not by override flags


def one_line(text: str) -> str:
    """text with its control characters escaped: a newline typed into a path must not split the
    one line an error gets."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line instead of usage + message
        print(one_line(f"error: {message} (see '{self.prog} --help')"), file=sys.stderr)
        raise SystemExit(2)


def _converter(name: str):
    """How the CLI reads config field `name`: by its type; "auto" (`config.means_default`) for an
    optional one's default rule."""
    def to_bool(text: str) -> bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")

    def optional(convert):
        def value_or_default(text: str):
            if means_default(name, text):
                return None
            try:
                return convert(text)
            except ValueError:
                kind = "a whole number" if convert is int else "a number"
                raise argparse.ArgumentTypeError(f"expected {kind} (or auto/none); got '{text}'") from None

        return value_or_default

    base = {"int": int, "float": float, "str": str, "bool": to_bool}
    type_name = str(CONFIG_FIELDS[name].type).replace(" ", "")
    if type_name.endswith("|None"):
        return optional(base[type_name[: -len("|None")]])
    return base[type_name]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds (0 or more), got '{text}'")
    return value


def _descriptor(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a file descriptor number, got '{text}'")
    return int(text)


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """['--kde-tau', '2', '--method', 'mtt'] -> {'kde_tau': 2.0, 'method': 'mtt'}: config
    overrides given as flag/value pairs (the benchmarks' extra arguments), typed like the CLI's."""
    if len(args) % 2:
        raise ConfigError(f"options come as --name value pairs; '{args[-1]}' has no value")
    out: dict[str, Any] = {}
    for flag, text in zip(args[::2], args[1::2]):
        name = flag.lstrip("-").replace("-", "_")
        if not flag.startswith("--") or name not in CONFIG_FIELDS:
            raise ConfigError(f"unknown option '{flag}'")
        try:
            out[name] = _converter(name)(text)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(f"bad value for {flag}: {exc}") from None
    return out


def _add_overrides(p: argparse.ArgumentParser, only: set[str] | None = None) -> None:
    for name, f in CONFIG_FIELDS.items():
        if name in _TOP_LEVEL or (only is not None and name not in only):
            continue
        type_name = str(f.type)
        if name in CHOICES:
            values = f"one of {', '.join(CHOICES[name][1])}"
        else:
            values = type_name.replace(" | None", f" or {'/'.join(default_words(name))}")
        help_text = f"{field_help(name)} ({values})"
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_converter(name),
                       default=argparse.SUPPRESS, help=help_text)


def _config(args: argparse.Namespace, kind: str) -> RunConfig:
    overrides = {k: v for k, v in vars(args).items() if k in FLAT_FIELDS and k not in _TOP_LEVEL}
    # the method picks its preset's defaults; every other override then applies on top
    base = preset(args.preset, overrides.get("method", "dm"))
    return validate(base.with_overrides(kind=kind, **overrides))


def _progress_listener():
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def listener(stage: str, done: int, total: int, loss: float | None) -> None:
        bar = bars.get(stage)
        if bar is None:
            for old in bars.values():
                old.close()
            bar = bars[stage] = tqdm(total=total, desc=f"{stage:>9}", leave=True, dynamic_ncols=True)
        bar.total = total
        bar.n = done
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        bar.refresh()
        if done >= total:
            bar.close()

    return listener


def summary_line(metrics: Metrics) -> str:
    def acc(key: str) -> str:
        mean, std = getattr(metrics, f"test_acc_{key}"), getattr(metrics, f"test_acc_{key}_std")
        return "n/a" if mean is None else f"{mean:.1f} ± {std or 0.0:.1f}"

    parts = [f"unbiased {acc('unbiased')}", f"aligned {acc('aligned')}", f"conflicting {acc('conflicting')}"]
    if metrics.weight_share_conflicting is not None and metrics.count_share_conflicting is not None:
        parts.append(f"conflicting weight share {100 * metrics.weight_share_conflicting:.1f}% "
                     f"(count share {100 * metrics.count_share_conflicting:.1f}%)")
    if metrics.seconds_total is not None:
        parts.append(f"{metrics.seconds_total:.0f} s on {metrics.device or '?'}")
    return " | ".join(parts)


def _run(args: argparse.Namespace, kind: str) -> int:
    from .pipeline import execute_run, preflight

    cfg = preflight(_config(args, kind))
    out = Path(args.out) if args.out else Path(args.runs) / runstore.new_run_name(cfg)
    replacing = args.overwrite and (out.expanduser().exists() or out.expanduser().is_symlink())
    run_dir = runstore.stage_replacement(out, cfg) if replacing else runstore.create_run(out, cfg, claimed=True)
    print(f"run folder: {out}" + (" (the finished run there is replaced once this one succeeds)" if replacing else ""),
          file=sys.stderr)
    try:
        metrics = execute_run(run_dir, _progress_listener())
    except Exception as exc:
        message = runstore.read_status(run_dir).message or str(exc)  # the user-facing line the run recorded
        if replacing:
            message += f"; the existing run at {out} was kept (this attempt's log: {run_dir / 'log.txt'})"
        raise (Cancelled if isinstance(exc, Cancelled) else DDError)(message) from None
    if replacing:
        runstore.replace_run(run_dir, out)
    print(summary_line(metrics))
    if metrics.warning:
        print(f"warning: {metrics.warning}", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .data import Normalization, load_biased
    from .evaluate import evaluate_set
    from .pipeline import TEST_SEED, resolve_device, saturated_share, saturation_warning

    run_dir = runstore.check_run_folder(args.run, "evaluated")  # it rewrites metrics.json there
    if not (run_dir / "config.json").is_file():
        raise DDError(f"{run_dir} has no config.json to evaluate with")
    state = runstore.settled_state(run_dir)
    if state in ("queued", "running"):  # it will write its own metrics.json
        raise DDError(f"{run_dir} holds a run that is still {state}; evaluate it once it has finished")
    try:  # before minutes of training, not after: the result goes into metrics.json there
        tempfile.TemporaryFile(dir=run_dir).close()
    except OSError as exc:
        raise DDError(f"cannot write in {run_dir} ({exc.strerror}); nothing was evaluated") from None
    overrides = {k: v for k, v in vars(args).items() if k in FLAT_FIELDS}
    cfg = validate(runstore.read_config(run_dir).with_overrides(**overrides))
    synthetic = SyntheticImages.load(run_dir)
    device = resolve_device(cfg.device)
    # the test split in the space the synthetic set was distilled in (older runs: [0, 1], mean 0, std 1)
    norm = Normalization(synthetic.mean, synthetic.std)
    test = load_biased(cfg.data, train=False, seed=TEST_SEED).normalized(norm).to(device)
    synthetic.check_fits(run_dir, test.images.shape[1:], test.num_classes)
    listener = _progress_listener()
    result = evaluate_set(synthetic.images.to(device), synthetic.labels.to(device), test, cfg,
                          cfg.eval.eval_epochs, cfg.seed, lambda d, t, l: listener("evaluate", d, t, l))
    old = Metrics.load(run_dir)
    saturated = saturated_share(synthetic.denormalized())  # a set edited since its run is judged afresh
    metrics = runstore.save_metrics(run_dir, {**(old.to_json() if old else {}), **result,
                                              "eval_models": cfg.eval.eval_models, "eval_epochs": cfg.eval.eval_epochs,
                                              "eval_debias": cfg.eval.eval_debias, "saturated_share": saturated,
                                              "warning": saturation_warning(saturated, cfg)})
    runstore.update_status(run_dir, warning=metrics.warning)
    print(summary_line(metrics))
    if metrics.warning:
        print(f"warning: {metrics.warning}", file=sys.stderr)
    return 0


def format_listing(runs: list[runstore.RunInfo]) -> str:
    rows = [("NAME", "STATE", "KIND", "METHOD", "REWEIGHT", "IPC", "RATIO", "UNBIASED", "NOTE")]
    for r in runs:
        if r.error:  # the row names the run: the note says which file and why, not the folder's path again
            why = r.error.removeprefix("damaged run folder: ").replace(f"{r.path}{os.sep}", "")
            rows.append((r.name, "damaged", "", "", "", "", "", "", why[:100]))
            continue
        c, s = r.config, r.status
        acc = "" if r.metrics is None or r.metrics.test_acc_unbiased is None else f"{r.metrics.test_acc_unbiased:.1f}"
        notes = {"failed": s.message, "cancelled": s.message, "running": s.stage, "done": s.warning}
        note = notes.get(s.state, "")[:60]
        rows.append((r.name, s.state, c.kind, c.distill.method, c.reweight.reweight, str(c.distill.ipc),
                     "as-is" if c.data.conflict_ratio is None else f"{c.data.conflict_ratio:g}", acc, note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows)


def _list(root: Path) -> int:
    """Print the runs under root; queued runs whose worker has died get a new one."""
    from .jobs import supervise

    runs = runstore.list_runs(root)
    print(format_listing(runs))
    try:
        if supervise(root, runs):
            print(f"started a worker for the queued runs under {root}", file=sys.stderr)
    except (DDError, OSError) as exc:  # a runs folder we may read but not write in is still listed
        print(one_line(f"note: no worker could be started for its queued runs ({exc})"), file=sys.stderr)
    return 0


def format_cache(root: Path, clear: bool) -> str:
    entries = runstore.cache_usage(root)
    if clear:
        return f"cleared {runstore.clear_cache(root) / 2**20:.1f} MiB from {runstore.cache_dir(root)}"
    lines = [f"{e.bytes / 2**20:10.1f} MiB  {e.files:4d} file(s)  {e.name}" for e in entries]
    total = sum(e.bytes for e in entries) / 2**20
    return "\n".join([*lines, f"{total:10.1f} MiB  in {runstore.cache_dir(root)}"])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m ddcore", description=(
        "Dataset distillation on biased data, vanilla and KDE-reweighted (Cui et al., ICML 2024): "
        "each command below takes --help."))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, what in (("distill", "distil a synthetic set, evaluate it, map it"),
                       ("baseline", "train on the whole biased training set (the full-data baseline)"),
                       ("random-subset", "IPC real images per class drawn uniformly, evaluated like a synthetic set")):
        p = sub.add_parser(name, help=what, description=what)
        p.add_argument("--preset", choices=PRESETS, default="quick",
                       help="quick (CPU, minutes), full (quick on the full datasets' files, weights smoothed), "
                            "smoke (seconds), paper (GPU)")
        p.add_argument("--out", help="run folder to create (default: ROOT/<generated name>)")
        p.add_argument("--runs", default="runs", help="where generated run folders go (default: runs)")
        p.add_argument("--overwrite", action="store_true",
                       help="replace the finished run at --out, once the new one has succeeded")
        _add_overrides(p)
    p = sub.add_parser("evaluate", help="re-evaluate a run's synthetic set (updates metrics.json)")
    p.add_argument("run", help="the run folder")
    _add_overrides(p, only={name for name, section in FLAT_FIELDS.items() if section == "eval"} | {"device"})
    p = sub.add_parser("list", help="list the runs under a root")
    p.add_argument("--runs", default="runs", help="the runs folder (default: runs)")
    p = sub.add_parser("cache", help="show (or --clear) the work runs share: surrogates and MTT experts")
    p.add_argument("--runs", default="runs", help="the runs folder (default: runs)")
    p.add_argument("--clear", action="store_true", help="delete it (runs recompute what they need)")
    p = sub.add_parser("worker", help="execute queued runs (the app starts this for you)")
    p.add_argument("--runs", default="runs", help="the runs folder (default: runs)")
    p.add_argument("--idle-exit", type=_seconds, default=None, help="exit after this many idle seconds")
    p.add_argument("--lock-fd", type=_descriptor, default=None,
                   help="the runs folder's worker lock, already held (how the app hands it over)")
    sweep_cli.add_parser(sub, _Parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command in ("distill", "baseline", "random-subset", "evaluate", "worker"):
            configure_process()  # one job at a time: it gets every usable core
        if args.command in ("distill", "baseline", "random-subset"):
            return _run(args, args.command)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "list":
            return _list(runstore.check_root(args.runs))
        if args.command == "cache":
            print(format_cache(runstore.check_root(args.runs), args.clear))
            return 0
        if args.command == "sweep":
            return sweep_cli.main(args)
        from .jobs import run_worker

        run_worker(runstore.init_root(args.runs), idle_exit_seconds=args.idle_exit, lock_fd=args.lock_fd)
        return 0
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("cancelled: interrupted", file=sys.stderr)
        return 130
    except (DDError, ConfigError) as exc:
        print(one_line(f"error: {exc}"), file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused (permissions, a full disk): say which file, not a traceback
        print(one_line(f"error: {exc.strerror or exc}: {exc.filename or ''}"), file=sys.stderr)
        return 2
