"""Streamlit pieces shared by the pages: the sidebar, the runs root, run pickers, the pages that show a
run's results, the jobs panel, the data picker."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import streamlit as st
from PIL import Image

from ddcore import jobs, runstore
from ddcore.config import DATASETS, SOURCES
from ddcore.data import DATASET_SPECS
from ddcore.errors import DDError
from ddcore.runstore import RunInfo

from . import examples, progress
from .forms import DataForm
from .runs import active, as_pair, default_comparison, is_finished, label

INTRO = (
    "**Dataset distillation** squeezes a training set into a few synthetic images per class. "
    "When the data is *biased* — here most digits of a class share one colour and only a few "
    "*bias-conflicting* digits have another — distillation amplifies the bias: a network trained "
    "on the synthetic images learns colour, not shape. The repair (Cui et al., ICML 2024) trains a "
    "surrogate encoder, estimates each real sample's density in its embedding with a kernel density "
    "estimate, and gives rare (low-density) samples more weight while distilling. Explore the bias, "
    "run vanilla and reweighted distillation side by side, then see where the weight went and what "
    "it did to accuracy."
)


def sidebar() -> None:
    """Title, the newcomer paragraph and the runs folder, on every page."""
    with st.sidebar:
        st.markdown("### Bias in dataset distillation")
        st.markdown(INTRO)
        st.text_input(
            "Runs folder",
            value=os.environ.get("DDCORE_RUNS", "runs"),
            key="runs_root",
            help="Where run folders live (default: $DDCORE_RUNS, else ./runs): a folder ddcore made, or an empty "
                 "or new one. Every page reads it.",
        )


def _checked_root() -> Path:
    """The sidebar's runs folder (`~` expanded), if ddcore may keep runs there; DDError otherwise
    (a foreign folder is never listed, written or deleted in)."""
    typed = (st.session_state.get("runs_root") or "").strip()  # blanks alone mean the default
    root = runstore.check_root(typed or os.environ.get("DDCORE_RUNS", "runs"))
    if runstore.is_shipped(root):  # the examples: shown on every page already, and read-only
        raise DDError(f"{root} holds the example runs that ship with ddbias (every page shows them already); "
                      "choose another folder for your own runs")
    return root


def runs_root() -> Path:
    """`_checked_root()`, or the page says in one line why the folder cannot be used, and stops."""
    try:
        return _checked_root()
    except DDError as exc:
        st.error(str(exc))
        st.stop()


def _watch() -> runstore.RunsWatch:
    """This session's incremental listing of the runs root."""
    root = runs_root()
    watch = st.session_state.get("_runs_watch")
    if watch is None or watch.root != root:
        watch = st.session_state["_runs_watch"] = runstore.RunsWatch(root)
    return watch


def list_runs() -> list[RunInfo]:
    """Every run under the runs folder, re-reading only the runs whose files changed since this
    session last looked. Queued runs whose worker died get a new one here (every page lists)."""
    watch = _watch()
    runs, _ = watch.refresh()
    try:
        jobs.supervise(watch.root, runs)
    except DDError as exc:
        st.error(str(exc))
    return runs


def own_runs_quietly() -> list[RunInfo]:
    """`list_runs()` for a page that stands on the examples: no runs, and no message, where the
    runs folder cannot be used (the pages that need it say why)."""
    try:
        _checked_root()
    except DDError:
        return []
    return list_runs()


def runs_with_examples() -> list[RunInfo]:
    """The runs folder's runs, then the example runs shipped with the code (ddapp.examples):
    what the pages that show results choose from, so they have something to show from the start."""
    return list_runs() + examples.runs()


def warm_worker() -> None:
    """Start the background worker once per session and runs folder, so its torch/UMAP start-up
    is paid while the user fills in the form rather than after they click."""
    root = runs_root()
    key = f"_worker_warmed:{root}"
    if key not in st.session_state:
        try:
            jobs.ensure_worker(root)
        except DDError as exc:  # a folder we may not write in: said once here, and again on submit
            st.error(str(exc))
        st.session_state[key] = True


