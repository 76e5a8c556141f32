"""Unit tests of the plain functions behind the pages."""
from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddapp import bias, figures, forms, images, metrics, progress, runs
from ddcore.config import RunConfig, preset
from ddcore.data import Naming
from ddcore.errors import ConfigError
from ddcore.records import EmbeddingMap, Metrics
from ddcore.runstore import RunInfo, Status
from tests.runfiles import fake_map

SMOKE = preset("smoke")


def run_info(name: str, cfg=SMOKE, state: str = "done", created: float = 0.0, metrics_: dict | None = None) -> RunInfo:
    metrics_ = None if metrics_ is None else Metrics.from_json(metrics_)
    return RunInfo(name, Path("/nowhere") / name, cfg, Status(state=state, created=created), metrics_)


# images


def test_to_uint8_is_channels_last_and_clipped() -> None:
    x = np.zeros((2, 3, 4, 5), dtype=np.float32)
    x[1, 0] = 1.0  # red
    x[0, 2] = 2.0  # blue, out of range
    out = images.to_uint8(x)
    assert out.shape == (2, 4, 5, 3) and out.dtype == np.uint8
    assert (out[1, ..., 0] == 255).all() and (out[0, ..., 2] == 255).all() and (out[0, ..., 0] == 0).all()
    assert images.to_uint8(x[1]).shape == (4, 5, 3)


def test_tile_and_class_rows_place_images_by_class() -> None:
    pics = np.stack([np.full((2, 2, 3), v, dtype=np.uint8) for v in (10, 20, 30)])
    grid = images.class_rows(pics, np.array([1, 0, 1]), num_classes=3, per_class=2)
    pad = 2
    assert grid.shape == (3 * (2 + pad) + pad, 2 * (2 + pad) + pad, 3)
    cell = lambda r, c: grid[pad + r * 4, pad + c * 4, 0]  # noqa: E731 - top-left pixel of a slot
    assert (cell(0, 0), cell(0, 1)) == (20, 255)  # class 0: one image, then white
    assert (cell(1, 0), cell(1, 1)) == (10, 30)  # class 1 in order of appearance
    assert (cell(2, 0), cell(2, 1)) == (255, 255)  # class 2 has none


def test_enlarge_fit_scale_and_png() -> None:
    big = images.enlarge(np.zeros((28, 30, 3), dtype=np.uint8), 3)
    assert big.size == (90, 84)
    assert images.fit_scale(100, target_px=900) == 6 and images.fit_scale(400, target_px=900) == 2
    assert images.fit_scale(5000) == 1
    assert Image.open(io.BytesIO(images.png_bytes(big))).size == (90, 84)


# runs


def test_labels_tell_vanilla_reweighted_and_baseline_apart() -> None:
    assert runs.label(run_info("a", SMOKE)).startswith("reweighted DM · IPC 2 · cmnist 5.0%")
    assert runs.label(run_info("b", SMOKE.with_overrides(reweight="none")), with_name=False).startswith("vanilla DM")
    assert runs.label(run_info("c", SMOKE.with_overrides(kind="baseline"))).startswith("full-data baseline")
    assert runs.label(run_info("a", SMOKE)).endswith(" · a")


def test_pairs_and_baseline_are_found_by_config() -> None:
    kde, none = run_info("kde", SMOKE, created=3), run_info("none", SMOKE.with_overrides(reweight="none"), created=2)
    other_seed = run_info("seed1", SMOKE.with_overrides(reweight="none", seed=1), created=4)
    base = run_info("base", SMOKE.with_overrides(kind="baseline"), created=1)
    queued = run_info("queued", SMOKE.with_overrides(reweight="none"), state="queued", created=5)
    store = [queued, other_seed, kde, none, base]  # newest first, as list_runs returns them
    assert runs.partner(store, kde).name == "none" and runs.partner(store, other_seed) is None
    assert [r.name for r in runs.as_pair(store, kde)] == ["none", "kde"]
    assert [r.name for r in runs.latest_pair(store)] == ["none", "kde"]
    assert runs.matching_reference(store, kde, "full-data baseline").name == "base"
    assert runs.default_comparison(store) == ["none", "kde", "base"]
    assert [r.name for r in runs.active(store)] == ["queued"]
    lonely = [other_seed]
    assert [r and r.name for r in runs.latest_pair(lonely)] == ["seed1", None]


