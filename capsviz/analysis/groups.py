"""Run groups: runs that differ only in their seed, summarised as mean and spread.

Table 1 reports each setting as the mean ± std of 3 trials; a sweep (trainer.sweep) trains such
seeds as ordinary runs. Here they are found again from their configs (whatever their folders are
called), their curves averaged epoch by epoch, and their final-epoch test errors (the headline)
and best-epoch test errors (selected on the test set, so labelled) summarised beside the paper's.
Plain numpy and pandas, no Streamlit, no plotting.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..store import Run
from .results import PAPER_TABLE1, best_test_error, last_value, matches_paper_row, numeric_column, with_numbers

# Settings that do not make a run a different experiment: its seed, how long it is planned to run
# (seeds of one sweep may be at different epochs), and where and how fast it computes.
NOT_THE_EXPERIMENT = ("seed", "epochs", "device", "fast", "precision", "data_dir")
SEED_SUFFIX = re.compile(r"[-_]?seed\d+$")
BANDS = ("min-max", "±1 std")


@dataclass(frozen=True)
class RunGroup:
    name: str
    runs: tuple[Run, ...]

    @property
    def seeds(self) -> list:
        return [run.config.get("seed") for run in self.runs]

    @property
    def is_group(self) -> bool:
        return len(self.runs) > 1


def experiment_key(run: Run) -> str:
    """What a run is, seed aside: equal for the seeds of one setting. An imported history (no config)
    is its own experiment."""
    if run.is_imported or not run.config:
        return f"imported:{run.name}"
    setting = {key: value for key, value in run.config.items() if key not in NOT_THE_EXPERIMENT}
    return json.dumps(setting, sort_keys=True, default=str)


def group_name(runs: Sequence[Run]) -> str:
    """The members' common name without the seed ("table1/capsnet-r3-recon" for its -seed0, -seed1,
    ...), else the first member's name and how many more."""
    if len(runs) == 1:
        return runs[0].name
    stems = {SEED_SUFFIX.sub("", run.name) for run in runs}
    if len(stems) == 1 and stems != {runs[0].name}:
        return stems.pop()
    return f"{runs[0].name} +{len(runs) - 1}"


def group_runs(runs: Sequence[Run]) -> list[RunGroup]:
    """The runs grouped by experiment, in the order their first member comes; members by seed."""
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        by_key.setdefault(experiment_key(run), []).append(run)
    groups = []
    for runs_of_key in by_key.values():
        members, repeats = seed_members(runs_of_key)
        members = sorted(members, key=lambda run: (run.config.get("seed") is None, run.config.get("seed") or 0))
        groups.append(RunGroup(group_name(members), tuple(members)))
        groups.extend(RunGroup(run.name, (run,)) for run in repeats)
    return groups


def seed_members(runs: Sequence[Run]) -> tuple[list[Run], list[Run]]:
    """Runs of one setting split into the group's members, each seed once, and repeats: a second run with a
    seed already there (a copy, a rerun, a budget trial of the same setting) is not another sample of the
    setting, so it stands alone rather than shrinking the spread. The members are first the seeds that share
    a name up to -seedN (a sweep's, the most seeds among such names), then any run whose seed is new."""
    by_stem: dict[str, list[Run]] = {}
    for run in runs:
        by_stem.setdefault(SEED_SUFFIX.sub("", run.name), []).append(run)
    sweep = max(by_stem.values(), key=len)  # max keeps the first of equals: the order the runs came in
    members: list[Run] = list(sweep)
    repeats: list[Run] = []
    for run in runs:
        if any(run is member for member in sweep):  # identity: runs hold DataFrames, which do not compare to a bool
            continue
        same_seed = any(run.config.get("seed") == member.config.get("seed") for member in members)
        (repeats if same_seed else members).append(run)
    return members, repeats


def group_curve(histories: Sequence[pd.DataFrame], column: str) -> pd.DataFrame:
    """One history column across seeds, epoch by epoch: mean, std (n-1; NaN for one seed), min,
    max and n, the number of seeds that reached the epoch. Epochs no seed has a value for are left out."""
    frames = [pd.DataFrame({"epoch": history["epoch"].to_numpy(), f"value{index}": numeric_column(history, column).to_numpy()})
              for index, history in enumerate(histories) if len(history)]
    if not frames:
        return pd.DataFrame(columns=["epoch", "mean", "std", "min", "max", "n"])
    table = frames[0]
    for frame in frames[1:]:
        table = table.merge(frame, on="epoch", how="outer")
    values = table.drop(columns="epoch")
    curve = pd.DataFrame({"epoch": table["epoch"], "mean": values.mean(axis=1), "std": values.std(axis=1, ddof=1),
                          "min": values.min(axis=1), "max": values.max(axis=1), "n": values.notna().sum(axis=1)})
    return curve[curve["n"] > 0].sort_values("epoch").reset_index(drop=True)


def band_limits(curve: pd.DataFrame, band: str) -> tuple[pd.Series, pd.Series]:
    """(lower, upper) of a group's band: its seeds' min and max, or the mean ± 1 std."""
    assert band in BANDS, f"band must be one of {BANDS}, got {band!r}"
    if band == "min-max":
        return curve["min"], curve["max"]
    return curve["mean"] - curve["std"], curve["mean"] + curve["std"]


