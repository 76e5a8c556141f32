"""Typed, immutable run configuration, the presets, and validation.

Every field name is unique across the sections, so the CLI exposes each one as `--field-name`
and `config.json` stays flat enough to read by eye. Change a value with `dataclasses.replace`
(or `RunConfig.with_overrides`); nothing is ever mutated in place.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from .errors import ConfigError
from .hardware import COMPILE_MIN_ITERATIONS, MODES

DATASETS = ("cmnist", "bg-cmnist", "bg-fmnist", "cifar10c-0", "cifar10c-1", "bffhq", "csv")  # ddcore.data.DATASET_SPECS
SOURCES = ("bundled", "files")
EVALUATE_ON = ("test", "validation")
MAX_IMAGE_SIZE = 256  # a whole split is held as float32 [N, 3, S, S]: 50,000 CIFAR images at 256 are 39 GB
METHODS = ("dm", "dc", "dsa", "mtt")
REWEIGHT_MODES = ("kde", "none", "oracle")  # oracle: equal weight per (class, bias) group from the bias labels
SURROGATE_OBJECTIVES = ("supcon", "ce", "untrained")


class DebiasName(NamedTuple):
    short: str  # as the papers' tables write it
    full: str   # for forms


# ddcore.debias's methods by code, the one list of their names (CLI choices, forms, tables, legends)
DEBIAS_NAMES = {
    "none": DebiasName("plain", "none"),
    "lff": DebiasName("LfF", "Learning from Failure"),
    "jtt": DebiasName("JTT", "Just Train Twice"),
    "selecmix": DebiasName("SelecMix", "SelecMix"),
    "selecmix-lff": DebiasName("SelecMix+L", "SelecMix+L (with LfF)"),
}
DEBIAS_METHODS = tuple(DEBIAS_NAMES)

WEIGHTINGS = ("sample", "mean")
NORMS = ("instance", "none")
DEVICES = ("auto", "cpu", "cuda")
PRESETS = ("smoke", "quick", "full", "paper")
FILE_PRESETS = ("full", "paper")  # presets for the full datasets' own files, never the bundled sample
KINDS = ("distill", "baseline", "random-subset")
INITS = ("real", "weighted", "noise")
DSA_OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")


def _opt(default: Any, help: str) -> Any:
    """A config field with its one line of help (the CLI's --help prints it; choices are added
    from CHOICES, so the line says what the option means, not what it may be)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class DataConfig:
    """Which biased data a run uses; `ddcore.data.files_help(cfg)` says which files go where."""

    dataset: str = _opt("cmnist", "the biased dataset")
    source: str = _opt("bundled", "bundled: the sample shipped with the code (cmnist, bg-cmnist); files: the full dataset under --root")
    root: str | None = _opt(None, "the folder holding the dataset's files for --source files (torchvision's "
                                   "layout where one exists); the paper preset's default is $DDBIAS_DATA")
    download: bool = _opt(False, "let torchvision fetch the files into --root (MNIST, Fashion-MNIST, CIFAR-10)")
    conflict_ratio: float | None = _opt(
        0.05, "per class, the share of bias-conflicting training samples; none: as the files come (bffhq, csv)")
    severity: int | None = _opt(
        None, "1..5: colour jitter (coloured MNIST) or CIFAR-10-C level; none: the benchmark's (4; CIFAR 5)")
    image_size: int | None = _opt(None, "resize images to this side; none: the dataset's own (bffhq: 64)")
    csv_path: str | None = _opt(None, "dataset csv: the CSV of path,label,bias[,split] (paths relative to it)")
    # validation: for choosing settings without ever looking at the test split
    evaluate_on: str = _opt("test", "validation: hold out every 10th training image of each class, train on the "
                                    "rest and evaluate on those with the test split's unbiased protocol")


@dataclass(frozen=True)
class NetConfig:
    net_width: int = _opt(128, "ConvNet channels per layer (distillation and evaluation)")
    net_depth: int = _opt(3, "ConvNet blocks, each halving the image")
    net_norm: str = _opt("instance", "the ConvNet's normalisation (instance: the reference's GroupNorm per channel)")