def test_among_a_sweeps_runs_each_config_is_compared_as_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Looking for the newest pair compares every reweighted run's settings with every vanilla
    run's: turning each config into a dict anew for every pair took seconds over 300 runs."""
    store = [run_info(f"{mode}{i}", SMOKE.with_overrides(reweight=mode, seed=i if mode == "kde" or i == 0 else 100 + i))
             for i in range(30, -1, -1) for mode in ("kde", "none")]  # newest first; only the oldest two pair
    made = []
    to_dict = RunConfig.to_dict
    monkeypatch.setattr(RunConfig, "to_dict", lambda self: made.append(self) or to_dict(self))
    assert [r.name for r in runs.latest_pair(store)] == ["none0", "kde0"]
    assert len(made) <= len(store)
    assert runs.partner(store, store[0]) is None and runs.partner(store, store[-2]).name == "none0"


def test_listing_table_shows_damaged_folders() -> None:
    damaged = RunInfo("broken", Path("/x"), None, Status(state="failed"), None, error="damaged run folder: bad json")
    table = runs.listing_table([run_info("ok", metrics_={"test_acc_unbiased": 91.5}), damaged])
    assert list(table.columns) == runs.LISTING_COLUMNS
    assert table.loc[0, "unbiased acc"] == 91.5 and table.loc[0, "reweight"] == "kde"
    assert table.loc[1, "message"].startswith("damaged run folder")


# metrics


def test_accuracy_table_keeps_percent_and_converts_shares() -> None:
    m = {
        "test_acc_unbiased": 91.5, "test_acc_unbiased_std": 1.25, "test_acc_aligned": 95.0, "test_acc_aligned_std": 0.5,
        "test_acc_conflicting": 90.0, "test_acc_conflicting_std": 2.0,
        "weight_share_conflicting": 0.45, "count_share_conflicting": 0.05,
    }
    table = metrics.accuracy_table([run_info("a", metrics_=m), run_info("b", metrics_=m)])
    assert table.loc[0, "unbiased %"] == 91.5 and table.loc[0, "weight share conflicting %"] == pytest.approx(45.0)
    assert table["run"].is_unique, "identical settings are told apart by folder name"
    shown = metrics.display_table(table)
    assert shown.loc[0, "unbiased"] == "91.5 ± 1.2%" and shown.loc[0, "count share conflicting"] == "5.0%"
    assert metrics.display_table(metrics.accuracy_table([run_info("c", metrics_={})])).loc[0, "aligned"] == "–"


# figures


@pytest.mark.parametrize("mode", figures.COLOUR_MODES)
def test_embedding_map_traces(mode: str) -> None:
    fig = figures.embedding_map(fake_map(), mode)
    real = [t for t in fig.data if t.meta == figures.REAL]
    syn = [t for t in fig.data if t.meta == figures.SYNTHETIC]
    assert all(t.type == "scattergl" for t in fig.data) and len(syn) == 1 and len(syn[0].x) == 4
    assert sorted(int(i) for t in real for i in t.customdata) == list(range(50)), "each real sample once"
    expected = {"log density": 1, "weight": 1, "class": 2, "bias attribute": 2, "aligned / conflicting": 2}[mode]
    assert len(real) == expected
    if mode == "log density":
        assert "test space" in real[0].marker.colorbar.title.text
    assert len(figures.embedding_map(fake_map(), mode, show_synthetic=False).data) == expected


