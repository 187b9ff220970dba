"""The dashboard's Streamlit glue, shared by its pages: where the runs are, reading them through
Streamlit's caches (keyed on the files' modification times, so a run still training shows its
new epochs), and the MNIST test set. Everything that computes or plots lives in analysis.py and
figures.py; this module only caches and reports errors."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from .analysis import DigitCodes, RunRecord, encode_digits, read_run_record
from .data import DataError, load_mnist
from .capsnet import CapsNet
from .runs import (HISTORY_CSV, RUN_JSON, WEIGHTS, RunError, check_inside_root, list_runs, load_weights,
                   runs_roots_from_environment)

RUNS_ROOT_KEY = "runs_root"
TRAIN_COMMAND = "python -m trainer.run --routings 3"
CHUNK = 500  # test digits encoded per cached chunk: scans of any length reuse the chunks before them


def ensure_entry_script() -> None:
    """Call first in every page. A fresh Streamlit server whose first request is a page's URL (a
    bookmark, a reload after a restart) runs that page file by itself, the old pages/-directory
    way, until some run calls st.navigation: the page would lack dashboard.py's navigation, wide
    layout and sidebar setting. Then switch Streamlit to st.navigation and rerun: the rerun runs
    dashboard.py, which opens this same page (the two modes name a page by the same URL path)."""
    from streamlit.runtime.pages_manager import PagesManager  # no public API says which mode is on

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


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
def _read_record(path: str, root: str, stamp: tuple) -> RunRecord | str:
    """A RunRecord, or the one-line error of a broken run; `stamp` keys the cache on the files."""
    try:
        check_inside_root(Path(path), Path(root))
        return read_run_record(path, root=root)
    except RunError as error:
        return str(error)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        # run.json is checked on load; this is the net for anything else, so a run never takes a page down
        return f"{path}: unreadable run ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"


@dataclass(frozen=True)
class Runs:
    root: Path
    records: list[RunRecord]
    errors: list[str]  # one line per broken run directory

    def by_name(self) -> dict[str, RunRecord]:
        return {record.name: record for record in self.records}

    @property
    def with_weights(self) -> list[RunRecord]:
        return [record for record in self.records if record.has_weights]


def load_runs(root: Path | None = None) -> Runs:
    root = root or runs_root()
    records, errors = [], []
    for path in list_runs(root):
        result = _read_record(str(path), str(root), run_stamp(path))
        (errors if isinstance(result, str) else records).append(result)
    return Runs(root=root, records=records, errors=errors)


def show_run_errors(runs: Runs) -> None:
    for error in runs.errors:
        st.error(f"Broken run skipped: {error}", icon=":material/error:")


@st.cache_resource(show_spinner="Loading weights…", max_entries=4)
def _load_model(path: str, stamp: tuple | None) -> CapsNet:
    return load_weights(Path(path) / WEIGHTS)


def model_for(record: RunRecord) -> CapsNet:
    """The run's CapsNet in eval mode, cached per path and weights file version. Raises RunError."""
    assert record.path is not None and record.has_weights, f"{record.name}: no weights to load"
    return _load_model(record.path, file_stamp(Path(record.path) / WEIGHTS))


@st.cache_data(show_spinner="Loading the MNIST test set…")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 10,000 test digits (uint8 (N, 28, 28), int64 labels)."""
    return load_mnist("test")


def test_set_or_error() -> tuple[np.ndarray, np.ndarray] | None:
    try:
        return test_set()
    except DataError as error:
        st.error(f"MNIST test set unavailable: {error}", icon=":material/error:")
        return None


@st.cache_data(show_spinner=False, max_entries=256)
def _codes(path: str, stamp: tuple | None, start: int, stop: int) -> DigitCodes:
    model = _load_model(path, stamp)
    images, _ = test_set()
    return encode_digits(model, images[start:stop])


def digit_codes(record: RunRecord, start: int, stop: int) -> DigitCodes:
    """Capsule lengths and poses of test digits start..stop-1 under the run's model (cached)."""
    model_for(record)  # raises RunError for broken weights before anything is cached
    return _codes(record.path, file_stamp(Path(record.path) / WEIGHTS), start, stop)


def scan_codes(record: RunRecord, count: int, *, progress_text: str = "Encoding test digits") -> DigitCodes:
    """The first `count` test digits encoded, chunk by chunk with a progress bar when it takes a while."""
    model_for(record)
    stamp = file_stamp(Path(record.path) / WEIGHTS)
    starts = list(range(0, count, CHUNK))
    bar = st.progress(0.0, text=progress_text) if count > CHUNK else None
    parts = []
    for done, start in enumerate(starts):
        parts.append(_codes(record.path, stamp, start, min(start + CHUNK, count)))
        if bar is not None:
            bar.progress((done + 1) / len(starts), text=f"{progress_text}: {min(start + CHUNK, count)} / {count}")
    if bar is not None:
        bar.empty()
    return DigitCodes(np.concatenate([part.lengths for part in parts]), np.concatenate([part.poses for part in parts]))


def choose_model_run(runs: Runs, *, key: str, where=None) -> RunRecord | None:
    """The run selector of the model pages (in `where`, a column, when given): only runs with
    weights. Says why in the main area when there are none."""
    candidates = runs.with_weights
    if not candidates:
        if runs.records:
            st.info("None of the runs has weights (model.pt) yet. Runs with only a history are on the "
                    "Routing curves page.", icon=":material/info:")
        else:
            no_runs_message(runs.root)
        return None
    names = [record.name for record in candidates]
    name = (where or st).selectbox("Run", names, key=key, help="Runs with saved weights (model.pt)")
    return next(record for record in candidates if record.name == name)


def model_page_inputs(runs: Runs, *, key: str, where) -> tuple[RunRecord, CapsNet, np.ndarray, np.ndarray]:
    """What the model pages start from: the run chosen in `where`, its model and the MNIST test set.
    Stops the page, after one error line, when any of them cannot be had."""
    record = choose_model_run(runs, key=key, where=where)
    if record is None:
        st.stop()
    try:
        model = model_for(record)
    except RunError as error:
        st.error(f"Cannot load this run's model: {error}", icon=":material/error:")
        st.stop()
    test_data = test_set_or_error()
    if test_data is None:
        st.stop()
    return (record, model, *test_data)


def no_runs_message(root: Path) -> None:
    # The same words whether or not the directory exists: a page must not tell whether a path exists.
    st.info(f"No runs in `{root}`. Train one with\n\n```\n{TRAIN_COMMAND}\n```\n\n"
            f"(a full epoch takes a while on a CPU; add `--epochs 1 --subset 2000` for a quick look), or start "
            f"the dashboard on another folder of runs: `streamlit run dashboard.py -- --runs DIR`.",
            icon=":material/rocket_launch:")