@dataclass(frozen=True)
class ReweightConfig:
    reweight: str = _opt("kde", "kde: weights from the surrogate's density; none: vanilla; oracle: equal weight "
                                "per (class, bias) group from the bias labels")
    surrogate: str = _opt("supcon", "the surrogate encoder's training objective")
    surrogate_epochs: int = _opt(4, "the surrogate's epochs over the training set")
    # The KDE needs a surrogate that still sees the bias: trained longer (4 epochs of full MNIST
    # are 940 steps) it learns shape, the bias-conflicting samples join their class's cluster and
    # lose their weight (bench/RESULTS.md)
    surrogate_steps: int | None = _opt(60, "at most this many surrogate SGD steps in all; none: no cap")
    surrogate_lr: float = _opt(0.05, "the surrogate's SGD learning rate")
    surrogate_batch: int = _opt(256, "the surrogate's batch")
    surrogate_width: int = _opt(64, "the surrogate ConvNet's channels per layer")
    supcon_temperature: float = _opt(0.1, "the SupCon loss's temperature")
    kde_sigma: float | None = _opt(None, "the KDE's Gaussian bandwidth; none: the adaptive rule, kde_scale x the "
                                         "median distance between two samples of a class (ddcore.density)")
    # Chosen on the training split's group balance and the validation split's accuracy over two
    # datasets and four ratios (bench/RESULTS.md 14): the median alone (1.0) with inverse density
    # (tau 1) left background-coloured MNIST at 5% with 37% of the weight on its conflicting samples
    kde_scale: float = _opt(0.7, "the adaptive bandwidth's multiple of the median within-class distance (when "
                                 "kde_sigma is none)")
    kde_tau: float = _opt(0.75, "weights proportional to density^(-1/tau): 1 is inverse density, large is uniform")
    kde_smooth: bool = _opt(False, "average each sample's KDE weight over its kernel neighbours (the same sigma): "
                                   "every cluster keeps its total, spread evenly inside it")
    weighting: str = _opt("sample", "how weights enter DM: sample: real batches drawn by weight; mean: a weighted "
                                    "mean over uniform batches")
    surrogate_debias: str = _opt("none", "train the (cross-entropy) surrogate with a debiasing method (ddcore.debias)")


# Settings that change how a run computes, not what it computes: torch.compile only reorders float
# sums (tests/test_hardware.py compares compiled and eager DM). A finished sweep cell counts as done
# whatever they were set to, so changing one, or its default, reruns nothing (ddcore.sweeps.store).
EXECUTION_ONLY: dict[str, tuple[str, ...]] = {"distill": ("compile",)}


@dataclass(frozen=True)
class DistillConfig:
    method: str = _opt("dm", "the distillation method (DM, DC, DSA, MTT)")
    ipc: int = _opt(10, "synthetic images per class")
    init: str = _opt("weighted", "the synthetic images start as real images drawn uniformly (real) or by weight "
                                 "(weighted), or as noise")
    iterations: int = _opt(20000, "distillation iterations (the method's preset sets its own)")
    batch_real: int = _opt(256, "real images per class per iteration")
    lr_img: float = _opt(1.0, "the synthetic images' SGD learning rate")
    momentum_img: float = _opt(0.5, "the synthetic images' SGD momentum")
    dsa_strategy: str | None = _opt(
        None, "augmentation ops joined by _, e.g. color_crop_cutout_scale_rotate, or none; auto: the dataset's")
    bf16: str = _opt("auto", "DM's network forward in bfloat16: auto: where this device runs it faster (measured, "
                             "cached per machine)")
    compile: str = _opt("auto", "DM: torch.compile the network's feature layers (a one-off cost); auto: on a CPU "
                                f"for runs of {COMPILE_MIN_ITERATIONS} iterations or more, where it repays itself")
    lr_net: float = _opt(0.01, "DC/DSA: the network's SGD learning rate between matching steps")
    outer_loop: int | None = _opt(None, "DC/DSA: matching steps per network; none: by IPC (ddcore.methods.dc)")
    inner_loop: int | None = _opt(None, "DC/DSA: network epochs on the synthetic set between matching steps; "
                                        "none: by IPC")
    batch_train: int = _opt(256, "DC/DSA: the batch of those network epochs")
    # MTT (ddcore.methods.mtt, ddcore.methods.experts); none: the MNIST recipe's value for the IPC
    num_experts: int = _opt(20, "MTT: expert trajectories trained (and cached) per run configuration")
    expert_lr: float = _opt(0.01, "MTT: the experts' SGD learning rate, and the student's initial (learned) one")
    expert_batch: int = _opt(256, "MTT: the experts' batch")
    expert_parallel: int = _opt(0, "MTT: experts trained at once with torch.func.vmap; 0: all on CUDA, 1 on a CPU")
    expert_epochs: int = _opt(2, "MTT: the target is this many expert epochs after the start")
    max_start_epoch: int | None = _opt(None, "MTT: start epochs are drawn from [0, max_start_epoch); none: by IPC")
    syn_steps: int | None = _opt(None, "MTT: student SGD steps unrolled per iteration; none: by IPC")
    batch_syn: int | None = _opt(None, "MTT: synthetic images per student step; none: all of them")
    lr_lr: float = _opt(1e-5, "MTT: the SGD learning rate of the learned student learning rate")


