"""Curves: how the curves page lays training histories side by side.

The panels it can draw (which history columns each overlays), the TensorBoard-style EMA smoothing,
the unit of a wall-time axis, and all chosen histories combined in one long table for the CSV
download. Histories that lack a column (a baseline run has no margin or reconstruction loss, a Keras
import no timings) stay empty there. Plain numpy and pandas, no Streamlit, no plotting.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..store import HISTORY_COLUMNS


@dataclass(frozen=True)
class Panel:
    """One chart of the curves page: the history columns it overlays (train dashed, test solid)."""

    title: str
    columns: tuple[str, ...]
    y_title: str


PANELS: dict[str, Panel] = {panel.title: panel for panel in (
    Panel("Test error", ("test_error",), "test error (%)"),
    Panel("Loss", ("train_loss", "test_loss"), "total loss"),
    Panel("Margin loss", ("train_margin_loss", "test_margin_loss"), "margin loss"),
    Panel("Reconstruction loss", ("train_recon_loss", "test_recon_loss"), "squared error per image"),
    Panel("Accuracy", ("train_acc", "test_acc"), "accuracy"),
    Panel("Learning rate", ("lr",), "learning rate"),
    Panel("Epoch time", ("epoch_seconds",), "seconds per epoch"),
    Panel("Throughput", ("images_per_second",), "images per second"),
)}
DEFAULT_PANELS = ("Test error", "Loss", "Accuracy")
X_EPOCH, X_WALL = "epoch", "wall time"


def ema(values: Sequence[float] | np.ndarray | pd.Series, *, weight: float) -> np.ndarray:
    """TensorBoard-style exponential moving average, debiased so the curve starts at the first value:
    weight 0 returns the values, weight near 1 smooths hard. NaNs stay NaN (an epoch with no value)
    and do not reset the average."""
    assert 0.0 <= weight < 1.0, f"EMA weight must be in [0, 1), got {weight}"
    series = pd.Series(values, dtype="float64")
    # pandas' adjust=True average is the bias-corrected EMA: sum w^k x_{t-k} / sum w^k.
    smoothed = series.ewm(alpha=1.0 - weight, adjust=True, ignore_na=True).mean()
    return smoothed.where(series.notna()).to_numpy()


def wall_time_unit(max_seconds: float) -> tuple[float, str]:
    """(divisor, unit) that keeps a wall-time axis readable: seconds, minutes or hours."""
    if not math.isfinite(max_seconds) or max_seconds < 120:
        return 1.0, "s"
    if max_seconds < 2 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def combined_history(histories: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """All histories in one long table, a `run` column first, then the trainer's columns (columns a
    history lacks are empty), in the order given."""
    frames = [history.reindex(columns=HISTORY_COLUMNS).assign(run=name) for name, history in histories.items()]
    if not frames:
        return pd.DataFrame(columns=["run", *HISTORY_COLUMNS])
    combined = pd.concat(frames, ignore_index=True)
    return combined[["run", *HISTORY_COLUMNS]]


def combined_csv(histories: Mapping[str, pd.DataFrame]) -> str:
    return combined_history(histories).to_csv(index=False)
