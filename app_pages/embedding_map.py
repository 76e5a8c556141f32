"""Embedding map: where the density estimate finds rare samples, how much weight they get, and
where the synthetic images land."""
import numpy as np
import streamlit as st

from ddapp import cache, figures, images, runs, ui
from ddcore.errors import DDError

MAX_SHOWN = 60

st.title("Embedding map")
done = runs.finished_distill(ui.list_runs())
if not done:
    st.info("No finished distillation run yet. Start one on the Distill page.")
    st.stop()

run = ui.pick_run("Run", done, key="map_run")
try:
    emb = cache.embeddings(run.path)  # the map record carries the names and thumbnails it shows
except DDError as exc:
    st.error(str(exc))
    st.stop()
naming, attribute = emb.naming, emb.bias_attribute

left, right = st.columns([4, 1])
mode = left.radio("Colour by", figures.COLOUR_MODES, horizontal=True, key="map_colour")
show_syn = right.checkbox("Synthetic images", value=True, help="Outlined diamonds, placed among their nearest real samples.")
fig = figures.embedding_map(emb, mode, show_syn)
# the key holds the run and colouring: a selection belongs to one figure's traces
event = st.plotly_chart(fig, key=f"map:{run.name}:{mode}:{show_syn}", on_select="rerun", selection_mode=("box", "lasso"))
st.caption(
    f"2-D UMAP of {len(emb.real_map):,} real training samples. Density computed on: {emb.density_space}. "
    "Weight ×1 is what every sample gets without reweighting. Drag a box or lasso to see the selected images."
)

real_rows, syn_rows = figures.selected_rows(event.selection.points, fig)
rel_weight = figures.relative_weight(emb)


def gallery(rows: np.ndarray, per_row: int) -> None:
    captions = [
        f"{figures.sample_text(naming, attribute, emb.real_label[i], emb.real_bias[i])} · "
        f"log p {emb.real_log_density[i]:.1f} · w ×{rel_weight[i]:.2f}"
        for i in rows
    ]
    if emb.real_thumbs is None:
        st.caption("This run was made before maps kept thumbnails of the real images; run it again to see them.")
        st.markdown("\n".join(f"- {c}" for c in captions))
        return
    ui.gallery([images.enlarge(p, 3) for p in emb.real_thumbs[rows]], captions, per_row)


if len(real_rows):
    real_rows = real_rows[np.argsort(emb.real_log_density[real_rows], kind="stable")]  # rarest first
    conflicting = float(np.mean(emb.conflicting()[real_rows]))
    st.subheader(f"{len(real_rows)} selected real samples")
    st.caption(
        f"{conflicting:.0%} bias-conflicting · mean weight ×{rel_weight[real_rows].mean():.2f}"
        + (f" · showing the {MAX_SHOWN} rarest" if len(real_rows) > MAX_SHOWN else " · rarest first")
    )
    gallery(real_rows[:MAX_SHOWN], per_row=8)

st.subheader("A synthetic image and its nearest real samples")
syn_labels = emb.syn_label
default = int(syn_rows[0]) if len(syn_rows) else 0
j = st.selectbox(
    "Synthetic image", range(len(syn_labels)), index=default,
    format_func=lambda k: f"#{k} · class {naming.classes[syn_labels[k]]}",
    help="Selecting diamonds in the map also picks one here.",
)
big, near = st.columns([1, 3])
try:
    syn_images, _ = cache.synthetic(run.path)
except DDError as exc:
    big.error(str(exc))
else:
    big.image(images.enlarge(syn_images[j], images.fit_scale(syn_images.shape[2], target_px=224, max_scale=8)),
              caption=f"synthetic #{j} · class {naming.classes[syn_labels[j]]}")
with near:
    st.caption("Nearest real samples in the surrogate's embedding")
    gallery(emb.syn_neighbors[j], per_row=5)
