"""The dashboard's own code, the one part of capsviz that needs Streamlit and Plotly: Streamlit's
caches over runs and test sets (state.py), the pieces every page shows (page_helpers.py) and the
Plotly figures (figures.py). `import capsviz` does not import this package, so a notebook gets the
model, the data and the runs without the dashboard's dependencies; what the pages compute lives in
capsviz.analysis (results, curves, digits, perturbations, reconstructions, ...), below this package: nothing
else in capsviz imports it (docs/layout.md).
"""
