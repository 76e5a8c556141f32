"""ddcore: bias-reweighted dataset distillation (Cui et al., ICML 2024) as a library.

Never imports Streamlit; the app and the CLI are thin layers over these modules.
"""
