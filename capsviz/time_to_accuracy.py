"""Time to accuracy: how long a recipe takes on a machine to first bring the test error down to a threshold.

A user with a laptop asks "how good a model can this machine make in the time I have"; these answer it from
training histories:

    time_to_error       the first epoch whose test error is at or below a threshold, and the seconds it took
    at_time             the test error a run had reached by a given time (its last epoch finished by then)
    scaled_history      a history whose times are multiplied by a factor: the same epochs at another speed

Two clocks. "wall" is the history's own wall_seconds (training and evaluation, as measured while it trained:
slower when several runs shared the machine). "epochs" counts epochs times one measured epoch time, so that runs
trained under different loads compare on the speed of an idle machine; the caller states which it used.

The threshold is crossed on the test set: the moment is chosen by looking at it, as any time-to-accuracy
figure does, and is labelled so wherever it is shown; the headline of a run stays its final-epoch error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .results import numeric_column

THRESHOLDS = (0.5, 0.4)  # test error (%), 3 routings on MNIST: where the ports and the paper's table lie


@dataclass(frozen=True)
class Crossing:
    epoch: int  # the first epoch at or below the threshold
    seconds: float  # the run's time when that epoch ended
    error: float  # its test error (%)


def run_clock(history: pd.DataFrame, *, seconds_per_epoch: float | None = None) -> np.ndarray:
    """Seconds at the end of each epoch: the history's wall_seconds, or epoch x `seconds_per_epoch`."""
    epochs = numeric_column(history, "epoch").to_numpy(dtype=float)
    if seconds_per_epoch is not None:
        if not (math.isfinite(seconds_per_epoch) and seconds_per_epoch > 0):
            raise ValueError(f"seconds_per_epoch must be a positive number, got {seconds_per_epoch}")
        return epochs * seconds_per_epoch
    return numeric_column(history, "wall_seconds").to_numpy(dtype=float)


def time_to_error(history: pd.DataFrame, threshold: float, *, seconds_per_epoch: float | None = None) -> Crossing | None:
    """The first epoch whose test error is at or below `threshold` (%), or None when no epoch reached it."""
    errors = numeric_column(history, "test_error").to_numpy(dtype=float)
    clock = run_clock(history, seconds_per_epoch=seconds_per_epoch)
    epochs = numeric_column(history, "epoch").to_numpy(dtype=float)
    reached = np.flatnonzero(np.isfinite(errors) & (errors <= threshold) & np.isfinite(clock))
    if not len(reached):
        return None
    first = reached[0]
    return Crossing(epoch=int(epochs[first]), seconds=float(clock[first]), error=float(errors[first]))


def at_time(history: pd.DataFrame, seconds: float, *, seconds_per_epoch: float | None = None) -> float | None:
    """The test error of the last epoch that had ended by `seconds`; None when none had."""
    errors = numeric_column(history, "test_error").to_numpy(dtype=float)
    clock = run_clock(history, seconds_per_epoch=seconds_per_epoch)
    ended = np.flatnonzero(np.isfinite(clock) & (clock <= seconds) & np.isfinite(errors))
    return float(errors[ended[-1]]) if len(ended) else None


def scaled_history(history: pd.DataFrame, factor: float) -> pd.DataFrame:
    """The same epochs at `factor` times the time each took (e.g. a plain PyTorch port's speed against the
    fast path's: their images per second, measured on the same machine, in ratio)."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"the time factor must be a positive number, got {factor}")
    scaled = history.copy()
    for column in ("wall_seconds", "epoch_seconds", "eval_seconds"):
        if column in scaled:
            scaled[column] = numeric_column(history, column) * factor
    if "images_per_second" in scaled:
        scaled["images_per_second"] = numeric_column(history, "images_per_second") / factor
    return scaled
