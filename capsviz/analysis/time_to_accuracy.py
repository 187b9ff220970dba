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


@dataclass(frozen=True)
class Contender:
    """A run on the time-to-accuracy chart: its history on a clock of `seconds_per_epoch` (None: its own wall)."""

    label: str
    history: pd.DataFrame
    seconds_per_epoch: float | None = None


def idle_epoch_seconds(bench_result: dict, *, routings: int = 3, train_images: int = 60_000,
                       test_images: int = 10_000) -> dict[str, float]:
    """{"fast": s, "plain": s}: an MNIST epoch (training and evaluation) at a benchmark's measured throughput
    (trainer.bench's results JSON, bench/results/), for the fast path and for plain PyTorch."""
    for row in bench_result.get("throughput", []):
        if row.get("routings") == routings:
            return {path: train_images / row[f"train_{path}"] + test_images / row[f"eval_{path}"] for path in ("fast", "plain")}
    raise ValueError(f"the benchmark has no {routings}-routing throughput")


def time_to_accuracy_table(contenders: list[Contender], *, reference: Contender,
                           thresholds: tuple[float, ...] = THRESHOLDS) -> pd.DataFrame:
    """One row per contender: its epochs, and for each threshold the hours to first reach it ("Hours to T%") and
    the error the `reference` (the public ports' recipe) had reached in the same time ("Reference then, T% (%)").
    Missing numbers are NaN, so the columns stay numeric."""
    rows = []
    for contender in contenders:
        row = {"Run": contender.label, "Epochs": len(contender.history)}
        for threshold in thresholds:
            crossing = time_to_error(contender.history, threshold, seconds_per_epoch=contender.seconds_per_epoch)
            hours = crossing.seconds / 3600 if crossing else math.nan
            port = (at_time(reference.history, crossing.seconds, seconds_per_epoch=reference.seconds_per_epoch)
                    if crossing else None)
            row[f"Hours to {threshold}%"] = hours
            row[f"Reference then, {threshold}% (%)"] = port if port is not None else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


# ---- the figure the README and the home page show -----------------------------------------------------------
# Shipped runs (names under checkpoints/) on one machine's idle clock: the Intel Xeon with AMX's benchmark.
SHOWCASE_BENCH = "bench/results/20261128-154745-cpu.json"  # trainer.bench, 2-core Intel Xeon with AMX, idle
SHOWCASE = (  # (label, run name, the path whose speed clocks it)
    ("x0.9 per epoch, fast path", "schedules/decay0.9-seed0", "fast"),
    ("cosine, 75-minute budget, fast path", "schedules/budget75m-cosine-seed0", "fast"),
    ("cosine over 30 epochs, fast path, seed 0", "table1/capsnet-r3-recon-seed0", "fast"),
    ("cosine over 30 epochs, fast path, seed 1", "table1/capsnet-r3-recon-seed1", "fast"),
    ("cosine over 30 epochs, fast path, seed 2", "table1/capsnet-r3-recon-seed2", "fast"),
    ("x0.99 per epoch, fast path, seed 0", "table1-x0.99/capsnet-r3-recon-seed0", "fast"),
    ("x0.99 per epoch, fast path, seed 1", "table1-x0.99/capsnet-r3-recon-seed1", "fast"),
    ("x0.99 per epoch, fast path, seed 2", "table1-x0.99/capsnet-r3-recon-seed2", "fast"),
)
# The public ports' recipe: x0.9 per epoch in plain PyTorch (our plain fp32 path: the same epochs, at its speed)
SHOWCASE_REFERENCE = ("public ports' recipe: x0.9 per epoch, plain PyTorch", "schedules/decay0.9-seed0", "plain")


def showcase(histories: dict[str, pd.DataFrame], bench_result: dict) -> tuple[list[Contender], Contender | None]:
    """The shipped runs of SHOWCASE that `histories` (run name -> history) holds, on the benchmark's idle
    clock, and the reference (None when its run is missing)."""
    clock = idle_epoch_seconds(bench_result)

    def contender(label: str, name: str, path: str) -> Contender | None:
        history = histories.get(name)
        return Contender(label, history, clock[path]) if history is not None and len(history) else None

    contenders = [c for c in (contender(*entry) for entry in SHOWCASE) if c is not None]
    return contenders, contender(*SHOWCASE_REFERENCE)
