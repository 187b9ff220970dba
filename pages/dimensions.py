"""Capsule dimensions: Figure 4 made interactive. Drag a capsule's 16 dimensions and watch the
decoder redraw the digit."""
import time

import numpy as np
import streamlit as st

from capsviz.dashboard.figures import capsule_lengths_figure, capsule_vector_figure, digit_figure, perturbation_figure
from capsviz.dashboard.page_helpers import ensure_entry_script, model_page_inputs, show_run_errors
from capsviz.dashboard.state import digit_codes, load_runs
from capsviz.digits import PICK_CLASS, PICK_INDEX, PICK_RANDOM, pick_digit
from capsviz.perturbations import decode_with_offsets, perturbation_grid, perturbation_offsets

ensure_entry_script()  # a deep link on a fresh server must still go through dashboard.py

STEP = 0.05  # the paper's interval between perturbations
RANGES = (0.25, 0.5, 1.0)  # slider range choices, +-; the paper's is 0.25
PICK_LABELS = {PICK_INDEX: "By index", PICK_CLASS: "By class", PICK_RANDOM: "At random"}


def slider_key(dimension: int) -> str:
    return f"capsule_dim_{dimension}"


def reset_offsets(dimensions: int) -> None:
    for dimension in range(dimensions):
        st.session_state[slider_key(dimension)] = 0.0


def clamp_offsets(dimensions: int) -> None:
    # A narrower range must not leave a slider outside it (Streamlit rejects such a value).
    limit = st.session_state["capsule_range"]
    for dimension in range(dimensions):
        key = slider_key(dimension)
        if key in st.session_state:
            st.session_state[key] = float(np.clip(st.session_state[key], -limit, limit))


def next_random_digit() -> None:
    st.session_state["digit_seed"] = st.session_state.get("digit_seed", 0) + 1


st.title("Capsule dimensions")
st.caption("Each digit capsule is a 16-D vector: its length is the class probability, its direction the "
           "digit's instantiation parameters (stroke, width, skew...). Edit one and decode it, as in Figure 4.")

runs = load_runs()
show_run_errors(runs)
picker = st.columns([3, 3, 2, 2], vertical_alignment="bottom")
run, model, images, labels = model_page_inputs(runs, key="dimensions_run", where=picker[0])
dimensions = model.config.digit_dim

mode = picker[1].segmented_control("Pick a test digit", list(PICK_LABELS), format_func=PICK_LABELS.get,
                                   default=PICK_INDEX, key="digit_mode") or PICK_INDEX
if mode == PICK_INDEX:
    index = picker[2].number_input("Test index", 0, len(images) - 1, 0, key="digit_index")
    index = pick_digit(labels, mode=PICK_INDEX, index=int(index))
elif mode == PICK_CLASS:
    digit_class = picker[2].selectbox("Class", range(10), key="digit_class")
    occurrence = picker[3].number_input("Example of that class", 1, 1200, 1, key="digit_occurrence")
    index = pick_digit(labels, mode=PICK_CLASS, digit_class=digit_class, occurrence=int(occurrence) - 1)
else:
    picker[2].button("Draw another digit", on_click=next_random_digit, icon=":material/casino:", width="stretch")
    index = pick_digit(labels, mode=PICK_RANDOM, seed=st.session_state.get("digit_seed", 0))

codes = digit_codes(run, index, index + 1)
label, prediction = int(labels[index]), int(codes.predictions[0])
poses, lengths = codes.poses[0], codes.lengths[0]

top = st.columns([1, 2], gap="large")
verdict = "correct" if label == prediction else "misclassified"
top[0].plotly_chart(digit_figure(images[index] / 255.0, title=f"Test digit #{index}",
                                 subtitle=f"label {label} · prediction {prediction} ({verdict})"),
                    width="stretch", key="input_digit")
top[1].plotly_chart(capsule_lengths_figure(lengths, label=label), width="stretch", key="capsule_lengths")

header = st.columns([4, 3, 1], vertical_alignment="bottom")
capsule_choice = header[1].segmented_control(
    "Capsule to edit", ["label", "prediction"], default="label", key="capsule_choice",
    format_func=lambda choice: f"label's ({label})" if choice == "label" else f"prediction's ({prediction})",
    help="Figure 4 edits the correct class's capsule; for a misclassified digit, try the prediction's.") or "label"
capsule = label if capsule_choice == "label" else prediction
limit = header[2].selectbox("Range ±", RANGES, key="capsule_range", on_change=clamp_offsets, args=(dimensions,),
                            help="The sliders' range, and the Figure 4 grid's. The paper uses ±0.25 in steps of 0.05.")
header[0].subheader(f"Edit capsule {capsule}", help="Each slider ADDS its offset to one dimension of the capsule; "
                    "the other capsules are masked to zero and the decoder redraws the digit.")


sliders_column, pictures_column = st.columns([3, 2], gap="large")
with pictures_column:
    edited_slot = st.container()  # the fragment draws the edited reconstruction here
    # What does not depend on the sliders stays outside the fragment, so a slider change skips it.
    small = st.columns(2)
    small[0].plotly_chart(digit_figure(decode_with_offsets(model, poses, capsule, np.zeros(dimensions)), height=210,
                                       title="Unedited", subtitle=f"decoded from capsule {capsule}"),
                          width="stretch", key="unedited_reconstruction")
    small[1].plotly_chart(digit_figure(images[index] / 255.0, title="Input", subtitle=f"test digit #{index}", height=210),
                          width="stretch", key="input_again")


@st.fragment
def editor() -> None:
    # A fragment: moving a slider reruns only this function (the decoder and two small figures).
    started = time.perf_counter()
    offsets = np.zeros(dimensions, dtype=np.float32)
    slider_columns = st.columns(4)
    for dimension in range(dimensions):
        key = slider_key(dimension)
        st.session_state.setdefault(key, 0.0)
        offsets[dimension] = slider_columns[dimension % 4].slider(
            f"dim {dimension + 1}", -float(limit), float(limit), step=STEP, key=key, format="%+.2f")
    reset_column, timing_column = st.columns([1, 2], vertical_alignment="center")
    reset_column.button("Reset all to 0", on_click=reset_offsets, args=(dimensions,), icon=":material/restart_alt:",
                        key="reset_offsets")
    timing = timing_column.empty()
    edited = decode_with_offsets(model, poses, capsule, offsets)
    changed = ", ".join(f"d{d + 1} {offset:+.2f}" for d, offset in enumerate(offsets) if offset) or "none"
    edited_slot.plotly_chart(digit_figure(edited, title="Edited reconstruction", subtitle=f"offsets: {changed}",
                                          height=360), width="stretch", key="edited_reconstruction")
    st.plotly_chart(capsule_vector_figure(poses[capsule], offsets, digit_class=capsule), width="stretch",
                    key="capsule_vector")
    # Shown so that the redraw's cost is visible (and measured by scripts/bench_dashboard.py).
    timing.caption(f"Redrawn in {1000 * (time.perf_counter() - started):.0f} ms on the server", help=(
        "Decoding the edited capsule and building this panel's two figures: what a slider change costs the server."))


with sliders_column:
    editor()

offsets = perturbation_offsets(limit=limit, step=limit / 5)  # always 11 columns, as in the paper
grid = perturbation_grid(model, poses, capsule, offsets=offsets)
st.plotly_chart(perturbation_figure(grid, offsets=offsets, digit_class=capsule), width="stretch", key="figure4")