def test_relative_weight_is_one_when_uniform() -> None:
    np.testing.assert_allclose(figures.relative_weight(fake_map()), 1.0)


def test_selected_rows_split_real_and_synthetic() -> None:
    fig = figures.embedding_map(fake_map(), "aligned / conflicting")
    syn_curve = next(i for i, t in enumerate(fig.data) if t.meta == figures.SYNTHETIC)
    points = [
        {"curve_number": 0, "point_index": 0, "customdata": 7},
        {"curve_number": 1, "point_index": 1, "customdata": 2},
        {"curve_number": 0, "point_index": 0, "customdata": 7},  # duplicates collapse
        {"curve_number": syn_curve, "point_index": 3, "customdata": 3},
        {"curve_number": 99, "customdata": 1},  # a stale curve from an older figure is ignored
    ]
    real, syn = figures.selected_rows(points, fig)
    assert real.tolist() == [7, 2] and syn.tolist() == [3]
    assert [a.tolist() for a in figures.selected_rows([], fig)] == [[], []]


def test_a_pairs_synthetic_images_on_one_map(smoke_store: Path) -> None:
    reweighted, vanilla = (EmbeddingMap.load(smoke_store / n) for n in ("smoke-kde", "smoke-none"))
    assert figures.same_real_map(reweighted, vanilla), "a pair shares its surrogate, hence its map"
    paired = figures.Paired("reweighted", "vanilla", vanilla)
    fig = figures.embedding_map(reweighted, "aligned / conflicting", paired=paired)
    drawn = {t.meta: t for t in fig.data if t.meta in (figures.SYNTHETIC, figures.PAIRED)}
    assert drawn[figures.SYNTHETIC].name == "reweighted synthetic images"
    assert drawn[figures.PAIRED].name == "vanilla synthetic images"
    np.testing.assert_array_equal(drawn[figures.PAIRED].x, vanilla.syn_map[:, 0])
    paired_curve = list(fig.data).index(drawn[figures.PAIRED])
    real, syn = figures.selected_rows([{"curve_number": paired_curve, "customdata": 1}], fig)
    assert real.tolist() == [] and syn.tolist() == [], "the other run's images index its own set: never selected"
    assert len(figures.embedding_map(reweighted, "class", show_synthetic=False, paired=paired).data) == len(
        figures.embedding_map(reweighted, "class", show_synthetic=False).data)
    moved = replace(vanilla, real_map=vanilla.real_map + 1.0)
    assert not figures.same_real_map(reweighted, moved)
    with pytest.raises(ValueError, match="mapped its real samples elsewhere"):
        figures.embedding_map(reweighted, "class", paired=figures.Paired("reweighted", "vanilla", moved))


def test_embedding_map_on_a_real_run(smoke_store: Path) -> None:
    emb = EmbeddingMap.load(smoke_store / "smoke-kde")
    for mode in figures.COLOUR_MODES:
        fig = figures.embedding_map(emb, mode)
        assert sum(len(t.x) for t in fig.data if t.meta == figures.REAL) == len(emb.real_map)
    rel = figures.relative_weight(emb)
    conflicting = emb.real_label != emb.real_bias
    assert rel[conflicting].mean() > rel[~conflicting].mean(), "reweighting favours the rare samples"


def test_compare_charts() -> None:
    table = metrics.accuracy_table([run_info("a", metrics_={"test_acc_unbiased": 50.0, "weight_share_conflicting": 0.4})])
    acc = figures.accuracy_chart(table)
    assert len(acc.data) == 1 and list(acc.data[0].x) == list(metrics.SPLITS)
    share = figures.share_chart(table)
    assert [t.name for t in share.data] == ["count share", "weight share"]


# forms


