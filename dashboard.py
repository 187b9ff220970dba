"""CapsViz dashboard: compare training runs and explore trained capsules.

    streamlit run dashboard.py                                # runs in checkpoints/, on 127.0.0.1 only
    streamlit run dashboard.py -- --runs DIR [--runs DIR2]    # other runs directories
    CAPSVIZ_RUNS=/path/to/runs streamlit run dashboard.py     # the same through the environment

The browser picks among those directories only (.streamlit/config.toml binds the server to
127.0.0.1; README says how to serve it on a network on purpose).

This entry script only sets up navigation and the sidebar; the pages are in pages/, listed once in
capsviz/dashboard/page_table.py (adding a page: its file plus one entry there), and what they
compute is in the plain capsviz modules (results, curves, digits, perturbations,
reconstructions), what they draw in capsviz.dashboard.figures.
"""
import streamlit as st

from capsviz.dashboard.page_table import PAGE_TABLE
from capsviz.dashboard.state import RUNS_ROOT_KEY, DashboardOptionError, load_runs, runs_roots

st.set_page_config(page_title="CapsViz", page_icon=":material/hub:", layout="wide")

# one entry per page in capsviz/dashboard/page_table.py; the default page is served at "/" (its file's
# name, as Streamlit infers it, stays its path too)
PAGES = [st.Page(page.path, title=page.title, icon=page.icon, url_path=page.url_path or None, default=page.default)
         for page in PAGE_TABLE]
page = st.navigation(PAGES)

try:
    roots = runs_roots()
except DashboardOptionError as error:
    st.error(str(error), icon=":material/error:")
    st.stop()

with st.sidebar:
    # A choice among the directories whoever started the server named, never a free-text path: a
    # browser must not open, or learn the existence of, any other folder of the machine.
    choices = [str(root) for root in roots]
    if st.session_state.get(RUNS_ROOT_KEY) not in choices:  # nothing else is a root (runs_root() ignores it too)
        st.session_state.pop(RUNS_ROOT_KEY, None)
    st.selectbox("Runs directory", choices, key=RUNS_ROOT_KEY,
                 help="Chosen when the dashboard was started: `streamlit run dashboard.py -- --runs DIR` "
                      "(repeatable), or $CAPSVIZ_RUNS; default checkpoints/. Each run is a folder holding run.json.")
    runs = load_runs()
    broken = f" · {len(runs.errors)} broken" if runs.errors else ""
    running = sum(run.is_running for run in runs.runs)
    live = f" · {running} training" if running else ""
    stale = sum(run.is_stale for run in runs.runs)
    gone = f" · {stale} stale" if stale else ""
    st.caption(f"{len(runs.runs)} run(s){live}{gone}{broken}")

page.run()
