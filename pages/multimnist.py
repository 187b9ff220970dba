"""MultiMNIST: Figure 5 made interactive. A pair of overlapping test digits, the two digits named by
the two longest capsules, and each redrawn from its own capsule, in red and green over the input."""
import numpy as np
import streamlit as st

from capsviz.analysis.segmentation import (
    decode_from,
    image_u8,
    pair_failures,
    pairs_right,
    predicted_pairs,
    two_colour_overlay,
    with_capsule,
)
from capsviz.dashboard.page_helpers import choose_model_run, model_or_stop, start_page
from capsviz.dashboard.pair_figures import pair_lengths_figure, rgb_figure
from capsviz.dashboard.pair_state import pair_codes, pair_set, scan_pair_codes
from capsviz.data.mnist import DataError

SHOW_ALL, SHOW_FAILURES = "All pairs", "Failures"
SEARCH_SIZES = (100, 200, 500, 1000, 2000, 5000, 10000)
RANGES = (0.25, 0.5, 1.0)
STEP = 0.05
SLIDER_KEY = "pair_dim_{}"

runs = start_page(__file__, "Section 6 of the paper: trained on pairs of overlapping digits, CapsNet names both by its two longest "
                            "capsules (a pair counts as right only if both are) and redraws each from its own capsule, the others "
                            "masked. As in Figure 5, the two reconstructions are drawn in **red** and **green** over the input "
                            "(yellow where both draw). Decode any capsule, even one whose digit is not in the image.")
controls = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
run = choose_model_run(runs, key="multimnist_run", where=controls[0], pairs=True)
if run is None:
    st.stop()
model = model_or_stop(run)
try:
    pairs = pair_set()
except DataError as error:
    st.error(f"The MultiMNIST test set is unavailable: {error}", icon=":material/error:")
    st.stop()
reevaluated = run.info.get("reevaluation") or {}
measured = (f" Its weights score {reevaluated['test_error']:.2f}% on this test set ({reevaluated['note']})."
            if "test_error" in reevaluated else "")
st.caption(f"Test set: {len(pairs):,} fixed pairs (MNIST test digit i with a partner of another class, both shifted "
           f"by up to 4 pixels; seed 36).{measured}")

show = controls[1].segmented_control("Show", [SHOW_ALL, SHOW_FAILURES], default=SHOW_ALL, key="pair_show") or SHOW_ALL
if show == SHOW_ALL:
    index = int(controls[2].number_input("Test pair", 0, len(pairs) - 1, 0, key="pair_index"))
    codes = pair_codes(run, index, index + 1)
    lengths, poses = codes.lengths[0], codes.poses[0]
else:
    searched = controls[2].select_slider("Test pairs searched", SEARCH_SIZES, value=200, key="pair_search",
                                         help="Encoding takes a while on a CPU the first time; results are cached.")
    scanned = scan_pair_codes(run, searched)
    failures = pair_failures(pairs.labels, scanned)
    if len(failures) == 0:
        st.success(f"Both digits right in each of the first {searched} test pairs.", icon=":material/check_circle:")
        st.stop()
    if st.session_state.get("pair_failure", 1) > len(failures):
        st.session_state["pair_failure"] = 1  # a shorter search has fewer failures
    which = int(controls[3].number_input(f"Failure (of {len(failures)})", 1, len(failures), 1, key="pair_failure"))
    index = int(failures[which - 1])
    lengths, poses = scanned.lengths[index], scanned.poses[index]
    st.caption(f"{len(failures)} of the first {searched} test pairs have a digit wrong "
               f"({100 * len(failures) / searched:.1f}% error on them).")

labels = [int(k) for k in pairs.labels[index]]
predicted = [int(k) for k in predicted_pairs(lengths[None])[0]]
right = bool(pairs_right(np.array([predicted]), np.array([labels]))[0])
verdict = "both right" if right else "wrong"
st.subheader(f"Test pair #{index}: L1 = {labels[0]}, L2 = {labels[1]} · predicted {predicted[0]} and {predicted[1]} "
             f"({verdict})")

classes = list(range(len(lengths)))
choice = st.columns([2, 2, 4], vertical_alignment="bottom")


