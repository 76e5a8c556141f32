"""One run, start to finish, written into its run folder (layout: ddcore.runstore).

Distill runs go through the stages data -> surrogate -> density -> distill -> evaluate -> map (MTT
adds an "experts" stage before distill); baseline runs (the whole biased training set) through
data -> evaluate, and random-subset runs (IPC real images per class drawn uniformly, no
distillation) through data -> subset -> evaluate. Each stage's output is saved as soon as it exists, so a
later failure or a cancel never loses what is done. The status always ends in done, failed or
cancelled; a failure's message is the user-facing one and the traceback goes to log.txt.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import debias, density, embedmap, hardware, runstore
from .config import DATA_ENV, FILE_PRESETS, RunConfig, preset, validate
from .data import BiasedTensors, Normalization, describe, get_spec, image_grid, load_biased, train_summary
from .errors import Cancelled, ConfigError, DDError
from .evaluate import evaluate_set
from .methods import DistillJob, get_method, job_compile, job_precision
from .methods.sampling import class_table, init_synthetic
from .records import EmbeddingMap, Metrics, SyntheticImages, thumbnails
from .surrogate import Surrogate, SurrogateSpec, build_surrogate, train_surrogate

# the unbiased test split is coloured with this seed whatever the run's seed, so every run is
# scored on the very same test images
TEST_SEED = 0

SURROGATE_FORMAT = 3  # part of the surrogate cache key: bump when its training changes (3: normalised inputs)

# listener(stage, done, total, loss): lets the CLI draw progress bars; the run folder is the record
Listener = Callable[[str, int, int, float | None], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(name)


class Reporter:
    """Turns progress calls into status.json updates (rate-limited), stage timings, cancel checks."""

    def __init__(self, run_dir: Path, listener: Listener | None = None, interval: float = 0.5) -> None:
        self.run_dir, self.listener, self.interval = run_dir, listener, interval
        self.stage_name = ""
        self.stage_start = self.last_write = 0.0
        self.loss: float | None = None
        self.seconds: dict[str, float] = {}

    def stage(self, name: str) -> None:
        self._close_stage()
        self.stage_name, self.stage_start, self.loss = name, time.time(), None
        runstore.append_log(self.run_dir, f"stage {name}")
        runstore.update_status(self.run_dir, stage=name, progress=0.0, iteration=0, iterations=0,
                               loss=None, eta_seconds=None)
        self.check_cancel()

    def _close_stage(self) -> None:
        if self.stage_name:
            self.seconds[self.stage_name] = round(time.time() - self.stage_start, 3)

    def finish(self) -> dict[str, float]:
        self._close_stage()
        self.stage_name = ""
        return self.seconds

    def check_cancel(self) -> None:
        if runstore.cancel_requested(self.run_dir):
            raise Cancelled("cancelled by the user")

    def progress(self, done: int, total: int, loss: float | None) -> None:
        if loss is not None:
            self.loss = loss
        if self.listener is not None:
            self.listener(self.stage_name, done, total, loss)
        now = time.time()
        if now - self.last_write < self.interval and done < total:
            return
        self.last_write = now
        self.check_cancel()
        elapsed = now - self.stage_start
        eta = elapsed * (total - done) / done if done > 0 else None
        runstore.update_status(self.run_dir, progress=done / max(total, 1), iteration=done, iterations=total,
                               loss=self.loss, eta_seconds=eta)


def execute_run(run_dir: Path, listener: Listener | None = None) -> Metrics:
    """Run the job described by run_dir/config.json; returns its metrics. Raises what stopped it
    (after recording it in status.json): Cancelled, a DDError, or an unexpected exception. The
    run's lock is held throughout, so a reader can tell a live run from a dead one."""
    run_dir = Path(run_dir)
    with runstore.running(run_dir):
        return _execute(run_dir, listener)


