"""The sweep spec: a TOML file naming a base preset, overrides, axes and seeds, expanded into cells.

    name = "smoke"                      # letters, digits, '.', '_', '-'; tags every cell's run folder
    description = "..."                 # optional: what the sweep shows
    estimate = "..."                    # optional: how long it takes, and on what
    preset = "smoke"                    # the base preset (ddcore.config.preset)
    method = "dm"                       # optional (default dm): the preset's method, unless `method` is an axis
    seeds = [0, 1]                      # optional (default [0]): every cell runs once per seed

    [overrides]                         # config fields by their flat names, applied to every cell
    eval_epochs = 2

    [axes]                              # lists of values; the cells are their product (x seeds)
    conflict_ratio = [0.02, 0.05]
    reweight = ["none", "kde"]
    kind = ["distill", "baseline"]      # "baseline": the full-data baseline as a cell ("random-subset" too)

Field names and types are RunConfig's (`RunConfig.with_overrides`); an optional field takes
"auto" or "none" for its default rule (kde_sigma = "auto": the adaptive bandwidth;
conflict_ratio = "none": as the files come), but for dsa_strategy "none" is no augmentation
and only "auto" the dataset's strategy. A full-data baseline reads no reweighting,
distillation or map field, so those axes do not multiply its cells: one baseline per data
setting and seed (a random subset reads only `ipc` of them). Every cell is validated before
anything runs; a bad spec is one line naming the file and the field.
"""
from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..config import CHOICES, METHODS, PRESETS, SECTION_TYPES, RunConfig, means_default, preset, validate
from ..errors import ConfigError

# the repository's shipped specs (absent when ddcore is installed without its checkout)
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "sweeps"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
MAX_CELLS = 1000  # the paper's tables are tens of cells; thousands is a typo in an axis, each cell a run folder
TOP_LEVEL = ("name", "description", "estimate", "preset", "method", "seeds", "overrides", "axes")
# set by the spec's own keys, never by overrides or axes
RESERVED = {"preset": "the base preset is the top-level `preset`",
            "seed": "seeds are the top-level `seeds` list"}
# what pipeline._baseline never reads (evaluation reads dsa_strategy for its augmentation)
BASELINE_IGNORES = frozenset(
    {g.name for s in ("reweight", "distill", "map") for g in fields(SECTION_TYPES[s])} - {"dsa_strategy"}
)
# by run kind, the fields its runs never read; pipeline._random_subset draws `ipc` real images per class
IGNORES = {"distill": frozenset(), "baseline": BASELINE_IGNORES, "random-subset": BASELINE_IGNORES - {"ipc"}}
_TYPES: dict[str, str] = {
    **{g.name: str(g.type) for typ in SECTION_TYPES.values() for g in fields(typ)},
    **{f.name: str(f.type) for f in fields(RunConfig) if f.name not in SECTION_TYPES},
}


class SpecError(ConfigError):
    """A spec that cannot run; the message is one line naming the file and the field."""


