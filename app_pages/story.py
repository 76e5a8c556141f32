"""The story in three steps, from the example runs shipped with the code: the bias in the data, what
vanilla distillation made of it, where the KDE weights went and what they repaired."""
import streamlit as st

from ddapp import cache, examples, figures, images, story, ui
from ddcore.errors import DDError

st.title("Bias in dataset distillation, in three steps")
st.markdown(
    "Dataset distillation squeezes a training set into a few synthetic images per class. On biased data it "
    "amplifies the bias; reweighting the real samples by their rarity repairs it. The pictures below come from "
    "the **example runs** that ship with ddbias (Coloured MNIST, 5% bias-conflicting, 10 images per class, the "
    "`quick` preset), made by this code; your own runs appear on the other pages beside them."
)
told = story.pick(examples.runs())
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


def grid(pictures, labels, ipc: int, target_px: int):
    tiled = images.class_rows(pictures, labels, len(emb.classes), ipc)
    return images.enlarge(tiled, images.fit_scale(tiled.shape[1], target_px=target_px, max_scale=4))


def open_page(button: str, page: str, focus: dict[str, str], key: str) -> None:
    if st.button(button, key=key, icon=":material/arrow_forward:"):
        for picker, name in focus.items():
            ui.focus(picker, name)
        st.switch_page(page)


with st.container(border=True):
    st.subheader("1 · The bias in the data")
    picture, words = st.columns([3, 2])
    picture.image(images.enlarge(story.bias_picture(emb), 2),
                  caption="One row per class: bias-aligned samples, then bias-conflicting ones")
    words.markdown(story.bias_text(emb))
    words.page_link("app_pages/bias_explorer.py", label="Explore the bias in every dataset", icon=":material/palette:")

with st.container(border=True):
    st.subheader("2 · Vanilla distillation amplifies it")
    picture, words = st.columns([3, 2])
    ipc = told.vanilla.config.distill.ipc
    picture.image(grid(vanilla_images, vanilla_labels, ipc, 640), caption="Vanilla synthetic set, one row per class")
    words.markdown(story.vanilla_text(told))
    with words:
        open_page("Compare the synthetic sets", "app_pages/synthetic_images.py",
                  {"syn_left": told.vanilla.name, "syn_right": told.reweighted.name}, "story_images")

with st.container(border=True):
    st.subheader("3 · The KDE weights find the rare samples and repair the set")
    weight_map, repaired = st.columns([3, 2])
    fig = figures.embedding_map(emb, "weight", show_synthetic=False, height=420)
    weight_map.plotly_chart(fig, key="story_map", config={"displayModeBar": False})
    weight_map.caption("Real training samples on the surrogate's 2-D map, coloured by their weight")
    repaired.image(grid(repaired_images, repaired_labels, told.reweighted.config.distill.ipc, 640),
                   caption="Reweighted synthetic set, one row per class")
    st.markdown(story.weights_text(told))
    left, right = st.columns(2)
    with left:
        open_page("Explore the embedding map", "app_pages/embedding_map.py", {"map_run": told.reweighted.name},
                  "story_map_page")
    right.page_link("app_pages/compare.py", label="Compare with the full data, the oracle and a random subset",
                    icon=":material/bar_chart:")
