"""Compare: accuracies and group metrics of chosen runs next to the full-data baseline, the oracle
and a random subset; the per-group accuracy matrices; where the weight went."""
import streamlit as st

from ddapp import figures, metrics, runs, ui
from ddcore.errors import DDError

st.title("Compare")
everything = ui.runs_with_examples()
scored = runs.with_metrics(everything)
if not scored:  # only when the shipped examples are missing too
    st.info("No finished run yet. Start a vanilla + reweighted pair on the Distill page.")
    st.stop()

by_name = {r.name: r for r in scored}
ui.compared(list(by_name), lambda: runs.default_comparison(scored))
chosen = st.multiselect("Runs", list(by_name), key=ui.COMPARED, format_func=lambda n: runs.label(by_name[n]))
picked = [by_name[n] for n in chosen]
if not picked:
    st.info("Choose one or more runs.")
    st.stop()

st.markdown(
    "**Unbiased** accuracy is the headline (test colours are uniform). **Aligned** vs **conflicting** "
    "splits it: a model that learned colour scores high on aligned and low on conflicting samples. "
    "**Worst group** is the lowest accuracy over the (class, bias value) groups; **DEO-M** and **DEO-A** are the "
    "largest and the mean gap between a class's best and worst group (lower is fairer). The **full-data** "
    "baseline trains on the whole biased training set, the **oracle** balances the groups using the bias labels "
    "(what label-free KDE weighting aims at), and a **random subset** keeps IPC real images per class without "
    "distilling."
)
table = metrics.accuracy_table(picked)
st.plotly_chart(figures.accuracy_chart(table), key="accuracy_chart")
st.dataframe(metrics.display_table(table), hide_index=True)
d1, d2 = st.columns(2)
d1.download_button("Metrics (CSV)", metrics.metrics_csv(picked), "metrics.csv", "text/csv",
                   help="One row per run: what it is and every metric it recorded")
d2.download_button("Group accuracy (CSV)", metrics.groups_csv(picked), "group-accuracy.csv", "text/csv",
                   help="run, class, bias value, accuracy %")

matrices = [(r, found) for r in picked if (found := metrics.group_matrix(r)) is not None]
if matrices:
    st.subheader("Accuracy per (class, bias value) group")
    st.caption("Test accuracy of each group, mean over the evaluation models; the outlined cell of each row is the "
               "class's bias-aligned value. A network that learned the bias is green on the outline and red elsewhere.")
    per_row = 3
    for start in range(0, len(matrices), per_row):
        for column, (run, (frame, aligned)) in zip(st.columns(per_row), matrices[start:start + per_row]):
            column.plotly_chart(figures.group_heatmap(frame, runs.label(run, with_name=False), aligned),
                                key=f"groups:{run.name}")

distilled = [r for r in picked if r.config.kind == "distill"]
if len({r.config.distill.method for r in distilled}) > 1:
    st.subheader("Methods side by side")
    st.caption("Unbiased test accuracy of each method's vanilla, reweighted and oracle run among the chosen ones.")
    st.dataframe(metrics.method_table(distilled), hide_index=True, key="method_table")
if distilled:
    st.subheader("Weight of bias-conflicting samples")
    st.caption("Share of the distillation weight that bias-conflicting samples receive, next to their share of the count.")
    st.plotly_chart(figures.share_chart(metrics.accuracy_table(distilled)), key="share_chart")
    missing = runs.missing_references(everything, distilled[0])
    if missing:
        st.caption(f"References not run yet for {runs.label(distilled[0], with_name=False)}:")
    buttons = {"full-data baseline": "Queue a full-data baseline for this data", "oracle": "Queue the oracle run",
               "random subset": "Queue a random subset"}
    for column, (name, cfg) in zip(st.columns(max(len(missing), 1)), missing.items()):
        twin = runs.pending_twin(everything, cfg)
        if twin is not None:  # queued by an earlier click: a second one would only repeat it
            column.caption(f"The {name} is queued (`{twin.name}`); follow it on the Distill page.")
        elif column.button(buttons[name], key=f"queue:{name}"):
            try:
                queued, already = runs.queue_new(ui.runs_root(), ui.list_runs(), [cfg])
                st.success(f"Queued `{(queued or already)[0]}`; follow it on the Distill page.")
            except DDError as exc:
                st.error(str(exc))