@dataclass(frozen=True)
class Axis:
    field: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class SweepSpec:
    name: str
    preset: str
    method: str = "dm"
    seeds: tuple[int, ...] = (0,)
    overrides: tuple[tuple[str, Any], ...] = ()
    axes: tuple[Axis, ...] = ()
    description: str = ""
    estimate: str = ""
    source: str = "<spec>"  # where it was read from, for messages

    def axis(self, name: str) -> Axis | None:
        return next((a for a in self.axes if a.field == name), None)


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: its axis values (those its kind ignores dropped), seed and config."""

    index: int
    axes: tuple[tuple[str, Any], ...]
    seed: int
    config: RunConfig
    key: str  # hash of the config: a re-run finds the cell's folder by it
    name: str  # the run folder's name

    def describe(self) -> str:
        return ", ".join([*(f"{k}={v!r}" for k, v in self.axes), f"seed {self.seed}"])


def _fail(source: str, where: str, message: str) -> SpecError:
    return SpecError(f"{source}: {where}: {message}")


def _coerce(source: str, where: str, name: str, value: Any) -> Any:
    """A TOML value as config field `name`'s type; "auto" (`means_default`) for an optional field's default."""
    if name in RESERVED:
        raise _fail(source, where, f"'{name}' cannot be set here: {RESERVED[name]}")
    if name not in _TYPES:
        close = difflib.get_close_matches(name, _TYPES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise _fail(source, where, f"unknown field '{name}'{hint}")
    typ = _TYPES[name].replace(" ", "")
    if typ.endswith("|None"):
        if isinstance(value, str) and means_default(name, value):
            return None
        typ = typ[: -len("|None")]
    if typ == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if typ == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if typ == "bool" and isinstance(value, bool):
        return value
    if typ == "str" and isinstance(value, str):
        return value
    if typ == "str" and isinstance(value, bool) and str(value).lower() in CHOICES.get(name, ("", ()))[1]:
        return str(value).lower()  # bf16 = true, compile = false: modes that also take "auto"
    wanted = {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "text"}[typ]
    if name in CHOICES:
        wanted = f"one of {', '.join(CHOICES[name][1])}"
    optional = " (or \"auto\" for the default rule)" if _TYPES[name].endswith("None") else ""
    raise _fail(source, where, f"expected {wanted}{optional}, got {value!r}")


def _text(source: str, data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if value is None:
        raise _fail(source, key, "missing (required)")
    if not isinstance(value, str):
        raise _fail(source, key, f"expected text, got {value!r}")
    return value


def parse_spec(data: dict[str, Any], source: str = "<spec>") -> SweepSpec:
    """A spec from its TOML table (or the app's grid form, built as the same dict)."""
    unknown = [k for k in data if k not in TOP_LEVEL]
    if unknown:
        raise _fail(source, unknown[0], f"unknown key; a spec has {', '.join(TOP_LEVEL)}")
    name = _text(source, data, "name")
    if not NAME_RE.match(name):
        raise _fail(source, "name", f"'{name}' is invalid: use letters, digits, '.', '_' or '-' (at most 40)")
    base = _text(source, data, "preset")
    if base not in PRESETS:
        raise _fail(source, "preset", f"unknown preset '{base}'; choose one of {', '.join(PRESETS)}")
    method = _text(source, data, "method", "dm")
    if method not in METHODS:
        raise _fail(source, "method", f"unknown method '{method}'; choose one of {', '.join(METHODS)}")

    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds:
        raise _fail(source, "seeds", f"expected a non-empty list of seeds, got {seeds!r}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise _fail(source, "seeds", f"a seed is a non-negative whole number, got {s!r}")
    if len(set(seeds)) < len(seeds):
        raise _fail(source, "seeds", "a seed is listed twice")

    raw_overrides = data.get("overrides", {})
    if not isinstance(raw_overrides, dict):
        raise _fail(source, "overrides", "expected a table of field = value")
    if "method" in raw_overrides:
        raise _fail(source, "overrides.method", "the method is the top-level `method` (or an axis)")
    overrides = tuple((k, _coerce(source, f"overrides.{k}", k, v)) for k, v in raw_overrides.items())

    raw_axes = data.get("axes", {})
    if not isinstance(raw_axes, dict):
        raise _fail(source, "axes", "expected a table of field = [values]")
    axes = []
    for k, values in raw_axes.items():
        where = f"axes.{k}"
        if not isinstance(values, list):
            raise _fail(source, where, f"expected a list of values, got {values!r}")
        if not values:
            raise _fail(source, where, "empty axis: give it at least one value")
        coerced = tuple(_coerce(source, where, k, v) for v in values)
        if len(set(map(repr, coerced))) < len(coerced):
            raise _fail(source, where, "a value is listed twice")
        if k in dict(overrides):
            raise _fail(source, where, "this field is also in [overrides]; keep it in one place")
        axes.append(Axis(k, coerced))
    if "method" in raw_axes and "method" in data:
        raise _fail(source, "method", "`method` is both the base method and an axis; keep the axis")
    cells = math.prod(len(a.values) for a in axes) * len(seeds)
    if cells > MAX_CELLS:  # counted before anything is expanded or queued
        sizes = " x ".join([*(str(len(a.values)) for a in axes), f"{len(seeds)} seeds"])
        raise _fail(source, "axes", f"{cells:,} cells ({sizes}); a sweep holds at most {MAX_CELLS:,}: split it")
    return SweepSpec(name, base, method, tuple(seeds), overrides, tuple(axes),
                     _text(source, data, "description", ""), _text(source, data, "estimate", ""), source)


def load_spec(path: str | Path) -> SweepSpec:
    """Read a spec file; `path` may also name a shipped spec (`smoke` for sweeps/smoke.toml)."""
    path = Path(path)
    if not path.is_file() and (SHIPPED_DIR / f"{path.name}.toml").is_file() and path.suffix != ".toml":
        path = SHIPPED_DIR / f"{path.name}.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        shipped = ", ".join(p.stem for p in shipped_specs())
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror or exc}); shipped specs: {shipped}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); a spec is a TOML file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    return parse_spec(data, str(path))


