"""One interface for every distillation method.

A method is a function `(DistillJob) -> SyntheticSet`. The job carries the biased training data
already on the compute device, the per-sample weights (normalised to sum to 1 within each class;
uniform when reweighting is off), the run's config, a seed and a progress callback. Each method
module defines a `MethodSpec` (its run function, its values in each preset, its own option checks,
whether its network may autocast); `METHOD_SPECS` registers them, so adding a method is one module
and one line here, and callers never special-case a method.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from ..config import METHODS
from ..errors import ConfigError
from .. import hardware
from ..hardware import Precision, Probe
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


PROBE_ITERATIONS = 3  # timed, after one warm-up iteration


def precision_probe(job: DistillJob) -> tuple[Probe, str]:
    """For `--bf16 auto` (ddcore.hardware.resolve_precision): a timer of `job`'s own method loop in
    a given precision (a few iterations on its data at its sizes, the result thrown away; never
    compiled, so that timing does not pay compilation), and the sizes the timing depends on."""
    cfg, images = job.cfg, job.train.images
    d, n = cfg.distill, cfg.net
    sizes = (f"ipc {d.ipc} batch {d.batch_real} net {n.net_width}x{n.net_depth} {n.net_norm} "
             f"images {tuple(images.shape[1:])} classes {job.train.num_classes}")

    def probe(precision: Precision) -> float:
        stamps: list[float] = []

        def tick(done: int, total: int, loss: float | None) -> None:  # called after every iteration
            if images.is_cuda:
                torch.cuda.synchronize(images.device)
            stamps.append(time.perf_counter())

        short = cfg.with_overrides(iterations=PROBE_ITERATIONS + 1)
        get_method(d.method)(replace(job, cfg=short, progress=tick, precision=precision,
                                     compile=hardware.Compilation(False, "the precision probe runs eager")))
        return (stamps[-1] - stamps[0]) / (len(stamps) - 1)

    return probe, sizes


def job_precision(job: DistillJob, setting: str, cache_dir: Path | None = None) -> Precision:
    """`--bf16 setting` resolved for `job`'s method, device and sizes (auto: measured, see ddcore.hardware)."""
    probe, sizes = precision_probe(job)
    return hardware.resolve_precision(setting, job.train.images.device, job.cfg.distill.method, probe, cache_dir, sizes)


def job_compile(job: DistillJob) -> hardware.Compilation:
    """`--compile` resolved for `job`'s method, device and iterations (see ddcore.hardware)."""
    d = job.cfg.distill
    return hardware.resolve_compile(d.compile, job.train.images.device, d.method, d.iterations)


__all__ = ["METHOD_SPECS", "DistillJob", "MethodSpec", "Progress", "SyntheticSet", "get_method", "get_method_spec",
           "job_compile", "job_precision", "precision_probe"]
