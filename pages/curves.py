"""Routing curves: runs overlaid per metric, TensorBoard style, with Keras histories by upload."""
import streamlit as st

from capsviz.analysis.curves import DEFAULT_PANELS, PANELS, X_EPOCH, X_WALL, combined_csv
from capsviz.analysis.groups import BANDS, group_runs, group_summary_table
from capsviz.analysis.results import curve_summary_table
from capsviz.dashboard.figures import curves_figure, run_colors
from capsviz.dashboard.page_helpers import no_runs_message, show_table, start_page
from capsviz.dashboard.safe_html import curves_legend
from capsviz.dashboard.state import load_runs
from capsviz.store import Run
from capsviz.store.keras import KerasCsvError, read_keras_history

REFRESH_SECONDS = 10  # how often the charts reread the files while a chosen run is still training

runs = start_page(__file__, "Training histories overlaid per metric, CapsNet and baseline runs alike (a baseline has no margin "
                            "or reconstruction loss). Runs still training refresh on their own.")

with st.expander("Import Keras histories (CSVLogger files)", icon=":material/upload_file:"):
    uploads = st.file_uploader("Keras CSVLogger histories", type=["csv"], accept_multiple_files=True, key="keras_uploads",
                               help="Columns such as epoch, encoder_acc, val_encoder_acc, loss, val_loss, "
                                    "decoder_loss (see capsviz/store/keras.py for the mapping).")
    keras_seconds = st.number_input("Seconds per epoch of the Keras runs (optional, for the wall-time axis)",
                                    min_value=0.0, value=0.0, step=10.0, key="keras_seconds",
                                    help="CSVLogger records no timings. The seed project reports 285 s (routing 2) "
                                         "and 448 s (routing 3) per epoch on a Colab GPU.")
    st.caption("Keras' `val_*` columns are taken as the test set (the seed project validated on MNIST's test set). "
               "Decoder losses keep Keras' scale: compare their shapes, not their values.")
imported = []
for upload in uploads or []:
    try:
        history = read_keras_history(upload.getvalue(), name=upload.name, seconds_per_epoch=keras_seconds or None)
    except KerasCsvError as error:
        st.error(f"Keras import failed: {error}", icon=":material/error:")
        continue
    imported.append(Run.imported(upload.name, history))

available = [run.name for run in runs.runs + imported]
if not available:
    no_runs_message(runs.root)
    st.stop()

choices = st.columns(2)
# a runs root's folders group comparisons (table1/, schedules/, bugs/: the common port bugs beside the correct run)
ALL_RUNS = "all runs"
folders = sorted({name.split("/")[0] for name in available if "/" in name})
folder = choices[0].selectbox("Compare", [ALL_RUNS, *folders], key="curve_folder",
                              help="The runs of one folder of the runs directory, e.g. bugs: the common bugs of "
                                   "CapsNet ports trained on purpose beside the correct run (docs/bugs.md)")
pool = available if folder == ALL_RUNS else [name for name in available if name.startswith(f"{folder}/")]
chosen = choices[0].multiselect("Runs", available, default=pool[:8],
                                key="curve_runs" if folder == ALL_RUNS else f"curve_runs_{folder}")
panels = choices[1].multiselect("Metrics", list(PANELS), default=list(DEFAULT_PANELS), key="curve_panels")
controls = st.columns([3, 2, 1, 3], vertical_alignment="bottom")
smoothing = controls[0].slider("Smoothing (EMA weight)", 0.0, 0.99, 0.0, 0.01, key="curve_smoothing",
                               help="TensorBoard's smoothing: 0 shows the raw values; raw curves stay faint behind.")
x_axis = controls[1].segmented_control("x axis", [X_EPOCH, X_WALL], default=X_EPOCH, key="curve_x") or X_EPOCH
log_y = controls[2].toggle("Log y", key="curve_log")
group_controls = controls[3].columns([2, 2, 2], vertical_alignment="bottom")
as_groups = group_controls[0].toggle("Group seeds", value=True, key="curve_groups",
                                     help="Runs that differ only in their seed drawn as their mean with a band. "
                                          "Leave a seed out by unticking it in Runs.")