def test_parse_sigma() -> None:
    assert forms.parse_sigma("  ") is None and forms.parse_sigma("0.2") == 0.2
    with pytest.raises(ConfigError, match="σ must be a number"):
        forms.parse_sigma("abc")
    for bad in ("0", "-1", "nan", "inf", "1e-30"):  # numbers: the core's one range check speaks
        with pytest.raises(ConfigError, match="KDE sigma must be between 0.001 and 1000"):
            forms.build_config(forms.DistillForm(sigma=bad))


def test_build_config_applies_the_form() -> None:
    form = forms.DistillForm(preset="smoke", data=forms.DataForm(conflict_percent=2.0), ipc=5, sigma="0.3", tau=2.0,
                             iterations=7, seed=4)
    cfg = forms.build_config(form)
    assert (cfg.preset, cfg.data.conflict_ratio, cfg.distill.ipc, cfg.distill.iterations, cfg.seed) == ("smoke", 0.02, 5, 7, 4)
    assert (cfg.reweight.reweight, cfg.reweight.kde_sigma, cfg.reweight.kde_tau) == ("kde", 0.3, 2.0)
    assert forms.build_config(replace(form, iterations=None)).distill.iterations == preset("smoke").distill.iterations
    assert forms.build_config(replace(form, reweight=False)).reweight.reweight == "none"
    assert not cfg.reweight.kde_smooth and forms.build_config(replace(form, smooth=True)).reweight.kde_smooth
    files = forms.DataForm(source="files", files="../data")
    full = forms.build_config(replace(form, preset="full", data=files, smooth=None))
    assert full.reweight.kde_smooth and full.data.root == "../data"  # the preset's smoothing, unless unticked
    assert not forms.build_config(replace(form, preset="full", data=files, smooth=False)).reweight.kde_smooth
    assert forms.build_config(replace(form, scale=0.5)).reweight.kde_scale == 0.5


def test_build_pair_differs_only_in_reweighting() -> None:
    vanilla, reweighted = forms.build_pair(forms.DistillForm(preset="smoke", reweight=False))
    assert (vanilla.reweight.reweight, reweighted.reweight.reweight) == ("none", "kde")
    assert replace(vanilla, reweight=reweighted.reweight) == reweighted


def test_data_form_maps_the_path_and_the_ratio_per_dataset() -> None:
    csv = forms.data_overrides(forms.DataForm("csv", "files", " my/data.csv ", as_distributed=True, download=True))
    assert (csv["csv_path"], csv["root"], csv["conflict_ratio"], csv["download"]) == ("my/data.csv", None, None, False)
    bffhq = forms.data_overrides(forms.DataForm("bffhq", "files", "/d", conflict_percent=0.5))
    assert (bffhq["root"], bffhq["csv_path"], bffhq["conflict_ratio"]) == ("/d", None, 0.005)
    # "as the files come" means nothing for data that makes its own bias; bundled data has no path
    cm = forms.data_overrides(forms.DataForm("cmnist", "bundled", "/ignored", as_distributed=True, severity=5))
    assert (cm["root"], cm["conflict_ratio"], cm["severity"]) == (None, 0.05, 5)
    assert forms.data_overrides(forms.DataForm("cifar10c-0"))["severity"] is None  # the benchmark's level, 5 for CIFAR
    assert "FashionMNIST/raw" in forms.files_help_for(forms.DataForm("bg-fmnist", "bundled", "/d"))
    with pytest.raises(ConfigError, match="unknown dataset"):
        forms.data_overrides(forms.DataForm("imagenet"))


def test_embedding_map_names_classes_and_values() -> None:
    names = (("cat", "dog"), ("indoor", "outdoor"), ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)))
    emb = fake_map(aligned=(1, 0), names=names)  # class 0's aligned value is 1, and back
    assert emb.conflicting().sum() == 46  # the four samples with label != bias are now the aligned ones
    fig = figures.embedding_map(emb, "bias attribute")
    assert [t.name for t in fig.data if t.meta == figures.REAL] == ["colour indoor", "colour outdoor"]
    assert fig.data[0].marker.color == "rgb(255,0,0)" and "· colour indoor · aligned<br>" in fig.data[0].hovertext[0]
    fig = figures.embedding_map(emb, "class")
    assert [t.name for t in fig.data if t.meta == figures.REAL] == ["class cat", "class dog"]
    assert figures.sample_text(emb.naming, "place", 1, 0) == "class dog · place indoor"


