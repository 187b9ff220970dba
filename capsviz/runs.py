"""The run directory: the one contract between the trainer (writes) and the dashboard (reads).

    <run>/run.json     config, environment, status, epochs done, final and best test error
    <run>/history.csv  one row per finished epoch (HISTORY_COLUMNS)
    <run>/model.pt     latest weights: {"format", "model_config", "dtype", "state_dict"}; float16 on
                       disk by default, restored to float32 on load; torch.load(weights_only=True) safe
    <run>/state.pt     resume state (fp32 weights, optimizer, schedule, RNG, history); not shipped

Every file is replaced atomically. state.pt is written first at the end of an epoch and is the
commit point: the other three are derived from it, and --resume rewrites them from it.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd
import torch

from .atomic import atomic_torch_save, atomic_write_text
from .capsnet import CapsNet, CapsNetConfig

FORMAT_VERSION = 1
RUN_JSON, HISTORY_CSV, WEIGHTS, STATE = "run.json", "history.csv", "model.pt", "state.pt"
STATUSES = ("running", "finished", "interrupted", "failed")
# test_acc is a fraction in [0, 1]; test_error is in percent, as the paper reports it.
HISTORY_COLUMNS = [
    "epoch", "train_loss", "train_margin_loss", "train_recon_loss", "train_acc",
    "test_loss", "test_margin_loss", "test_recon_loss", "test_acc", "test_error",
    "lr", "epoch_seconds", "images_per_second", "eval_seconds", "wall_seconds", "timestamp",
]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUNS_ROOT_ENV = "CAPSVIZ_RUNS"


class RunError(Exception):
    """A broken or missing run directory; the message is one line naming the file and the problem."""


def default_runs_root() -> Path:
    return Path(os.environ.get(RUNS_ROOT_ENV) or PROJECT_ROOT / "checkpoints")


# ---- writing (the trainer) ---------------------------------------------------------------------

def write_run_json(run_dir: Path, info: dict) -> None:
    assert info.get("status") in STATUSES, f"status must be one of {STATUSES}, got {info.get('status')!r}"
    atomic_write_text(Path(run_dir) / RUN_JSON, json.dumps({"format": FORMAT_VERSION, **info}, indent=2, default=str) + "\n")


def write_history(run_dir: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(Path(run_dir) / HISTORY_CSV, buffer.getvalue())


def write_weights(run_dir: Path, model: CapsNet, *, dtype: torch.dtype = torch.float16) -> None:
    state = {name: tensor.detach().to("cpu", dtype if tensor.is_floating_point() else tensor.dtype).contiguous()
             for name, tensor in model.state_dict().items()}
    atomic_torch_save(Path(run_dir) / WEIGHTS, {
        "format": FORMAT_VERSION, "model_config": model.config.to_dict(),
        "dtype": str(dtype).removeprefix("torch."), "state_dict": state,
    })


def write_state(run_dir: Path, state: dict) -> None:
    atomic_torch_save(Path(run_dir) / STATE, {"format": FORMAT_VERSION, **state})


def read_state(run_dir: Path) -> dict:
    path = Path(run_dir) / STATE
    if not path.exists():
        raise RunError(f"{path}: no resume state (the run never finished an epoch, or it was not kept)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RunError(f"{path}: corrupt resume state ({type(error).__name__})") from None


def read_run_json(run_dir: Path) -> dict:
    path = Path(run_dir) / RUN_JSON
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise RunError(f"{path}: no 'config' object; not a CapsViz run")
    return info


def summarize(history: list[dict]) -> dict:
    """The run.json figures derived from the history rows."""
    if not history:
        return {"epochs_done": 0, "final_test_error": None, "best_test_error": None, "best_epoch": None}
    best = min(history, key=lambda row: row["test_error"])
    return {"epochs_done": int(history[-1]["epoch"]), "final_test_error": history[-1]["test_error"],
            "best_test_error": best["test_error"], "best_epoch": int(best["epoch"])}


# ---- reading (the dashboard, tests, anyone) ----------------------------------------------------

def read_history(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / HISTORY_CSV
    if not path.exists():
        return pd.DataFrame({column: pd.Series(dtype="float64") for column in HISTORY_COLUMNS})
    try:
        history = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: unreadable CSV ({str(error).splitlines()[0]})") from None
    required = ["epoch", "test_error", "timestamp"]
    missing = [column for column in required if column not in history.columns]
    if missing:
        raise RunError(f"{path}: missing columns {missing}")
    # a cut-off row lacks its last fields (timestamp); a damaged one has non-numbers where numbers go
    numbers = history[["epoch", "test_error"]].apply(pd.to_numeric, errors="coerce")
    if numbers.isna().any(axis=None) or history["timestamp"].isna().any():
        raise RunError(f"{path}: truncated or malformed row")
    return history


def load_weights(path: Path) -> CapsNet:
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except Exception as error:
        raise RunError(f"{path}: corrupt weights ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "model_config" not in checkpoint:
        raise RunError(f"{path}: not a CapsViz weights file (needs state_dict and model_config)")
    try:
        model = CapsNet(CapsNetConfig.from_dict(checkpoint["model_config"]))
        model.load_state_dict({name: tensor.float() if tensor.is_floating_point() else tensor
                               for name, tensor in checkpoint["state_dict"].items()})
    except (AssertionError, RuntimeError, TypeError) as error:
        raise RunError(f"{path}: weights do not fit the model ({str(error).splitlines()[0]})") from None
    return model.eval()


@dataclass
class Run:
    """A run directory as read back. `model` loads on first use (None when no weights were kept)."""

    path: Path
    info: dict
    history: pd.DataFrame = field(repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict:
        return self.info["config"]

    @property
    def status(self) -> str:
        return self.info.get("status", "unknown")

    @property
    def has_weights(self) -> bool:
        return (self.path / WEIGHTS).exists()

    @cached_property
    def model(self) -> CapsNet | None:
        return load_weights(self.path / WEIGHTS) if self.has_weights else None


def load_run(path: str | Path) -> Run:
    """Read a run directory. Raises RunError (one line naming the file and problem) when run.json or
    history.csv is broken; broken weights raise RunError when `.model` is first used."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    return Run(path=path, info=read_run_json(path), history=read_history(path))


def list_runs(root: str | Path | None = None) -> list[Path]:
    """Run directories (those holding a run.json) under `root`, default checkpoints/ or $CAPSVIZ_RUNS."""
    root = Path(root) if root is not None else default_runs_root()
    if not root.is_dir():
        return []
    return sorted(path.parent for path in root.rglob(RUN_JSON))