@dataclass(frozen=True)
class EvalConfig:
    eval_models: int = _opt(5, "networks trained from scratch on the synthetic set; accuracies are their mean ± std")
    eval_epochs: int = _opt(1000, "each evaluation network's epochs")
    eval_lr: float = _opt(0.01, "the evaluation networks' SGD learning rate (a tenth after half the epochs)")
    eval_batch: int = _opt(256, "the evaluation networks' batch")
    eval_dsa: bool = _opt(True, "augment while training the evaluation networks (the dataset's DSA ops)")
    baseline_epochs: int = _opt(20, "the full-data baseline's epochs over the whole biased training set")
    # debiased training of the evaluation models (ddcore.debias); the hyperparameters below serve
    # --surrogate-debias too
    eval_debias: str = _opt("none", "train the evaluation networks with a debiasing method (ddcore.debias)")
    gce_q: float = _opt(0.7, "LfF: the biased model's generalised cross-entropy exponent; SelecMix: its "
                             "generalised SupCon's")
    lff_ema: float = _opt(0.7, "LfF: moving-average factor of each sample's losses")
    jtt_upweight: int = _opt(20, "JTT: lambda_up, copies of each sample the identification model got wrong")
    jtt_id_steps: int = _opt(15, "JTT: the identification model trains the fewest whole epochs holding this many "
                                 "SGD steps")


