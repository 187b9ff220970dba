"""Run: one run directory read back, as the dashboard, the tests and a notebook see it."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd
from torch import nn

from ..model.registry import find_model_entry
from .evaluation import read_evaluation
from .format import IMPORTED, STALE, WEIGHTS, RunError
from .histories import read_history
from .liveness import effective_status
from .paths import is_inside, run_name
from .run_json import read_run_json
from .weights import load_weights


@dataclass
class Run:
    """One run, as the dashboard, the tests and a notebook see it: a run directory read back
    (load_run), or a history imported from Keras with no directory (Run.imported: `path` is None,
    `info` holds only a status). `model` loads on first use (None without weights). Picklable
    before `model` is used, so that Streamlit's cache_data can keep it. Settings that do not apply
    to the run's model read None: a baseline CNN has no routings and no reconstruction."""

    path: Path | None
    info: dict
    history: pd.DataFrame = field(repr=False)
    name: str = ""  # default: the directory's name; load_run(root=...) names it by its path under the root
    root: Path | None = None  # the runs root it was listed under: its files are read only from inside it

    def __post_init__(self) -> None:
        if not self.name:
            assert self.path is not None, "a run without a directory needs a name"
            self.name = self.path.name

    @classmethod
    def imported(cls, name: str, history: pd.DataFrame) -> "Run":
        """A history written elsewhere (Keras' CSVLogger), to be overlaid on the curves page."""
        return cls(path=None, info={"status": IMPORTED}, history=history, name=f"keras: {name}")

    @property
    def is_imported(self) -> bool:
        return self.path is None

    @property
    def config(self) -> dict:
        return self.info.get("config") or {}

    @property
    def dataset_name(self) -> str | None:
        """The registry name of the dataset it trained on (capsviz.data.datasets), None for an import."""
        return self.config.get("dataset")

    @property
    def model_name(self) -> str | None:
        """The registry name of its model (capsviz.model.registry), None for an import."""
        return self.config.get("model")

    @property
    def has_capsules(self) -> bool:
        """Whether its model has capsules to show and a decoder to draw with (its registry entry says)."""
        entry = find_model_entry(self.model_name)
        return entry is not None and entry.has_capsules

    @property
    def routings(self) -> int | None:
        entry = find_model_entry(self.model_name)
        return self.config.get("routings") if entry is not None and entry.routes else None

    @property
    def reconstruction(self) -> bool | None:
        return self.config.get("recon") if self.has_capsules else None

    @property
    def status(self) -> str:
        """run.json's status; "stale" for a run marked running whose trainer is gone. A property, not
        a field: it follows the trainer's process while the run sits in a cache."""
        return effective_status(self.info)

    @property
    def is_running(self) -> bool:
        """Training now: marked running, with its trainer still there."""
        return self.status == "running"

    @property
    def is_stale(self) -> bool:
        return self.status == STALE

    @property
    def has_weights(self) -> bool:
        return self.path is not None and (self.path / WEIGHTS).exists()

    @cached_property
    def model(self) -> nn.Module | None:
        return load_weights(self.path / WEIGHTS, root=self.root, info=self.info) if self.has_weights else None

    @cached_property
    def evaluation(self) -> dict | None:
        """evaluation.json (read_evaluation), None without one or for an import; RunError when broken."""
        return None if self.path is None else read_evaluation(self.path, root=self.root)


def load_run(path: str | Path, *, root: str | Path | None = None) -> Run:
    """Read a run directory, named by its path relative to `root` when given (so that runs in nested
    folders keep distinct names), else by the directory's name. Raises RunError (one line naming the
    file and problem) when run.json or history.csv is broken; broken weights raise RunError when
    `.model` is first used."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    # confined to the root it is named under (a run listed there: its files, links followed, must stay
    # inside); a root that does not hold the path, even before links are followed, only names it
    lexically_inside = root is not None and Path(os.path.abspath(path)).is_relative_to(os.path.abspath(root))
    root = Path(root) if lexically_inside or (root is not None and is_inside(path, root)) else None
    return Run(path=path, info=read_run_json(path, root=root), history=read_history(path, root=root),
               name=run_name(path, root), root=root)


def load_capsule_run(path: str | Path, *, purpose: str) -> Run:
    """A run with CapsNet weights, for a tool that reads its capsules; RunError naming what is missing, e.g.
    "checkpoints/x/model.pt: missing; nothing to map" for purpose "map"."""
    run = load_run(path)
    if not run.has_weights:
        raise RunError(f"{Path(path) / WEIGHTS}: missing; nothing to {purpose}")
    if not run.has_capsules:
        raise RunError(f"{path}: a {run.model_name} run has no capsules to {purpose}")
    return run
