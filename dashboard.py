"""CapsViz dashboard: compare training runs and explore trained capsules.

    streamlit run dashboard.py
    CAPSVIZ_RUNS=/path/to/runs streamlit run dashboard.py     # another runs directory

This entry script only sets up navigation and the sidebar; the pages are in pages/, and what they
compute and draw is in capsviz.analysis and capsviz.figures.
"""
import streamlit as st

from capsviz.dashboard_state import RUNS_ROOT_KEY, load_runs
from capsviz.runs import default_runs_root

st.set_page_config(page_title="CapsViz", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/curves.py", title="Routing curves", icon=":material/show_chart:", url_path="curves"),
    st.Page("pages/dimensions.py", title="Capsule dimensions", icon=":material/tune:", url_path="dimensions"),
    st.Page("pages/reconstructions.py", title="Reconstructions", icon=":material/grid_view:", url_path="reconstructions"),
]
page = st.navigation(PAGES)

with st.sidebar:
    st.text_input("Runs directory", value=str(default_runs_root()), key=RUNS_ROOT_KEY,
                  help="The folder the trainer writes run directories into (default checkpoints/, "
                       "or $CAPSVIZ_RUNS). Each run is a folder holding run.json.")
    runs = load_runs()
    broken = f" · {len(runs.errors)} broken" if runs.errors else ""
    running = sum(record.is_running for record in runs.records)
    live = f" · {running} training" if running else ""
    st.caption(f"{len(runs.records)} run(s){live}{broken}")

page.run()
