"""The Distill form's and the data picker's values -> validated run configurations, with messages
a user can act on."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ddcore.config import DataConfig, ReweightConfig, RunConfig, preset, validate, validate_data
from ddcore.data import files_help, get_spec
from ddcore.errors import ConfigError


@dataclass(frozen=True)
class DataForm:
    """The data picker's values (shared by the Bias explorer and the Distill page)."""

    dataset: str = "cmnist"
    source: str = "bundled"
    files: str = ""  # the dataset's folder (--root) or CSV file (--csv-path), whichever it reads
    download: bool = False
    conflict_percent: float = 5.0
    as_distributed: bool = False  # bffhq, csv: keep the files' own conflicting share (ratio None)
    severity: int | None = None  # None: the benchmark's level (ddcore.config.DataConfig.severity)


@dataclass(frozen=True)
class DistillForm:
    """What the user typed, unconverted where conversion itself can fail (σ is free text so
    that blank can mean 'adaptive')."""

    preset: str = "quick"
    data: DataForm = field(default_factory=DataForm)
    method: str = "dm"
    ipc: int = 10
    reweight: bool = True
    sigma: str = ""
    tau: float = ReweightConfig.kde_tau
    scale: float = ReweightConfig.kde_scale  # the adaptive σ's multiple (Advanced), used when sigma is blank
    smooth: bool | None = None  # (Advanced); None: the preset's
    surrogate: str = "supcon"
    iterations: int | None = None  # None: the preset's count
    seed: int = 0
    device: str = "auto"
    eval_debias: str = "none"  # the Advanced section: ddcore.debias for the evaluation models
    surrogate_debias: str = "none"  # and for the (cross-entropy) surrogate


def parse_sigma(text: str) -> float | None:
    """Blank -> None (the core's adaptive bandwidth rule); otherwise the number typed (its range
    is checked with every other value by ddcore.config.validate)."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"σ must be a number, or blank for the adaptive bandwidth; got '{text}'") from None


def data_overrides(form: DataForm) -> dict[str, Any]:
    """The data section's fields: the path goes to --root or --csv-path, whichever the dataset
    reads, and only with source "files"; "as distributed" means a ratio of None."""
    spec = get_spec(form.dataset)
    path = (form.files.strip() or None) if form.source == "files" else None
    own = form.as_distributed and spec.bias_from_files
    return dict(
        dataset=form.dataset,
        source=form.source,
        root=path if spec.path_option == "--root" else None,
        csv_path=path if spec.path_option == "--csv-path" else None,
        download=form.download and spec.downloadable and form.source == "files",
        conflict_ratio=None if own else float(form.conflict_percent) / 100.0,
        severity=None if form.severity is None else int(form.severity),
    )


def data_config(form: DataForm) -> DataConfig:
    return validate_data(DataConfig(**data_overrides(form)))


def files_help_for(form: DataForm) -> str:
    """Which files the picked dataset needs under the typed path, whatever the source picked."""
    return files_help(DataConfig(**data_overrides(replace(form, source="files"))))


def build_config(form: DistillForm, reweight: bool | None = None) -> RunConfig:
    """One validated RunConfig; `reweight` overrides the form's checkbox (for the pair)."""
    cfg = preset(form.preset, form.method)
    overrides = dict(
        **data_overrides(form.data),
        method=form.method,
        ipc=int(form.ipc),
        reweight="kde" if (form.reweight if reweight is None else reweight) else "none",
        kde_sigma=parse_sigma(form.sigma),
        kde_tau=float(form.tau),
        kde_scale=float(form.scale),
        surrogate=form.surrogate,
        seed=int(form.seed),
        device=form.device,
        eval_debias=form.eval_debias,
        surrogate_debias=form.surrogate_debias,
    )
    if form.iterations is not None:
        overrides["iterations"] = int(form.iterations)
    if form.smooth is not None:
        overrides["kde_smooth"] = bool(form.smooth)
    return validate(cfg.with_overrides(**overrides))


def build_pair(form: DistillForm) -> tuple[RunConfig, RunConfig]:
    """(vanilla, reweighted) with everything else identical: the teaching comparison."""
    return build_config(form, reweight=False), build_config(form, reweight=True)
