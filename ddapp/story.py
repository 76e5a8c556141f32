"""The story page's content, told from a vanilla / reweighted pair and its full-data baseline (the
shipped example runs): the bias in the data, what vanilla distillation made of it, where the KDE
weights went and what they repaired. Each step is a picture and two sentences; the numbers come
from the runs' own records."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ddcore.data import get_spec
from ddcore.records import EmbeddingMap, Metrics
from ddcore.runstore import RunInfo

from .images import class_rows
from .runs import latest_pair, matching_reference


@dataclass(frozen=True)
class Story:
    vanilla: RunInfo
    reweighted: RunInfo
    baseline: RunInfo | None


def pick(runs: Sequence[RunInfo]) -> Story | None:
    """The newest finished vanilla / reweighted pair among `runs` and its baseline, if any."""
    vanilla, reweighted = latest_pair(runs)
    if vanilla is None or reweighted is None or vanilla.metrics is None or reweighted.metrics is None:
        return None
    return Story(vanilla, reweighted, matching_reference(runs, reweighted, "full-data baseline"))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def bias_picture(emb: EmbeddingMap, aligned: int = 6, conflicting: int = 3) -> np.ndarray | None:
    """One row per class: its first `aligned` bias-aligned samples, a gap, then its first
    `conflicting` bias-conflicting ones (thumbnails from the map); None when the map kept no thumbnails."""
    if emb.real_thumbs is None:
        return None
    odd, classes = emb.conflicting(), len(emb.classes)
    left = class_rows(emb.real_thumbs[~odd], emb.real_label[~odd], classes, aligned)
    right = class_rows(emb.real_thumbs[odd], emb.real_label[odd], classes, conflicting)
    gap = np.full((left.shape[0], 3 * emb.real_thumbs.shape[2] // 4, 3), 255, dtype=np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def bias_text(emb: EmbeddingMap) -> str:
    """Step 1: how much of the training set is bias-aligned, and why that is a trap."""
    conflicting = float(np.mean(emb.train_bias != emb.aligned_bias[emb.train_label]))
    attribute = emb.bias_attribute
    return (f"In the training set {100 * (1 - conflicting):.0f}% of every class share their class's own "
            f"{attribute} (left); only {100 * conflicting:.0f}% are *bias-conflicting*, with another {attribute} "
            f"(right). A network can score well on such data by reading the {attribute} instead of the shape.")


def vanilla_text(story: Story) -> str:
    """Step 2: what vanilla distillation produced and how well a network trained on it does."""
    v, cfg = story.vanilla.metrics or Metrics(), story.vanilla.config
    base = story.baseline.metrics if story.baseline is not None else None
    full = ""
    if base is not None and v.num_train:
        full = f" (a network trained on all {v.num_train:,} images: {_pct(base.test_acc_unbiased)})"
    return (f"Vanilla {cfg.distill.method.upper()} squeezed the training set into {cfg.distill.ipc} synthetic images "
            f"per class, and each class's row took its majority {story_attribute(story)}. "
            f"A network trained on them scores {_pct(v.test_acc_unbiased)} on unbiased test images "
            f"and {_pct(v.test_acc_conflicting)} on bias-conflicting ones{full}.")


def weights_text(story: Story) -> str:
    """Step 3: where the KDE weights went and what the reweighted set scores."""
    r, v = story.reweighted.metrics or Metrics(), story.vanilla.metrics or Metrics()
    return (f"A kernel density estimate in a surrogate encoder's embedding finds the rare samples: the "
            f"bias-conflicting ones, {_share(r.count_share_conflicting)} of the data, receive "
            f"{_share(r.weight_share_conflicting)} of the weight (the bright points). Distilled with these weights, "
            f"the synthetic set keeps its classes' shapes in many {story_attribute(story)}s and scores "
            f"{_pct(r.test_acc_unbiased)} on unbiased test images, against {_pct(v.test_acc_unbiased)} without them.")


def story_attribute(story: Story) -> str:
    return get_spec(story.reweighted.config.data.dataset).bias_attribute