def test_build_config_reports_invalid_values() -> None:
    with pytest.raises(ConfigError, match="tau must be between"):
        forms.build_config(forms.DistillForm(tau=0.0))
    with pytest.raises(ConfigError, match="conflict ratio"):
        forms.build_config(forms.DistillForm(data=forms.DataForm(conflict_percent=150.0)))


# progress


def test_duration_and_describe() -> None:
    assert [progress.duration(s) for s in (None, 5, 185, 3720)] == ["", "5 s", "3 min 05 s", "1 h 02 min"]
    running = Status(state="running", stage="distill", iteration=120, iterations=300, loss=0.01234, eta_seconds=80)
    assert progress.describe(running) == "running · distill · iteration 120/300 · loss 0.01234 · about 1 min 20 s left"
    assert progress.describe(Status(state="queued")) == "queued"
    assert progress.describe(Status(state="done", started=10.0, finished=40.0)) == "done · took 30 s"


# bias


def test_class_counts_and_first_per_class() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    conflicting = np.array([False, True, False, False, False, True])
    table = bias.class_counts(labels, conflicting, 3)
    assert table["aligned"].tolist() == [2, 2, 0] and table["conflicting"].tolist() == [1, 0, 1]
    assert table["conflicting %"].tolist() == [33.33, 0.0, 100.0]
    assert bias.first_per_class(labels, ~conflicting, 3, k=1).tolist() == [0, 3]


def test_palette_legend_has_one_swatch_per_colour() -> None:
    from ddcore.data import PALETTE as LFF_PALETTE

    html = bias.palette_legend_html(LFF_PALETTE.numpy())
    assert html.count("<span") == 10 and "background:rgb(251,80,43)" in html  # colour 0 = (.984, .313, .169)
    named = bias.palette_legend_html(np.array([[0, 0, 0], [1, 1, 1]]), ["snow & ice", "fog"])
    assert "snow &amp; ice</span>" in named and "color:#fff" in named and "color:#000" in named


def test_class_counts_with_names() -> None:
    naming = Naming(("cat", "dog"), ("indoor", "outdoor"), ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)), (0, 1))
    table = bias.class_counts(np.array([0, 1, 1]), np.array([False, True, False]), 2, naming)
    assert list(table.columns[:3]) == ["class", "name", "aligned value"]
    assert table["aligned value"].tolist() == ["indoor", "outdoor"] and table["conflicting"].tolist() == [0, 1]


def test_continuous_map_draws_rare_samples_on_top() -> None:
    emb = fake_map()
    (real, _) = figures.embedding_map(emb, "log density").data
    rows = np.asarray(real.customdata)
    assert emb.real_log_density[rows[-1]] == emb.real_log_density.min()
    np.testing.assert_allclose(np.asarray(real.marker.color), emb.real_log_density[rows])
    np.testing.assert_allclose(np.asarray(real.x), emb.real_map[rows, 0])


def test_oracle_runs_stand_for_one_result_only_with_the_same_weighting():
    """An oracle's weights come from the bias labels, so its KDE settings do not matter; how the
    weights enter (sampled batches or a weighted mean) does."""
    oracle = preset("smoke").with_overrides(reweight="oracle")
    assert runs.same_result(oracle, oracle.with_overrides(kde_tau=3.0, surrogate="ce"))
    assert not runs.same_result(oracle, oracle.with_overrides(weighting="mean"))
    assert not runs.same_result(oracle, oracle.with_overrides(ipc=3))
