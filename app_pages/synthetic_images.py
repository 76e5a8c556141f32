"""Synthetic images: the distilled sets of a vanilla and a reweighted run, one row per class."""
from pathlib import Path

import streamlit as st

from ddapp import cache, images, runs, ui
from ddcore.errors import DDError

st.title("Synthetic images")
done = runs.finished_distill(ui.runs_with_examples())
if not done:  # only when the shipped examples are missing too
    st.info("No finished distillation run yet. Start one on the Distill page.")
    st.stop()

st.markdown(
    "Each row is one class. With vanilla distillation the synthetic images tend to take their class's "
    "majority value of the bias attribute (its colour, say); reweighting should bring the other values back."
)
vanilla, reweighted = runs.latest_pair(done)
for column, title, key, preferred in zip(
    st.columns(2), ("Left", "Right"), ("syn_left", "syn_right"), (vanilla or done[0], reweighted or done[0])
):
    with column:
        run = ui.pick_run(title, done, key=key, preferred=preferred.name)
        try:
            pics, labels = cache.synthetic(run.path)
        except DDError as exc:
            st.error(str(exc))
            continue
        grid = images.class_rows(pics, labels, int(labels.max()) + 1, run.config.distill.ipc)
        big = images.enlarge(grid, images.fit_scale(grid.shape[1], target_px=640, max_scale=3))
        st.image(big, caption=runs.label(run, with_name=False))
        a, b = st.columns(2)
        a.download_button("PNG grid", images.png_bytes(grid),
                          f"{runs.file_stem(run)}-synthetic.png", "image/png", key=f"png:{key}",
                          help="At the images' own resolution, one row per class")
        b.download_button(
            "Tensors (.pt)", lambda p=Path(run.path) / "synthetic.pt": p.read_bytes(),
            f"{runs.file_stem(run)}-synthetic.pt",
            "application/octet-stream", key=f"pt:{key}",
            help="{'images': float32 [N, 3, H, W] normalised by 'mean' and 'std' (float32 [3]), 'labels': int64 [N], "
                 "'version'}; torch.load(..., weights_only=True); ddcore.records.SyntheticImages reads it",
        )
