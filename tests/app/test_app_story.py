"""The first minute (issue 15): on an empty runs folder every page shows the shipped example runs,
the story page tells its three steps, and the map's and Compare's exports parse as the tools that
read them expect. Also the references of issue 11 on Compare (oracle, random subset, group metrics)."""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
)
from PIL import Image
from test_app_pages import PAGES, page_text

from ddapp import examples, exports, figures, metrics, runs, selection, story, ui
from ddapp.images import to_uint8
from ddapp.selection import Point
from ddcore import runstore
from ddcore.config import preset
from ddcore.records import EmbeddingMap, Metrics, SyntheticImages
from ddcore.runstore import RunInfo, Status
from tests.runfiles import fake_map

NO_RESULT_NOTICES = ("No finished", "No runs yet", "No sweep here yet")
EXAMPLE = {name: examples.PREFIX + name for name in examples.configs()}


# every page on an empty runs folder


@pytest.mark.parametrize("page", PAGES)
def test_no_page_says_there_is_nothing_to_show_on_an_empty_runs_folder(app, goto, tmp_path: Path, page: str) -> None:
    at = goto(app(tmp_path / "empty"), page)
    assert at.title and not at.error, [e.value for e in at.error]
    assert not any(notice in page_text(at) for notice in NO_RESULT_NOTICES), page_text(at)
    if page == "app_pages/embedding_map.py":
        assert at.selectbox(key="map_run").value == EXAMPLE["dm-reweighted"] and at.get("plotly_chart")
    if page == "app_pages/synthetic_images.py":
        assert (at.selectbox(key="syn_left").value, at.selectbox(key="syn_right").value) == (
            EXAMPLE["dm-vanilla"], EXAMPLE["dm-reweighted"])
        assert len(at.image) == 2
    if page == "app_pages/compare.py":
        assert at.multiselect[0].value == [EXAMPLE[n] for n in ("dm-vanilla", "dm-reweighted", "full-data")]
    if page == "app_pages/runs.py":
        assert len(at.dataframe[0].value) == len(EXAMPLE) and at.selectbox(key="runs_run").value in EXAMPLE.values()
    if page == "app_pages/sweeps.py":  # the shipped sweep's results: its table and plots
        assert at.selectbox(key="sweep_pick").value == examples.PREFIX + examples.SWEEP
        assert len(at.dataframe[0].value) == len(examples.sweep().cells.rows) and at.get("plotly_chart")
    assert not (tmp_path / "empty").exists() or not runstore.list_runs(tmp_path / "empty"), "nothing was copied there"


def test_the_story_page_tells_three_steps_from_the_examples(app, tmp_path: Path) -> None:
    at = app(tmp_path)  # the story is the landing page
    assert not at.exception and at.title[0].value.startswith("Bias in dataset distillation")
    assert [s.value[:2] for s in at.subheader] == ["1 ", "2 ", "3 "]
    assert len(at.image) == 3 and len(at.get("plotly_chart")) == 1  # the data, the two synthetic sets; the map
    vanilla, reweighted = Metrics.load(examples.ROOT / "dm-vanilla"), Metrics.load(examples.ROOT / "dm-reweighted")
    text = page_text(at)
    for number in (vanilla.test_acc_unbiased, reweighted.test_acc_unbiased):
        assert f"{number:.1f}%" in text
    assert f"{100 * reweighted.weight_share_conflicting:.0f}% of the weight" in text
    (chart,) = at.get("plotly_chart")
    assert "weight" in json.loads(chart.proto.spec)["data"][0]["marker"]["colorbar"]["title"]["text"]


@pytest.mark.parametrize(("button", "title", "picks"), [
    ("Embedding map", "Embedding map", {"map_run": "dm-reweighted"}),
    ("Synthetic images", "Synthetic images", {"syn_left": "dm-vanilla", "syn_right": "dm-reweighted"}),
])
def test_each_story_step_opens_its_page_on_the_examples(app, smoke_store: Path, button, title, picks) -> None:
    at = app(smoke_store)  # the user's own runs would otherwise be the pages' first choice
    next(b for b in at.button if b.label == button).click().run()
    assert not at.exception and at.title[0].value == title
    for key, name in picks.items():
        assert at.selectbox(key=key).value == EXAMPLE[name]


