"""Capsule dimensions: Figure 4 made interactive. Drag a capsule's 16 dimensions and watch the
decoder redraw the digit as you drag (in the browser), each slider named by what it was measured
to do, and the measurement itself: dimension x property for the chosen class, and the paper's
width claim checked on this run and another."""
import hashlib

import numpy as np
import streamlit as st

from capsviz.analysis.perturbations import decode_with_offsets, perturbation_grid, perturbation_offsets
from capsviz.dashboard.digit_picker import pick_or_draw_digit, picked_codes
from capsviz.dashboard.dimension_views import (
    decoder_payload,
    meanings_heatmap,
    run_meanings,
    shared_zmax,
    slider_labels,
    summary_row,
    summary_table,
    weights_digest,
)
from capsviz.dashboard.figures import capsule_lengths_figure, capsule_vector_figure, digit_figure, perturbation_figure
from capsviz.dashboard.live_decoder import live_decoder
from capsviz.dashboard.page_helpers import model_page_inputs, show_table, shows_pairs, start_page

RANGES = (0.25, 0.5, 1.0)  # slider range choices, +-; the paper's is 0.25
STEPS_PER_SIDE = 50  # slider resolution: 0.005 at the paper's ±0.25, fine enough to morph smoothly
EDITOR_KEY = "live_decoder"


runs = start_page(__file__, "Each digit capsule is a 16-D vector: its length is the class probability, its direction the "
                            "digit's instantiation parameters (stroke, width, skew...). Edit one and decode it, as in Figure 4.")
picker = st.columns([3, 4, 2, 2], vertical_alignment="bottom")  # run, digit mode (4 choices), its controls
run, model, images, labels = model_page_inputs(runs, key="dimensions_run", where=picker[0])
dimensions = model.config.digit_dim

# ---- Digit selection: a test digit (by index, by class, at random) or one drawn by hand
picked = pick_or_draw_digit(images, labels, key="digit", where=picker[1:4])
if picked is None:  # drawing, and nothing drawn yet: the canvas says what to do
    st.stop()
# ---- End of digit selection

codes = picked_codes(run, model, picked)
label, prediction = picked.label, int(codes.predictions[0])  # a drawn digit has no label
poses, lengths = codes.poses[0], codes.lengths[0]
# what the browser's decoder is redrawing: a test digit by its index, a drawing by its pixels
digit_token = picked.index if picked.index is not None else hashlib.sha256(picked.image.tobytes()).hexdigest()[:12]

top = st.columns([1, 1, 2], gap="large")  # the input, its unedited reconstruction (below), the lengths
verdict = "" if label is None else (" (correct)" if label == prediction else " (misclassified)")
top[0].plotly_chart(digit_figure(picked.image / 255.0, title=picked.title,
                                 subtitle=f"{picked.subtitle} · prediction {prediction}{verdict}"),
                    width="stretch", key="input_digit")
top[2].plotly_chart(capsule_lengths_figure(lengths, label=label), width="stretch", key="capsule_lengths")

header = st.columns([4, 3, 1], vertical_alignment="bottom")
capsule_choice = header[1].segmented_control(
    "Capsule to edit", ["label", "prediction"] if label is not None else ["prediction"], default="label"
    if label is not None else "prediction", key="capsule_choice",
    format_func=lambda choice: f"label's ({label})" if choice == "label" else f"prediction's ({prediction})",
    help="Figure 4 edits the correct class's capsule; for a misclassified digit, try the prediction's. A drawn "
         "digit has no label: its prediction's capsule is edited.") or ("label" if label is not None else "prediction")
capsule = label if capsule_choice == "label" and label is not None else prediction
limit = header[2].selectbox("Range ±", RANGES, key="capsule_range",
                            help="The sliders' range, and the Figure 4 grid's. The paper uses ±0.25 in steps of 0.05.")
header[0].subheader(f"Edit capsule {capsule}", help="Each slider ADDS its offset to one dimension of the capsule; "
                    "the other capsules are masked to zero and the decoder redraws the digit, in your browser, "
                    "as you drag. Each slider is named by what moving it was measured to do (below).")
measured = run_meanings(run)
names, hints = slider_labels(measured.meanings, capsule, dimensions)
top[1].plotly_chart(digit_figure(decode_with_offsets(model, poses, capsule, np.zeros(dimensions)), title="Unedited",
                                 subtitle=f"decoded from capsule {capsule}"), width="stretch", key="unedited_reconstruction")


