"""Home: every run at a glance, the paper's Table 1 for reference, and a guide to the pages."""
import streamlit as st

from capsviz.analysis.groups import longest_table1_run, table1_measured
from capsviz.analysis.results import paper_table1, run_summary_table
from capsviz.dashboard.page_helpers import no_runs_message, show_table, start_page
from capsviz.dashboard.page_table import PAGE_TABLE
from capsviz.dashboard.time_views import show_time_to_accuracy

runs = start_page(__file__, "Sabour, Frosst & Hinton, *Dynamic Routing Between Capsules* (NIPS 2017), reimplemented in PyTorch: "
                            "training runs compared, and the paper's figures made interactive.")

NUMBER = st.column_config.NumberColumn
PAPER_BEST = 0.25  # Table 1: routing 3 with reconstruction
st.subheader("Runs")
if not runs.runs:
    no_runs_message(runs.root)
else:
    for run in runs.runs:
        if run.status == "failed":  # e.g. a NaN loss: say why, beside the table's "failed"
            st.warning(f"Run {run.name} failed: {run.info.get('error') or 'no error recorded'}",
                       icon=":material/warning:")
    table = run_summary_table(runs.runs)
    figures = st.columns(4)
    figures[0].metric("Runs", len(table), border=True)
    figures[1].metric("Training now", int((table["Status"] == "running").sum()), border=True)
    # the headline is a run's final-epoch error; its best epoch was chosen by looking at the test set
    final = table[table["Dataset"] == "mnist"].dropna(subset=["Final test error (%)"]).sort_values("Final test error (%)")
    if len(final):
        error = final["Final test error (%)"].iloc[0]
        figures[2].metric(f"Lowest final MNIST test error ({final['Run'].iloc[0]})", f"{error:.2f}%",
                          delta=f"{error - PAPER_BEST:+.2f} vs the paper's {PAPER_BEST}%", delta_color="inverse",
                          border=True, help="Test error after a run's last epoch, on its dataset's test set")
    hours = sum(run.info.get("wall_seconds") or 0 for run in runs.runs) / 3600
    figures[3].metric("Training time, all runs", f"{hours:.1f} h", border=True)
    show_table(
        table,
        column_config={
            "Run": st.column_config.TextColumn("Run", pinned=True),
            "Dataset": st.column_config.TextColumn("Dataset", help="What it trained and is tested on: mnist, or "
                                                   "mnist-40 (digits placed on a 40x40 canvas)"),
            "Model": st.column_config.TextColumn("Model", help="capsnet, or the paper's baseline CNN"),
            "Routings": st.column_config.TextColumn("Routing", help="Routing iterations ('-': a model without routing)"),
            "Reconstruction": st.column_config.TextColumn("Recon.", help="Trained with the reconstruction loss"),
            "Epochs": st.column_config.TextColumn("Epochs", help="Epochs done / planned"),
            "Status": st.column_config.TextColumn("Status", help="running, finished, interrupted or failed; "
                                                  "'stopped (trainer gone)': marked running, but its trainer "
                                                  "has ended without saying so (killed, machine restarted)"),
            "Final test error (%)": NUMBER("Final (%)", format="%.2f", help="Test error after the last epoch"),
            "Best test error (%)": NUMBER("Best (%)", format="%.2f", help="Lowest test error of any epoch: "
                                          "selected on the test set, so optimistic"),
            "Best epoch": NUMBER("at epoch", help="The epoch of the best test error (from 1)"),
            "Paper (%)": NUMBER("Paper (%)", format="%.2f", help="Table 1's MNIST error for this model (the "
                                "baseline CNN, or CapsNet by routing and reconstruction); its MultiMNIST "
                                "error for a MultiMNIST run"),
            "Parameters": NUMBER("Params", format="compact", help="Trainable parameters, decoder included"),
            "Device": st.column_config.TextColumn("Device"),
            "Seconds / epoch": NUMBER("s / epoch", format="%.0f", help="Mean training seconds per epoch"),
            "Weights": st.column_config.CheckboxColumn("Weights", help="model.pt saved: a CapsNet run is on the model pages"),
        },
    )
    st.caption(f"From `{runs.root}`. Test errors are on the test set of each run's dataset (or the part of it "
               f"a run was evaluated on with `--test-subset`).")

st.subheader("Table 1, measured")
longest = longest_table1_run(runs.runs)
at_epoch = None
if longest > 1:
    # rows trained for different lengths (a sweep extended some rows) only compare at one epoch
    choice = st.select_slider("At epoch", options=["final", *range(1, longest + 1)], value="final",
                              help="'final': each seed's last epoch, the headline. An epoch: every row as it "
                                   "stood after that epoch; seeds that have not reached it are left out.")
    at_epoch = None if choice == "final" else int(choice)
measured = table1_measured(runs.runs, at_epoch=at_epoch)
if not (measured["n"] > 0).any():
    st.caption("No full-MNIST run here has finished an epoch yet: this table fills in as runs of the paper's "
               "settings train.")
else:
  show_table(measured.drop(columns=["Paper mean (%)"]), column_config={
    "Setup": st.column_config.TextColumn("Setup", pinned=True),
    "Runs": st.column_config.TextColumn("Runs", help="The runs of this setting that differ only in seed (a sweep's "
                                        "-seed0, -seed1, ...), or one run"),
    "n": NUMBER("n", help="Seeds with at least one epoch"),
    "Epochs": st.column_config.TextColumn("Epochs", help="Epochs done (a range when the seeds differ)"),
    "Final test error (%)": NUMBER("Final (%)", format="%.3f", help="The headline: test error after each seed's "
                                   "last epoch, mean over seeds"),
    "Final std": NUMBER("± std", format="%.3f", help="Standard deviation over seeds (n-1); empty for one seed"),
    "Best test error (%)": NUMBER("Best (%), selected on test", format="%.3f",
                                  help="Each seed's lowest test error of any epoch, mean over seeds: chosen by "
                                       "looking at the test set, so optimistic"),
    "Best std": NUMBER("± std", format="%.3f"),
    "Paper (%)": st.column_config.TextColumn("Paper (%)", help="Table 1: mean ± std of 3 trials"),
})
st.caption("Full MNIST runs only (no --subset or --test-subset). `python -m trainer.sweep --grid table1 --seeds 0,1,2 "
           "--epochs N` trains this grid; the README says on which CPU and for how long the shipped runs trained.")

show_time_to_accuracy(runs.runs)

paper_column, guide_column = st.columns([3, 2], gap="large")
with paper_column:
    st.subheader("Paper, Table 1")
    show_table(paper_table1(), column_config={"MultiMNIST (%)": NUMBER("MultiMNIST (%)", format="%.1f")})
    st.caption("Test error (%); MNIST as mean ± std of 3 trials. No open reimplementation is known to reach 0.25%.")

with guide_column:
    st.subheader("Pages")
    for entry in PAGE_TABLE:  # every page but this one (the default), as capsviz/dashboard/page_table.py lists them
        if not entry.default:
            st.page_link(entry.path, label=entry.title, icon=entry.icon)
            st.caption(entry.shows)
