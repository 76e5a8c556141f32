"""Embedding map: where the density estimate finds rare samples, how much weight they get, and
where the synthetic images land; a point's neighbours; selections and the map as files."""
import numpy as np
import streamlit as st

from ddapp import cache, exports, figures, images, runs, selection, ui
from ddapp.selection import Point
from ddcore.errors import DDError

MAX_SHOWN = 60
NEIGHBOURS = 8

st.title("Embedding map")
everything = ui.runs_with_examples()
done = runs.finished_distill(everything)
if not done:  # only when the shipped examples are missing too
    st.info("No finished distillation run yet. Start one on the Distill page.")
    st.stop()
_, newest_reweighted = runs.latest_pair(everything)
run = ui.pick_run("Run", done, key="map_run", preferred=newest_reweighted.name if newest_reweighted else None)
try:
    emb = cache.embeddings(run.path)  # the map record carries the names and thumbnails it shows
except DDError as exc:
    st.error(str(exc))
    st.stop()
naming, attribute = emb.naming, emb.bias_attribute
try:
    syn_images, _ = cache.synthetic(run.path)
    selection.check_synthetic(emb, syn_images, run.path)
    syn_thumbs, syn_error = selection.synthetic_thumbs(syn_images), None
except DDError as exc:  # the map is still worth showing
    syn_images = syn_thumbs = None
    syn_error = str(exc)
    st.error(syn_error)


def paired_with(other) -> figures.Paired | None:
    """The other run of `run`'s pair, to draw its synthetic images on this map, if it shares it."""
    if other is None:
        return None
    try:
        other_emb = cache.embeddings(other.path)
    except DDError:
        return None
    if not figures.same_real_map(emb, other_emb):
        return None
    return figures.Paired(runs.variant(run.config), runs.variant(other.config), other_emb)


paired = paired_with(runs.partner(done, run))
left, right = st.columns([3, 2])
mode = left.radio("Colour by", figures.COLOUR_MODES, horizontal=True, key="map_colour")
st.session_state.setdefault("map_synthetic", True)
st.session_state.setdefault("map_contours", True)
show_syn = right.checkbox("Synthetic images", key="map_synthetic",
                          help="Outlined diamonds, placed among their nearest real samples.")
show_pair = right.checkbox(
    f"and the {paired.other} ones" if paired else "and its pair's", key="map_pair", disabled=paired is None or not show_syn,
    help=(f"The {paired.other} run's synthetic images as dark diamonds on the same map: where vanilla "
          "distillation put its images, and where reweighting moved them." if paired else
          "No finished run pairs with this one on the same map (the same settings but the reweighting, "
          "and the same surrogate)."),
)
contours = right.checkbox("Density contours", key="map_contours",
                          help="Lines where each class's samples crowd on this 2-D map (20%, 50% and 80% of the "
                               "class's peak), in the class's colour.")
drawn_pair = paired if show_pair else None
fig = figures.embedding_map(emb, mode, show_syn, contours, paired=drawn_pair)
# the key holds the run and the drawing: a selection belongs to one figure's traces
event = st.plotly_chart(fig, key=f"map:{run.name}:{mode}:{show_syn}:{contours}:{drawn_pair is not None}",
                        on_select="rerun", selection_mode=("points", "box", "lasso"))
st.caption(
    f"2-D UMAP of {len(emb.real_map):,} real training samples. Density computed on: {emb.density_space}. "
    "Weight ×1 is what every sample gets without reweighting. Drag to zoom, click a point to see its nearest "
    "neighbours; to select many (the rest turn grey) and export them, pick the lasso or box tool at the top right."
)

real_rows, syn_rows = figures.selected_rows(event.selection.points, fig)
rel_weight = figures.relative_weight(emb)


def caption(i: int, short: bool = False) -> str:
    text = figures.sample_text(naming, attribute, emb.real_label[i], emb.real_bias[i])
    if short:  # under a neighbour, eight to a row
        return f"{text.removeprefix('class ')} · w ×{rel_weight[i]:.2f}"
    return f"{text} · log p {emb.real_log_density[i]:.1f} · w ×{rel_weight[i]:.2f}"