band = group_controls[1].selectbox("Band", BANDS, key="curve_band", disabled=not as_groups,
                                   help="The spread of a group's seeds at each epoch: their min and max, or the "
                                        "mean ± 1 standard deviation")
show_seeds = group_controls[2].toggle("Seeds", key="curve_show_seeds", disabled=not as_groups,
                                      help="Each seed of a group faint behind its mean")

if not chosen or not panels:
    st.info("Choose at least one run and one metric.", icon=":material/info:")
    st.stop()

colors = run_colors(available)  # by position among all runs, so colours do not move as runs are (de)selected
any_running = any(run.is_running for run in runs.runs if run.name in chosen)


@st.fragment(run_every=REFRESH_SECONDS if any_running else None)
def charts(imported: list[Run]) -> None:
    # Reread inside the fragment, so that the timed reruns pick up new epochs (the cache is keyed on
    # the files' modification times, so nothing is parsed again unless a file changed).
    current = {run.name: run for run in load_runs().runs + imported}
    shown = [current[name] for name in chosen if name in current]
    histories = {run.name: run.history for run in shown}
    # a group's colour is its first seed's, so that it keeps the colour the run had alone
    groups = [group for group in group_runs(shown) if group.is_group] if as_groups and x_axis == X_EPOCH else []
    group_members = {group.name: [run.name for run in group.runs] for group in groups}
    group_colors = {**colors, **{group.name: colors[group.runs[0].name] for group in groups}}
    if as_groups and x_axis != X_EPOCH:
        st.caption("Groups are drawn on the epoch axis only (their seeds' wall times differ): each run is shown alone.")
    # One colour key for all charts (they have no legends of their own); every name in it is escaped.
    st.markdown(curves_legend(groups, shown, group_colors), unsafe_allow_html=True)
    grid = st.columns(2)
    for position, title in enumerate(panels):
        figure = curves_figure(histories, panel=PANELS[title], x_axis=x_axis, smoothing=smoothing, log_y=log_y,
                               colors=group_colors, groups=group_members, band=band, show_seeds=show_seeds)
        grid[position % 2].plotly_chart(figure, width="stretch", key=f"curve_{title}")
    st.subheader("Summary")
    number = st.column_config.NumberColumn
    show_table(curve_summary_table(shown), column_config={
        "Run": st.column_config.TextColumn(pinned=True, width="medium"),
        "Routings": st.column_config.TextColumn("Routing", help="'-': a model without routing"),
        "Final test error (%)": number("Final error (%)", format="%.2f"),
        "Best test error (%)": number("Best error (%)", format="%.2f",
                                      help="Lowest test error of any epoch: selected on the test set, so optimistic"),
        "Best epoch": number("at epoch"),
        "Final train loss": number("Train loss", format="%.3g", help="Training loss of the last epoch"),
        "Final test loss": number("Test loss", format="%.3g", help="Test loss of the last epoch"),
        "Seconds / epoch": number("s / epoch", format="%.0f", help="Mean training seconds per epoch"),
        "Wall time (min)": number("Wall (min)", format="%.1f", help="Training and evaluation time so far"),
    })
    if groups:
        st.subheader("Groups")
        show_table(group_summary_table(groups), column_config={
            "Final test error (%)": st.column_config.TextColumn(
                "Final error (%)", help="Each seed's test error after its last epoch: mean ± std (n-1) over seeds"),
            "Best test error (%)": st.column_config.TextColumn(
                "Best error (%), selected on the test set",
                help="Each seed's lowest test error of any epoch, mean ± std: chosen by looking at the test set"),
        })
    live = [run.name for run in shown if run.is_running]
    note = f" Refreshing every {REFRESH_SECONDS} s while training: {', '.join(live)}." if live else ""
    st.download_button("Download the combined CSV", combined_csv(histories), file_name="capsviz-histories.csv",
                       mime="text/csv", icon=":material/download:", help="One row per run and epoch, a `run` column first.")
    st.caption(f"Smoothing applies to the lines only; stars and the table use raw values.{note}")


charts(imported)
