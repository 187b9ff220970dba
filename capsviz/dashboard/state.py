"""What the dashboard's pages read, through Streamlit's caches: where the runs are (the roots its
starter chose), the runs themselves (keyed on the files' modification times, so a run still
training shows its new epochs), each run's model, the test set of each dataset, and test digits
encoded under a run's model. Everything that computes lives in the plain capsviz modules; this
module only caches, and turns a broken run into one line."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from torch import nn

from ..analysis.digits import DigitCodes, encode_digits, load_test_set
from ..analysis.robustness_view import paired_table
from ..model.routing_view import DigitRouting, trace_digit
from ..model.variants import routed_with_bug
from ..store import (
    EVALUATION,
    HISTORY_CSV,
    ROUTING_CSV,
    RUN_JSON,
    WEIGHTS,
    Run,
    RunError,
    check_inside_root,
    list_runs,
    load_run,
    load_weights,
    read_evaluation,
    read_routing,
    read_run_json,
    runs_roots_from_environment,
)

RUNS_ROOT_KEY = "runs_root"
CHUNK = 500  # test digits encoded per cached chunk: scans of any length reuse the chunks before them


class DashboardOptionError(ValueError):
    """A bad option after `--` on the dashboard's command line; one line."""


def dashboard_options() -> list[str]:
    """The options after `--` in `streamlit run dashboard.py -- --runs DIR`: Streamlit runs the
    script with sys.argv = [the script, those options]. Any other argv (a test runner's) is not ours."""
    return sys.argv[1:] if Path(sys.argv[0]).name == "dashboard.py" else []


def parse_runs_options(options: list[str]) -> list[Path]:
    """The directories of `--runs DIR` (or `--runs=DIR`, repeatable)."""
    roots, rest = [], list(options)
    while rest:
        option = rest.pop(0)
        if option.startswith("--runs="):
            roots.append(option.removeprefix("--runs="))
        elif option == "--runs" and rest:
            roots.append(rest.pop(0))
        else:
            raise DashboardOptionError(f"dashboard option {option!r} not understood: use -- --runs DIR [--runs DIR2]")
    return [Path(root).expanduser() for root in roots if root]


def runs_roots() -> list[Path]:
    """The runs directories this server may show, chosen by whoever started it: `--runs` options,
    else $CAPSVIZ_RUNS (several separated by os.pathsep), else checkpoints/. Nothing from a browser
    adds to them. A bad option raises DashboardOptionError."""
    return parse_runs_options(dashboard_options()) or runs_roots_from_environment()


def runs_root() -> Path:
    """The runs directory picked in the sidebar, one of runs_roots() (else the first)."""
    roots = runs_roots()
    chosen = st.session_state.get(RUNS_ROOT_KEY)
    return next((root for root in roots if str(root) == chosen), roots[0])


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(mtime in ns, size): changes whenever the trainer replaces the file (atomically)."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def run_stamp(path: Path) -> tuple:
    return tuple(file_stamp(path / name) for name in (RUN_JSON, HISTORY_CSV, WEIGHTS))


@st.cache_data(show_spinner=False, max_entries=512)
def _read_run(path: str, root: str, stamp: tuple) -> Run | str:
    """A Run, or the one-line error of a broken run; `stamp` keys the cache on the files."""
    try:
        check_inside_root(Path(path), Path(root))
        return load_run(path, root=root)
    except RunError as error:
        return str(error)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        # run.json is checked on load; this is the net for anything else, so a run never takes a page down
        return f"{path}: unreadable run ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"


@dataclass(frozen=True)
class Runs:
    root: Path
    runs: list[Run]
    errors: list[str]  # one line per broken run directory

    def by_name(self) -> dict[str, Run]:
        return {run.name: run for run in self.runs}

    @property
    def with_weights(self) -> list[Run]:
        return [run for run in self.runs if run.has_weights]

    @property
    def with_capsules(self) -> list[Run]:
        """Runs whose weights hold a CapsNet: what the model pages can show."""
        return [run for run in self.with_weights if run.has_capsules]


def load_runs(root: Path | None = None) -> Runs:
    root = root or runs_root()
    found, errors = [], []
    for path in list_runs(root):
        result = _read_run(str(path), str(root), run_stamp(path))
        (errors if isinstance(result, str) else found).append(result)
    return Runs(root=root, runs=found, errors=errors)


def weights_stamp(run: Run) -> tuple:
    """What keys every cache of a run's model: the weights file's version, and the runs root that the
    file is read from inside of."""
    return file_stamp(run.path / WEIGHTS), None if run.root is None else str(run.root)


@st.cache_resource(show_spinner="Loading weights…", max_entries=4)
def _load_model(path: str, stamp: tuple) -> nn.Module:
    root = None if stamp[1] is None else Path(stamp[1])
    # run.json again (small, bounded): weights that disagree with it are one line, not a traceback further on
    return load_weights(Path(path) / WEIGHTS, root=root, info=read_run_json(Path(path), root=root))


def model_for(run: Run) -> nn.Module:
    """The run's model in eval mode, cached per path and weights file version. Raises RunError."""
    assert run.has_weights, f"{run.name}: no weights to load"
    return _load_model(str(run.path), weights_stamp(run))