def _execute(run_dir: Path, listener: Listener | None) -> Metrics:
    reporter = Reporter(run_dir, listener)
    runstore.update_status(run_dir, state="running", started=time.time(), pid=os.getpid(), message="")
    try:
        cfg = validate(runstore.read_config(run_dir))
        if cfg.data.download:  # jobs.submit left the data's checks, and the download, to the run
            preflight(cfg)
        metrics = {"distill": _distill, "baseline": _baseline, "random-subset": _random_subset}[cfg.kind](
            cfg, run_dir, reporter)
    except (Cancelled, KeyboardInterrupt):
        runstore.append_log(run_dir, "cancelled")
        runstore.update_status(run_dir, state="cancelled", message="cancelled by the user", finished=time.time())
        raise
    except DDError as exc:
        runstore.append_log(run_dir, f"failed: {exc}")
        runstore.update_status(run_dir, state="failed", message=str(exc), finished=time.time())
        raise
    except BaseException as exc:
        runstore.append_log(run_dir, "internal error:\n" + traceback.format_exc())
        runstore.update_status(run_dir, state="failed", finished=time.time(),
                               message=f"internal error ({type(exc).__name__}: {exc}); details in log.txt")
        raise
    if metrics.warning:
        runstore.append_log(run_dir, f"warning: {metrics.warning}")
    runstore.append_log(run_dir, "done")
    runstore.update_status(run_dir, state="done", stage="", progress=1.0, eta_seconds=0.0, finished=time.time(),
                           warning=metrics.warning)
    return metrics


def preflight(cfg: RunConfig, data: bool = True) -> RunConfig:
    """Every check that can fail before any work starts: the values, the dataset's files (read as
    far as the class counts need; what is decoded stays cached, so the run pays nothing more for
    it), the image size against the network's depth, the IPC against the smallest class.
    data=False: the values only (a queued run that may download its files checks them when it starts)."""
    validate(cfg)
    if cfg.distill.compile == "true" and hardware.cxx_compiler() is None:  # the machine's, not the record's
        raise ConfigError("--compile needs a C++ compiler to build the code torch.compile generates, and none was "
                          "found (g++, clang++, c++ or $CXX): install one (apt-get install g++) or use --compile auto")
    if not data:
        return cfg
    d = cfg.data
    if cfg.preset in FILE_PRESETS and d.source == "files" and d.root is None and d.csv_path is None:
        raise ConfigError(f"the {cfg.preset} preset reads the {d.dataset} dataset's own files from --root DIR or "
                          f"${DATA_ENV}, and neither is set: pass --root DIR or set {DATA_ENV}=DIR (the README's "
                          "Datasets table says which files go where)")
    resolve_device(cfg.device)
    summary = train_summary(d)  # reads labels, not images, where the format allows
    side, depth = min(summary.image_size), cfg.net.net_depth
    if side < 2 ** depth:
        raise ConfigError(f"the {cfg.data.dataset} images are {summary.image_size[0]}x{summary.image_size[1]}, too "
                          f"small for a depth-{depth} ConvNet (each block halves them); pass --image-size {2 ** depth} "
                          "or more")
    smallest = int(summary.class_counts.min())
    if cfg.kind != "baseline" and cfg.distill.ipc > smallest:
        name = describe(cfg.data).classes[int(summary.class_counts.argmin())]
        raise ConfigError(f"IPC {cfg.distill.ipc} is larger than the smallest class ({smallest} images); choose an "
                          f"IPC of at most {smallest} (class '{name}' has the fewest training images)")
    return cfg


def load_splits(cfg: RunConfig, device: torch.device) -> tuple[BiasedTensors, BiasedTensors, Normalization]:
    """Both splits, standardised with the training split's statistics (the space every later
    stage works in), on `device`."""
    preflight(cfg)
    train = load_biased(cfg.data, train=True, seed=cfg.seed)
    test = load_biased(cfg.data, train=False, seed=TEST_SEED)
    norm = Normalization.of(train.images)
    return train.normalized(norm).to(device), test.normalized(norm).to(device), norm


def surrogate_spec(cfg: RunConfig) -> SurrogateSpec:
    """What the run's surrogate is: its objective, schedule, network and debiasing."""
    r = cfg.reweight
    return SurrogateSpec(r.surrogate, r.surrogate_epochs, r.surrogate_lr, r.surrogate_batch, r.surrogate_width,
                         cfg.net.net_depth, cfg.net.net_norm, r.supcon_temperature, r.surrogate_steps,
                         debias.spec_from(r.surrogate_debias, cfg.eval))


