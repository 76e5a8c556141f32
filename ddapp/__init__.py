"""Plain, unit-tested helpers behind the Streamlit pages: tables, figures, images, forms.

Only `ddapp.cache` and `ddapp.ui` import Streamlit; everything else is ordinary functions over
ddcore's run folders, so the pages stay a few lines of layout each.
"""
