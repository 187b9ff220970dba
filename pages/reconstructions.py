"""Reconstructions: test digits beside their reconstructions, labelled (l, p, r) as in Figure 3."""
import numpy as np
import streamlit as st

from capsviz.analysis.digits import misclassified
from capsviz.analysis.reconstructions import TARGET_LABEL, TARGET_PREDICTION, reconstruct_digits, reconstruction_table
from capsviz.dashboard.figures import reconstruction_grid_figure
from capsviz.dashboard.page_helpers import model_page_inputs, show_table, start_page
from capsviz.dashboard.state import digit_codes, scan_codes

SHOW_ALL, SHOW_MISCLASSIFIED = "All", "Misclassified"
SOURCES = {"Label": (TARGET_LABEL,), "Prediction": (TARGET_PREDICTION,), "Both": (TARGET_LABEL, TARGET_PREDICTION)}
SEARCH_SIZES = (200, 500, 1000, 2000, 5000, 10000)

runs = start_page(__file__, "Each test digit beside what the decoder draws from one digit capsule, the others masked: (l, p, r) = "
                            "label, prediction, reconstruction target, as in Figure 3. The paper shows failures twice, decoded from "
                            "the label's capsule and from the prediction's: choose *Both*.")
controls = st.columns([3, 3, 4, 2, 3], vertical_alignment="bottom")
run, model, images, labels = model_page_inputs(runs, key="reconstructions_run", where=controls[0])

show = controls[1].segmented_control("Show", [SHOW_ALL, SHOW_MISCLASSIFIED], default=SHOW_ALL, key="recon_show") or SHOW_ALL
source = controls[2].segmented_control("Reconstruct from", list(SOURCES), default="Label", key="recon_source",
                                       help="The capsule the decoder is given: the true label's (as in training) or the "
                                            "prediction's (as at test time); Both shows them side by side.") or "Label"
count = controls[3].number_input("Digits shown", 1, 120, 24, step=6, key="recon_count")
if show == SHOW_ALL:
    start = int(controls[4].number_input("First test index", 0, len(images) - 1, 0, step=int(count), key="recon_start"))
    stop = min(start + int(count), len(images))
    codes = digit_codes(run, start, stop)
    indices = np.arange(start, stop)
else:
    searched = controls[4].select_slider("Test digits searched", SEARCH_SIZES, value=1000, key="recon_search",
                                         help="Encoding takes a while on a CPU the first time; results are cached.")
    all_codes = scan_codes(run, searched, progress_text="Searching for misclassified digits")
    wrong = misclassified(labels, all_codes)
    st.caption(f"{len(wrong)} of the first {searched} test digits are misclassified "
               f"({100 * len(wrong) / searched:.2f}% error); showing {min(len(wrong), int(count))}.")
    positions = wrong[: int(count)]
    codes = all_codes.take(positions)
    indices = positions  # the scan starts at test index 0

if len(indices) == 0:
    st.success("No misclassified digit among those searched.", icon=":material/check_circle:")
    st.stop()

sets = [reconstruct_digits(model, images[indices], labels[indices], codes,
                           target=target, indices=indices) for target in SOURCES[source]]
st.plotly_chart(reconstruction_grid_figure(sets, columns=8 if len(sets) == 1 else 6), width="stretch",
                key="reconstruction_grid")

st.subheader("Reconstruction error per digit")
table = reconstruction_table(sets)
metrics = st.columns(len(sets) + 1)
metrics[0].metric("Misclassified shown", f"{int((~table['correct']).sum())} / {len(table)}")
for column, entry in zip(metrics[1:], sets):
    column.metric(f"Mean error, from the {entry.target}", f"{entry.table['error'].mean():.2f}",
                  help="Sum of squared pixel errors per digit, the unweighted reconstruction term of the loss.")
show_table(table, column_config={
    "length": st.column_config.ProgressColumn("predicted capsule length", min_value=0.0, max_value=1.0, format="%.3f"),
    **{column: st.column_config.NumberColumn(format="%.2f") for column in table.columns if column.startswith("error")},
})
