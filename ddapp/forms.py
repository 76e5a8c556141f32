"""The Distill form's values -> validated run configurations, with messages a user can act on."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ddcore.config import RunConfig, preset, validate
from ddcore.errors import ConfigError


@dataclass(frozen=True)
class DistillForm:
    """What the user typed, unconverted where conversion itself can fail (σ is free text so
    that blank can mean 'adaptive')."""

    preset: str = "quick"
    dataset: str = "cmnist"
    source: str = "bundled"
    mnist_root: str = ""
    conflict_percent: float = 5.0
    method: str = "dm"
    ipc: int = 10
    reweight: bool = True
    sigma: str = ""
    tau: float = 1.0
    surrogate: str = "supcon"
    iterations: int | None = None  # None: the preset's count
    seed: int = 0
    device: str = "auto"


def parse_sigma(text: str) -> float | None:
    """Blank -> None (the core's adaptive bandwidth rule); otherwise a positive number."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"σ must be a number, or blank for the adaptive bandwidth; got '{text}'") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"σ must be positive (or blank for the adaptive bandwidth); got {text}")
    return value


def build_config(form: DistillForm, reweight: bool | None = None) -> RunConfig:
    """One validated RunConfig; `reweight` overrides the form's checkbox (for the pair)."""
    cfg = preset(form.preset, form.method)
    overrides = dict(
        dataset=form.dataset,
        source=form.source,
        root=form.mnist_root.strip() or None,
        conflict_ratio=float(form.conflict_percent) / 100.0,
        method=form.method,
        ipc=int(form.ipc),
        reweight="kde" if (form.reweight if reweight is None else reweight) else "none",
        kde_sigma=parse_sigma(form.sigma),
        kde_tau=float(form.tau),
        surrogate=form.surrogate,
        seed=int(form.seed),
        device=form.device,
    )
    if form.iterations is not None:
        overrides["iterations"] = int(form.iterations)
    return validate(cfg.with_overrides(**overrides))


def build_pair(form: DistillForm) -> tuple[RunConfig, RunConfig]:
    """(vanilla, reweighted) with everything else identical: the teaching comparison."""
    return build_config(form, reweight=False), build_config(form, reweight=True)