def test_the_storys_compare_opens_on_the_examples_beside_the_users_runs(app, smoke_store: Path) -> None:
    at = app(smoke_store)  # told from the examples (the default), while the user has runs of their own
    next(b for b in at.button if b.label == "Compare").click().run()
    assert not at.exception and at.title[0].value == "Compare"
    assert at.multiselect[0].value == [EXAMPLE[n] for n in ("dm-vanilla", "dm-reweighted", "full-data")]


def test_the_story_can_be_told_from_the_users_newest_pair(app, goto, smoke_store: Path) -> None:
    at = app(smoke_store)
    own = {name: Metrics.load(smoke_store / name) for name in ("smoke-none", "smoke-kde")}
    assert at.radio(key="story_from").value == "the example runs", "the curated story comes first"
    at.radio(key="story_from").set_value("your newest pair").run()
    assert not at.exception and "your newest pair" in page_text(at)
    text = page_text(at)
    for metrics_ in own.values():
        assert f"{metrics_.test_acc_unbiased:.1f}%" in text
    assert f"{100 * own['smoke-kde'].weight_share_conflicting:.0f}% of the weight" in text
    next(b for b in at.button if b.label == "Compare").click().run()
    assert not at.exception and at.title[0].value == "Compare"
    assert set(at.multiselect[0].value) == {"smoke-none", "smoke-kde", "smoke-baseline"}


def test_the_users_pair_from_before_thumbnails_is_told_without_the_bias_picture(app, store_copy: Path) -> None:
    run = store_copy / "smoke-kde"
    replace(EmbeddingMap.load(run), real_thumbs=None).save(run)  # as a map made before thumbnails were kept
    at = app(store_copy)
    at.radio(key="story_from").set_value("your newest pair").run()
    assert not at.exception and ui.NO_THUMBNAILS in [c.value for c in at.caption]
    assert [s.value[:2] for s in at.subheader] == ["1 ", "2 ", "3 "]
    assert len(at.image) == 2, "both synthetic sets are still shown"