def capsule_name(k: int) -> str:
    return f"{k}" + (" (in the pair)" if k in labels else " (absent)")


red = int(choice[0].selectbox("Red: decode capsule", classes, index=labels[0], format_func=capsule_name,
                              key=f"pair_red_{index}", help="L1's capsule by default. Any class may be chosen."))
green = int(choice[1].selectbox("Green: decode capsule", classes, index=labels[1], format_func=capsule_name,
                                key=f"pair_green_{index}", help="L2's capsule by default. Any class may be chosen."))
input_image = pairs.images[index] / 255.0


def drawn_row(edited_poses: np.ndarray, where, *, key: str) -> None:
    """Figure 5 for the given capsules: the input, both reconstructions over it, and each on its own."""
    first, second = decode_from(model, edited_poses, [red, green])
    columns = where.columns(4)
    grey = image_u8(input_image)
    columns[0].plotly_chart(rgb_figure(np.repeat(grey[..., None], 3, axis=2), title="Input",
                                       subtitle=f"digits {labels[0]} and {labels[1]}"), width="stretch", key=f"{key}_input")
    columns[1].plotly_chart(rgb_figure(two_colour_overlay(first, second, background=input_image),
                                       title="Reconstructions", subtitle=f"red {red}, green {green}, over the input"),
                            width="stretch", key=f"{key}_overlay")
    columns[2].plotly_chart(rgb_figure(two_colour_overlay(first, np.zeros_like(first)), title=f"From capsule {red}",
                                       subtitle=capsule_name(red)), width="stretch", key=f"{key}_red")
    columns[3].plotly_chart(rgb_figure(two_colour_overlay(np.zeros_like(second), second), title=f"From capsule {green}",
                                       subtitle=capsule_name(green)), width="stretch", key=f"{key}_green")


drawn_row(poses, st, key="pair")
st.plotly_chart(pair_lengths_figure(lengths, labels=labels, predicted=predicted, drawn=(red, green)), width="stretch",
                key="pair_lengths")

# ---- the 16 dimensions of one digit's capsule, the other held fixed --------------------------------

header = st.columns([4, 3, 1], vertical_alignment="bottom")
edit = header[1].segmented_control("Capsule to edit", ["red", "green"], default="red", key="pair_edit",
                                   format_func=lambda side: f"{side} ({red if side == 'red' else green})") or "red"
limit = header[2].selectbox("Range ±", RANGES, key="pair_range", help="The sliders' range; the paper's Figure 4 uses "
                                                                       "±0.25 in steps of 0.05.")
edited_class, held_class = (red, green) if edit == "red" else (green, red)
header[0].subheader(f"Edit capsule {edited_class}, capsule {held_class} held fixed", help=(
    "Each slider ADDS its offset to one of the 16 dimensions of the edited capsule. The other capsule is decoded "
    "from its own unchanged vector, so one digit changes while the other stays."))


def reset_offsets() -> None:
    for dimension in range(poses.shape[1]):
        st.session_state[SLIDER_KEY.format(dimension)] = 0.0


@st.fragment
def editor() -> None:
    # A fragment: moving a slider reruns only this function (the decoder and four small figures).
    offsets = np.zeros(poses.shape[1], dtype=np.float32)
    slider_columns = st.columns(8)
    for dimension in range(poses.shape[1]):
        key = SLIDER_KEY.format(dimension)
        st.session_state.setdefault(key, 0.0)
        st.session_state[key] = float(np.clip(st.session_state[key], -limit, limit))  # a smaller range was chosen
        offsets[dimension] = slider_columns[dimension % 8].slider(
            f"dim {dimension + 1}", -float(limit), float(limit), step=STEP, key=key, format="%+.2f")
    st.button("Reset all to 0", on_click=reset_offsets, icon=":material/restart_alt:", key="pair_reset")
    edited = with_capsule(poses, edited_class, poses[edited_class] + offsets)
    changed = ", ".join(f"d{d + 1} {offset:+.2f}" for d, offset in enumerate(offsets) if offset) or "none"
    st.caption(f"Capsule {edited_class} offsets: {changed}")
    with st.container(key="pair_edited"):
        drawn_row(edited, st, key="pair_edited")


editor()
