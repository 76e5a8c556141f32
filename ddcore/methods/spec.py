"""What the registry (`ddcore.methods.METHOD_SPECS`) knows about each distillation method: how to
run it, its values in each preset, its own option checks and what its loop supports. Adding a
method is one module that defines a `MethodSpec` and one line in `ddcore.methods`."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import DistillConfig
from .base import DistillJob, SyntheticSet


def _no_checks(d: DistillConfig) -> None:
    """The default `MethodSpec.check`: nothing beyond the shared rules in ddcore.config.validate."""


@dataclass(frozen=True)
class MethodSpec:
    name: str  # the --method value
    title: str  # for display
    summary: str  # one sentence for the app and the docs
    run: Callable[[DistillJob], SyntheticSet]
    presets: Mapping[str, Mapping[str, Any]]  # preset name -> DistillConfig values (others: its defaults)
    check: Callable[[DistillConfig], None] = _no_checks  # raises ConfigError with one line
    autocast: bool = False  # its network may run in bf16 (--bf16) and be compiled (--compile)
