"""Bias explorer: how many bias-aligned and bias-conflicting samples each class has, and what they look like."""
import numpy as np
import streamlit as st

from ddapp import bias, cache, forms, images, ui
from ddcore.data import DATASET_SPECS, describe
from ddcore.errors import DDError

PER_CLASS = 8

st.title("Bias explorer")
st.markdown(
    "In a biased training set almost every sample of class *c* carries the class's own value of a "
    "*bias attribute* — a colour, a corruption, a gender (**bias-aligned**); only a small share has "
    "another value (**bias-conflicting**). The test set breaks that link, so a model that learned the "
    "attribute instead of the class fails there."
)
choice = ui.data_picker("explore")
spec = DATASET_SPECS[choice.dataset]

try:
    cfg = forms.data_config(choice)
    data = cache.split(cfg, True, 0)
    naming = describe(cfg)
except DDError as exc:
    st.error(str(exc))
    if choice.source == "files":
        st.info(f"**Where the files go.** {forms.files_help_for(choice)}")
    st.stop()

st.markdown(f"**Bias attribute: {spec.bias_attribute}.** Class *c*'s aligned value is the one in the table's "
            "*aligned value* column; the swatches are its values.")
st.markdown(bias.palette_legend_html(np.array(naming.colours), naming.bias_values), unsafe_allow_html=True)

counts = bias.class_counts(data.labels, data.conflicting, data.num_classes, naming)
counted, onward = st.columns([4, 1])
counted.markdown(f"**{len(data.labels):,} training images**, {int(data.conflicting.sum()):,} bias-conflicting.")
if onward.button("Distill this data", icon=":material/arrow_forward:",
                 help="The Distill page, with this dataset, source and share of bias-conflicting samples"):
    ui.carry_data(choice, "distill", "app_pages/distill.py")
st.dataframe(counts, hide_index=True)

scale = images.fit_scale(data.images.shape[2] * PER_CLASS, target_px=480, max_scale=2)
for column, title, mask in zip(
    st.columns(2), ("Bias-aligned samples", "Bias-conflicting samples"), (~data.conflicting, data.conflicting)
):
    rows = bias.first_per_class(data.labels, mask, data.num_classes, PER_CLASS)
    with column:
        st.markdown(f"**{title}** (one row per class)")
        if len(rows):
            grid = images.class_rows(data.images[rows], data.labels[rows], data.num_classes, PER_CLASS)
            st.image(images.enlarge(grid, scale))
        else:
            st.info("None at this ratio.")
