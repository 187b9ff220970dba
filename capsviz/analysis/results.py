"""Results: what the run tables say of each run, and the paper's Table 1 to set them against.

The paper's MNIST test errors (Table 1) and the lookup that maps a run to its row (the baseline CNN,
or a CapsNet by routings and reconstruction); helpers that read a history's columns as numbers (best
test error, last values, seconds per epoch); and the rows of the home page's and the curves page's
run tables. Plain pandas, no Streamlit, no plotting.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..model.registry import find_model_entry
from ..store import STALE, Run

# ---- the paper's reference numbers -------------------------------------------------------------


@dataclass(frozen=True)
class PaperResult:
    setup: str
    model: str  # the registry name (capsviz.model.registry) of the model it is compared with
    routings: int | None
    reconstruction: bool | None
    mnist_error: float  # percent, mean of 3 trials
    mnist_std: float | None
    multimnist_error: float | None


# Table 1 of Sabour et al. (2017): test error in percent.
PAPER_TABLE1 = (
    PaperResult("Baseline CNN", "baseline", None, None, 0.39, None, 8.1),
    PaperResult("CapsNet, routing 1", "capsnet", 1, False, 0.34, 0.032, None),
    PaperResult("CapsNet, routing 1 + reconstruction", "capsnet", 1, True, 0.29, 0.011, 7.5),
    PaperResult("CapsNet, routing 3", "capsnet", 3, False, 0.35, 0.036, None),
    PaperResult("CapsNet, routing 3 + reconstruction", "capsnet", 3, True, 0.25, 0.005, 5.2),
)


def paper_table1() -> pd.DataFrame:
    """Table 1 as a table to show: MNIST as mean ± std of 3 trials (text), MultiMNIST where reported
    (a number; NaN where the paper has none)."""
    return with_numbers(pd.DataFrame([{
        "Setup": result.setup,
        "MNIST (%)": f"{result.mnist_error:.2f}" + (f" ± {result.mnist_std:.3f}" if result.mnist_std is not None else ""),
        "MultiMNIST (%)": result.multimnist_error,
    } for result in PAPER_TABLE1]), ["MultiMNIST (%)"])


def paper_error(run: Run) -> float | None:
    """Table 1's MNIST test error (%) for a run's setup: the baseline's, or a CapsNet's of the same
    routings and reconstruction setting. None for what the table does not report (routing 2, another
    dataset, a Keras import). A MultiMNIST run gets Table 1's MultiMNIST column (paper_multimnist_error)."""
    if run.dataset_name == "multimnist":
        return paper_multimnist_error(run)
    row = paper_row(run) if run.dataset_name == "mnist" else None
    return row.mnist_error if row else None


def paper_multimnist_error(run: Run) -> float | None:
    """Table 1's MultiMNIST test error (%) for a CapsNet of the run's routings and reconstruction
    setting (7.5 for 1 routing, 5.2 for 3, both with reconstruction); None where the table has none."""
    row = paper_row(run)
    entry = find_model_entry(row.model) if row else None
    return row.multimnist_error if entry is not None and entry.has_capsules else None


def paper_row(run: Run):
    """The row of Table 1 with the run's model (and, for a CapsNet, its routings and reconstruction
    setting), or None."""
    return next((row for row in PAPER_TABLE1 if matches_paper_row(run, row)), None)


def matches_paper_row(run: Run, row) -> bool:
    """The same model and, where it routes and reconstructs (its registry entry says), the same routings and
    reconstruction setting: both None for a model without them."""
    return row.model == run.model_name and (row.routings, row.reconstruction) == (run.routings, run.reconstruction)


# ---- histories as numbers ---------------------------------------------------------------------

def numeric_column(history: pd.DataFrame, column: str) -> pd.Series:
    """A history column as floats (empty cells NaN); all NaN when the history lacks the column
    (an imported Keras history has no timings)."""
    if column not in history:
        return pd.Series(np.nan, index=history.index, dtype="float64")
    return pd.to_numeric(history[column], errors="coerce")


def best_test_error(history: pd.DataFrame) -> tuple[int, float] | None:
    """(epoch, test error in %) of the lowest test error (the first, if several epochs tie), or None
    for a history without test errors."""
    errors = numeric_column(history, "test_error")
    if errors.isna().all():
        return None
    position = int(np.nanargmin(errors.to_numpy()))
    return int(history["epoch"].iloc[position]), float(errors.iloc[position])


def mean_epoch_seconds(history: pd.DataFrame) -> float | None:
    seconds = numeric_column(history, "epoch_seconds")
    return None if seconds.isna().all() else float(seconds.mean())


