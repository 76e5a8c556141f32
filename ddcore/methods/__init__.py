"""One interface for every distillation method.

A method is a function `(DistillJob) -> SyntheticSet`. The job carries the biased training data
already on the compute device, the per-sample weights (normalised to sum to 1 within each class;
uniform when reweighting is off), the run's config, a seed and a progress callback. Each method
module defines a `MethodSpec` (its run function, its values in each preset, its own option checks,
whether its network may autocast); `METHOD_SPECS` registers them, so adding a method is one module
and one line here, and callers never special-case a method.
"""
from __future__ import annotations

from typing import Callable

from ..config import METHODS
from ..errors import ConfigError
from . import dc, dm, mtt
from .base import DistillJob, Progress, SyntheticSet
from .spec import MethodSpec

METHOD_SPECS: dict[str, MethodSpec] = {s.name: s for s in (dm.SPEC, *dc.SPECS, mtt.SPEC)}
assert tuple(METHOD_SPECS) == METHODS, "every configurable method needs a registry entry, in the same order"


def get_method_spec(name: str) -> MethodSpec:
    if name not in METHOD_SPECS:
        raise ConfigError(f"unknown method '{name}'; choose one of {', '.join(METHOD_SPECS)}")
    return METHOD_SPECS[name]


def get_method(name: str) -> Callable[[DistillJob], SyntheticSet]:
    return get_method_spec(name).run


__all__ = ["METHOD_SPECS", "DistillJob", "MethodSpec", "Progress", "SyntheticSet", "get_method", "get_method_spec"]