@dataclass(frozen=True)
class MapConfig:
    map_points: int = _opt(6000, "real samples placed in the 2-D map (a stratified subsample above this)")
    map_neighbors: int = _opt(15, "UMAP's n_neighbors")
    map_min_dist: float = _opt(0.1, "UMAP's min_dist")


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    reweight: ReweightConfig = field(default_factory=ReweightConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    map: MapConfig = field(default_factory=MapConfig)
    kind: str = _opt("distill", "distill: a DD run; baseline: train on the whole biased set; random-subset: "
                                "IPC real images per class")
    preset: str = _opt("paper", "the preset the other values start from")
    seed: int = _opt(0, "seeds every random draw of the run (data subsampling, networks, augmentation)")
    device: str = _opt("auto", "auto: CUDA where available, else the CPU")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def result_dict(self) -> dict[str, Any]:
        """`to_dict` without the settings that change how the run computes but not what
        (EXECUTION_ONLY): two configs with equal result dicts make the same run."""
        d = self.to_dict()
        for section, names in EXECUTION_ONLY.items():
            d[section] = {k: v for k, v in d[section].items() if k not in names}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """Inverse of `to_dict`; unknown keys are an error so typos never pass silently."""
        sections = {}
        for f in fields(cls):
            if f.name in SECTION_TYPES:
                sub = d.get(f.name, {})
                if f.name == "data" and sub.get("source") == "mnist":  # run folders written before "files" existed
                    sub = {**sub, "source": "files"}
                for flag in ("bf16", "compile"):  # before each became one of hardware.MODES
                    if f.name == "distill" and isinstance(sub.get(flag), bool):
                        sub = {**sub, flag: str(sub[flag]).lower()}
                typ = SECTION_TYPES[f.name]
                known = {g.name for g in fields(typ)}
                unknown = set(sub) - known
                if unknown:
                    raise ConfigError(f"unknown option(s) in section '{f.name}': {sorted(unknown)}")
                sections[f.name] = typ(**sub)
            elif f.name in d:
                sections[f.name] = d[f.name]
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown option(s): {sorted(unknown)}")
        return cls(**sections)

    def with_overrides(self, **flat: Any) -> "RunConfig":
        """Replace fields by their (globally unique) flat names, e.g. `ipc=50, kde_tau=2.0`."""
        cfg = self
        for name, value in flat.items():
            section = FLAT_FIELDS.get(name)
            if section is None:
                raise ConfigError(f"unknown option '{name}'")
            if section == "":
                cfg = dataclasses.replace(cfg, **{name: value})
            else:
                sub = dataclasses.replace(getattr(cfg, section), **{name: value})
                cfg = dataclasses.replace(cfg, **{section: sub})
        return cfg


SECTION_TYPES = {
    "data": DataConfig,
    "net": NetConfig,
    "reweight": ReweightConfig,
    "distill": DistillConfig,
    "eval": EvalConfig,
    "map": MapConfig,
}

# flat field name -> section name ("" for the top-level fields)
FLAT_FIELDS: dict[str, str] = {
    **{g.name: s for s, typ in SECTION_TYPES.items() for g in fields(typ)},
    **{f.name: "" for f in fields(RunConfig) if f.name not in SECTION_TYPES},
}
assert len(FLAT_FIELDS) == sum(len(fields(t)) for t in SECTION_TYPES.values()) + 4, "field names must be unique"
# flat field name -> its dataclass field: type, default and one line of help (the CLI's and the app's)
CONFIG_FIELDS: dict[str, dataclasses.Field] = {
    **{g.name: g for typ in SECTION_TYPES.values() for g in fields(typ)},
    **{f.name: f for f in fields(RunConfig) if f.name not in SECTION_TYPES},
}


# what a run is, in one word or two (tables, labels, legends): its kind, else how it was weighted
KIND_VARIANTS = {"baseline": "full data", "random-subset": "random subset"}  # KINDS but distill
REWEIGHT_VARIANTS = {"none": "vanilla", "kde": "reweighted", "oracle": "oracle"}  # REWEIGHT_MODES


def variant(cfg: RunConfig) -> str:
    return KIND_VARIANTS[cfg.kind] if cfg.kind in KIND_VARIANTS else REWEIGHT_VARIANTS[cfg.reweight.reweight]


def field_help(name: str) -> str:
    """The config field's one line of help, e.g. field_help("kde_tau")."""
    return CONFIG_FIELDS[name].metadata["help"]


def default_words(name: str) -> tuple[str, ...]:
    """What a user types for optional field `name`'s default rule (None): "auto", or "none", except
    where "none" is a value of its own (dsa_strategy: no augmentation; None: the dataset's ops)."""
    return ("auto",) if name == "dsa_strategy" else ("auto", "none")


def means_default(name: str, text: str) -> bool:
    """Whether `text`, typed for optional field `name` (a CLI option, a sweep spec), asks for its default rule."""
    return text.lower() in default_words(name)


def preset(name: str, method: str = "dm") -> RunConfig:
    """The presets for `method`. `paper` is the reference protocol (a GPU job); `quick` is
    designed for 2 CPU cores and a ~3 minute run; `full` is `quick` on the full datasets' files
    with the KDE weights smoothed (bench/RESULTS.md 14: smoothing gains 2.5-9 points on full
    MNIST and loses up to 8 on the bundled sample, whose minority groups are a few images);
    `smoke` exercises every stage in seconds for tests. Each method's distillation values come
    from its `MethodSpec` (ddcore.methods); `full` takes the `quick` ones."""
    from .methods import get_method_spec  # the methods import this module

    _choice("method", method, METHODS)
    _choice("preset", name, PRESETS)
    distill = DistillConfig(method, **get_method_spec(method).presets["quick" if name == "full" else name])
    files = DataConfig(source="files", root=os.environ.get(DATA_ENV))  # --root, or $DDBIAS_DATA
    if name == "paper":
        return RunConfig(files, distill=distill, preset="paper")
    if name in ("quick", "full"):
        return RunConfig(
            data=files if name == "full" else DataConfig(),
            net=NetConfig(net_width=32),
            reweight=ReweightConfig(surrogate_epochs=4, surrogate_width=32, kde_smooth=name == "full"),
            distill=distill,
            eval=EvalConfig(eval_models=3, eval_epochs=300, baseline_epochs=10),
            preset=name,
        )
    return RunConfig(
        net=NetConfig(net_width=16, net_depth=2),
        reweight=ReweightConfig(surrogate_epochs=1, surrogate_width=16),
        # fp32, not auto: tests compare smoke runs made in different processes, and a choice made
        # by timing could differ between them
        distill=dataclasses.replace(distill, ipc=2, bf16="false"),
        eval=EvalConfig(eval_models=1, eval_epochs=10, baseline_epochs=1),
        map=MapConfig(map_points=600),
        preset="smoke",
    )


DATA_ENV = "DDBIAS_DATA"  # where the full and paper presets look for the datasets' files when --root is not given


# Every option that takes one of a list of names: how messages name it, and the names
CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dataset": ("dataset", DATASETS),
    "source": ("source", SOURCES),
    "evaluate_on": ("evaluation split (--evaluate-on)", EVALUATE_ON),
    "net_norm": ("norm", NORMS),
    "reweight": ("reweighting", REWEIGHT_MODES),
    "surrogate": ("surrogate objective", SURROGATE_OBJECTIVES),
    "weighting": ("weighting", WEIGHTINGS),
    "surrogate_debias": ("surrogate debiasing", DEBIAS_METHODS),
    "method": ("method", METHODS),
    "init": ("init", INITS),
    "bf16": ("bf16 mode", MODES),
    "compile": ("compile mode", MODES),
    "eval_debias": ("evaluation debiasing", DEBIAS_METHODS),
    "kind": ("run kind", KINDS),
    "preset": ("preset", PRESETS),
    "device": ("device", DEVICES),
}