def gallery(rows: np.ndarray, per_row: int, short: bool = False) -> None:
    captions = [caption(i, short) for i in rows]
    if emb.real_thumbs is None:
        st.caption(ui.NO_THUMBNAILS)
        st.markdown("\n".join(f"- {c}" for c in captions))
        return
    ui.gallery([images.enlarge(p, 3) for p in emb.real_thumbs[rows]], captions, per_row)


if len(real_rows) + len(syn_rows) > 1:
    real_rows = real_rows[np.argsort(emb.real_log_density[real_rows], kind="stable")]  # rarest first
    also = f", {len(syn_rows)} synthetic images" if len(syn_rows) else ""
    st.subheader(f"{len(real_rows)} selected real samples{also}")
    if len(real_rows):
        conflicting = float(np.mean(emb.conflicting()[real_rows]))
        st.caption(
            f"{conflicting:.0%} bias-conflicting · mean weight ×{rel_weight[real_rows].mean():.2f}"
            + (f" · showing the {MAX_SHOWN} rarest" if len(real_rows) > MAX_SHOWN else " · rarest first")
        )
        gallery(real_rows[:MAX_SHOWN], per_row=8)
    table = selection.selection_table(emb, real_rows, syn_rows)
    grid = selection.selection_grid(emb, real_rows, syn_thumbs, syn_rows)
    c1, c2 = st.columns(2)
    stem = runs.file_stem(run)
    c1.download_button("Selection as CSV", selection.selection_csv(table), f"{stem}-selection.csv", "text/csv",
                       help="kind, index (training split or synthetic set), label, class, bias, bias value, "
                            "conflicting, log density, density, weight, weight x uniform")
    if grid is not None:
        c2.download_button("Selection as an image grid (PNG)", images.png_bytes(grid), f"{stem}-selection.png",
                           "image/png", help="The selected samples' thumbnails, rarest first, then synthetic images")

st.subheader("A point and its nearest neighbours")
point = selection.clicked(real_rows, syn_rows)
if point is None:
    j = st.selectbox(
        "Synthetic image", range(len(emb.syn_label)),
        format_func=lambda k: f"#{k} · class {naming.classes[emb.syn_label[k]]}",
        help="Or click any point, real or synthetic, on the map.",
    )
    point = Point(figures.SYNTHETIC, int(j))
big, near = st.columns([1, 3])
if point.kind == figures.REAL:
    if emb.real_thumbs is not None:
        big.image(images.enlarge(emb.real_thumbs[point.row], 6), caption=f"real sample · {caption(point.row)}")
    else:
        big.markdown(f"real sample · {caption(point.row)}")
    embedding_rows = selection.embedding_neighbours(emb, point, NEIGHBOURS)
elif syn_images is not None:
    big.image(images.enlarge(syn_images[point.row], images.fit_scale(syn_images.shape[2], target_px=224, max_scale=8)),
              caption=f"synthetic #{point.row} · class {naming.classes[emb.syn_label[point.row]]}")
    embedding_rows = emb.syn_neighbors[point.row][:NEIGHBOURS]  # the run's own kNN rows
else:
    big.error(syn_error)
    embedding_rows = emb.syn_neighbors[point.row][:NEIGHBOURS]
with near:
    st.caption("Nearest in the surrogate's embedding, where the density and the weights are computed")
    gallery(embedding_rows, per_row=NEIGHBOURS, short=True)
    pixel_rows = selection.pixel_neighbours(emb, point, syn_thumbs, NEIGHBOURS)
    if pixel_rows is not None:
        st.caption("Nearest in pixel space: what a model reading raw pixels groups together (often the same "
                   f"{attribute})")
        gallery(pixel_rows, per_row=NEIGHBOURS, short=True)

st.subheader("Export")
st.download_button(
    "Embeddings for TensorBoard's projector (zip)",
    lambda: exports.projector_zip(emb, syn_thumbs, f"{runs.file_stem(run)}-projector"),
    f"{runs.file_stem(run)}-projector.zip", "application/zip", key=f"projector:{run.name}",
    help="tensors.tsv, metadata.tsv, sprite.png and projector_config.pbtxt for the real samples and the synthetic "
         "images; unzip and run `tensorboard --logdir` on the folder",
)