def shipped_specs() -> list[Path]:
    return sorted(SHIPPED_DIR.glob("*.toml")) if SHIPPED_DIR.is_dir() else []


def _configure(spec: SweepSpec, method: str, values: dict[str, Any]) -> RunConfig:
    return validate(preset(spec.preset, method).with_overrides(**values))


def _blame(spec: SweepSpec, method: str, fixed: dict[str, Any], trial: dict[str, Any], where: str,
           error: ConfigError) -> SpecError:
    """The one field whose value alone breaks the config (else the combination), named in the error."""
    for k, v in trial.items():
        try:
            _configure(spec, v if k == "method" else method, {**fixed, k: v})
        except ConfigError as exc:
            return _fail(spec.source, f"{where}.{k} = {v!r}", str(exc))
    together = ", ".join(f"{k}={v!r}" for k, v in trial.items())
    return _fail(spec.source, f"{where} ({together}) together", str(error))


def config_key(cfg: RunConfig) -> str:
    return _digest(cfg.to_dict())


def result_key(cfg: RunConfig) -> str:
    """The hash of what the run computes (`RunConfig.result_dict`): equal for configs that differ
    only in execution settings such as --compile."""
    return _digest(cfg.result_dict())


def _digest(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def cell_name(sweep: str, cfg: RunConfig, key: str) -> str:
    """Readable and unique: what the cell is, then its config hash (the part that matters)."""
    ratio = "asis" if cfg.data.conflict_ratio is None else f"{cfg.data.conflict_ratio:g}"
    d = cfg.distill
    what = "baseline" if cfg.kind == "baseline" else f"{d.method}-{cfg.reweight.reweight}-ipc{d.ipc}"
    if cfg.eval.eval_debias != "none":
        what += f"-eval-{cfg.eval.eval_debias}"
    name = f"{sweep}-{cfg.data.dataset}-r{ratio}-{what}-s{cfg.seed}-{key[:8]}"
    return name if len(name) <= 100 else f"{sweep}-{key}"


def expand(spec: SweepSpec) -> tuple[Cell, ...]:
    """Every cell of the spec, validated (ddcore.config.validate), in axis order then seed;
    cells with the same config (baselines and random subsets across ignored axes) appear once."""
    overrides = dict(spec.overrides)
    axis_method = spec.axis("method")
    for method in axis_method.values if axis_method else (spec.method,):
        try:
            _configure(spec, method, overrides)
        except ConfigError as exc:
            raise _blame(spec, method, {}, overrides, "overrides", exc) from None
    cells: dict[str, Cell] = {}
    for combo in itertools.product(*(a.values for a in spec.axes)):
        assignment = {a.field: v for a, v in zip(spec.axes, combo)}
        ignored = IGNORES.get(assignment.get("kind", overrides.get("kind")), frozenset())  # none set: distill
        assignment = {k: v for k, v in assignment.items() if k not in ignored}
        method = assignment.get("method", spec.method)
        try:
            _configure(spec, method, {**overrides, **assignment})
        except ConfigError as exc:
            raise _blame(spec, method, overrides, assignment, "axes", exc) from None
        for seed in spec.seeds:
            cfg = _configure(spec, method, {**overrides, **assignment, "seed": seed})
            key = config_key(cfg)
            if key not in cells:
                cells[key] = Cell(len(cells), tuple(assignment.items()), seed, cfg, key,
                                  cell_name(spec.name, cfg, key))
    return tuple(cells.values())