def test_the_story_stands_on_the_examples_whatever_the_runs_folder(app, goto, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a runs folder")
    at = app(tmp_path)
    assert not at.exception and not at.error and not at.radio, "no pair of the user's: no choice to offer"
    assert [s.value[:2] for s in at.subheader] == ["1 ", "2 ", "3 "]
    goto(at, "app_pages/runs.py")
    assert any("not a ddcore runs folder" in e.value for e in at.error), "the pages that need it say why"


def test_the_runs_page_keeps_the_examples(app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/runs.py")
    at.selectbox(key="runs_run").set_value(EXAMPLE["dm-vanilla"]).run()
    assert next(b for b in at.button if b.label == "Delete…").disabled
    assert not next(d for d in at.get("download_button") if d.label == "Export zip").proto.disabled


# the story's pieces


def test_story_pictures_and_words() -> None:
    emb = fake_map(n=60, classes=2)
    picture = story.bias_picture(emb, aligned=3, conflicting=2)
    thumb = emb.real_thumbs.shape[1]
    assert picture.shape[0] == 2 + 2 * (thumb + 2)  # one row per class
    shipped = examples.runs()
    told = story.pick(shipped)
    assert (told.vanilla.name, told.reweighted.name, told.baseline.name) == (
        EXAMPLE["dm-vanilla"], EXAMPLE["dm-reweighted"], EXAMPLE["full-data"])
    assert "colour" in story.bias_text(EmbeddingMap.load(examples.ROOT / "dm-reweighted"))
    assert f"{told.baseline.metrics.test_acc_unbiased:.1f}%" in story.vanilla_text(told)
    assert story.pick([told.vanilla]) is None


# the map: contours, grey context, neighbours, selections


def test_density_contours_peak_where_each_class_crowds() -> None:
    xy = np.array([[0.0, 0.0]] * 20 + [[10.0, 10.0]] * 20, dtype=np.float32) + np.random.default_rng(0).normal(
        scale=0.5, size=(40, 2)).astype(np.float32)
    labels = np.repeat([0, 1], 20)
    gx, gy, classes, grids = figures.density_grid(xy, labels, size=41)
    for c, centre in ((0, 0.0), (1, 10.0)):
        iy, ix = np.unravel_index(np.argmax(grids[c]), grids[c].shape)
        assert abs(gx[ix] - centre) < 1.0 and abs(gy[iy] - centre) < 1.0 and grids[c].max() == 1.0
    fig = figures.embedding_map(fake_map(), "class", contours=True)
    assert [t.type for t in fig.data] == ["contour", "contour", "scattergl", "scattergl", "scattergl"]
    assert all(t.unselected.marker.color == figures.UNSELECTED["marker"]["color"] for t in fig.data
               if t.meta == figures.REAL)
    # a selection's curve numbers count the contour traces, which are never selected points
    real, syn = figures.selected_rows([{"curve_number": 0, "customdata": 5}, {"curve_number": 2, "customdata": 6}], fig)
    assert real.tolist() == [6] and not len(syn)


def test_neighbours_in_the_embedding_and_in_pixels() -> None:
    emb = fake_map(n=6, m=1, classes=2)
    features = np.zeros((6, 3), dtype=np.float32)
    features[:, 0] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    thumbs = np.zeros((6, 4, 4, 3), dtype=np.uint8)
    thumbs[:, 0, 0, 0] = [250, 10, 240, 0, 200, 5]  # in pixels, 0's nearest are 2 and 4
    emb = replace(emb, real_features=features, real_thumbs=thumbs,
                  syn_features=np.array([[3.9, 0, 0]], dtype=np.float32))
    assert selection.embedding_neighbours(emb, Point(figures.REAL, 0), k=3).tolist() == [1, 2, 3]
    assert selection.embedding_neighbours(emb, Point(figures.SYNTHETIC, 0), k=2).tolist() == [4, 3]
    assert selection.pixel_neighbours(emb, Point(figures.REAL, 0), k=2).tolist() == [2, 4]
    syn_thumbs = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    assert selection.pixel_neighbours(emb, Point(figures.SYNTHETIC, 0), syn_thumbs, k=2).tolist() == [3, 5]
    assert selection.pixel_neighbours(emb, Point(figures.SYNTHETIC, 0), None) is None
    assert selection.clicked(np.array([4]), np.array([], dtype=np.int64)) == Point(figures.REAL, 4)
    assert selection.clicked(np.array([4, 5]), np.array([], dtype=np.int64)) is None


def test_a_selection_exports_as_csv_and_as_an_image_grid() -> None:
    emb = EmbeddingMap.load(examples.ROOT / "dm-reweighted")
    real_rows, syn_rows = np.array([3, 0, 7]), np.array([1])
    table = pd.read_csv(io.StringIO(selection.selection_csv(selection.selection_table(emb, real_rows, syn_rows))))
    assert list(table.columns) == selection.SELECTION_COLUMNS
    assert table["kind"].tolist() == ["real", "real", "real", "synthetic"]
    assert table["index"].tolist()[:3] == emb.real_index[real_rows].tolist() and table["index"].iloc[3] == 1
    assert table["label"].tolist() == [*emb.real_label[real_rows].tolist(), int(emb.syn_label[1])]
    assert table["bias"].iloc[:3].tolist() == emb.real_bias[real_rows].tolist() and pd.isna(table["bias"].iloc[3])
    np.testing.assert_allclose(table["weight"].iloc[:3], emb.real_weight[real_rows], rtol=1e-5)
    np.testing.assert_allclose(table["density"].iloc[:3], emb.real_density[real_rows], rtol=1e-5)
    syn_thumbs = selection.synthetic_thumbs(_synthetic_uint8(examples.ROOT / "dm-reweighted"))
    grid = selection.selection_grid(emb, real_rows, syn_thumbs, syn_rows)
    side = emb.real_thumbs.shape[1]
    assert grid.shape == (side + 4, 4 * (side + 2) + 2, 3)
    np.testing.assert_array_equal(grid[2:2 + side, 2:2 + side], emb.real_thumbs[3])


def _synthetic_uint8(run_dir: Path) -> np.ndarray:
    return to_uint8(SyntheticImages.load(run_dir).display().numpy())


# TensorBoard's projector


def projector_config_class():
    """ProjectorConfig as TensorBoard declares it (tensorboard/plugins/projector/projector_config.proto),
    built here because tensorboard is not installed: the projector parses its config with
    protobuf's text_format into this message, so what parses here parses there."""
    F = descriptor_pb2.FieldDescriptorProto
    S, U, M = F.TYPE_STRING, F.TYPE_UINT32, F.TYPE_MESSAGE
    sprite, info = ".tensorboard.projector.SpriteMetadata", ".tensorboard.projector.EmbeddingInfo"
    messages = {  # name: [(field, number, type, repeated, message type)]
        "SpriteMetadata": [("image_path", 1, S, False, ""), ("single_image_dim", 2, U, True, "")],
        "EmbeddingInfo": [("tensor_name", 1, S, False, ""), ("metadata_path", 2, S, False, ""),
                          ("bookmarks_path", 3, S, False, ""), ("tensor_shape", 4, U, True, ""),
                          ("sprite", 5, M, False, sprite), ("tensor_path", 6, S, False, "")],
        "ProjectorConfig": [("model_checkpoint_path", 1, S, False, ""), ("embeddings", 2, M, True, info),
                            ("model_checkpoint_dir", 3, S, False, "")],
    }
    proto = descriptor_pb2.FileDescriptorProto(name="projector_config.proto", package="tensorboard.projector",
                                               syntax="proto3")
    for message, fields_ in messages.items():
        m = proto.message_type.add(name=message)
        for name, number, type_, repeated, type_name in fields_:
            field = m.field.add(name=name, number=number, type=type_,
                                label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorboard.projector.ProjectorConfig"))


def read_tensor_tsv(text: str) -> np.ndarray:
    """As TensorBoard's projector plugin reads tensor_path: floats split on tabs, blank lines skipped."""
    return np.array([list(map(float, line.split("\t"))) for line in text.split("\n") if line], dtype="float32")


def read_metadata_tsv(text: str) -> tuple[list[str], list[list[str]]]:
    """As the projector's frontend reads metadata_path: a first line with a tab is the header."""
    lines = [line for line in text.split("\n") if line.strip()]
    header = lines[0].split("\t") if "\t" in lines[0] else ["label"]
    body = lines[1:] if "\t" in lines[0] else lines
    return header, [line.split("\t") for line in body]


@pytest.mark.parametrize("with_thumbs", [True, False])
def test_the_projector_export_is_what_tensorboard_reads(with_thumbs: bool) -> None:
    emb = EmbeddingMap.load(examples.ROOT / "dm-reweighted")
    syn_thumbs = selection.synthetic_thumbs(_synthetic_uint8(examples.ROOT / "dm-reweighted")) if with_thumbs else None
    archive = zipfile.ZipFile(io.BytesIO(exports.projector_zip(emb, syn_thumbs, "run-projector")))
    files = {Path(n).name: archive.read(n) for n in archive.namelist()}
    assert {Path(n).parent.name for n in archive.namelist()} == {"run-projector"}
    assert set(files) == set(exports.PROJECTOR_FILES) - (set() if with_thumbs else {"sprite.png"})

    config = text_format.Parse(files["projector_config.pbtxt"].decode(), projector_config_class()())
    (info,) = config.embeddings
    n = len(emb.real_map) + len(emb.syn_map)
    assert (info.tensor_path, info.metadata_path) == ("tensors.tsv", "metadata.tsv")
    assert list(info.tensor_shape) == [n, emb.real_features.shape[1]]

    tensor = read_tensor_tsv(files["tensors.tsv"].decode())
    assert tensor.shape == tuple(info.tensor_shape)
    np.testing.assert_allclose(tensor, np.concatenate([emb.real_features, emb.syn_features]), rtol=1e-5, atol=1e-6)

    header, rows = read_metadata_tsv(files["metadata.tsv"].decode())
    assert header == list(exports.METADATA_COLUMNS) and len(rows) == n and all(len(r) == len(header) for r in rows)
    assert rows[0][:3] == ["real", str(emb.real_index[0]), emb.classes[emb.real_label[0]]]
    assert rows[-1][:3] == ["synthetic", str(len(emb.syn_map) - 1), emb.classes[emb.syn_label[-1]]]

    if not with_thumbs:
        assert not info.HasField("sprite")
        return
    assert info.sprite.image_path == "sprite.png"
    w, h = info.sprite.single_image_dim
    sprite = np.asarray(Image.open(io.BytesIO(files["sprite.png"])).convert("RGB"))
    assert max(sprite.shape[:2]) <= exports.MAX_SPRITE_PX
    per_row = sprite.shape[1] // w
    assert per_row * (sprite.shape[0] // h) >= n
    for i, expected in ((0, emb.real_thumbs[0]), (n - 1, syn_thumbs[-1])):  # cells in row-major order
        r, c = divmod(i, per_row)
        np.testing.assert_array_equal(sprite[r * h:(r + 1) * h, c * w:(c + 1) * w], expected)


def test_a_large_sprite_is_shrunk_to_the_projectors_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "MAX_SPRITE_PX", 320)
    image, (w, h) = exports.sprite(np.full((400, 32, 32, 3), 7, dtype=np.uint8))  # 20 x 20 cells of 32 px: 640 px
    assert image.shape == (320, 320, 3) and (w, h) == (16, 16) and (image == 7).all()


# Compare: references, group metrics, CSV


def _info(name: str, cfg, state: str = "done", **metric_values) -> RunInfo:
    return RunInfo(name, Path("/nowhere") / name, cfg, Status(state=state), Metrics(**metric_values))


def test_references_of_a_distill_run() -> None:
    smoke = preset("smoke")
    kde, none = _info("kde", smoke), _info("none", smoke.with_overrides(reweight="none"))
    oracle = _info("oracle", smoke.with_overrides(reweight="oracle"))
    subset = _info("subset", smoke.with_overrides(kind="random-subset"))
    other_ipc = _info("subset-ipc5", smoke.with_overrides(kind="random-subset", ipc=5))
    wider = _info("base-wider", smoke.with_overrides(kind="baseline", net_width=32))  # another network: not comparable
    store = [oracle, other_ipc, subset, wider, kde, none]
    assert runs.partner(store, kde).name == "none" and runs.partner(store, none).name == "kde"
    assert runs.partner(store, oracle).name == "none", "an oracle run is not the reweighted half of a pair"
    assert [r.name for r in runs.latest_pair(store)] == ["none", "kde"]
    assert runs.matching_reference(store, kde, "oracle").name == "oracle"
    assert runs.matching_reference(store, kde, "random subset").name == "subset"
    assert runs.matching_reference(store, kde, "full-data baseline") is None
    assert list(runs.missing_references(store, kde)) == ["full-data baseline"]
    assert runs.missing_references(store, kde)["full-data baseline"] == smoke.with_overrides(kind="baseline")
    assert runs.matching_reference(store, oracle, "oracle") is oracle, "an oracle run is its own oracle"
    assert list(runs.missing_references(store, oracle)) == ["full-data baseline"]
    assert runs.default_comparison(store) == ["none", "kde", "oracle", "subset"]
    assert [runs.variant(r.config) for r in (none, kde, oracle, subset, wider)] == [
        "vanilla", "reweighted", "oracle", "random subset", "full data"]
    assert runs.label(oracle).startswith("oracle DM · IPC 2") and runs.label(subset).startswith("random subset · IPC 2")
    table = metrics.method_table([kde, none, oracle])
    assert "oracle %" in table.columns


def test_a_reference_queued_for_either_half_of_a_pair_is_queued_once() -> None:
    smoke = preset("smoke")
    kde, none = _info("kde", smoke.with_overrides(kde_tau=2.0)), _info("none", smoke.with_overrides(reweight="none"))
    for_none = runs.missing_references([kde, none], none)
    queued = [_info(f"queued {name}", cfg, state="queued") for name, cfg in for_none.items()]
    store = [*queued, kde, none]
    for_kde = runs.missing_references(store, kde)
    assert list(for_kde) == list(for_none) == list(runs.REFERENCES)
    for name, cfg in for_kde.items():  # made from another config: they differ in sections the reference never reads
        assert cfg != for_none[name] and runs.pending_twin(store, cfg).name == f"queued {name}", name
    assert runs.pending_twin(store, smoke.with_overrides(kind="random-subset", ipc=5)) is None, "another IPC"
    assert runs.pending_twin(store, smoke.with_overrides(kind="baseline", seed=1)) is None, "another seed"


def test_group_metrics_on_compare_tables_heat_maps_and_csv() -> None:
    cfg = preset("smoke")
    groups = [[90.0 if b == c else 10.0 for b in range(10)] for c in range(10)]
    groups[0][1] = None
    run = _info("a", cfg, test_acc_unbiased=18.0, test_acc_worst_group=10.0, test_acc_worst_group_std=1.0,
                deo_max=80.0, deo_max_std=2.0, deo_mean=80.0, group_accuracy=groups)
    shown = metrics.display_table(metrics.accuracy_table([run]))
    assert (shown.loc[0, "worst group"], shown.loc[0, "DEO-M"], shown.loc[0, "DEO-A"]) == (
        "10.0 ± 1.0%", "80.0 ± 2.0%", "80.0%")
    frame, aligned = metrics.group_matrix(run)
    assert frame.shape == (10, 10) and list(frame.index[:2]) == ["0", "1"] and aligned == tuple(range(10))
    assert np.isnan(frame.iloc[0, 1]) and frame.iloc[3, 3] == 90.0
    fig = figures.group_heatmap(frame, "a", aligned)
    assert fig.data[0].type == "heatmap" and len(fig.layout.shapes) == 10
    assert metrics.group_matrix(_info("old", cfg)) is None
    long = pd.read_csv(io.StringIO(metrics.groups_csv([run])))
    assert list(long.columns) == ["run", "class", "bias value", "accuracy %"] and len(long) == 100
    flat = pd.read_csv(io.StringIO(metrics.metrics_csv([run, _info("b", cfg.with_overrides(kind="baseline"))])))
    assert {"run", "variant", "test_acc_unbiased", "test_acc_worst_group", "deo_max", "deo_mean"} <= set(flat.columns)
    assert flat["variant"].tolist() == ["reweighted", "full data"] and flat.loc[0, "deo_max"] == 80.0


def test_compare_shows_group_metrics_heat_maps_and_references(app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/compare.py")
    table = at.dataframe[0].value
    assert {"worst group", "DEO-M", "DEO-A"} <= set(table.columns) and len(table) == 3
    heatmaps = [c for c in at.get("plotly_chart") if json.loads(c.proto.spec)["data"][0]["type"] == "heatmap"]
    assert len(heatmaps) == 3
    assert [d.label for d in at.get("download_button")] == ["Metrics (CSV)", "Group accuracy (CSV)"]
    # the examples ship without an oracle and a random subset: the page offers them
    assert [b.label for b in at.button if b.label.startswith("Queue")] == ["Queue the oracle run", "Queue a random subset"]


def test_compare_queues_the_missing_references(app, goto, store_copy: Path) -> None:
    at = goto(app(store_copy), "app_pages/compare.py")
    for label in ("Queue the oracle run", "Queue a random subset"):
        next(b for b in at.button if b.label == label).click().run()
        assert not at.exception and at.success
    queued = [r.config for r in runstore.list_runs(store_copy) if r.status.state == "queued"]
    assert sorted(c.kind for c in queued) == ["distill", "random-subset"]
    assert {c.reweight.reweight for c in queued if c.kind == "distill"} == {"oracle"}
    assert all(c.data == preset("smoke").data and c.distill.ipc == preset("smoke").distill.ipc for c in queued)


def test_the_users_own_runs_come_before_the_examples() -> None:
    mine = _info("mine", preset("smoke"), test_acc_unbiased=50.0)  # a reweighted run without its vanilla half
    store = [mine, *examples.runs()]
    assert [r and r.name for r in runs.latest_pair(store)] == [None, "mine"]
    assert runs.default_comparison(store) == ["mine"]
    baseline = _info("my-baseline", preset("smoke").with_overrides(kind="baseline"), test_acc_unbiased=80.0)
    assert [r.name for r in runs.latest_pair([baseline, *examples.runs()])] == [
        EXAMPLE["dm-vanilla"], EXAMPLE["dm-reweighted"]], "the user's baseline alone has no pair to show"
    queued = _info("queued", preset("smoke"), state="queued")
    assert runs.default_comparison([queued, *examples.runs()])[:2] == [EXAMPLE["dm-vanilla"], EXAMPLE["dm-reweighted"]]
