"""Every page through streamlit's AppTest: on an empty store, on real smoke runs, and the
interactions (form validation, submitting, cancelling, deleting, opening)."""
from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ddcore import runstore
from ddcore.config import preset
from ddcore.records import EmbeddingMap
from tests.datafiles import write_csv, write_png

# every page file, so a new page is covered without touching this list
PAGES = sorted(f"app_pages/{p.name}" for p in (Path(__file__).resolve().parents[2] / "app_pages").glob("*.py"))


def by_label(widgets, label: str):
    matches = [w for w in widgets if w.label == label]
    assert len(matches) == 1, f"{label!r} not found once among {[w.label for w in widgets]}"
    return matches[0]


def page_text(at: AppTest) -> str:
    """Everything the page says in text elements, for 'is this message shown' checks."""
    kinds = ("title", "subheader", "markdown", "caption", "info", "error", "warning", "success")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_smoke_runs(app, goto, smoke_store: Path, page: str) -> None:
    goto(app(smoke_store), page)


def test_bias_explorer_counts_and_grids(app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/bias_explorer.py")
    counts = at.dataframe[0].value
    assert list(counts["class"]) == list(range(10))
    assert counts["conflicting"].sum() == 200 and counts["total"].sum() == 4000  # bundled: 4,000 train, 5%
    assert len(at.image) == 2  # aligned and conflicting grids
    by_label(at.number_input, "Bias-conflicting samples (%)").set_value(0.0).run()
    assert at.dataframe[0].value["conflicting"].sum() == 0
    assert any("None at this ratio" in i.value for i in at.info)


def test_bias_explorer_hands_its_data_to_the_distill_page(app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/bias_explorer.py")
    at.selectbox(key="explore_dataset").set_value("bg-cmnist").run()
    at.number_input(key="explore_percent").set_value(2.0).run()
    at.selectbox(key="explore_severity").set_value(3).run()
    by_label(at.button, "Distill this data").click().run()
    assert not at.exception and at.title[0].value == "Distill" and not at.warning
    shown = {k: at.session_state[f"distill_{k}"] for k in ("dataset", "source", "percent", "severity")}
    assert shown == {"dataset": "bg-cmnist", "source": "bundled", "percent": 2.0, "severity": 3}
    goto(at, "app_pages/distill.py")  # AppTest's own reruns would go back to the explorer
    by_label(at.selectbox, "Preset").set_value("smoke").run()
    by_label(at.button, "Run vanilla + reweighted").click().run()
    data = {r.config.data for r in runstore.list_runs(tmp_path)}
    assert [(d.dataset, d.conflict_ratio, d.severity) for d in data] == [("bg-cmnist", 0.02, 3)]
    goto(at, "app_pages/bias_explorer.py")  # the benchmark's severity (None) is carried as a choice shown
    at.selectbox(key="explore_severity").set_value(None).run()
    by_label(at.button, "Distill this data").click().run()
    shown = at.selectbox(key="distill_severity").proto  # what the browser draws: "benchmark", not an empty box
    assert shown.HasField("default") and shown.default == 0 and not shown.set_value



def test_choices_outlive_a_visit_to_another_page(app, goto, smoke_store: Path) -> None:
    """Streamlit drops a widget's state once its page is left; a user coming back expects their choice."""
    at = goto(app(smoke_store), "app_pages/bias_explorer.py")
    at.selectbox(key="explore_dataset").set_value("bg-cmnist").run()
    at.number_input(key="explore_percent").set_value(2.0).run()
    goto(at, "app_pages/distill.py")
    by_label(at.selectbox, "Preset").set_value("smoke").run()
    by_label(at.selectbox, "Method").set_value("dc").run()
    goto(at, "app_pages/embedding_map.py")
    at.radio(key="map_colour").set_value(at.radio(key="map_colour").options[-1]).run()
    at.checkbox(key="map_contours").uncheck().run()
    chosen = at.radio(key="map_colour").value
    goto(at, "app_pages/compare.py")
    picked = at.multiselect(key="compare_runs").value[:1]
    at.multiselect(key="compare_runs").set_value(picked).run()
    goto(at, "app_pages/runs.py")  # a page drawing none of these widgets
    goto(at, "app_pages/bias_explorer.py")
    assert (at.selectbox(key="explore_dataset").value, at.number_input(key="explore_percent").value) == ("bg-cmnist", 2.0)
    assert at.dataframe[0].value["conflicting"].sum() == 80  # 2% of 4,000, as the choice says
    goto(at, "app_pages/distill.py")
    assert (by_label(at.selectbox, "Preset").value, by_label(at.selectbox, "Method").value) == ("smoke", "dc")
    assert by_label(at.number_input, "Iterations").value == preset("smoke", "dc").distill.iterations
    goto(at, "app_pages/embedding_map.py")
    assert at.radio(key="map_colour").value == chosen and not at.checkbox(key="map_contours").value
    goto(at, "app_pages/compare.py")
    assert at.multiselect(key="compare_runs").value == picked
    assert not at.warning  # no "set via the Session State API" warning for a kept widget with a default

def test_embedding_map_shows_plot_synthetic_and_neighbours(app, goto, smoke_store: Path) -> None:
    at = goto(app(smoke_store), "app_pages/embedding_map.py")
    assert at.selectbox(key="map_run").value == "smoke-kde", "the newest reweighted run of the user's own"
    (chart,) = at.get("plotly_chart")
    traces = json.loads(chart.proto.spec)["data"]
    classes = len(EmbeddingMap.load(smoke_store / "smoke-kde").classes)
    assert [t["type"] for t in traces] == ["contour"] * classes + ["scattergl", "scattergl"]  # real, synthetic
    assert "Density computed on: supcon surrogate embedding" in page_text(at)
    at.checkbox(key="map_pair").check().run()  # the vanilla run's synthetic images on the same map
    names = [t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert names[-2:] == ["reweighted synthetic images", "vanilla synthetic images"]
    at.checkbox(key="map_pair").uncheck().run()
    # the picked synthetic image, large, then its nearest real samples in the embedding and in pixels
    assert len(at.image) == 1 + 2 * 8
    for mode in ("weight", "class", "bias attribute", "aligned / conflicting"):
        at.radio(key="map_colour").set_value(mode).run()
        assert not at.exception
    at.checkbox(key="map_contours").set_value(False).run()
    assert [t["type"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]] == ["scattergl"] * 3


def test_synthetic_page_pairs_vanilla_and_reweighted(app, goto, smoke_store: Path) -> None:
    at = goto(app(smoke_store), "app_pages/synthetic_images.py")
    assert at.selectbox(key="syn_left").value == "smoke-none"
    assert at.selectbox(key="syn_right").value == "smoke-kde"
    assert len(at.image) == 2 and len(at.download_button) == 4


def test_compare_defaults_to_pair_and_baseline(app, goto, smoke_store: Path) -> None:
    at = goto(app(smoke_store), "app_pages/compare.py")
    assert set(at.multiselect[0].value) == {"smoke-none", "smoke-kde", "smoke-baseline"}
    table = at.dataframe[0].value
    assert len(table) == 3 and all("±" in v for v in table["unbiased"])


def test_runs_lists_every_run_and_a_damaged_folder(app, goto, store_copy: Path) -> None:
    (store_copy / "broken").mkdir()
    (store_copy / "broken" / "config.json").write_text("{not json")
    at = goto(app(store_copy), "app_pages/runs.py")
    listing = at.dataframe[0].value
    assert set(listing["name"]) == {"smoke-kde", "smoke-none", "smoke-baseline", "broken"}
    assert "damaged run folder" in listing.set_index("name").loc["broken", "message"]
    for page in PAGES:  # a damaged folder breaks no page
        goto(at, page)


def _form(at: AppTest, **values) -> AppTest:
    for label, value in values.items():
        widget = next(w for kind in ("text_input", "number_input", "selectbox", "checkbox") for w in getattr(at, kind) if w.label == label)
        widget.set_value(value)
    return at


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"Kernel bandwidth σ": "wide"}, "σ must be a number, or blank for the adaptive bandwidth"),
        ({"Kernel bandwidth σ": "-0.2"}, "KDE sigma must be between 0.001 and 1000"),
        ({"Temperature τ": 0.0}, "KDE tau must be between 0.001 and"),
    ],
)
def test_distill_form_rejects_bad_values_with_a_message(app, goto, tmp_path: Path, values, message) -> None:
    at = goto(app(tmp_path), "app_pages/distill.py")
    _form(at, **values)
    by_label(at.button, "Run vanilla + reweighted").click().run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert not any(tmp_path.iterdir()), "nothing is queued when the form is invalid"


