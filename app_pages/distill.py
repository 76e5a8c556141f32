"""Distill: configure a run, queue vanilla + reweighted (or one run), follow the jobs."""
import streamlit as st

from ddapp import forms, runs, ui
from ddcore.config import (
    DEBIAS_METHODS,
    DEBIAS_NAMES,
    DEVICES,
    FILE_PRESETS,
    METHODS,
    PRESETS,
    SURROGATE_OBJECTIVES,
    field_help,
    preset,
)
from ddcore.errors import DDError

PRESET_HELP = (
    "smoke: seconds, for checking the pipeline · quick: a DM run in a few minutes on 2 CPU cores (DC, DSA and "
    "MTT take longer), on the bundled sample or full data · full: quick on the dataset's own files with the KDE "
    "weights smoothed (better on full MNIST, worse on the bundled sample) · paper: the reference protocol (DM "
    "20,000 iterations, DC/DSA 1,000) on the dataset's own files, never the bundled sample: a GPU job"
)

METHOD_HELP = (
    "DM: distribution matching (cheap iterations) · DC: gradient matching · DSA: gradient matching with "
    "Siamese augmentation · MTT: trajectory matching against expert networks trained on the (reweighted) "
    "real data first, cached and reused by later runs. An iteration of DC/DSA trains a fresh network in an "
    "inner loop and one of MTT unrolls many training steps, so the presets give them far fewer iterations."
)

EVAL_DEBIAS_HELP = (
    "Train the models that score the synthetic set with a debiasing method that needs no bias labels "
    "(the paper's Table 3: debiasing afterwards instead of during distillation). LfF trains a biased model "
    "beside each one and upweights the samples it fails on; JTT trains once, then again with its mistakes "
    "upsampled; SelecMix trains on mixes of contradicting pairs (same class and another bias, or the same bias "
    "and another class) picked by a biased contrastive encoder; SelecMix+L adds them to LfF. Hyperparameters: "
    "--gce-q, --lff-ema, --jtt-upweight, --jtt-id-steps (ddcore/debias.py)."
)
SURROGATE_DEBIAS_HELP = (
    "Train the surrogate whose embedding the density is estimated on with LfF, JTT or SelecMix (the paper's "
    "Table 4). All of them train a classifier: pick the cross-entropy surrogate objective with them."
)


def debias_full_name(method: str) -> str:
    return DEBIAS_NAMES[method].full


ui.warm_worker()
st.title("Distill")
st.markdown(
    "**Run vanilla + reweighted** queues two runs that differ only in the reweighting, the clearest "
    "way to see bias amplification and its repair. Jobs run in a background worker, one at a time; "
    "you can leave this page or refresh it, and progress is picked up again."
)

d = forms.DistillForm()
# outside the form so that picking a preset or a method refills IPC and iterations with its values
p1, p2, _ = st.columns([1, 1, 2])
st.session_state.setdefault("distill_preset", d.preset)
st.session_state.setdefault("distill_method", d.method)
preset_name = p1.selectbox("Preset", PRESETS, help=PRESET_HELP, key="distill_preset")
method = p2.selectbox("Method", METHODS, format_func=str.upper, help=METHOD_HELP, key="distill_method")
base = preset(preset_name, method)
data = ui.data_picker("distill")  # outside the form too: a dataset without a bundled sample needs a path field
if data.source == "files":
    st.caption(forms.files_help_for(data))
elif preset_name in FILE_PRESETS:
    st.info(f"The {preset_name} preset runs on the dataset's own files: pick **the dataset's files** as the "
            "Source above.")
with st.form("distill"):
    c1, c2, c3, c4 = st.columns(4)
    iterations = c1.number_input("Iterations", min_value=0, value=base.distill.iterations,
                                 step=100 if method == "dm" else 1, help=field_help("iterations"))
    ipc = c2.number_input("Images per class (IPC)", min_value=1, value=base.distill.ipc, help=field_help("ipc"))
    seed = c3.number_input("Seed", min_value=0, value=d.seed, help=field_help("seed"))
    device = c4.selectbox("Device", DEVICES, help=field_help("device"))
    c5, c6, c7, c8 = st.columns(4)
    sigma = c5.text_input("Kernel bandwidth σ", placeholder="adaptive",
                          help=field_help("kde_sigma").replace("none:", "blank:"))
    tau = c6.number_input("Temperature τ", min_value=0.0, value=d.tau, step=0.5, help=field_help("kde_tau"))
    surrogate = c7.selectbox("Surrogate objective", SURROGATE_OBJECTIVES, help=field_help("surrogate"))
    reweight = c8.checkbox("Reweight (single run)", value=d.reweight)
    with st.expander("Advanced"):
        a1, a2, a3 = st.columns(3)
        eval_debias = a1.selectbox("Debias the evaluation models", DEBIAS_METHODS, format_func=debias_full_name,
                                   help=EVAL_DEBIAS_HELP)
        surrogate_debias = a2.selectbox("Debias the surrogate", DEBIAS_METHODS, format_func=debias_full_name,
                                        help=SURROGATE_DEBIAS_HELP)
        scale = a3.number_input("Adaptive bandwidth scale", min_value=0.01, max_value=100.0, value=d.scale,
                                step=0.1, help=field_help("kde_scale"))
        smooth = a3.checkbox("Smooth the weights", value=base.reweight.kde_smooth, help=field_help("kde_smooth"))
    b1, b2 = st.columns([1, 3])
    both = b1.form_submit_button("Run vanilla + reweighted", type="primary")
    single = b2.form_submit_button("Run single")

if both or single:
    form = forms.DistillForm(
        preset=preset_name, data=data, method=method, ipc=int(ipc), reweight=reweight, sigma=sigma, tau=tau,
        scale=scale, smooth=smooth, surrogate=surrogate, iterations=int(iterations), seed=int(seed), device=device,
        eval_debias=eval_debias, surrogate_debias=surrogate_debias,
    )
    try:
        configs = forms.build_pair(form) if both else (forms.build_config(form),)
        queued, already = runs.queue_new(ui.runs_root(), ui.list_runs(), configs)
    except DDError as exc:
        st.error(str(exc))
    else:
        if queued:
            st.success("Queued " + ", ".join(f"`{n}`" for n in queued))
        if already:
            st.info("Already queued or running, so not queued again: " + ", ".join(f"`{n}`" for n in already))

ui.jobs_panel(ui.list_runs())
