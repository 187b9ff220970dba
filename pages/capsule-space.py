"""Capsule space: every test digit of a run as one point, placed by its ten digit capsules (PCA or
t-SNE of the 160 numbers, capsviz.analysis.capsule_space), coloured by class, correctness or capsule length;
a clicked digit is shown beside the map and opens on the Capsule dimensions and Routing pages. Two
runs side by side (1 routing against 3). The maps come from capsule_space.npz beside each run
(scripts/map_capsule_space.py), or are computed here on request into Streamlit's cache."""
import time

import numpy as np
import streamlit as st

from capsviz.analysis.capsule_space import PROJECTIONS, TSNE
from capsviz.dashboard.capsule_space_figures import BY_CLASS, COLOUR_MODES, space_figure, space_summary
from capsviz.dashboard.capsule_space_views import (
    DEFAULT_SUBSET,
    MAP_COMMAND,
    OPEN_ON,
    SUBSETS,
    computed_space,
    computed_space_if_cached,
    hand_over_digit,
    remember_computed,
    shipped_space,
    switch_to_requested_page,
)
from capsviz.dashboard.figures import capsule_lengths_figure, digit_figure
from capsviz.dashboard.page_helpers import ensure_entry_script, model_page_inputs, start_page
from capsviz.dashboard.safe_html import text
from capsviz.dashboard.state import digit_codes
from capsviz.store import RunError

ensure_entry_script()  # a deep link on a fresh server must still go through dashboard.py
switch_to_requested_page()  # "Open on ..." was clicked: its callback has set that page's digit
started = time.perf_counter()  # the page's server time, shown at its end

NO_COMPARISON = "(none)"
DIGIT_KEY = "space_digit"  # the test digit shown beside the maps

runs = start_page(__file__, "Each test digit is one point, placed by all ten of its digit capsules (160 numbers: ten 16-D poses "
                            "one after another). Since a capsule's length is its class's probability, digits gather in one island "
                            "per class, a digit the network hesitates over lies between two islands, and within an island the pose "
                            "(stroke, width, slant) spreads the digits. Click a point to see the digit.")
controls = st.columns([4, 4, 3, 5], vertical_alignment="bottom")
run, model, images, labels = model_page_inputs(runs, key="space_run", where=controls[0])
others = [other for other in runs.with_capsules if other.name != run.name
          and other.dataset_name == run.dataset_name]  # the same test digits on both maps
# Side by side with a mapped run by default: the comparison (1 routing against 3) is the point of the page
mapped_first = next((position + 1 for position, other in enumerate(others) if (other.path / "capsule_space.npz").exists()), 0)
compare_name = controls[1].selectbox("Side by side with", [NO_COMPARISON, *(other.name for other in others)],
                                     index=mapped_first, key="space_compare",
                                     help="Another CapsNet run on the same test set: the same digits on both maps.")
projection = controls[2].segmented_control(
    "Projection", list(PROJECTIONS), format_func=PROJECTIONS.get, default=TSNE, key="space_projection",
    help="PCA: the plane along which the 160 numbers vary most (distances are kept, little structure shows). "
         "t-SNE: neighbours stay neighbours (islands show), but distances between islands mean little.") or TSNE
colour = controls[3].segmented_control("Colour by", list(COLOUR_MODES), format_func=COLOUR_MODES.get, default=BY_CLASS,
                                       key="space_colour") or BY_CLASS

shown = [run, *(other for other in others if other.name == compare_name)]


def pick_from_map(chart_key: str) -> None:
    """A click (or a box or lasso) on a map: its first point's digit becomes the one shown."""
    points = st.session_state[chart_key].selection.get("points", [])
    if points and points[0].get("customdata"):
        st.session_state[DIGIT_KEY] = int(points[0]["customdata"][0])


