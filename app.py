"""Streamlit app: explore bias in dataset distillation, run vanilla vs reweighted DM, inspect results.

Run with `streamlit run app.py`. Page scripts live in app_pages/, their logic in ddapp/.
The folder is deliberately not called `pages/`: Streamlit treats a `pages/` folder as an old-style
multipage app until this script has run once in the server process, so a deep link opened first
(a bookmarked /runs after a restart) would bypass st.navigation, the sidebar and the page config.
"""
import streamlit as st

from ddapp import ui

st.set_page_config(page_title="Bias in dataset distillation", page_icon=":material/balance:", layout="wide")

PAGES = [
    st.Page("app_pages/story.py", title="The story", icon=":material/auto_stories:", default=True),
    st.Page("app_pages/bias_explorer.py", title="Bias explorer", icon=":material/palette:"),
    st.Page("app_pages/distill.py", title="Distill", icon=":material/science:"),
    st.Page("app_pages/embedding_map.py", title="Embedding map", icon=":material/scatter_plot:"),
    st.Page("app_pages/synthetic_images.py", title="Synthetic images", icon=":material/grid_view:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/bar_chart:"),
    st.Page("app_pages/sweeps.py", title="Sweeps", icon=":material/grid_on:"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/folder_open:"),
]

page = st.navigation(PAGES)
ui.sidebar()
ui.keep_choices()
page.run()