def _choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"unknown {name} '{value}'; choose one of {', '.join(options)}")


def _choices(section: Any) -> None:
    """Each of the section's (or the RunConfig's own) fields that takes a name is one of CHOICES'."""
    for f in fields(section):
        # RunConfig's own `reweight` is the section, not ReweightConfig's field of that name
        if f.name in CHOICES and not (isinstance(section, RunConfig) and f.name in SECTION_TYPES):
            what, options = CHOICES[f.name]
            _choice(what, getattr(section, f.name), options)


def _number(value: Any) -> bool:
    """A real number, not a bool: a whole number of any size (math.isfinite overflows on 10**400),
    a float unless inf or nan."""
    return isinstance(value, int | float) and not isinstance(value, bool) and (
        isinstance(value, int) or math.isfinite(value))


def positive(name: str, value: float, minimum: float = 1) -> None:
    if not (_number(value) and value >= minimum):
        raise ConfigError(f"{name} must be at least {minimum}, got {value!r}")


# Learning rates of networks above this diverge at once; image lrs span 0.1 (DC) to 1e5 (MTT on
# ImageNet subsets). Beyond these a value is a typo, and it would overflow float32 mid-run.
MAX_NET_LR = 10.0
MAX_IMAGE_LR = 1e6
# The KDE runs on L2-normalised embeddings (distances 0..2): below this sigma float32 cannot tell
# the kernels apart (exp underflows), above it every weight is the same
SIGMA_RANGE = (1e-3, 1e3)
MAX_UPWEIGHT = 1000  # JTT copies each misclassified sample this often at most: the set grows by that factor
MAX_SEED = 2**31 - 1  # seeds are offset per model and stage, and UMAP takes at most 2**32 - 1
# Beyond these a value is a typo: a batch would try to allocate terabytes mid-run (the largest
# any recipe uses is 256), a count would make a run that never ends (the longest: DM's 20,000
# iterations, 1,000 evaluation epochs)
MAX_BATCH = 2**16
MAX_COUNT = 10**6
UPPER_LIMITS = {
    **dict.fromkeys(("batch_real", "surrogate_batch", "eval_batch", "batch_train", "expert_batch", "batch_syn"),
                    MAX_BATCH),
    **dict.fromkeys(("iterations", "eval_epochs", "baseline_epochs", "surrogate_epochs", "surrogate_steps",
                     "expert_epochs", "num_experts", "eval_models", "syn_steps", "outer_loop", "inner_loop",
                     "max_start_epoch", "map_points", "map_neighbors", "jtt_id_steps"), MAX_COUNT),
}


