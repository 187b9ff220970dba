"""A run's two CSV files: history.csv (one row per finished epoch, HISTORY_COLUMNS) and routing.csv
(Figure A.1's routing statistics per epoch and routing iteration, ROUTING_COLUMNS; CapsNet runs only,
older runs lack it). Both are derived from state.pt's history rows and rewritten whole each epoch."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .files import read_csv, write_csv
from .format import HISTORY_COLUMNS, HISTORY_CSV, ROUTING_COLUMNS, ROUTING_CSV, RunError


def write_history(run_dir: Path, rows: list[dict]) -> None:
    write_csv(Path(run_dir) / HISTORY_CSV, HISTORY_COLUMNS, rows)


def read_history(run_dir: Path, *, root: Path | None = None) -> pd.DataFrame:
    """history.csv, or an empty frame with its columns when the run has none yet. RunError naming the
    file when it is damaged."""
    path = Path(run_dir) / HISTORY_CSV
    history = read_csv(path, HISTORY_COLUMNS, root=root)
    if not path.exists():
        return history
    required = ["epoch", "test_error", "timestamp"]
    missing = [column for column in required if column not in history.columns]
    if missing:
        raise RunError(f"{path}: missing columns {missing}")
    # a cut-off row lacks its last fields (timestamp); a damaged one has non-numbers where numbers go
    numbers = history[["epoch", "test_error"]].apply(pd.to_numeric, errors="coerce")
    if numbers.isna().any(axis=None) or history["timestamp"].isna().any():
        raise RunError(f"{path}: truncated or malformed row")
    return history


def write_routing(run_dir: Path, rows: list[dict]) -> None:
    write_csv(Path(run_dir) / ROUTING_CSV, ROUTING_COLUMNS, rows)


# The files that a model's after-epoch probe is written to (capsviz.model.registry.EpochProbe.file), with their columns
PROBE_FILES = {ROUTING_CSV: ROUTING_COLUMNS}


def write_probe_rows(run_dir: Path, file: str, rows: list[dict]) -> None:
    """An after-epoch probe's file (EpochProbe.file: routing.csv) from every epoch's rows (EpochProbe.rows)."""
    if file not in PROBE_FILES:
        raise ValueError(f"{file}: not a probe's file of the run directory (the store writes {', '.join(PROBE_FILES)})")
    write_csv(Path(run_dir) / file, PROBE_FILES[file], rows)


def read_routing(run_dir: Path, *, root: Path | None = None) -> pd.DataFrame:
    """routing.csv, or an empty frame with its columns when the run has none (older runs, the baseline).
    Raises RunError naming the file when it is damaged."""
    path = Path(run_dir) / ROUTING_CSV
    routing = read_csv(path, ROUTING_COLUMNS, root=root)
    if not path.exists():
        return routing
    missing = [column for column in ROUTING_COLUMNS if column not in routing.columns]
    if missing:
        raise RunError(f"{path}: missing columns {missing}")
    numbers = routing[ROUTING_COLUMNS].apply(pd.to_numeric, errors="coerce")
    if numbers.isna().any(axis=None):
        raise RunError(f"{path}: truncated or malformed row")
    return numbers