NO_THUMBNAILS = "This run was made before maps kept thumbnails of the real images; run it again to see them."


def gallery(pictures: Sequence[Image.Image], captions: Sequence[str], per_row: int) -> None:
    """Images in a grid of `per_row` columns, each with its caption wrapped under it (st.image
    with a list lays out captions as wide as the text, not the image)."""
    for start in range(0, len(pictures), per_row):
        for column, picture, caption in zip(
            st.columns(per_row), pictures[start : start + per_row], captions[start : start + per_row]
        ):
            column.image(picture, caption=caption, width="stretch")


def pick_run(text: str, runs: Sequence[RunInfo], key: str, preferred: str | None = None) -> RunInfo:
    """A run selectbox whose choice survives page switches (Streamlit drops a widget's state when
    its page is left, so the choice is mirrored in a plain session key). `preferred` is used the
    first time, and `focus(key, name)` from another page overrides it."""
    names = [r.name for r in runs]
    keep = f"_keep:{key}"
    shown = st.session_state.get(key) or st.session_state.get(keep)  # what this page showed last
    if st.session_state.get(key) not in names:
        remembered = st.session_state.get(keep)
        st.session_state[key] = remembered if remembered in names else (preferred if preferred in names else names[0])
    by_name = {r.name: r for r in runs}
    name = st.selectbox(text, names, key=key, format_func=lambda n: label(by_name[n]))
    st.session_state[keep] = name
    if shown is not None and shown not in names:  # deleted (or damaged) since: say so, not switch silently
        st.info(f"Run `{shown}` is no longer here (deleted, or no longer readable); showing another run.")
    return by_name[name]


def keep_choices() -> None:
    """Save the KEPT widgets' and the data pickers' values again, before the page runs, so that
    leaving their page keeps them (Streamlit's documented way; a page's own state stays as it is)."""
    state = st.session_state
    picked = tuple(f"{p}_{f}" for p in PICKERS for f in PICKED)
    for key in list(state.keys()):
        if key in KEPT or key in picked or key.startswith(tuple(f"{p}_files_" for p in PICKERS)):
            state[key] = state[key]


def forget(key: str) -> None:
    """Let `pick_run(..., key)` choose afresh (after the page itself deleted the run it showed)."""
    st.session_state.pop(key, None)
    st.session_state.pop(f"_keep:{key}", None)


def focus(key: str, name: str) -> None:
    """Make `pick_run(..., key)` open on run `name` next time (used before st.switch_page)."""
    st.session_state[f"_keep:{key}"] = name
    st.session_state.pop(key, None)


COMPARED = "compare_runs"  # the Compare page's multiselect
# widgets whose choice outlives a visit to another page: Streamlit drops a widget's state once a
# run ends without it, unless the run saves its key again (`keep_choices`). Only widgets whose
# options never change: a kept value must stay one of them (runs come and go: `pick_run` and
# `compared` keep those choices themselves).
KEPT = ("distill_preset", "distill_method", "map_colour", "map_synthetic", "map_contours", "story_from",
        "sweep_source", "sweep_spec")
PICKERS = ("explore", "distill")  # every data_picker(key)
PICKED = ("dataset", "source", "own", "percent", "severity", "download")  # and its f"{key}_files_*" text fields
# the pages that show a finished distill run: (button, page)
RESULT_VIEWS = {"map": ("Open map", "app_pages/embedding_map.py"),
                "images": ("Open images", "app_pages/synthetic_images.py"),
                "compare": ("Compare", "app_pages/compare.py")}