def space_for(shown_run, where):
    """The run's map: the shipped one, one computed here earlier, or an offer to compute it."""
    mapped = shipped_space(shown_run)
    if mapped.space is not None:
        return mapped.space
    computed = computed_space_if_cached(shown_run)
    if computed is not None:
        where.caption(f"Map computed here on the first {len(computed):,} test digits ({text(mapped.problem)}).")
        return computed
    # one line; names and paths come from the run directory, so they are escaped (safe_html.text)
    where.info(f"No map to show: {text(mapped.problem)}. Compute it here, or write it beside the run with "
               f"{MAP_COMMAND} {text(shown_run.path)}", icon=":material/scatter_plot:")
    row = where.columns([2, 3], vertical_alignment="bottom")
    count = row[0].selectbox("Digits", SUBSETS, index=DEFAULT_SUBSET, key=f"space_count_{shown_run.name}", format_func="the first {:,}".format,
                             help="The first N test digits. Encoding takes about 1.5 s per 100 digits on 2 cores "
                                  "(4x that at 40x40), t-SNE about 1 min for 10,000.")
    # on_click rather than `if st.button(...)`: the request outlives a rerun that starts before the
    # computation does (the flag is cleared only once the map is in the cache)
    requested = f"space_requested_{shown_run.name}"
    row[1].button("Compute the map here", key=f"space_compute_{shown_run.name}", icon=":material/play_arrow:",
                  on_click=st.session_state.__setitem__, args=(requested, True))
    if not st.session_state.get(requested):
        return None
    try:
        space = computed_space(shown_run, count)
    except RunError as error:
        where.error(f"Cannot encode {text(shown_run.name)}'s digits: {error}", icon=":material/error:")
        return None
    finally:
        st.session_state.pop(requested, None)
    remember_computed(shown_run, count)
    return space


spaces = {}
map_columns = st.columns([5, 5, 3] if len(shown) == 2 else [9, 3], gap="medium")
for column, shown_run in zip(map_columns, shown):
    spaces[shown_run.name] = space_for(shown_run, column)
panel = map_columns[-1]

first = next((space for space in spaces.values() if space is not None), None)
if DIGIT_KEY not in st.session_state:  # first visit: a misclassified digit says more than digit 0
    wrong = np.flatnonzero(~first.correct) if first is not None else []
    st.session_state[DIGIT_KEY] = int(first.indices[wrong[0]]) if len(wrong) else 0
# clipped before the number input reads it: a map of another test set's size must not take the page down
index = st.session_state[DIGIT_KEY] = int(np.clip(st.session_state[DIGIT_KEY], 0, len(images) - 1))

for column, shown_run in zip(map_columns, shown):
    space = spaces[shown_run.name]
    if space is None:
        continue
    chart_key = f"space_map_{shown_run.name}"
    routings = f" · {shown_run.routings} routing{'s' if shown_run.routings != 1 else ''}" if shown_run.routings else ""
    column.plotly_chart(space_figure(space, projection=projection, colour=colour, title=text(shown_run.name) + routings,
                                     subtitle=space_summary(space), selected=index),
                        key=chart_key, on_select=lambda chart_key=chart_key: pick_from_map(chart_key),
                        selection_mode=("points", "box", "lasso"), width="stretch")

# ---- The chosen digit: its image, its capsules under the run, and the pages that show it further
with panel:
    index = st.number_input("Test digit", 0, len(images) - 1, key=DIGIT_KEY,
                            help="Click a point on a map, or type a test index.")
    label = int(labels[index])
    try:
        lengths = digit_codes(run, index, index + 1).lengths[0]
    except RunError as error:
        st.error(f"Cannot encode the digit: {error}", icon=":material/error:")
        st.stop()
    prediction = int(lengths.argmax())
    verdict = "correct" if prediction == label else "misclassified"
    st.plotly_chart(digit_figure(images[index] / 255.0, title=f"Test digit #{index}",
                                 subtitle=f"label {label} · {text(run.name)} predicts {prediction} ({verdict})", height=240),
                    width="stretch", key="space_digit_image")
    st.plotly_chart(capsule_lengths_figure(lengths, label=label, height=230), width="stretch", key="space_digit_lengths")
    for page, (_, title, _, _) in OPEN_ON.items():
        st.button(f"Open on {title}", key=f"space_open_{page}", icon=":material/open_in_new:", width="stretch",
                  help=f"{title} page, on {text(run.name)} with test digit #{index}",
                  on_click=hand_over_digit, args=(page, run.name, index))

st.caption(f"Page computed in {time.perf_counter() - started:.2f} s on the server.")
