"""The Sweeps page under AppTest (a finished smoke sweep; submitting a shipped spec or a grid;
cancelling) and the plain functions behind it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ddapp import sweeps
from ddcore.errors import ConfigError
from ddcore.sweeps import results, store
from ddcore.sweeps.spec import SHIPPED_DIR, expand
from tests.app.test_app_pages import by_label, page_text

PAGE = "app_pages/sweeps.py"


def plots(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_a_finished_sweep_shows_matrix_table_plots_and_downloads(app, goto, smoke_sweep: Path) -> None:
    at = goto(app(smoke_sweep), PAGE)
    assert at.selectbox(key="sweep_pick").value == "smoke"
    matrix, summary = at.dataframe[0].value, at.dataframe[1].value  # then the cells, in an expander
    assert matrix.shape == (6, 2) and list(matrix.columns) == ["seed 0", "seed 1"] and (matrix == "done").all().all()
    assert len(summary) == 6 and set(summary["variant"]) == {"vanilla", "reweighted", "full data"}
    assert all("±" in v for v in summary["unbiased"])
    (ratio,) = plots(at)  # the smoke sweep varies the conflict ratio only
    assert ratio["layout"]["title"]["text"] == "Accuracy vs conflict ratio"
    assert {t["name"] for t in ratio["data"]} == {"DM vanilla", "DM reweighted", "full data"}
    assert len(at.get("download_button")) == 3
    assert not at.error and "12 cells:** 12 done" in page_text(at)


def test_submitting_a_shipped_spec_queues_its_cells_and_cancel_stops_them(app, goto, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    at = goto(app(root), PAGE)
    assert "No sweep in this runs folder yet" in page_text(at)  # and the shipped example is shown
    at.selectbox(key="sweep_spec").set_value(SHIPPED_DIR / "smoke.toml").run()
    assert "12 cells · preset `smoke`" in page_text(at)
    by_label(at.button, "Run this sweep").click().run()
    assert not at.exception and "queued 12 cell(s)" in at.success[0].value
    assert {c.state for c in store.sweep_cells(root, "smoke")} == {"queued"}
    assert (at.dataframe[0].value == "queued").all().all()
    assert "No cell has finished yet" in page_text(at)

    by_label(at.button, "Cancel the sweep").click().run()
    assert {c.state for c in store.sweep_cells(root, "smoke")} == {"cancelled"}
    by_label(at.button, "Run this sweep").click().run()  # a re-run queues the cancelled cells again
    assert "queued 12 cell(s); 0 already done" in at.success[0].value


def test_the_grid_form_reports_bad_input_and_queues_a_grid(app, goto, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    at = goto(app(root), PAGE)
    at.radio(key="sweep_source").set_value("a grid built here").run()
    by_label(at.selectbox, "Preset").set_value("smoke")
    by_label(at.text_input, "Bias-conflicting samples (%)").set_value("two")
    by_label(at.button, "Run this grid").click().run()
    assert len(at.error) == 1 and "bias-conflicting percentages" in at.error[0].value
    assert not root.exists() or not store.sweep_names(root)

    by_label(at.text_input, "Bias-conflicting samples (%)").set_value("2, 5")
    by_label(at.text_input, "Images per class (IPC)").set_value("1, 2")
    by_label(at.multiselect, "Runs").set_value(["vanilla", "reweighted", "full data"])
    by_label(at.button, "Run this grid").click().run()
    assert not at.error, [e.value for e in at.error]
    cells = store.sweep_cells(root, "my-grid")
    assert len(cells) == 2 * (2 * 2 + 1)  # ratios x (IPCs x vanilla/reweighted + one baseline)
    assert {c.config.preset for c in cells} == {"smoke"}


# the plain functions


def test_grid_spec_builds_axes_like_a_spec_file() -> None:
    one = sweeps.grid_spec(sweeps.GridForm(preset="smoke", ratios="0.5, 5", variants=("reweighted",)))
    assert one.method == "dm" and one.axis("method") is None
    assert one.axis("conflict_ratio").values == (0.005, 0.05) and one.axis("reweight").values == ("kde",)
    both = sweeps.grid_spec(sweeps.GridForm(preset="smoke", methods=("dm", "dc"), variants=("full data",)))
    assert both.axis("method").values == ("dm", "dc") and both.axis("reweight") is None
    assert {c.config.kind for c in expand(both)} == {"baseline"} and len(expand(both)) == 2  # one per ratio
    for form, message in ((sweeps.GridForm(variants=()), "choose at least one"),
                          (sweeps.GridForm(seeds="0, x"), "seeds: give whole numbers"),
                          (sweeps.GridForm(name="bad name"), "the grid: name: 'bad name' is invalid"),
                          (sweeps.GridForm(ipcs="0"), "the grid: axes.ipc = 0: IPC must be at least 1")):
        with pytest.raises(ConfigError, match=message):
            sweeps.grid_spec(form)


def test_progress_matrix_shows_each_cell_state(smoke_sweep: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(smoke_sweep, root)
    cells = store.sweep_cells(root, "smoke")
    (cells[0].path / "config.json").write_text("{broken")
    matrix = sweeps.progress_matrix(store.sweep_cells(root, "smoke"))
    assert matrix.loc[sweeps.setting_label(cells[0]), "seed 0"] == "damaged"
    assert (matrix == "done").sum().sum() == 11
    assert sweeps.state_style("done").startswith("background-color") and sweeps.state_style("") == ""


def test_bandwidth_heat_map_places_the_adaptive_rule_by_the_bandwidth_it_used() -> None:
    rows = [("cmnist", 0.05, "dm", "reweighted", 10, sigma, tau, 1, 1, acc, None, used)
            for sigma, used, acc in (("auto", 0.15, 90.0), (0.1, 0.1, 80.0), (0.2, 0.2, 85.0))
            for tau, acc in ((1.0, acc), (2.0, acc - 5))]
    columns = ["dataset", "conflict_ratio", "method", "variant", "ipc", "kde_sigma", "kde_tau", "seeds done",
               "seeds", "unbiased mean", "unbiased std", "sigma_used mean"]
    (fig,) = sweeps.bandwidth_figures(pd.DataFrame(rows, columns=columns))
    heat = fig.data[0]
    assert list(heat.x) == ["0.1", "auto (σ = 0.15)", "0.2"] and list(heat.y) == ["1", "2"]
    assert [list(r) for r in heat.z] == [[80.0, 90.0, 85.0], [75.0, 85.0, 80.0]]


def test_scale_heat_map_for_the_kde_defaults_sweep_one_per_dataset() -> None:
    rows = [(dataset, 0.05, "dm", "reweighted", 10, scale, tau, 1, 1, acc + (dataset == "bg-cmnist"), None)
            for dataset in ("cmnist", "bg-cmnist")
            for scale, tau, acc in ((1.0, 1.0, 54.6), (1.0, 0.75, 75.5), (0.7, 1.0, 85.9), (0.7, 0.75, 88.0))]
    columns = ["dataset", "conflict_ratio", "method", "variant", "ipc", "kde_scale", "kde_tau", "seeds done",
               "seeds", "unbiased mean", "unbiased std"]
    figs = sweeps.figures(pd.DataFrame(rows, columns=columns))
    assert [f.layout.title.text for f in figs] == [
        "Unbiased accuracy over bandwidth scale x temperature τ · dataset cmnist",
        "Unbiased accuracy over bandwidth scale x temperature τ · dataset bg-cmnist"]
    heat = figs[1].data[0]
    assert list(heat.x) == ["0.7", "1"] and list(heat.y) == ["0.75", "1"]
    assert [list(r) for r in heat.z] == [[89.0, 76.5], [86.9, 55.6]]


def test_debias_bars_put_each_evaluation_beside_the_others_per_training_set() -> None:
    rows = [("cmnist", 0.05, method, variant, ipc, debias, 1, 1, acc, None)
            for method, variant, ipc, plain in (("dm", "vanilla", 10, 24.0), ("dm", "reweighted", 10, 92.0),
                                                (None, "full data", None, 33.0), (None, "random subset", 10, 20.0))
            for debias, acc in (("none", plain), ("jtt", plain + 1), ("selecmix", plain + 2))]
    columns = ["dataset", "conflict_ratio", "method", "variant", "ipc", "eval_debias", "seeds done", "seeds",
               "unbiased mean", "unbiased std"]
    agg = pd.DataFrame(rows, columns=columns)
    (fig,) = sweeps.figures(agg)
    assert fig.layout.title.text == "Debiasing the evaluation's training" and fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["plain", "JTT", "SelecMix"]
    assert list(fig.data[2].x) == ["DM vanilla", "DM reweighted", "full data", "random subset"]
    assert list(fig.data[2].y) == [26.0, 94.0, 35.0, 22.0]
    assert sweeps.figures(agg[agg["eval_debias"] == "none"]) == []  # one way of evaluating: nothing to compare


def test_figures_follow_the_axes(smoke_sweep: Path) -> None:
    agg = sweeps.frame(results.aggregate(results.long_table(store.sweep_cells(smoke_sweep, "smoke"))))
    (ratio,) = sweeps.figures(agg)
    assert ratio.layout.title.text == "Accuracy vs conflict ratio"
    assert all(list(t.x) == [2.0, 5.0] for t in ratio.data)  # in percent
    two_ipcs = pd.concat([agg, agg[agg["variant"] != "full data"].assign(ipc=10)])
    # the full-data baseline has no IPC: its line is drawn in every IPC's panel
    ratio_10 = sweeps.figures(two_ipcs)[1]
    assert ratio_10.layout.title.text == "Accuracy vs conflict ratio · ipc 10"
    assert {t.name for t in ratio_10.data} == {"DM vanilla", "DM reweighted", "full data"}
    assert [f.layout.title.text for f in sweeps.figures(two_ipcs)] == [
        "Accuracy vs conflict ratio · ipc 2", "Accuracy vs conflict ratio · ipc 10",
        "Accuracy vs IPC · conflict_ratio 0.02", "Accuracy vs IPC · conflict_ratio 0.05"]