def last_value(history: pd.DataFrame, column: str) -> float | None:
    """The column's value at the last epoch, None when there is none."""
    values = numeric_column(history, column)
    return _number_or_none(float(values.iloc[-1])) if len(values) else None


def _number_or_none(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


# ---- tables of numbers with gaps ----------------------------------------------------------------

def with_numbers(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The table with `columns` (those it has) as numbers, a missing value (None) NaN: a column of
    numbers with gaps, or of gaps only, stays numeric, so it sorts by value and the dashboard shows
    a gap as an empty cell (pandas makes a column of None alone, or of None beside text, `object`,
    which a table shows as text). A column without gaps keeps its integers. Text in one raises."""
    table = table.copy()
    for column in columns:
        if column in table:
            values = pd.to_numeric(table[column])
            table[column] = values.astype("float64") if values.dtype == object else values
    return table


# ---- run tables --------------------------------------------------------------------------------

def device_label(info: dict) -> str:
    environment = info.get("environment") or {}
    device = environment.get("device") or "?"
    name = environment.get("device_name")
    threads = environment.get("threads")
    if name:
        return f"{device} ({name})"
    if device == "cpu" and threads:
        return f"cpu ({threads} threads)"
    return device


STATUS_LABELS = {STALE: "stopped (trainer gone)"}  # how the tables show a status


def routings_label(run: Run) -> str:
    """The routing iterations as the tables show them: "-" for a model without routing (the baseline)
    or a run that does not say (a Keras import). Text, so that one column holds both."""
    return "-" if run.routings is None else str(run.routings)


def run_summary_row(run: Run) -> dict:
    """One row of the home page's run table. Figures come from the history when it has rows (it is
    what the curves show), else from run.json (a run that has not finished an epoch yet)."""
    info, history = run.info, run.history
    best = best_test_error(history)
    epochs_total = run.config.get("epochs")
    epochs_done = int(history["epoch"].iloc[-1]) if len(history) else int(info.get("epochs_done") or 0)
    final_error = last_value(history, "test_error") if len(history) else _number_or_none(info.get("final_test_error"))
    reconstruction = run.reconstruction
    return {
        "Run": run.name,
        "Dataset": run.dataset_name or "-",
        "Model": run.model_name or "-",
        "Routings": routings_label(run),
        "Reconstruction": "-" if reconstruction is None else ("on" if reconstruction else "off"),
        "Epochs": f"{epochs_done} / {epochs_total}" if epochs_total else str(epochs_done),
        "Status": STATUS_LABELS.get(run.status, run.status),
        "Final test error (%)": final_error,
        "Best test error (%)": best[1] if best else _number_or_none(info.get("best_test_error")),
        "Best epoch": best[0] if best else info.get("best_epoch"),
        "Paper (%)": paper_error(run),
        "Parameters": info.get("parameters"),
        "Device": "keras import" if run.is_imported else device_label(info),
        "Seconds / epoch": mean_epoch_seconds(history),
        "Weights": run.has_weights,
    }


RUN_SUMMARY_NUMBERS = ("Final test error (%)", "Best test error (%)", "Best epoch", "Paper (%)", "Parameters",
                       "Seconds / epoch")


def run_summary_table(runs: Sequence[Run]) -> pd.DataFrame:
    # a column of numbers with gaps (no Table 1 row for 2 routings, no timings in a Keras import) stays
    # numeric: NaN, an empty cell, where None would make the column text
    return with_numbers(pd.DataFrame([run_summary_row(run) for run in runs]), RUN_SUMMARY_NUMBERS)


CURVE_SUMMARY_NUMBERS = ("Epochs", "Final test error (%)", "Best test error (%)", "Best epoch", "Final train loss",
                         "Final test loss", "Seconds / epoch", "Wall time (min)")


def curve_summary_table(runs: Sequence[Run]) -> pd.DataFrame:
    """The curves page's table: where each chosen run ended and where it was best."""
    rows = []
    for run in runs:
        history = run.history
        best = best_test_error(history)
        wall = last_value(history, "wall_seconds")
        rows.append({
            "Run": run.name, "Status": STATUS_LABELS.get(run.status, run.status), "Routings": routings_label(run),
            "Epochs": len(history),
            "Final test error (%)": last_value(history, "test_error"),
            "Best test error (%)": best[1] if best else None, "Best epoch": best[0] if best else None,
            "Final train loss": last_value(history, "train_loss"), "Final test loss": last_value(history, "test_loss"),
            "Seconds / epoch": mean_epoch_seconds(history),
            "Wall time (min)": wall / 60 if wall is not None else None,
        })
    return with_numbers(pd.DataFrame(rows), CURVE_SUMMARY_NUMBERS)