def open_result(view: str, run: RunInfo, runs: Sequence[RunInfo]) -> None:
    """Switch to a RESULT_VIEWS page showing finished distill `run`: its embedding map, its
    synthetic images beside its pair's, or the Compare page on its pair and references."""
    if view == "map":
        focus("map_run", run.name)
    elif view == "images":
        for key, shown in zip(("syn_left", "syn_right"), as_pair(runs, run)):
            if shown is not None:
                focus(key, shown.name)
    else:
        st.session_state[f"_keep:{COMPARED}"] = default_comparison(runs, around=run)
        st.session_state.pop(COMPARED, None)
    st.switch_page(RESULT_VIEWS[view][1])


def compared(names: Sequence[str], default: Callable[[], list[str]]) -> None:
    """Prepare the Compare page's multiselect (key COMPARED, among `names`): what `open_result`
    asked for, else what it showed last, on this visit or an earlier one (mirrored in a plain key,
    as `pick_run` does; runs deleted since dropped), else `default()`."""
    state, mirror = st.session_state, f"_shown:{COMPARED}"
    asked = state.pop(f"_keep:{COMPARED}", None)
    shown = next((v for v in (asked, state.get(COMPARED), state.get(mirror)) if v is not None), None)
    state[COMPARED] = state[mirror] = [n for n in shown if n in names] if shown is not None else default()


# A tick stats a few files and redraws a few rows, but the browser re-renders the page each time:
# every 2 s it took 10% of a core, and on 2 cores the runs' two-thread loops lost more than that
# (each stall of one thread holds up the other); 5 s halved the browser's share (bench/RESULTS.md 16)
POLL_SECONDS = 5.0


def poll_interval(runs: Sequence[RunInfo]) -> float | None:
    """How often the jobs panel refreshes itself: only while a job is queued or running (nothing
    else changes on its own), never when all are finished."""
    return POLL_SECONDS if active(runs) else None


def jobs_panel(runs: Sequence[RunInfo], recent: int = 4) -> None:
    """Queued and running jobs with live progress and a cancel button, then the latest finished
    ones. Everything is read from the run folders, so a browser refresh re-attaches."""
    running = {r.name for r in active(runs)}

    # When the set of active jobs changes (one ended, another session queued one) the whole page
    # reruns, so its other parts and the polling interval catch up.
    @st.fragment(run_every=poll_interval(runs))
    def panel() -> None:
        current = list_runs()
        now_active = {r.name for r in active(current)}
        if now_active != running:
            st.rerun(scope="app")
        st.subheader("Jobs")
        shown = [r for r in current if r.name in now_active]
        shown += [r for r in current if r.name not in now_active and r.config is not None][:recent]
        if not shown:
            st.caption("No jobs yet. Submitted runs appear here with their progress.")
        for run in shown:
            _job_row(run, current)

    panel()


def _job_row(run: RunInfo, runs: Sequence[RunInfo]) -> None:
    s = run.status
    with st.container(border=True):
        st.markdown(f"**{label(run, with_name=False)}**  \n`{run.name}`")
        if s.state in ("queued", "running"):
            left, right = st.columns([5, 1])
            left.progress(min(max(float(s.progress or 0.0), 0.0), 1.0), text=progress.describe(s))
            if right.button("Cancel", key=f"cancel:{run.name}"):
                try:
                    jobs.cancel(run.path)
                except DDError as exc:  # a read-only runs folder
                    st.error(str(exc))
                else:
                    st.rerun(scope="fragment")
        elif run.error:
            st.error(run.error)
        elif s.state == "failed":
            st.error(f"Failed: {s.message or 'no message recorded'}")
        elif s.state == "cancelled":
            st.warning(f"Cancelled. {s.message}")
        else:
            acc = run.metrics.test_acc_unbiased if run.metrics else None
            extra = f" · unbiased accuracy {acc:.1f}%" if acc is not None else ""
            st.success(progress.describe(s) + extra)
            if s.warning:
                st.warning(s.warning)
            if is_finished(run) and run.config.kind == "distill":  # two spare columns: buttons keep their width
                for column, (view, (text, _)) in zip(st.columns(len(RESULT_VIEWS) + 2), RESULT_VIEWS.items()):
                    if column.button(text, key=f"{view}:{run.name}"):
                        open_result(view, run, runs)