@dataclass(frozen=True)
class GroupErrors:
    """Test errors (%) of a group's seeds: at each seed's last epoch (the headline) and at its best
    epoch (chosen on the test set)."""
    final: np.ndarray
    best: np.ndarray
    epochs: np.ndarray  # epochs each seed has done

    @property
    def n(self) -> int:
        return len(self.final)


def group_errors(group: RunGroup, *, at_epoch: int | None = None) -> GroupErrors:
    """at_epoch: compare groups trained for different lengths at one epoch: each seed's history cut
    after that epoch (a seed that has not reached it is left out); None takes each seed's last epoch."""
    final, best, epochs = [], [], []
    for run in group.runs:
        history = run.history
        if at_epoch is not None and len(history):
            history = history[numeric_column(history, "epoch") <= at_epoch]
            if not len(history) or int(history["epoch"].iloc[-1]) != at_epoch:
                continue
        error = last_value(history, "test_error") if len(history) else None
        if error is None:
            continue
        final.append(error)
        best.append(best_test_error(history)[1])
        epochs.append(int(history["epoch"].iloc[-1]))
    return GroupErrors(np.array(final), np.array(best), np.array(epochs, dtype=int))


def mean_std(values: np.ndarray) -> tuple[float | None, float | None]:
    if not len(values):
        return None, None
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else None)


def epochs_label(epochs: np.ndarray) -> str:
    return "-" if not len(epochs) else (str(epochs.min()) if epochs.min() == epochs.max() else f"{epochs.min()}-{epochs.max()}")


def comparable_to_table1(run: Run) -> bool:
    """A run measured as Table 1 is: MNIST, trained on all 60k images and tested on all 10k, and the paper's
    model (a common port bug trained on purpose, capsviz.model.variants, is no measurement of a Table 1 row)."""
    config = run.config
    return (run.dataset_name == "mnist" and not config.get("subset") and not config.get("test_subset")
            and config.get("variant", "none") == "none")


def table1_measured(runs: Sequence[Run], *, at_epoch: int | None = None) -> pd.DataFrame:
    """Table 1 beside what the runs measured: for each of the paper's MNIST rows, every group of
    runs of that setting (full MNIST only) with n, epochs, final-epoch test error as mean ± std over
    seeds, the best epoch's as well (selected on the test set), and the paper's mean ± std.
    at_epoch: every group as it stood after that epoch (see group_errors), so rows trained for
    different lengths compare fairly."""
    rows = []
    groups = group_runs([run for run in runs if comparable_to_table1(run)])
    for paper in PAPER_TABLE1:
        matching = [group for group in groups if matches_paper_row(group.runs[0], paper)]
        paper_text = f"{paper.mnist_error:.2f}" + (f" ± {paper.mnist_std:.3f}" if paper.mnist_std is not None else "")
        for group in matching or [None]:
            errors = group_errors(group, at_epoch=at_epoch) if group else None
            final_mean, final_std = mean_std(errors.final) if errors else (None, None)
            best_mean, best_std = mean_std(errors.best) if errors else (None, None)
            rows.append({
                "Setup": paper.setup, "Runs": group.name if group else "-", "n": errors.n if errors else 0,
                "Epochs": epochs_label(errors.epochs) if errors and errors.n else "-",
                "Final test error (%)": final_mean, "Final std": final_std,
                "Best test error (%)": best_mean, "Best std": best_std,
                "Paper (%)": paper_text, "Paper mean (%)": paper.mnist_error,
            })
    # a setting no run has (or a single seed: no std) leaves gaps: NaN in numeric columns, empty cells
    return with_numbers(pd.DataFrame(rows), ["n", "Final test error (%)", "Final std", "Best test error (%)", "Best std",
                                             "Paper mean (%)"])


def longest_table1_run(runs: Sequence[Run]) -> int:
    """The most epochs any full-MNIST run has done: the range of the home page's "at epoch" choice."""
    return max((int(run.history["epoch"].iloc[-1]) for run in runs if comparable_to_table1(run) and len(run.history)),
               default=0)


def format_mean_std(mean: float | None, std: float | None, n: int) -> str:
    """"0.31 ± 0.02 (n=3)", "0.45 (n=1)", or "-"."""
    if mean is None:
        return "-"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "") + f" (n={n})"


def group_summary_table(groups: Sequence[RunGroup]) -> pd.DataFrame:
    """The curves page's table of groups: seeds, epochs, and the final and best test errors over seeds."""
    rows = []
    for group in groups:
        errors = group_errors(group)
        final_mean, final_std = mean_std(errors.final)
        best_mean, best_std = mean_std(errors.best)
        rows.append({"Group": group.name, "Seeds": ", ".join(str(seed) for seed in group.seeds), "n": errors.n,
                     "Epochs": epochs_label(errors.epochs),
                     "Final test error (%)": format_mean_std(final_mean, final_std, errors.n),
                     "Best test error (%)": format_mean_std(best_mean, best_std, errors.n)})
    return with_numbers(pd.DataFrame(rows), ["n"])
