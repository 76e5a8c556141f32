"""The debiasing options in the app: the Distill page's Advanced section queues them (or says in
one line why not), and run labels name a debiased evaluation or surrogate. The same section holds
the KDE's finer options (bandwidth scale, smoothing)."""
from __future__ import annotations

from pathlib import Path

from ddapp import forms, runs
from ddcore import runstore
from ddcore.config import preset
from ddcore.records import Metrics
from ddcore.runstore import RunInfo, Status
from tests.app.test_app_pages import by_label


def test_advanced_section_queues_the_debiasing_options(app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/distill.py")
    by_label(at.selectbox, "Preset").set_value("smoke").run()
    assert [e.label for e in at.expander] == ["Advanced"]
    by_label(at.selectbox, "Debias the evaluation models").set_value("jtt")
    by_label(at.selectbox, "Debias the surrogate").set_value("lff")
    by_label(at.button, "Run single").click().run()
    assert any("--surrogate ce" in e.value for e in at.error), [e.value for e in at.error]
    assert not any(tmp_path.iterdir()), "nothing is queued when the form is invalid"
    by_label(at.selectbox, "Surrogate objective").set_value("ce")
    by_label(at.button, "Run vanilla + reweighted").click().run()
    assert not at.exception and at.success
    queued = runstore.list_runs(tmp_path)
    assert {(r.config.eval.eval_debias, r.config.reweight.surrogate, r.config.reweight.surrogate_debias)
            for r in queued} == {("jtt", "ce", "lff")}


def test_form_defaults_keep_the_plain_training() -> None:
    cfg = forms.build_config(forms.DistillForm(preset="smoke"))
    assert (cfg.eval.eval_debias, cfg.reweight.surrogate_debias) == ("none", "none")


def test_labels_name_the_debiasing() -> None:
    def info(cfg, metrics: Metrics | None = None) -> RunInfo:
        return RunInfo("r", Path("/nowhere/r"), cfg, Status(state="done"), metrics)

    smoke = preset("smoke")
    assert "evaluation" not in runs.label(info(smoke)) and "surrogate" not in runs.label(info(smoke))
    debiased = smoke.with_overrides(eval_debias="lff", surrogate="ce", surrogate_debias="jtt")
    assert runs.label(info(debiased), with_name=False).endswith("JTT surrogate · LfF evaluation")
    baseline = smoke.with_overrides(kind="baseline", eval_debias="jtt")
    assert runs.label(info(baseline), with_name=False).endswith("· JTT evaluation")
    # a run re-evaluated by `ddcore evaluate --eval-debias lff` is labelled by what its metrics hold
    assert runs.label(info(smoke, Metrics(eval_debias="lff")), with_name=False).endswith("· LfF evaluation")
    mixed = smoke.with_overrides(eval_debias="selecmix", surrogate="ce", surrogate_debias="selecmix")
    assert runs.label(info(mixed), with_name=False).endswith("SelecMix surrogate · SelecMix evaluation")


def test_advanced_section_queues_the_kde_options(app, goto, tmp_path: Path) -> None:
    at = goto(app(tmp_path), "app_pages/distill.py")
    by_label(at.selectbox, "Preset").set_value("smoke").run()
    by_label(at.number_input, "Adaptive bandwidth scale").set_value(0.5)
    by_label(at.checkbox, "Smooth the weights").check()
    by_label(at.button, "Run single").click().run()
    assert not at.exception and at.success
    (run,) = runstore.list_runs(tmp_path)
    assert (run.config.reweight.kde_scale, run.config.reweight.kde_smooth) == (0.5, True)