@st.cache_data(show_spinner="Loading the test set…", max_entries=4)
def test_set(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """The test set of a dataset by its registry name (a run's config.dataset): uint8 (N, H, W)
    images and int64 labels, 10,000 MNIST digits at 28x28 or, for mnist-40, at 40x40. Raises DataError."""
    return load_test_set(dataset)


@st.cache_data(show_spinner=False, max_entries=256)
def _codes(path: str, stamp: tuple | None, dataset: str, start: int, stop: int) -> DigitCodes:
    model = _load_model(path, stamp)
    images, _ = test_set(dataset)
    return encode_digits(model, images[start:stop])


def digit_codes(run: Run, start: int, stop: int) -> DigitCodes:
    """Capsule lengths and poses of the run's test digits start..stop-1 under its model (cached)."""
    model_for(run)  # raises RunError for broken weights before anything is cached
    return _codes(str(run.path), weights_stamp(run), run.dataset_name, start, stop)


def scan_codes(run: Run, count: int, *, progress_text: str = "Encoding test digits") -> DigitCodes:
    """The first `count` test digits encoded, chunk by chunk with a progress bar when it takes a while."""
    model_for(run)
    stamp = weights_stamp(run)
    starts = list(range(0, count, CHUNK))
    bar = st.progress(0.0, text=progress_text) if count > CHUNK else None
    parts = []
    for done, start in enumerate(starts):
        parts.append(_codes(str(run.path), stamp, run.dataset_name, start, min(start + CHUNK, count)))
        if bar is not None:
            bar.progress((done + 1) / len(starts), text=f"{progress_text}: {min(start + CHUNK, count)} / {count}")
    if bar is not None:
        bar.empty()
    return DigitCodes(np.concatenate([part.lengths for part in parts]), np.concatenate([part.poses for part in parts]))


@st.cache_data(show_spinner=False, max_entries=32)
def _routing(path: str, stamp: tuple | None, image: np.ndarray, iterations: int, bug: str | None = None) -> DigitRouting:
    model = _load_model(path, stamp)
    return trace_digit(model if bug is None else routed_with_bug(bug, model), image, iterations=iterations)


def digit_routing(run: Run, image: np.ndarray, *, iterations: int, bug: str | None = None) -> DigitRouting:
    """One digit's routing with every intermediate number kept (capsviz.model.routing_view.trace_digit) under the
    run's model, cached per weights file version, digit and iteration count: moving the iteration slider, a map
    control or Procedure 1's capsule re-traces nothing. About 1-2 MB per entry (u_hat of every primary capsule
    and each iteration's c_ij, b_ij and agreement), hence 32 entries.
    `bug`: the run's weights routed as that routing bug does (a capsviz.model.variants name; routed_with_bug)."""
    model_for(run)  # raises RunError for broken weights before anything is cached
    return _routing(str(run.path), weights_stamp(run), np.ascontiguousarray(image), int(iterations), bug)


@st.cache_data(show_spinner=False, max_entries=256)
def _routing_history(path: str, root: str | None, stamp: tuple | None) -> pd.DataFrame:
    return read_routing(Path(path), root=None if root is None else Path(root))


def routing_history(run: Run) -> pd.DataFrame:
    """The run's routing.csv (capsviz.store.read_routing), cached per file version: the Routing page
    reruns on every control and reads every run's. Raises RunError for a damaged file (not cached)."""
    return _routing_history(str(run.path), None if run.root is None else str(run.root), file_stamp(run.path / ROUTING_CSV))


def _root_text(run: Run) -> str | None:
    return None if run.root is None else str(run.root)


@st.cache_data(show_spinner=False, max_entries=256)
def _evaluation(path: str, root: str | None, stamp: tuple | None) -> dict | str | None:
    try:
        return read_evaluation(Path(path), root=None if root is None else Path(root))
    except RunError as error:
        return str(error)


def evaluations(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """The runs that have an evaluation.json, with it read (and checked) once per file version, and one
    line for each broken one. Each run's `evaluation` is filled in from the cache: a rerun reads nothing."""
    evaluated, errors = [], []
    for run in runs:
        if run.path is None:
            continue
        result = _evaluation(str(run.path), _root_text(run), file_stamp(run.path / EVALUATION))
        if isinstance(result, str):
            errors.append(result)
        elif result is not None:
            run.__dict__["evaluation"] = result  # Run.evaluation is a cached_property: this is its cache
            evaluated.append(run)
    return evaluated, errors


@st.cache_data(show_spinner="Comparing the runs image by image…", max_entries=64)
def _paired_table(key: tuple, _runs: list[Run]) -> pd.DataFrame:
    return paired_table(_runs)


def cached_paired_table(runs: list[Run]) -> pd.DataFrame:
    """capsviz.analysis.robustness_view.paired_table of runs read by `evaluations`, computed once per set of
    runs and evaluation.json versions (hundreds of thousands of images per run)."""
    key = tuple((run.name, str(run.path), file_stamp(run.path / EVALUATION)) for run in runs)
    return _paired_table(key, runs)