def test_distill_queues_a_pair_and_cancels(app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/distill.py")
    by_label(at.selectbox, "Preset").set_value("smoke").run()
    assert by_label(at.number_input, "Images per class (IPC)").value == preset("smoke").distill.ipc
    _form(at, **{"Kernel bandwidth σ": "0.2", "Temperature τ": 2.0, "Seed": 3})
    by_label(at.button, "Run vanilla + reweighted").click().run()
    assert not at.exception and at.success
    queued = runstore.list_runs(tmp_path)
    assert sorted(r.config.reweight.reweight for r in queued) == ["kde", "none"]
    for r in queued:  # the pair differs in the reweighting mode only
        assert r.status.state == "queued" and r.config.preset == "smoke" and r.config.seed == 3
        assert (r.config.reweight.kde_sigma, r.config.reweight.kde_tau) == (0.2, 2.0)
    by_label(at.button, "Run vanilla + reweighted").click().run()  # the same pair again: not queued twice
    assert not at.exception and any("Already queued or running, so not queued again" in i.value for i in at.info)
    assert len(runstore.list_runs(tmp_path)) == 2
    cancels = [b for b in at.button if b.label == "Cancel"]
    assert len(cancels) == 2
    cancels[0].click().run()
    assert sorted(r.status.state for r in runstore.list_runs(tmp_path)) == ["cancelled", "queued"]


def test_failed_run_shows_its_message_not_a_traceback(app, goto, tmp_path: Path) -> None:
    run = runstore.create_run(tmp_path / "broken-run", preset("smoke"))
    runstore.update_status(run, state="failed", message="IPC 500 is larger than the smallest class (380)")
    runstore.append_log(run, "internal error:\nTraceback (most recent call last):\n  ...")
    at = goto(app(tmp_path), "app_pages/distill.py")
    assert any("IPC 500 is larger than the smallest class" in e.value for e in at.error)
    assert "Traceback" not in page_text(at)
    at = goto(at, "app_pages/runs.py")
    assert any("IPC 500 is larger than the smallest class" in e.value for e in at.error)


def test_delete_asks_for_confirmation(app, goto, store_copy: Path) -> None:
    at = goto(app(store_copy), "app_pages/runs.py")
    at.selectbox(key="runs_run").set_value("smoke-none").run()
    by_label(at.button, "Delete…").click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    by_label(at.button, "Keep it").click().run()
    assert (store_copy / "smoke-none").exists() and not at.warning
    by_label(at.button, "Delete…").click().run()
    by_label(at.button, "Yes, delete").click().run()
    assert not at.exception and not (store_copy / "smoke-none").exists()
    assert set(at.dataframe[0].value["name"]) == {"smoke-kde", "smoke-baseline"}
    assert not any("no longer here" in i.value for i in at.info), "the page deleted it: no notice needed"


def test_delete_is_disabled_for_a_queued_run(app, goto, tmp_path: Path) -> None:
    runstore.create_run(tmp_path / "waiting", preset("smoke"))
    at = goto(app(tmp_path), "app_pages/runs.py")
    assert by_label(at.button, "Delete…").disabled


def test_open_map_from_runs_page(app, goto, smoke_store: Path) -> None:
    at = goto(app(smoke_store), "app_pages/runs.py")
    at.selectbox(key="runs_run").set_value("smoke-kde").run()
    by_label(at.button, "Open map").click().run()
    assert not at.exception
    assert at.title[0].value == "Embedding map" and at.selectbox(key="map_run").value == "smoke-kde"


def test_export_zip_holds_the_run(smoke_store: Path) -> None:
    archive = zipfile.ZipFile(io.BytesIO(runstore.export_run(smoke_store / "smoke-kde")))
    assert {"smoke-kde/config.json", "smoke-kde/metrics.json", "smoke-kde/synthetic.pt"} <= set(archive.namelist())
    assert json.loads(archive.read("smoke-kde/config.json"))["distill"]["ipc"] == preset("smoke").distill.ipc


def test_compare_offers_to_queue_a_missing_baseline(app, goto, store_copy: Path) -> None:
    runstore.delete_run(store_copy / "smoke-baseline")
    at = goto(app(store_copy), "app_pages/compare.py")
    by_label(at.button, "Queue a full-data baseline for this data").click().run()
    assert not at.exception and at.success
    (queued,) = [r for r in runstore.list_runs(store_copy) if r.status.state == "queued"]
    assert queued.config.kind == "baseline" and queued.config.data == preset("smoke").data
    at.run()  # once queued, it is not offered again (a second click would only repeat it)
    assert not [b for b in at.button if b.label == "Queue a full-data baseline for this data"]
    assert any(f"The full-data baseline is queued (`{queued.name}`)" in c.value for c in at.caption)


def test_bias_explorer_names_a_missing_mnist_folder(app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/bias_explorer.py")
    by_label(at.selectbox, "Source").set_value("files").run()
    missing = tmp_path / "no-mnist-here"
    by_label(at.text_input, "Data folder (--root)").set_value(str(missing)).run()
    assert not at.exception and any(str(missing) in e.value for e in at.error), [e.value for e in at.error]
    assert any("Where the files go" in i.value and "MNIST/raw" in i.value for i in at.info)


def test_distill_method_picks_its_preset_and_is_queued(app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/distill.py")
    by_label(at.selectbox, "Preset").set_value("quick").run()
    by_label(at.selectbox, "Method").set_value("dsa").run()
    assert by_label(at.number_input, "Iterations").value == preset("quick", "dsa").distill.iterations
    by_label(at.button, "Run single").click().run()
    assert not at.exception and at.success
    (queued,) = runstore.list_runs(tmp_path)
    assert queued.config.distill == preset("quick", "dsa").distill


def test_distill_full_preset_asks_for_the_files_and_smooths_the_weights(app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/distill.py")
    by_label(at.selectbox, "Preset").set_value("full").run()
    assert any("The full preset runs on the dataset's own files" in i.value for i in at.info)
    assert by_label(at.checkbox, "Smooth the weights").value is True
    by_label(at.button, "Run single").click().run()
    assert not at.exception and any("the full preset runs on the full datasets" in e.value for e in at.error)
    assert runstore.list_runs(tmp_path) == []
    by_label(at.selectbox, "Preset").set_value("quick").run()
    assert by_label(at.checkbox, "Smooth the weights").value is False and not at.info


def test_bias_explorer_says_where_missing_files_go(app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/bias_explorer.py")
    by_label(at.selectbox, "Dataset").set_value("bffhq").run()
    assert by_label(at.selectbox, "Source").options == ["the dataset's files"]  # no bundled sample
    by_label(at.text_input, "Data folder (--root)").set_value(str(tmp_path / "faces")).run()
    assert not at.exception and any(str(tmp_path / "faces") in e.value for e in at.error)
    assert any("Where the files go" in i.value and "bffhq/0.5pct/align" in i.value for i in at.info)
    assert not [c for c in at.checkbox if c.label.startswith("Download")]  # torchvision cannot fetch BFFHQ
    by_label(at.selectbox, "Dataset").set_value("cifar10c-0").run()
    assert by_label(at.checkbox, "Download the files there if missing (torchvision; needs internet)")
    assert any("cifar-10-batches-py" in i.value for i in at.info)


def write_pets_csv(folder: Path) -> Path:
    """A tiny CSV dataset: 12 cats (10 indoor) and 12 dogs (10 outdoor) to train, 4 of each to test."""
    rows = []
    for label, usual, other in (("cat", "indoor", "outdoor"), ("dog", "outdoor", "indoor")):
        for i in range(16):
            split, bias = ("train", usual if i < 10 else other) if i < 12 else ("test", (usual, other)[i % 2])
            write_png(folder / f"{label}{i}.png", (200, 50, 50) if bias == "indoor" else (50, 200, 50), (16, 16))
            rows.append([f"{label}{i}.png", label, bias, split])
    return write_csv(folder / "pets.csv", rows)


def test_bias_explorer_and_distill_on_a_csv_dataset(app, goto, tmp_path: Path) -> None:
    csv_path = write_pets_csv(tmp_path / "pets")
    at = goto(app(tmp_path / "runs"), "app_pages/bias_explorer.py")
    by_label(at.selectbox, "Dataset").set_value("csv").run()
    by_label(at.text_input, "CSV file (path,label,bias[,split])").set_value(str(csv_path)).run()
    assert not at.exception and not at.error
    counts = at.dataframe[0].value
    assert counts["name"].tolist() == ["cat", "dog"] and counts["aligned value"].tolist() == ["indoor", "outdoor"]
    assert counts["conflicting"].tolist() == [2, 2]  # as the files come
    by_label(at.checkbox, "As the files come").set_value(False).run()
    with_ratio = by_label(at.number_input, "Bias-conflicting samples (%)")
    with_ratio.set_value(10.0).run()
    assert at.dataframe[0].value["conflicting"].tolist() == [1, 1]  # round(0.1 / 0.9 * 10) of the 2

    at = goto(at, "app_pages/distill.py")
    by_label(at.selectbox, "Preset").set_value("smoke").run()
    by_label(at.selectbox, "Dataset").set_value("csv").run()
    by_label(at.text_input, "CSV file (path,label,bias[,split])").set_value(str(csv_path)).run()
    assert any("--csv-path" in c.value for c in at.caption)
    by_label(at.button, "Run single").click().run()
    assert not at.exception and at.success, [e.value for e in at.error]
    (queued,) = runstore.list_runs(tmp_path / "runs")
    data = queued.config.data
    assert (data.dataset, data.source, data.csv_path, data.root, data.conflict_ratio) == ("csv", "files", str(csv_path), None, None)


def _store_with_two_pairs(store_copy: Path) -> Path:
    """store_copy plus a newer finished pair of another seed (copies of the smoke pair), so that a
    run's own pair and the newest pair differ."""
    for old, new in (("smoke-none", "later-none"), ("smoke-kde", "later-kde")):
        shutil.copytree(store_copy / old, store_copy / new)
        for name, key, change in (("status.json", "created", 60), ("config.json", "seed", 1)):
            record = json.loads((store_copy / new / name).read_text())
            record[key] += change
            (store_copy / new / name).write_text(json.dumps(record))
    return store_copy


@pytest.mark.parametrize(("key", "title", "shown"), [
    ("map:smoke-none", "Embedding map", {"map_run": "smoke-none"}),
    ("images:smoke-none", "Synthetic images", {"syn_left": "smoke-none", "syn_right": "smoke-kde"}),
])
def test_a_finished_job_opens_its_results(app, goto, store_copy: Path, key: str, title: str, shown) -> None:
    at = goto(app(_store_with_two_pairs(store_copy)), "app_pages/distill.py")
    at.button(key=key).click().run()
    assert not at.exception and at.title[0].value == title
    assert {key: at.selectbox(key=key).value for key in shown} == shown


def test_compare_opens_on_a_jobs_pair_and_keeps_the_users_choice(app, goto, store_copy: Path) -> None:
    at = goto(app(_store_with_two_pairs(store_copy)), "app_pages/compare.py")
    assert set(at.multiselect[0].value) == {"later-none", "later-kde"}, "the newest pair"
    at.multiselect[0].unselect("later-none").run()
    at.run()
    assert at.multiselect[0].value == ["later-kde"], "the user's choice survives reruns"
    goto(at, "app_pages/distill.py")
    [b for b in at.button if b.key == "compare:smoke-none"][0].click().run()
    assert not at.exception and at.title[0].value == "Compare"
    assert set(at.multiselect[0].value) == {"smoke-none", "smoke-kde", "smoke-baseline"}, "the job's own pair"
    shutil.rmtree(store_copy / "smoke-baseline")
    goto(at, "app_pages/compare.py")  # a rerun (AppTest's own reruns would go back to the Distill page)
    assert set(at.multiselect[0].value) == {"smoke-none", "smoke-kde"}, "a deleted run drops out"
