"""The story in three steps, from the example runs shipped with the code (or, on request, the
user's newest finished pair): the bias in the data, what vanilla distillation made of it, where the
KDE weights went and what they repaired."""
import streamlit as st

from ddapp import cache, examples, figures, images, runs, story, ui
from ddcore.errors import DDError

EXAMPLES, OWN = "the example runs", "your newest pair"

st.title("Bias in dataset distillation, in three steps")
own_runs = ui.own_runs_quietly()
yours = story.pick(own_runs)
source = EXAMPLES
if yours is not None:
    source = st.radio("Told from", (EXAMPLES, OWN), horizontal=True, key="story_from",
                      help=f"Your newest finished vanilla + reweighted pair: {runs.label(yours.reweighted)}")
if source == EXAMPLES:
    told = story.pick(examples.runs())
    where = ("the **example runs** that ship with ddbias (Coloured MNIST, 5% bias-conflicting, 10 images per "
             "class, the `quick` preset), made by this code; your own runs appear on the other pages beside them")
else:
    told = yours
    cfg = told.reweighted.config
    where = (f"**your newest pair** ({cfg.distill.method.upper()}, {cfg.distill.ipc} images per class, "
             f"{runs.data_label(cfg)}, seed {cfg.seed}), vanilla and reweighted")
st.markdown(
    "Dataset distillation squeezes a training set into a few synthetic images per class. On biased data it "
    f"amplifies the bias; reweighting the real samples by their rarity repairs it. The pictures below come from {where}."
)
if told is None:
    st.error(f"The example runs are missing or damaged in {examples.ROOT}; `python scripts/make_examples.py` "
             "makes them again.")
    st.stop()
try:
    emb = cache.embeddings(told.reweighted.path)
    vanilla_images, vanilla_labels = cache.synthetic(told.vanilla.path)
    repaired_images, repaired_labels = cache.synthetic(told.reweighted.path)
except DDError as exc:
    st.error(str(exc))
    st.stop()


def grid(pictures, labels, ipc: int):
    return images.enlarge(images.class_rows(pictures, labels, len(emb.classes), ipc), 2)


def open_page(button: str, view: str, key: str, icon: str = ":material/arrow_forward:") -> None:
    """A button opening the told pair on a ui.RESULT_VIEWS page."""
    if st.button(button, key=key, icon=icon):
        ui.open_result(view, told.reweighted, own_runs + examples.runs())


# the three steps side by side, so the whole story fits one screen
one, two, three = st.columns([1, 1, 2.1], gap="medium", border=True)
with one:
    st.subheader("1 · The bias")
    picture = story.bias_picture(emb)
    if picture is None:
        st.caption(ui.NO_THUMBNAILS)
    else:
        st.image(images.enlarge(picture, 2), width="stretch",
                 caption="Per class: bias-aligned samples, then bias-conflicting ones")
    st.markdown(story.bias_text(emb))
    st.page_link("app_pages/bias_explorer.py", label="Bias explorer", icon=":material/palette:")
with two:
    st.subheader("2 · Distillation amplifies it")
    st.image(grid(vanilla_images, vanilla_labels, told.vanilla.config.distill.ipc), width="stretch",
             caption="The vanilla synthetic set, one row per class")
    st.markdown(story.vanilla_text(told))
    open_page("Synthetic images", "images", "story_images")
with three:
    st.subheader("3 · Reweighting repairs it")
    weight_map, repaired = st.columns(2)
    fig = figures.embedding_map(emb, "weight", show_synthetic=False, height=330)
    # a small picture: bigger points, no colour bar (the caption says what bright means)
    fig.update_traces(marker=dict(size=8, showscale=False))
    fig.update_layout(margin=dict(l=0, r=0, t=0, b=0))
    weight_map.plotly_chart(fig, key="story_map", config={"displayModeBar": False})
    weight_map.caption("The real samples on the surrogate's 2-D map, coloured by weight: bright is heavy")
    repaired.image(grid(repaired_images, repaired_labels, told.reweighted.config.distill.ipc), width="stretch",
                   caption="The reweighted synthetic set, one row per class")
    st.markdown(story.weights_text(told))
    left, right = st.columns(2)
    with left:
        open_page("Embedding map", "map", "story_map_page")
    with right:
        open_page("Compare", "compare", "story_compare", ":material/bar_chart:")
