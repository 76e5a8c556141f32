"""Bias explorer: how many bias-aligned and bias-conflicting samples each class has, and what they look like."""
import streamlit as st

from ddapp import bias, cache, images
from ddcore.config import DATASETS, SOURCES, DataConfig
from ddcore.data import PALETTE
from ddcore.errors import DDError

DATASET_NAMES = {"cmnist": "Coloured MNIST (digit coloured)", "bg-cmnist": "Background-coloured MNIST"}
SOURCE_NAMES = {"bundled": "bundled MNIST sample (offline)", "mnist": "full MNIST (torchvision folder)"}
PER_CLASS = 8

st.title("Bias explorer")
st.markdown(
    "In the biased training set almost every digit of class *c* has colour *c* (**bias-aligned**); "
    "only a small share has one of the other colours (**bias-conflicting**). The test set is "
    "**unbiased**: colours are uniform, so a model that learned colour instead of shape fails there."
)
left, mid, right = st.columns(3)
dataset = left.selectbox("Dataset", DATASETS, format_func=DATASET_NAMES.get)
source = mid.selectbox("Source", SOURCES, format_func=SOURCE_NAMES.get)
percent = right.number_input("Bias-conflicting samples (%)", 0.0, 100.0, 5.0, 0.5)
root = st.text_input("MNIST folder (holding MNIST/raw)", "../shared/data") if source == "mnist" else None

try:
    data = cache.split(DataConfig(dataset=dataset, source=source, root=root, conflict_ratio=percent / 100), True, 0)
except DDError as exc:
    st.error(str(exc))
    st.stop()

st.markdown("**Colour palette** — bias attribute *b*; class *c*'s aligned colour is *c*.")
st.markdown(bias.palette_legend_html(PALETTE.numpy()), unsafe_allow_html=True)

counts = bias.class_counts(data.labels, data.conflicting, data.num_classes)
st.markdown(f"**{len(data.labels):,} training images**, {int(data.conflicting.sum()):,} bias-conflicting.")
st.dataframe(counts, hide_index=True)

for column, title, mask in zip(
    st.columns(2), ("Bias-aligned samples", "Bias-conflicting samples"), (~data.conflicting, data.conflicting)
):
    rows = bias.first_per_class(data.labels, mask, data.num_classes, PER_CLASS)
    with column:
        st.markdown(f"**{title}** (one row per class)")
        if len(rows):
            grid = images.class_rows(data.images[rows], data.labels[rows], data.num_classes, PER_CLASS)
            st.image(images.enlarge(grid, 2))
        else:
            st.info("None at this ratio.")
