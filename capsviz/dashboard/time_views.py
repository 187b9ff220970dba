"""The home page's time-to-accuracy section: how long the shipped recipes take on one machine to reach 0.5% and
0.4% test error, beside the public ports' recipe (capsviz.analysis.time_to_accuracy)."""
from __future__ import annotations

import json

import streamlit as st

from ..analysis.time_to_accuracy import SHOWCASE_BENCH, THRESHOLDS, showcase, time_to_accuracy_table
from ..store import PROJECT_ROOT, Run
from .page_helpers import show_table
from .time_figures import time_to_accuracy_figure


@st.cache_data(show_spinner=False, max_entries=4)
def _bench_result() -> dict | None:
    path = PROJECT_ROOT / SHOWCASE_BENCH
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def show_time_to_accuracy(runs: list[Run]) -> None:
    """Nothing when the runs root holds none of the showcase's runs (another root than checkpoints/)."""
    bench = _bench_result()
    contenders, reference = showcase({run.name: run.history for run in runs}, bench) if bench else ([], None)
    if not contenders or reference is None:
        return
    machine = bench.get("machine", {})
    st.subheader("Time to accuracy")
    st.plotly_chart(time_to_accuracy_figure([*contenders, reference]), width="stretch", key="time_to_accuracy")
    table = time_to_accuracy_table([*contenders, reference], reference=reference)
    number = st.column_config.NumberColumn
    show_table(table, column_config={
        "Run": st.column_config.TextColumn("Run", pinned=True, width="large"),
        **{f"Hours to {t}%": number(f"Hours to {t}%", format="%.2f",
                                    help="The first epoch at or below it, chosen on the test set") for t in THRESHOLDS},
        **{f"Reference then, {t}% (%)": number("Ports' recipe by then (%)", format="%.2f",
                                               help="The public ports' recipe's test error after as many hours")
           for t in THRESHOLDS},
    })
    st.caption(f"3 routings with reconstruction, full MNIST. Hours are epochs times one epoch's time on an idle "
               f"{machine.get('cpu', 'CPU')} with {machine.get('threads', '?')} threads ({SHOWCASE_BENCH}, commit "
               f"{str(machine.get('git_commit', '?'))[:7]}): the runs themselves trained on shared machines, so their "
               f"own clocks are slower. The ports' recipe is x0.9 per epoch in plain PyTorch: the same epochs as "
               f"our x0.9 run at the plain fp32 path's measured speed. Diamonds: the first epoch at or below each "
               f"threshold (chosen on the test set); a run's headline stays its final-epoch error.")