def between(what: str, value: Any, lo: float, hi: float, above: bool = False, note: str = "", flag: str = "") -> None:
    """value in [lo, hi] ((lo, hi] with `above`), else one line saying so."""
    if not (_number(value) and (value > lo if above else value >= lo) and value <= hi):
        span = f"positive and at most {hi:g}" if above and lo == 0 else f"between {lo:g} and {hi:g}"
        raise ConfigError(f"{what} must be {span}{note}, got {value!r}" + (f" ({flag})" if flag else ""))


def _finite(cfg: RunConfig) -> None:
    """Every real-valued option is a finite number (argparse and JSON both accept inf and nan)."""
    for section, typ in SECTION_TYPES.items():
        for f in fields(typ):
            value = getattr(getattr(cfg, section), f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"--{f.name.replace('_', '-')} must be a finite number, got {value!r}")


def check_choices(cfg: RunConfig) -> RunConfig:
    """Every option of cfg that takes a name holds one ddcore knows (readers of run folders
    dispatch on them); ConfigError otherwise. Returns cfg unchanged."""
    for section in (*(getattr(cfg, name) for name in SECTION_TYPES), cfg):
        _choices(section)
    return cfg


def _validate_debias(r: ReweightConfig, e: EvalConfig) -> None:
    if r.surrogate_debias != "none" and r.surrogate != "ce":
        raise ConfigError(f"--surrogate-debias {r.surrogate_debias} trains a cross-entropy classifier; use it with "
                          f"--surrogate ce, not {r.surrogate}")
    between("GCE q", e.gce_q, 0, 1, above=True, note=" (near 0: cross-entropy; 1: mean absolute error)",
             flag="--gce-q")
    if not (isinstance(e.lff_ema, (int, float)) and not isinstance(e.lff_ema, bool) and 0 <= e.lff_ema < 1):
        raise ConfigError(f"LfF's moving-average factor (--lff-ema) must be in [0, 1), got {e.lff_ema!r}")
    if isinstance(e.jtt_upweight, bool) or not isinstance(e.jtt_upweight, int):
        raise ConfigError(f"JTT's upweight (--jtt-upweight) must be a whole number, got {e.jtt_upweight!r}")
    between("JTT's upweight", e.jtt_upweight, 1, MAX_UPWEIGHT, note=" (1: no upweighting)", flag="--jtt-upweight")
    if isinstance(e.jtt_id_steps, bool) or not isinstance(e.jtt_id_steps, int) or e.jtt_id_steps < 1:
        raise ConfigError(f"JTT's identification steps (--jtt-id-steps) must be a whole number of at least 1, "
                          f"got {e.jtt_id_steps!r}")


def validate_data(d: DataConfig) -> DataConfig:
    """The data section's values on their own; what depends on the dataset (a bundled sample,
    --download, the CSV) is checked by ddcore.data.check_config. Returns `d` unchanged."""
    _choices(d)
    if d.source == "bundled" and (d.root is not None or d.download):
        given = "--root" if d.root is not None else "--download"
        raise ConfigError(f"{given} applies to --source files; the bundled sample needs no files (pass --source "
                          "files to use the full dataset)")
    if d.conflict_ratio is not None and not (
        isinstance(d.conflict_ratio, (int, float)) and 0.0 <= d.conflict_ratio <= 1.0
    ):
        raise ConfigError(f"conflict ratio must be in [0, 1], got {d.conflict_ratio!r}")
    if d.severity not in (None, 1, 2, 3, 4, 5):
        raise ConfigError(f"severity must be 1..5 (or unset for the benchmark's level), got {d.severity!r}")
    if d.image_size is not None and not (
        isinstance(d.image_size, int) and not isinstance(d.image_size, bool) and 1 <= d.image_size <= MAX_IMAGE_SIZE
    ):
        raise ConfigError(f"image size must be a whole number of pixels in 1..{MAX_IMAGE_SIZE} (or unset for the "
                          f"dataset's own size), got {d.image_size!r}")
    return d