@st.fragment
def editor() -> np.ndarray:
    # A fragment: a slider's value coming back from the browser reruns only this. The drawing itself
    # happens in the browser (live_decoder.js) while the slider moves.
    offsets = live_decoder(
        key=EDITOR_KEY, digest=weights_digest(run), payload=decoder_payload(run), capsule=poses[capsule],
        digit_class=capsule, labels=names, hints=hints, limit=float(limit), step=float(limit) / STEPS_PER_SIDE,
        values=np.clip(st.session_state.get("dimension_offsets", np.zeros(dimensions)), -limit, limit),
        token=f"{run.name}|{digit_token}|{capsule}|{limit}", size=model.config.input_size,
        title=f"Edited reconstruction of capsule {capsule}")
    st.session_state["dimension_offsets"] = offsets
    changed = ", ".join(f"d{d + 1} {offset:+.2f}" for d, offset in enumerate(offsets) if offset) or "none"
    st.caption(f"Offsets the server has: {changed}", help="Sent back by the browser when a slider is released: "
               "what this bar chart and the Figure 4 grid below use (the picture above is drawn in the browser as "
               "the slider moves).")
    st.plotly_chart(capsule_vector_figure(poses[capsule], offsets, digit_class=capsule), width="stretch",
                    key="capsule_vector")
    # Figure 4 around the capsule as edited (the digit's own when the sliders are at 0)
    grid_offsets = perturbation_offsets(limit=limit, step=limit / 5)  # always 11 columns, as in the paper
    edited = poses.copy()
    edited[capsule] += offsets
    grid = perturbation_grid(model, edited, capsule, offsets=grid_offsets)
    st.plotly_chart(perturbation_figure(grid, offsets=grid_offsets, digit_class=capsule), width="stretch",
                    key="figure4")
    if offsets.any():
        st.caption(f"Figure 4 around the edited capsule ({changed}): each row adds its offsets on top of the sliders'.")
    return offsets


if measured.problem:
    st.info(f"Slider names need the dimensions measured: {measured.problem}", icon=":material/straighten:")
editor()

st.subheader("What each dimension does", help=(
    "For each class and dimension: that dimension of the class's capsule moved over ±0.25 (Figure 4's range) on "
    "the first test digits of the class, decoded, and the images measured: bounding-box width and height (ink >= "
    "0.5), stroke thickness (ink / skeleton length), slant (second moments), centroid. A dimension is named by the "
    "property that moves the ink's edges most, if it does so 1.5x more than the runner-up ('mixed' otherwise) and "
    "by at least 1 px ('weak' otherwise). See the README."))
others = [candidate for candidate in runs.with_capsules if candidate.name != run.name
          and not shows_pairs(candidate)]  # MultiMNIST runs are measured on no single digits
left, right = st.columns(2, gap="large")
other = right.selectbox("Compare with", [candidate.name for candidate in others], key="dimensions_other_run",
                        help="Do 1 and 3 routings learn equally interpretable dimensions?") if others else None
other_run = next((candidate for candidate in others if candidate.name == other), None)
other_measured = run_meanings(other_run) if other_run is not None else None
zmax = shared_zmax(measured.meanings, other_measured and other_measured.meanings, digit_class=capsule)
if measured.meanings is not None:
    left.plotly_chart(meanings_heatmap(measured.meanings, capsule, title=f"{run.name}", zmax=zmax), width="stretch",
                      key="meanings_heatmap")
else:
    left.info(measured.problem, icon=":material/straighten:")
if other_measured is not None:
    if other_measured.meanings is not None:
        right.plotly_chart(meanings_heatmap(other_measured.meanings, capsule, title=f"{other_run.name}", zmax=zmax),
                           width="stretch", key="meanings_heatmap_other")
    else:
        right.info(other_measured.problem, icon=":material/straighten:")
rows = [summary_row(run.name, measured.meanings)]
if other_measured is not None:
    rows.append(summary_row(other, other_measured.meanings))
show_table(summary_table(rows), key="meanings_summary")
if measured.meanings is not None:
    width_classes = measured.meanings.classes_with("width")
    st.caption(f"The paper (section 5.1): one of the 16 dimensions almost always represents the width of the digit. "
               f"Measured on {run.name}: a dimension labelled width in {len(width_classes)} of "
               f"{measured.meanings.slope.shape[0]} classes ({', '.join(map(str, width_classes)) or 'none'}), on "
               f"{int(measured.meanings.digits.min())} test digits per class.")
