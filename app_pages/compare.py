"""Compare: accuracies of chosen runs and the full-data baseline; where the weight went."""
import streamlit as st

from ddapp import figures, metrics, runs, ui
from ddcore import jobs
from ddcore.errors import DDError

st.title("Compare")
scored = runs.with_metrics(ui.list_runs())
if not scored:
    st.info("No finished run yet. Start a vanilla + reweighted pair on the Distill page.")
    st.stop()

by_name = {r.name: r for r in scored}
chosen = st.multiselect(
    "Runs", list(by_name), default=runs.default_comparison(scored), format_func=lambda n: runs.label(by_name[n])
)
picked = [by_name[n] for n in chosen]
if not picked:
    st.info("Choose one or more runs.")
    st.stop()

st.markdown(
    "**Unbiased** accuracy is the headline (test colours are uniform). **Aligned** vs **conflicting** "
    "splits it: a model that learned colour scores high on aligned and low on conflicting samples. "
    "The full-data baseline trains on the whole biased training set, so the gap to it is what "
    "distillation lost or amplified."
)
table = metrics.accuracy_table(picked)
st.plotly_chart(figures.accuracy_chart(table), key="accuracy_chart")
st.dataframe(metrics.display_table(table), hide_index=True)

distilled = [r for r in picked if r.config.kind == "distill"]
if len({r.config.distill.method for r in distilled}) > 1:
    st.subheader("Methods side by side")
    st.caption("Unbiased test accuracy of each method's vanilla and reweighted run among the chosen ones.")
    st.dataframe(metrics.method_table(distilled), hide_index=True, key="method_table")
if distilled:
    st.subheader("Weight of bias-conflicting samples")
    st.caption("Share of the distillation weight that bias-conflicting samples receive, next to their share of the count.")
    st.plotly_chart(figures.share_chart(metrics.accuracy_table(distilled)), key="share_chart")
    if not any(r.config.kind == "baseline" for r in picked) and runs.matching_baseline(scored, distilled[0]) is None:
        if st.button("Queue a full-data baseline for this data"):
            try:
                name = jobs.submit(ui.runs_root(), distilled[0].config.with_overrides(kind="baseline")).name
                st.success(f"Queued `{name}`; follow it on the Distill page.")
            except DDError as exc:
                st.error(str(exc))
