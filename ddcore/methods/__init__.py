"""One interface for every distillation method.

A method is a function `(DistillJob) -> SyntheticSet`. The job carries the biased training data
already on the compute device, the per-sample weights (normalised to sum to 1 within each class;
uniform when reweighting is off), the run's config, a seed and a progress callback. Add a method by
writing such a function and registering it in `METHODS`; callers never special-case a method.
"""
from __future__ import annotations

from typing import Callable

from ..errors import ConfigError
from .base import DistillJob, Progress, SyntheticSet
from .dc import distill_dc
from .dm import distill_dm
from .mtt import distill_mtt

# "dc" and "dsa" share one implementation; the method name decides whether it augments
METHODS: dict[str, Callable[[DistillJob], SyntheticSet]] = {"dm": distill_dm, "dc": distill_dc, "dsa": distill_dc,
                                                          "mtt": distill_mtt}


def get_method(name: str) -> Callable[[DistillJob], SyntheticSet]:
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}'; choose one of {', '.join(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "DistillJob", "Progress", "SyntheticSet", "get_method"]
