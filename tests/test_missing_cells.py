"""A number a table does not have is NaN in a float column, never None in an object column: the
column stays numeric (it sorts by value) and the dashboard shows an empty cell (show_table's
placeholder "", where Streamlit 1.67 writes a grey "None"). Every table the pages show, built
without Streamlit, and the home page through AppTest on two shipped runs."""
import shutil

import pandas as pd
import pytest

from capsviz.analysis.groups import group_runs, group_summary_table, table1_measured
from capsviz.analysis.results import (
    CURVE_SUMMARY_NUMBERS,
    RUN_SUMMARY_NUMBERS,
    curve_summary_table,
    paper_table1,
    run_summary_table,
    with_numbers,
)
from capsviz.analysis.robustness_view import COMPARISON_NUMBERS, comparison_table
from capsviz.dashboard.dimension_views import summary_row, summary_table
from capsviz.store import Run, default_runs_root, load_run

from dashboard_fixtures import OLD_R2, open_app

TABLE1_NUMBERS = ["n", "Final test error (%)", "Final std", "Best test error (%)", "Best std", "Paper mean (%)"]


def assert_gaps_are_nan(table: pd.DataFrame, numbers) -> None:
    """No cell holds None; every column of `numbers` is numeric (missing values NaN)."""
    nones = [column for column in table.columns if table[column].map(lambda value: value is None).any()]
    assert not nones, f"None in columns {nones}"
    for column in numbers:
        assert pd.api.types.is_numeric_dtype(table[column]) and table[column].dtype != object, (
            f"{column}: {table[column].dtype}, not a number column")


def unknown_run(name: str = "made-up", **config) -> Run:
    """A run that says nothing measurable: no history, no parameters, a setup Table 1 does not have."""
    config = {"routings": 2, "recon": True, "dataset": "mnist", "model": "capsnet", **config}
    return Run(path=None, info={"status": "finished", "config": config}, history=pd.DataFrame(), name=name)


def test_run_tables_of_runs_without_numbers_are_float_columns_of_nan():
    table = run_summary_table([unknown_run("a"), unknown_run("b")])
    assert_gaps_are_nan(table, RUN_SUMMARY_NUMBERS)
    assert table[list(RUN_SUMMARY_NUMBERS)].isna().all().all(), "every figure missing, as NaN"
    assert all(pd.api.types.is_float_dtype(table[column]) for column in RUN_SUMMARY_NUMBERS)
    summary = curve_summary_table([unknown_run("a"), unknown_run("b")])
    assert_gaps_are_nan(summary, CURVE_SUMMARY_NUMBERS)
    assert summary["Epochs"].tolist() == [0, 0] and pd.api.types.is_integer_dtype(summary["Epochs"]), (
        "a column without gaps keeps its integers")


def test_a_run_with_numbers_beside_one_without_sorts_by_value():
    table = run_summary_table([unknown_run("gaps"), load_shipped("mnist-r3")]).set_index("Run")
    assert_gaps_are_nan(table.reset_index(), RUN_SUMMARY_NUMBERS)
    assert table.loc["mnist-r3", "Paper (%)"] == 0.25 and pd.isna(table.loc["gaps", "Paper (%)"])
    assert table.sort_values("Paper (%)").index.tolist() == ["mnist-r3", "gaps"], "numbers first, gaps last"


def test_table1_measured_without_runs_and_with_one_seed():
    assert_gaps_are_nan(table1_measured([]), TABLE1_NUMBERS)
    one_seed = load_shipped("mnist-r3")
    table = table1_measured([one_seed]).set_index("Setup")
    row = table.loc["CapsNet, routing 3 + reconstruction"]
    assert row["n"] == 1 and pd.isna(row["Final std"]) and pd.isna(row["Best std"]), "one seed: no std"
    assert_gaps_are_nan(table.reset_index(), TABLE1_NUMBERS)
    assert_gaps_are_nan(group_summary_table(group_runs([one_seed])), ["n"])


def test_paper_table1_multimnist_column_is_numbers_with_gaps():
    table = paper_table1().set_index("Setup")
    assert_gaps_are_nan(table, ["MultiMNIST (%)"])
    assert table.loc["Baseline CNN", "MultiMNIST (%)"] == 8.1 and pd.isna(table.loc["CapsNet, routing 1", "MultiMNIST (%)"])


def test_robustness_comparison_of_a_run_without_an_evaluation():
    table = comparison_table([unknown_run()])
    assert_gaps_are_nan(table, COMPARISON_NUMBERS)
    assert table["affNIST-like (%)"].isna().all() and table["affNIST (%)"].tolist()[:2] == [79, 66]


def test_dimension_summary_of_an_unmeasured_run_is_empty_text():
    table = summary_table([summary_row("unmeasured", None)])
    assert_gaps_are_nan(table, [])
    assert table.drop(columns="Run").isna().all().all()


def test_with_numbers_refuses_text_and_keeps_integers():
    table = with_numbers(pd.DataFrame({"a": [1, 2], "b": [None, None], "c": [1.5, None], "d": ["x", "y"]}), "abc")
    assert [str(table[column].dtype) for column in "abc"] == ["int64", "float64", "float64"]
    with pytest.raises(ValueError):
        with_numbers(table, ["d"])


def load_shipped(name: str) -> Run:
    return load_run(default_runs_root() / name)


def test_the_home_page_shows_gaps_as_empty_cells(tmp_path, monkeypatch):
    """The 7-epoch 2-routing run has no Table 1 row and mnist-r3 is one seed (no std): their gaps reach the page as NaN,
    and each table there shows them empty (open_app checks every table's placeholder)."""
    for name in (OLD_R2, "mnist-r3"):  # histories only: the home page reads no weights
        shutil.copytree(default_runs_root() / name, tmp_path / name, ignore=shutil.ignore_patterns("*.pt", "*.npz"))
    app = open_app(tmp_path, monkeypatch)
    runs_table, measured = app.dataframe[0].value.set_index("Run"), app.dataframe[1].value
    assert pd.api.types.is_float_dtype(runs_table["Paper (%)"]) and pd.isna(runs_table.loc[OLD_R2, "Paper (%)"])
    assert measured["Final std"].isna().all() and pd.api.types.is_float_dtype(measured["Final std"])
    assert all(table.proto.placeholder == "" for table in app.dataframe)


def test_every_table_of_the_dashboard_goes_through_show_table():
    """Only page_helpers.show_table calls st.dataframe, so no table shows a grey "None" (a page AppTest
    does not reach, or a section that needs a run the tests lack, included)."""
    from conftest import ROOT

    sources = [*(ROOT / "pages").glob("*.py"), *(ROOT / "capsviz" / "dashboard").glob("*.py"), ROOT / "dashboard.py"]
    direct = [path.relative_to(ROOT).as_posix() for path in sources
              if "st.dataframe(" in path.read_text(encoding="utf-8") and path.name != "page_helpers.py"]
    assert not direct, f"st.dataframe called directly (use capsviz.dashboard.page_helpers.show_table): {direct}"
