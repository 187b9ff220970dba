"""capsviz.analysis.results: the run tables and the paper's Table 1, tested without Streamlit."""
import pandas as pd
import pytest

from capsviz.analysis.results import best_test_error, curve_summary_table, paper_error, paper_table1, run_summary_row, run_summary_table
from capsviz.store import Run, load_run

from dashboard_fixtures import OLD_R2, synthetic_rows


def test_best_test_error_is_at_the_argmin_epoch():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "test_error": [1.2, 0.5, 0.4, 0.4, 0.6]})
    assert best_test_error(history) == (3, 0.4), "the first of equal minima"
    assert best_test_error(history.iloc[:0]) is None


def test_run_summary_row_of_a_real_run(runs_root):
    run = load_run(runs_root / "tiny-r1", root=runs_root)
    row = run_summary_row(run)
    assert row["Run"] == "tiny-r1" and row["Routings"] == "1" and row["Reconstruction"] == "on"
    assert row["Dataset"] == "mnist" and row["Model"] == "capsnet"
    assert row["Epochs"] == "1 / 1" and row["Status"] == "finished" and row["Best epoch"] == 1
    assert row["Final test error (%)"] == pytest.approx(run.history["test_error"].iloc[-1])
    assert row["Parameters"] == 8_215_568
    assert row["Paper (%)"] == 0.29, "routing 1 with reconstruction is Table 1's 0.29%"
    assert row["Weights"] is True and row["Seconds / epoch"] > 0


def test_run_summary_table_of_synthetic_runs(runs_root):
    found = [load_run(path, root=runs_root) for path in sorted(runs_root.iterdir())]
    table = run_summary_table(found)
    assert table["Run"].tolist() == ["r3-curves", "r3-live", "tiny-r1"]
    curves = table.set_index("Run").loc["r3-curves"]
    rows = synthetic_rows(6, routings=3)
    best = min(rows, key=lambda row: row["test_error"])
    assert curves["Best epoch"] == best["epoch"] and curves["Best test error (%)"] == pytest.approx(best["test_error"])
    assert curves["Epochs"] == "6 / 6" and not curves["Weights"] and curves["Paper (%)"] == 0.25
    assert table.set_index("Run").loc["r3-live", "Status"] == "running"
    summary = curve_summary_table(found)
    assert summary.set_index("Run").loc["r3-curves", "Epochs"] == 6


def test_paper_table1_and_lookup():
    table = paper_table1()
    assert len(table) == 5 and table["MNIST (%)"].iloc[-1] == "0.25 ± 0.005"
    assert paper_error(capsnet_run(routings=3, recon=True)) == 0.25
    assert paper_error(capsnet_run(routings=1, recon=False)) == 0.34
    assert paper_error(capsnet_run(routings=2, recon=True)) is None
    assert paper_error(capsnet_run(routings=3, recon=True, dataset="mnist-40")) is None, "Table 1 is MNIST's"


def capsnet_run(*, routings: int, recon: bool, dataset: str = "mnist", model: str = "capsnet") -> Run:
    config = {"routings": routings, "recon": recon, "dataset": dataset, "model": model}
    return Run(path=None, info={"status": "finished", "config": config}, history=pd.DataFrame(), name="made-up")


def test_a_baseline_run_maps_to_table1s_baseline_row_without_routings_or_reconstruction():
    # the trainer records routings 3 and recon true for the baseline too (its defaults): they do not apply
    baseline = capsnet_run(routings=3, recon=True, model="baseline")
    assert paper_error(baseline) == 0.39
    row = run_summary_row(baseline)
    assert (row["Model"], row["Routings"], row["Reconstruction"], row["Paper (%)"]) == ("baseline", "-", "-", 0.39)
    assert curve_summary_table([baseline])["Routings"].tolist() == ["-"]


def test_an_imported_keras_history_has_no_setup_and_no_paper_row():
    row = run_summary_row(Run.imported("CSV_Num3.csv", pd.DataFrame(synthetic_rows(2, routings=3))))
    assert row["Run"] == "keras: CSV_Num3.csv" and row["Device"] == "keras import" and row["Status"] == "imported"
    assert (row["Dataset"], row["Model"], row["Routings"], row["Paper (%)"]) == ("-", "-", "-", None)
    assert row["Weights"] is False


def test_a_run_without_a_table1_row_leaves_the_paper_cell_empty_not_none():
    """The shipped 7-epoch 2-routing run has no Table 1 row: the column stays numeric (NaN, an empty cell), so the
    home table never shows the text "None"."""
    from capsviz.store import default_runs_root

    shipped = [load_run(default_runs_root() / name) for name in (OLD_R2, "mnist-r3")]
    table = run_summary_table(shipped).set_index("Run")
    assert pd.api.types.is_float_dtype(table["Paper (%)"])
    assert pd.isna(table.loc[shipped[0].name, "Paper (%)"]) and table.loc["mnist-r3", "Paper (%)"] == 0.25