def validate(cfg: RunConfig) -> RunConfig:
    """Check every value that can be checked without loading data; return `cfg` unchanged.
    (IPC against the smallest class is checked once the data is loaded.) Each method adds its
    own checks through its `MethodSpec` (ddcore.methods)."""
    from .methods import get_method_spec  # the methods import this module

    d, n, r, s, e, m = cfg.data, cfg.net, cfg.reweight, cfg.distill, cfg.eval, cfg.map
    if cfg.preset in FILE_PRESETS and d.source == "bundled":
        raise ConfigError(f"the {cfg.preset} preset runs on the full datasets, not the bundled 4,000-image sample: pass "
                          f"--source files --root DIR (or set {DATA_ENV}=DIR), or choose --preset quick")
    validate_data(d)
    check_choices(cfg)
    positive("net depth", n.net_depth)
    between("net depth", n.net_depth, 1, MAX_IMAGE_SIZE.bit_length() - 1,
            note=f" (each block halves the image, and {MAX_IMAGE_SIZE} pixels is the largest size)")
    if d.image_size is not None and d.image_size < 2 ** n.net_depth:
        raise ConfigError(f"image size {d.image_size} is too small for a depth-{n.net_depth} ConvNet (each block "
                          f"halves the image); use at least --image-size {2 ** n.net_depth}")
    positive("net width", n.net_width)
    between("net width", n.net_width, 1, 4096)
    positive("surrogate epochs", r.surrogate_epochs, 0)
    if r.surrogate_steps is not None:
        positive("surrogate steps", r.surrogate_steps)
    positive("surrogate batch", r.surrogate_batch, 2)
    positive("surrogate width", r.surrogate_width)
    between("surrogate width", r.surrogate_width, 1, 4096)
    between("surrogate lr", r.surrogate_lr, 0, MAX_NET_LR, above=True, flag="--surrogate-lr")
    between("SupCon temperature", r.supcon_temperature, 1e-3, 100)
    if r.kde_sigma is not None:
        between("KDE sigma", r.kde_sigma, *SIGMA_RANGE, note=" (the embeddings are L2-normalised, so distances lie "
                 "in 0..2), or unset for the adaptive rule")
    between("KDE tau", r.kde_tau, 1e-3, 1e6, note=" (1: inverse density; large: uniform)")
    between("KDE scale", r.kde_scale, 0.01, 100, note=" (a multiple of the median within-class distance)")
    positive("IPC", s.ipc)
    positive("iterations", s.iterations, 0)
    positive("real batch", s.batch_real)
    between("image lr", s.lr_img, 0, MAX_IMAGE_LR, above=True, flag="--lr-img")
    if not (isinstance(s.momentum_img, (int, float)) and 0 <= s.momentum_img < 1):
        raise ConfigError(f"image momentum must be in [0, 1), got {s.momentum_img!r}")
    for op in s.dsa_strategy.split("_") if s.dsa_strategy not in (None, "", "none") else []:
        _choice("DSA op", op, DSA_OPS)
    spec = get_method_spec(s.method)
    spec.check(s)
    if s.bf16 == "true" and not spec.autocast:
        raise ConfigError(f"bf16 autocast is not implemented for method {s.method}; use --bf16 auto")
    if s.compile == "true" and not spec.autocast:
        raise ConfigError(f"--compile is not implemented for method {s.method}; use --compile auto")
    positive("evaluation models", e.eval_models)
    positive("evaluation epochs", e.eval_epochs, 0)
    positive("evaluation batch", e.eval_batch)
    positive("baseline epochs", e.baseline_epochs)
    between("evaluation lr", e.eval_lr, 0, MAX_NET_LR, above=True, flag="--eval-lr")
    _validate_debias(r, e)
    positive("map points", m.map_points, 10)
    positive("map neighbours", m.map_neighbors, 2)
    between("map minimum distance", m.map_min_dist, 0, 1, note=" (UMAP's spread is 1)", flag="--map-min-dist")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"seed must be a whole number in 0..{MAX_SEED}, got {cfg.seed!r}")
    for name, limit in UPPER_LIMITS.items():
        value = getattr(getattr(cfg, FLAT_FIELDS[name]), name)
        if isinstance(value, int) and value > limit:
            raise ConfigError(f"--{name.replace('_', '-')} must be at most {limit:,}, got {value:,}")
    _finite(cfg)  # after the checks above, whose messages say more about the options they know
    return cfg
