"""Runs: every run folder with its status, config and metrics; open, export, delete."""
import streamlit as st

from ddapp import examples, progress, runs, ui
from ddcore import runstore
from ddcore.errors import DDError

st.title("Runs")
own = ui.list_runs()
shipped = examples.runs()
all_runs = own + shipped
st.caption(f"Runs folder: `{ui.runs_root().resolve()}`")


def listing(rows) -> None:
    st.dataframe(
        runs.listing_table(rows),
        hide_index=True,
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
            "conflicting": st.column_config.NumberColumn("conflicting", format="percent"),
            "unbiased acc": st.column_config.NumberColumn("unbiased acc", format="%.1f%%"),
            "conflicting acc": st.column_config.NumberColumn("conflicting acc", format="%.1f%%"),
        },
    )


if own:
    listing(own)
else:
    st.markdown("No runs of your own in this folder yet: start one on the **Distill** page.")
if shipped:
    with st.expander("Example runs shipped with ddbias (read-only)", expanded=not own):
        listing(shipped)
if not all_runs:
    st.stop()

run = ui.pick_run("Run", all_runs, key="runs_run")
s = run.status
if run.error:
    st.error(run.error)
elif s.state == "failed":
    st.error(f"Failed: {s.message or 'no message recorded'}")
else:
    st.markdown(f"**{progress.describe(s)}**" + (f" — {s.message}" if s.message else ""))
    if s.warning:
        st.warning(s.warning)
try:
    runstore.check_run_folder(run.path, "exported", shipped_ok=True)
    not_exportable = None
except DDError as exc:  # a symlink or a folder with foreign files: ddcore does not package it
    not_exportable = str(exc)

is_done_distill = runs.is_finished(run) and run.config.kind == "distill"
*views, export, delete = st.columns(len(ui.RESULT_VIEWS) + 2)
for column, (view, (text, _)) in zip(views, ui.RESULT_VIEWS.items()):
    if column.button(text, disabled=not is_done_distill):
        ui.open_result(view, run, all_runs)
export.download_button(
    "Export zip", lambda: runstore.export_run(run.path), f"{runs.file_stem(run)}.zip", "application/zip",
    key=f"export:{run.name}",
    disabled=not_exportable is not None, help=not_exportable,
)
busy = s.state == "running" or (s.state == "queued" and run.error is None)
shipped_run = examples.is_example(run)
why = "An example shipped with ddbias stays." if shipped_run else "Cancel a queued or running job first."
if delete.button("Delete…", disabled=busy or shipped_run, help=why):
    st.session_state["confirm_delete"] = run.name

if st.session_state.get("confirm_delete") == run.name:
    st.warning(f"Delete `{run.name}` and all its files? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete", type="primary"):
        st.session_state.pop("confirm_delete")
        try:
            runstore.delete_run(run.path)
        except DDError as exc:
            st.error(str(exc))
        else:
            ui.forget("runs_run")
            st.toast(f"Deleted {run.name}")
            st.rerun()
    if no.button("Keep it"):
        st.session_state.pop("confirm_delete")
        st.rerun()

config_tab, metrics_tab, log_tab = st.tabs(["Config", "Metrics", "Log"])
config_tab.json(run.config.to_dict() if run.config else {})
metrics_tab.json(run.metrics.to_json() if run.metrics else {})
log_tab.code("\n".join(runstore.read_log(run.path, max_lines=100)) or "(empty log)", language=None)

try:
    cache = runstore.cache_usage(ui.runs_root())
except DDError as exc:  # a file or symlink where the cache folder goes: the runs are still shown
    st.warning(str(exc))
    cache = []
if cache:
    size = sum(e.bytes for e in cache) / 2**20
    c1, c2 = st.columns([3, 1])
    c1.caption(f"Shared cache: {size:.1f} MiB in {len(cache)} entries (surrogates and MTT experts that later "
               "runs reuse). Clearing it loses no result; runs recompute what they need.")
    if c2.button("Clear cache", disabled=any(r.status.state == "running" for r in all_runs),
                 help="Wait for the running job to finish first."):
        try:
            st.toast(f"Cleared {runstore.clear_cache(ui.runs_root()) / 2**20:.1f} MiB")
        except DDError as exc:  # a job started since the page was drawn
            st.error(str(exc))
        else:
            st.rerun()