def surrogate_generators(cfg: RunConfig, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """The surrogate's weights-and-order generator (on its device) and its augmentation generator."""
    return torch.Generator(device=device).manual_seed(cfg.seed + 11), torch.Generator().manual_seed(cfg.seed + 12)


def _surrogate(cfg: RunConfig, train: BiasedTensors, cache_dir: Path, reporter: Reporter) -> Surrogate:
    """Train the surrogate, or load it from the cache shared by runs with the same data, surrogate
    settings and seed (the vanilla and reweighted run of a pair train the same one)."""
    spec = surrogate_spec(cfg)
    key = json.dumps({"format": SURROGATE_FORMAT, "data": asdict(cfg.data), "spec": asdict(spec), "seed": cfg.seed},
                     sort_keys=True)
    path = cache_dir / f"surrogate-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    device = train.images.device
    if path.exists():
        try:
            model = build_surrogate(spec, train.num_classes, tuple(train.images.shape[1:]),
                                    surrogate_generators(cfg, device)[0])
            model.load_state_dict(torch.load(path, weights_only=True, map_location=device))
            runstore.append_log(reporter.run_dir, f"surrogate loaded from cache {path.name}")
            return model
        except Exception as exc:  # a damaged cache entry is rebuilt, never trusted
            runstore.append_log(reporter.run_dir, f"surrogate cache {path.name} unreadable ({exc}); retraining")
    model = train_surrogate(train.images, train.labels, train.num_classes, spec, *surrogate_generators(cfg, device),
                             reporter.progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    runstore.write_bytes(path, buf.getvalue())
    return model


def _distill(cfg: RunConfig, run_dir: Path, reporter: Reporter) -> Metrics:
    t0 = time.time()
    device = resolve_device(cfg.device)
    r = cfg.reweight
    reporter.stage("data")
    train, test, norm = load_splits(cfg, device)

    reporter.stage("surrogate")
    surrogate = _surrogate(cfg, train, runstore.cache_dir(run_dir.parent), reporter)
    features = surrogate.embed(train.images)

    reporter.stage("density")
    sigma = r.kde_sigma or density.auto_bandwidth(features, train.labels, torch.Generator().manual_seed(cfg.seed),
                                                  r.kde_scale)
    log_density = density.kde_log_density(features, train.labels, sigma)
    weights = {"kde": lambda: density.density_weights(log_density, train.labels, r.kde_tau),
               "oracle": lambda: density.oracle_weights(train.labels, train.bias),
               "none": lambda: density.uniform_weights(train.labels)}[r.reweight]()
    if r.reweight == "kde" and r.kde_smooth:
        weights = density.smooth_weights(weights, features, train.labels, sigma)
    weight_share, count_share = density.conflict_shares(weights, train.conflicting)
    balance = density.group_balance(weights, train.labels, train.bias)
    smoothed = " (weights smoothed)" if r.reweight == "kde" and r.kde_smooth else ""
    runstore.append_log(run_dir, f"KDE sigma {sigma:.4g}{smoothed}; conflicting samples: {100 * count_share:.2f}% of "
                                 f"the count, {100 * weight_share:.2f}% of the weight; group balance {balance:.3f}")

    reporter.stage("distill")
    cache = runstore.cache_dir(run_dir.parent)
    bare = DistillJob(train, weights, cfg, cfg.seed, reporter.progress)
    precision, compiled = job_precision(bare, cfg.distill.bf16, cache), job_compile(bare)
    runstore.append_log(run_dir, f"precision {precision.name} ({precision.reason}); {compiled.reason}; "
                                 f"{torch.get_num_threads()} threads; CPU capability {hardware.cpu_capability()}")
    job = DistillJob(train, weights, cfg, cfg.seed, reporter.progress, reporter.stage, cache, precision, compiled)
    syn = get_method(cfg.distill.method)(job)
    images = syn.images.detach()  # evaluated and mapped as distilled (normalised, unclamped), as the reference does
    saturated = saturated_share(norm.invert(images))
    _save_synthetic(run_dir, images, syn.labels, norm, cfg.distill.ipc)

    reporter.stage("evaluate")
    metrics: dict[str, Any] = evaluate_set(images, syn.labels, test, cfg,
                                           cfg.eval.eval_epochs, cfg.seed, reporter.progress)
    metrics.update(
        weight_share_conflicting=weight_share, count_share_conflicting=count_share, weight_group_balance=balance,
        kde_sigma=sigma,
        kde_sigma_rule="fixed" if r.kde_sigma else "auto", final_loss=syn.losses[-1] if syn.losses else None,
        device=str(device), num_train=len(train.labels), num_test=len(test.labels), **syn.info,
        precision=precision.name, precision_reason=precision.reason, compiled=compiled.on,
        compile_reason=compiled.reason, **_machine(device),
        saturated_share=saturated, warning=saturation_warning(saturated, cfg),
    )
    runstore.save_metrics(run_dir, {**metrics, "seconds_total": time.time() - t0,
                                    "seconds_per_stage": dict(reporter.seconds)})

    reporter.stage("map")
    syn_features = surrogate.embed(images)
    _save_map(cfg, run_dir, train, norm, features, log_density, weights, syn_features, syn.labels, sigma)

    metrics.update(seconds_total=time.time() - t0, seconds_per_stage=reporter.finish())
    return runstore.save_metrics(run_dir, metrics)


def _save_map(cfg: RunConfig, run_dir: Path, train: BiasedTensors, norm: Normalization, features: torch.Tensor,
              log_density: torch.Tensor, weights: torch.Tensor, syn_features: torch.Tensor, syn_labels: torch.Tensor,
              sigma: float) -> None:
    subset = embedmap.stratified_subset(train.labels.cpu(), cfg.map.map_points, torch.Generator().manual_seed(cfg.seed))
    sub = subset.to(features.device)
    coords = embedmap.cached_map(features[sub], cfg.map.map_neighbors, cfg.map.map_min_dist, cfg.seed,
                                 runstore.cache_dir(run_dir.parent))
    syn_coords, syn_neighbors = embedmap.place(syn_features, features[sub], coords)
    syn_log_density = torch.empty(len(syn_labels), device=features.device)
    for c in syn_labels.unique():
        mask = syn_labels == c
        syn_log_density[mask] = density.log_density_at(syn_features[mask], features[train.labels == c], sigma)
    surrogate = cfg.reweight.surrogate + ("" if cfg.reweight.surrogate_debias == "none" else
                                          f" + {cfg.reweight.surrogate_debias}")
    space = (f"{surrogate} surrogate embedding (L2-normalised, {features.shape[1]}-d), "
             f"per-class Gaussian KDE, sigma={sigma:.3g}")
    naming = describe(cfg.data)

    def np_(t: torch.Tensor, dtype: str) -> np.ndarray:
        return t.detach().cpu().numpy().astype(dtype)

    EmbeddingMap(
        real_index=np_(subset, "int64"), real_features=np_(features[sub], "float32"),
        real_log_density=np_(log_density[sub], "float32"), real_density=np_(log_density[sub].exp(), "float32"),
        real_weight=np_(weights[sub], "float32"), real_label=np_(train.labels[sub], "int64"),
        real_bias=np_(train.bias[sub], "int64"), real_map=coords.astype("float32"),
        real_thumbs=thumbnails(norm.invert(train.images[sub]).clamp(0, 1)),
        syn_features=np_(syn_features, "float32"), syn_log_density=np_(syn_log_density, "float32"),
        syn_label=np_(syn_labels, "int64"), syn_map=syn_coords.astype("float32"),
        syn_neighbors=syn_neighbors.astype("int64"),
        train_log_density=np_(log_density, "float32"), train_weight=np_(weights, "float32"),
        train_label=np_(train.labels, "int64"), train_bias=np_(train.bias, "int64"),
        aligned_bias=np_(train.aligned_bias, "int64"), colours=np.array(naming.colours, dtype=np.float32),
        classes=tuple(naming.classes), bias_values=tuple(naming.bias_values),
        bias_attribute=get_spec(cfg.data.dataset).bias_attribute, density_space=space,
    ).save(run_dir)


def _baseline(cfg: RunConfig, run_dir: Path, reporter: Reporter) -> Metrics:
    t0 = time.time()
    device = resolve_device(cfg.device)
    reporter.stage("data")
    train, test, _ = load_splits(cfg, device)
    reporter.stage("evaluate")
    metrics: dict[str, Any] = evaluate_set(train.images, train.labels, test, cfg, cfg.eval.baseline_epochs,
                                           cfg.seed, reporter.progress)
    _, count_share = density.conflict_shares(density.uniform_weights(train.labels), train.conflicting)
    metrics.update(count_share_conflicting=count_share, weight_share_conflicting=count_share, device=str(device),
                   num_train=len(train.labels), num_test=len(test.labels), **_machine(device))
    metrics.update(seconds_total=time.time() - t0, seconds_per_stage=reporter.finish())
    return runstore.save_metrics(run_dir, metrics)


def _machine(device: torch.device) -> dict[str, Any]:
    """What the timings of a run depend on, recorded beside them."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"cpu_capability": hardware.cpu_capability(), "threads": torch.get_num_threads(), "gpu": gpu}


def _random_subset(cfg: RunConfig, run_dir: Path, reporter: Reporter) -> dict[str, Any]:
    """IPC real images per class drawn uniformly: what distillation has to beat."""
    t0 = time.time()
    device = resolve_device(cfg.device)
    reporter.stage("data")
    train, test, norm = load_splits(cfg, device)
    reporter.stage("subset")
    table, w = class_table(train.labels, density.uniform_weights(train.labels), train.num_classes)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    images = init_synthetic(train.images, table, w, cfg.distill.ipc, generator, "real").flatten(0, 1)
    labels = torch.arange(train.num_classes, device=device).repeat_interleave(cfg.distill.ipc)
    _save_synthetic(run_dir, images, labels, norm, cfg.distill.ipc)
    reporter.stage("evaluate")
    metrics: dict[str, Any] = evaluate_set(images, labels, test, cfg, cfg.eval.eval_epochs, cfg.seed, reporter.progress)
    _, count_share = density.conflict_shares(density.uniform_weights(train.labels), train.conflicting)
    metrics.update(count_share_conflicting=count_share, weight_share_conflicting=count_share, device=str(device),
                   num_train=len(train.labels), num_test=len(test.labels), **_machine(device))
    metrics.update(seconds_total=time.time() - t0, seconds_per_stage=reporter.finish())
    return runstore.save_metrics(run_dir, metrics)


def _save_synthetic(run_dir: Path, images: torch.Tensor, labels: torch.Tensor, norm: Normalization, ipc: int) -> None:
    """synthetic.pt (normalised, with the statistics) and synthetic.png (as displayed)."""
    record = SyntheticImages(images.detach().float().cpu(), labels.detach().long().cpu(), norm.mean, norm.std)
    record.save(run_dir)
    buf = io.BytesIO()
    image_grid(record.display(), nrow=ipc).save(buf, format="PNG")
    runstore.write_bytes(run_dir / "synthetic.png", buf.getvalue())


# Methods push some pixels past [0, 1] (a quick DM run leaves 0.1% beyond by more than 0.5, the
# smoke preset's ten iterations 20%); with an image lr 100 to 10,000 times the preset's, 95-100%
# are (DM, DC, MTT; bench/saturation.py). Most pixels that far out means saturated images, not a distilled set.
SATURATION_MARGIN = 0.5
SATURATION_SHARE = 0.5


def saturated_share(images: torch.Tensor) -> float:
    """The share of pixels (of de-normalised images) beyond [0, 1] by more than SATURATION_MARGIN:
    what no display can show."""
    return float(((images - images.clamp(0, 1)).abs() > SATURATION_MARGIN).float().mean())


def saturation_warning(share: float, cfg: RunConfig) -> str:
    if share <= SATURATION_SHARE:
        return ""
    usual = preset(cfg.preset, cfg.distill.method).distill.lr_img
    return (f"the synthetic images saturated: {share:.0%} of their pixels lie far outside the range [0, 1] an "
            f"image can show, so the result is unreliable; the image lr --lr-img {cfg.distill.lr_img:g} is probably "
            f"too high (the {cfg.preset} preset uses {usual:g} for {cfg.distill.method})")
