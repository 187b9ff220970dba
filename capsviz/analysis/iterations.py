"""How the number of routing iterations changes learning: runs that differ only in their routings,
side by side (the paper tried 1, 3, 5, 7 and 10 iterations; section 4's "3 iterations" is its choice).

    routing_families   the CapsNet runs grouped by everything but their routings (and their seed and
                       machine settings, as capsviz.groups ignores them; their planned epochs count, since
                       iterations are compared at one training length): each family with two or more
                       routing counts is one comparison; a run copied to another folder counts once
    iterations_table   a family's numbers per run: final test error and loss, seconds per epoch, and the
                       last epoch's mean |delta b_ij| of its first and last iteration (routing.csv)

Plain pandas, no Streamlit, no plotting: the Routing page draws these (capsviz.dashboard.routing_figures).
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from ..store import Run
from .groups import NOT_THE_EXPERIMENT
from .results import last_value, mean_epoch_seconds, with_numbers

# what is not the comparison: the routings themselves, beside what capsviz.groups ignores but the epochs
NOT_THE_FAMILY = (*(key for key in NOT_THE_EXPERIMENT if key != "epochs"), "routings")
ITERATION_NUMBERS = ("Routings", "Epochs", "Final test error (%)", "Final test loss", "Seconds / epoch",
                     "Δb, first iteration", "Δb, last iteration")


@dataclass(frozen=True)
class RoutingFamily:
    name: str
    runs: tuple[Run, ...]  # sorted by routings, then name

    @property
    def routings(self) -> list[int]:
        return sorted({run.routings for run in self.runs})


def family_key(run: Run) -> str:
    """What a run is, its routings and seed aside: equal for the runs of one iterations comparison. A run
    whose epochs a time budget planned is apart from one given its epochs: its schedule was laid out after
    its first epoch, so the same settings did not train the same way."""
    setting = {key: value for key, value in run.config.items() if key not in NOT_THE_FAMILY}
    return json.dumps([run.dataset_name, setting, budget_planned(run)], sort_keys=True, default=str)


def budget_planned(run: Run) -> bool:
    """Whether a time budget planned any of the run's epochs: its budget, or one a resume dropped."""
    changes = [resume.get("changes") for resume in run.info.get("resumes") or []]
    return "budget" in run.info or any(isinstance(change, dict) and "budget" in change for change in changes)


def folder(run: Run) -> str:
    return run.name.rsplit("/", 1)[0] if "/" in run.name else ""


def family_name(runs: Sequence[Run]) -> str:
    """The folder the runs share ("routings" for routings/r1-seed0 ...), else their names (a few) or the
    first's and how many more."""
    folders = {folder(run) for run in runs}
    if len(folders) == 1 and "" not in folders:
        return folders.pop()
    return ", ".join(run.name for run in runs) if len(runs) <= 3 else f"{runs[0].name} +{len(runs) - 1}"


def is_copy(run: Run, other: Run) -> bool:
    """The same training seen twice: the same routings and seed and the same history, epoch by epoch (a run
    copied to another folder, as the shipped mnist-r3 is a copy of Table 1's 3-routing seed 0)."""
    return (run.routings == other.routings and run.config.get("seed") == other.config.get("seed")
            and run.history.equals(other.history))


def without_copies(members: Sequence[Run]) -> list[Run]:
    """Each training once: of a run and its copies, the one whose folder holds the most of the family stays
    (a sweep's seed rather than a lone copy elsewhere), then the first by name. A rerun of a seed that
    trained differently is another sample and stays."""
    folder_sizes = Counter(folder(run) for run in members)
    kept: list[Run] = []
    for run in sorted(members, key=lambda run: (-folder_sizes[folder(run)], run.name)):
        if not any(is_copy(run, other) for other in kept):
            kept.append(run)
    return kept


def routing_families(runs: Sequence[Run]) -> list[RoutingFamily]:
    """The families of CapsNet runs (with a config and a history) that differ only in their routings,
    with at least two routing counts; the largest first (most routing counts, then most runs). A run and
    its copies are one member (without_copies)."""
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        if run.is_imported or not run.config or not run.has_capsules or run.routings is None or not len(run.history):
            continue
        by_key.setdefault(family_key(run), []).append(run)
    families = []
    for members in by_key.values():
        members = sorted(without_copies(members), key=lambda run: (run.routings, run.name))
        if len({run.routings for run in members}) >= 2:
            families.append(RoutingFamily(family_name(members), tuple(members)))
    return sorted(families, key=lambda family: (-len(family.routings), -len(family.runs), family.name))


def last_epoch_logit_change(routing: pd.DataFrame) -> pd.Series:
    """routing.csv's last probed epoch: mean |delta b_ij| indexed by iteration (empty for no rows)."""
    if routing is None or routing.empty:
        return pd.Series(dtype="float64")
    last = routing[routing["epoch"] == routing["epoch"].max()].sort_values("iteration")
    return pd.Series(last["mean_abs_logit_change"].to_numpy(dtype="float64"), index=last["iteration"].astype(int))


def iterations_table(runs: Sequence[Run], routing_by_run: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per run: its routings, epochs, final test error and test loss (the last epoch's, the
    headline), mean training seconds per epoch (as measured where and while it trained: see each
    run's environment), and from routing.csv the last epoch's mean |delta b_ij| of iteration 1 and of its
    last iteration (how far routing was from settling when it stopped: that update changes no output;
    empty for a run without routing.csv)."""
    rows = []
    for run in runs:
        history = run.history
        change = last_epoch_logit_change(routing_by_run.get(run.name))
        rows.append({
            "Run": run.name, "Routings": run.routings, "Epochs": len(history),
            "Final test error (%)": last_value(history, "test_error"),
            "Final test loss": last_value(history, "test_loss"),
            "Seconds / epoch": mean_epoch_seconds(history),
            "Δb, first iteration": float(change.iloc[0]) if len(change) else None,
            "Δb, last iteration": float(change.loc[run.routings]) if run.routings in change.index else None,
        })
    return with_numbers(pd.DataFrame(rows, columns=["Run", *ITERATION_NUMBERS]), ITERATION_NUMBERS)