SOURCE_NAMES = {"bundled": "bundled sample (offline)", "files": "the dataset's files"}
DEFAULT_ROOT = "../shared/data"  # where this repository's machines keep full MNIST; any folder works
SEVERITY_HELP = ("Coloured MNIST variants: colour jitter (5 = the purest colour, the strongest bias). Corrupted "
                 "CIFAR-10: the corruption level (5 = the LfF benchmark's 'severity 4' folders). 'benchmark' is the "
                 "level the published benchmarks use: 4 for the coloured MNIST variants, 5 for CIFAR-10.")


def data_picker(key: str) -> DataForm:
    """The dataset, its source, where its files are (and whether torchvision may download them),
    the share of bias-conflicting samples and the severity. Widgets outside any form, so that
    choosing a dataset at once shows the fields it needs. Their defaults live in the session
    state, where `carry_data` can put another page's choice instead."""
    state = st.session_state
    carried: DataForm | None = state.pop(f"_carry:{key}", None)
    if carried is not None:
        state.update({f"{key}_dataset": carried.dataset, f"{key}_source": carried.source,
                      f"{key}_own": carried.as_distributed, f"{key}_percent": carried.conflict_percent})
        if carried.severity is None:  # a selectbox set to None shows no choice: its default is None here
            state.pop(f"{key}_severity", None)
        else:
            state[f"{key}_severity"] = carried.severity
        if carried.source == "files":
            path_option = DATASET_SPECS[carried.dataset].path_option
            state.update({f"{key}_files_{path_option}": carried.files, f"{key}_download": carried.download})
    c1, c2, c3, c4 = st.columns(4)
    dataset = c1.selectbox("Dataset", DATASETS, format_func=lambda n: DATASET_SPECS[n].title, key=f"{key}_dataset")
    spec = DATASET_SPECS[dataset]
    source = c2.selectbox("Source", SOURCES if spec.bundled else ("files",), format_func=SOURCE_NAMES.get,
                          key=f"{key}_source", help=None if spec.bundled else f"{spec.title} has no bundled sample.")
    own = False
    if spec.bias_from_files:
        state.setdefault(f"{key}_own", True)
        own = c3.checkbox("As the files come", key=f"{key}_own",
                          help="Keep the data's own share of bias-conflicting samples; untick to subsample them "
                               "to a percentage.")
    state.setdefault(f"{key}_percent", 5.0)
    percent = c3.number_input("Bias-conflicting samples (%)", min_value=0.0, max_value=100.0, step=0.5, disabled=own,
                              key=f"{key}_percent")
    severity = None
    if not spec.bias_from_files:
        severity = c4.selectbox("Severity", (None, 1, 2, 3, 4, 5), key=f"{key}_severity", help=SEVERITY_HELP,
                                format_func=lambda v: "benchmark" if v is None else str(v))
    files, download = "", False
    if source == "files":
        csv = spec.path_option == "--csv-path"
        state.setdefault(f"{key}_files_{spec.path_option}", "" if csv else DEFAULT_ROOT)
        files = st.text_input("CSV file (path,label,bias[,split])" if csv else "Data folder (--root)",
                              key=f"{key}_files_{spec.path_option}")
        if spec.downloadable:
            download = st.checkbox("Download the files there if missing (torchvision; needs internet)",
                                   key=f"{key}_download")
    return DataForm(dataset, source, files, download, percent, own, severity)


def carry_data(choice: DataForm, key: str, page: str) -> None:
    """Open `page` with its `data_picker(key)` set to `choice` (the Bias explorer's data, say)."""
    st.session_state[f"_carry:{key}"] = choice
    st.switch_page(page)

