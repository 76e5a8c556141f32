"""Sweeps: queue a grid of runs (a shipped spec or one built here), follow it, read its results."""
import streamlit as st

from ddapp import examples, sweeps, ui
from ddcore.config import DATASETS, METHODS, PRESETS
from ddcore.data import DATASET_SPECS
from ddcore.errors import DDError
from ddcore.sweeps import results, store
from ddcore.sweeps.backends import LocalBackend, run_sweep
from ddcore.sweeps.spec import expand, load_spec, shipped_specs

ui.warm_worker()
root = ui.runs_root()
st.title("Sweeps")
st.markdown(
    "A **sweep** runs one setting per combination of the values you list (datasets, conflict ratios, "
    "IPCs, methods, with and without reweighting, the full-data baseline) and seeds, then tabulates "
    "mean ± std over the seeds. Every cell is an ordinary run (it shows on the other pages too), run "
    "one at a time by the background worker. Submitting a sweep again skips the cells already done "
    "and re-queues the failed or cancelled ones. On the command line, `python -m ddcore sweep run "
    "SPEC --backend ray` runs the same specs on a Ray cluster."
)

st.subheader("Start a sweep")
g = sweeps.GridForm()
spec, submit = None, False
source = st.radio("Cells from", ("a shipped spec", "a grid built here"), horizontal=True, key="sweep_source")
if source == "a shipped spec":
    path = st.selectbox("Spec", shipped_specs(), format_func=lambda p: p.stem, key="sweep_spec")
    try:
        spec = load_spec(path)
        cells = expand(spec)
    except DDError as exc:
        st.error(str(exc))
        spec = None
    else:
        st.markdown(spec.description)
        st.caption(f"{len(cells)} cells · preset `{spec.preset}` · {spec.estimate}")
        with st.expander("The spec file"):
            st.code(path.read_text(), language="toml")
    submit = st.button("Run this sweep", type="primary", disabled=spec is None)
else:
    with st.form("sweep_grid"):
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("Sweep name", value=g.name, help="Letters, digits, '.', '_' or '-'; names the cells.")
        preset_name = c2.selectbox("Preset", PRESETS, index=PRESETS.index(g.preset))
        seeds = c3.text_input("Seeds", value=g.seeds, help="Comma-separated, e.g. 0, 1, 2")
        c4, c5, c6 = st.columns(3)
        methods = c4.multiselect("Methods", METHODS, default=list(g.methods), format_func=str.upper)
        datasets = c5.multiselect("Datasets", DATASETS, default=list(g.datasets),
                                  format_func=lambda n: DATASET_SPECS[n].title)
        variants = c6.multiselect("Runs", tuple(sweeps.VARIANT_AXES), default=list(g.variants),
                                  help="Vanilla and reweighted distillation; the full-data baseline once per "
                                       "data setting.")
        c7, c8 = st.columns(2)
        ratios = c7.text_input("Bias-conflicting samples (%)", value=g.ratios,
                               help="Comma-separated, e.g. 0.5, 1, 2, 5")
        ipcs = c8.text_input("Images per class (IPC)", value=g.ipcs, help="Comma-separated, e.g. 1, 10, 50")
        submit = st.form_submit_button("Run this grid", type="primary")
    if submit:
        try:
            spec = sweeps.grid_spec(sweeps.GridForm(name, preset_name, tuple(methods), tuple(datasets), ratios, ipcs,
                                                    tuple(variants), seeds))
        except DDError as exc:
            st.error(str(exc))
if submit and spec is not None:
    try:
        launch = run_sweep(root, spec, LocalBackend())
    except DDError as exc:
        st.error(str(exc))
    else:
        st.success(f"Sweep `{spec.name}`: queued {launch.queued} cell(s); {launch.done} already done, "
                   f"{launch.active} already queued or running.")
        st.session_state["sweep_pick"] = spec.name


def show_results(long: results.Table, name: str) -> None:
    """The tables, plots and downloads of a sweep's long table (its done cells)."""
    agg = results.aggregate(long)
    st.subheader("Results")
    st.caption("Unbiased, aligned and conflicting test accuracy and the bias-conflicting samples' share of the "
               "weight (all in %), mean ± sample std over the seeds done; sigma_used is the KDE bandwidth the runs "
               "used.")
    st.dataframe(sweeps.frame(results.summary(agg)), hide_index=True, key="sweep_summary")
    for i, fig in enumerate(sweeps.figures(sweeps.frame(agg))):
        st.plotly_chart(fig, key=f"sweep_plot_{i}")
    d1, d2, d3 = st.columns(3)
    d1.download_button("Download the table (CSV)", agg.to_csv(), f"{name}-summary.csv", "text/csv")
    d2.download_button("Download every cell (CSV)", long.to_csv(), f"{name}-cells.csv", "text/csv")
    d3.download_button("Download the table (markdown)", results.summary(agg).to_markdown(), f"{name}-summary.md",
                       "text/markdown")
    with st.expander("Every cell"):
        st.dataframe(sweeps.frame(long), hide_index=True, key="sweep_cells")


st.subheader("Sweeps in this folder")
names = store.sweep_names(root)
example = examples.sweep()
choices = names + ([example.name] if example else [])
if not choices:
    st.info("No sweep here yet. Start one above; its cells and results appear here.")
    st.stop()
if not names:
    st.info("No sweep in this runs folder yet: start one above. Until then, here is the example that ships "
            "with ddbias.")
if st.session_state.get("sweep_pick") not in choices:
    st.session_state["sweep_pick"] = choices[0]
picked = st.selectbox("Sweep", choices, key="sweep_pick")
if example and picked == example.name:
    st.markdown(f"**Example (shipped, read-only):** every cell of the shipped spec `{examples.SWEEP}` "
                f"(choose it above to see what it runs, or to run it here yourself).")
    st.caption(example.made)
    show_results(example.cells, examples.SWEEP)
    st.stop()
cells = store.sweep_cells(root, picked)
states = tuple(c.state for c in cells)


# Poll only while cells are in flight; when a state changes, the whole page reruns so the tables
# and plots below catch up.
@st.fragment(run_every=ui.POLL_SECONDS if any(s in ("queued", "running") for s in states) else None)
def progress() -> None:
    now = store.sweep_cells(root, picked)
    if tuple(c.state for c in now) != states:
        st.rerun(scope="app")
    counts = store.state_counts(now)
    st.markdown(f"**{len(now)} cells:** " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    st.dataframe(sweeps.progress_matrix(now).style.map(sweeps.state_style), key="sweep_matrix")
    if counts.get("queued") or counts.get("running"):
        if st.button("Cancel the sweep", help="Queued cells are cancelled at once, the running one at its next check."):
            st.toast(f"Asked {len(store.cancel(root, picked))} cell(s) to stop")
            st.rerun(scope="app")


progress()

failed = [c for c in cells if c.state == "failed"]
if failed:
    st.error(f"{len(failed)} cell(s) failed, e.g. `{failed[0].name}`: {failed[0].error or failed[0].status.message}")
if not any(c.state == "done" for c in cells):
    st.info("No cell has finished yet; the results appear here as they do.")
    st.stop()
show_results(results.long_table(cells), picked)
