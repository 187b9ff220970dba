"""What every dashboard page shows the same way: its top (the entry-script check that comes first,
its heading from the page table, what it shows, the runs and their errors), broken runs as one line each,
the empty state, and the run selector and inputs of the model pages (a CapsNet run with weights, its
model, and the test set of the dataset it trained on)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import streamlit as st
from torch import nn

from ..data.datasets import DATASETS, get_dataset
from ..data.mnist import DataError
from ..store import Run, RunError
from . import state
from .page_table import ROOT, page_by_path
from .state import Runs, load_runs, model_for

TRAIN_COMMAND = "python -m trainer.run --routings 3"


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


MISSING = ""  # how a table shows a missing value: an empty cell


def show_table(table, **options):
    """st.dataframe as every page shows a table: a missing value is an empty cell, without the index,
    the page's width (each option can be overridden). Streamlit 1.67 writes a grey "None" in any
    cell whose value is missing, NaN of a float column included, unless placeholder says otherwise;
    the tables keep their numbers numeric with NaN where one is missing (so columns sort by value)."""
    return st.dataframe(table, **{"hide_index": True, "width": "stretch", "placeholder": MISSING, **options})


def start_page(page_file: str, caption: str) -> Runs:
    """The top of every page, called before it draws anything: through dashboard.py first
    (ensure_entry_script), the heading its entry in the page table names, `caption` (what the page shows),
    then the runs, each broken one named in one error line. `page_file`: the page's __file__."""
    ensure_entry_script()
    st.title(page_by_path(Path(page_file).resolve().relative_to(ROOT).as_posix()).page_heading)
    st.caption(caption)
    runs = load_runs()
    show_run_errors(runs)
    return runs


def show_run_errors(runs: Runs) -> None:
    for error in runs.errors:
        st.error(f"Broken run skipped: {error}", icon=":material/error:")


def no_runs_message(root: Path) -> None:
    # The same words whether or not the directory exists: a page must not tell whether a path exists.
    st.info(f"No runs in `{root}`. Train one with\n\n```\n{TRAIN_COMMAND}\n```\n\n"
            f"(a full epoch takes a while on a CPU; add `--epochs 1 --subset 2000` for a quick look), or start "
            f"the dashboard on another folder of runs: `streamlit run dashboard.py -- --runs DIR`.",
            icon=":material/rocket_launch:")


MULTIMNIST_TRAIN_COMMAND = "python -m trainer.run --dataset multimnist --routings 3"


def shows_pairs(run: Run) -> bool:
    """A run on images of two digits (MultiMNIST): the MultiMNIST page shows it, not the single-digit pages."""
    spec = DATASETS.get(run.dataset_name or "")
    return spec is not None and spec.labels_per_image == 2


def no_pair_runs_message(runs: Runs) -> None:
    st.info(f"No MultiMNIST CapsNet run with weights (model.pt) in `{runs.root}`. Train one with\n\n"
            f"```\n{MULTIMNIST_TRAIN_COMMAND}\n```\n\n(add `--epochs 1 --subset 2000` for a quick look). A run that "
            f"ships only its history is on the Home and Routing curves pages.", icon=":material/info:")


def choose_model_run(runs: Runs, *, key: str, where=None, pairs: bool = False,
                     prefer: Callable[[Run], int] | None = None) -> Run | None:
    """The run selector of the model pages (in `where`, a column, when given): only CapsNet runs with
    weights, since these pages show capsules and draw with the decoder; MultiMNIST runs on the
    MultiMNIST page alone (`pairs`). Says why in the main area when there are none. It opens on the
    first run, or on the first of those `prefer` ranks lowest."""
    candidates = [run for run in runs.with_capsules if shows_pairs(run) == pairs]
    if not candidates and pairs:
        no_pair_runs_message(runs)
        return None
    if not candidates and runs.with_capsules:
        st.info("Only MultiMNIST runs have capsules and weights here: they are on the MultiMNIST page.",
                icon=":material/info:")
        return None
    if not candidates:
        if runs.with_weights:
            models = sorted({run.model_name for run in runs.with_weights})
            st.info(f"Only runs without capsules ({', '.join(models)}) have weights: this page needs a CapsNet "
                    f"run's capsules and decoder. Their histories are on the Routing curves page.",
                    icon=":material/info:")
        elif runs.runs:
            st.info("None of the runs has weights (model.pt) yet. Runs with only a history are on the "
                    "Routing curves page.", icon=":material/info:")
        else:
            no_runs_message(runs.root)
        return None
    names = [run.name for run in candidates]
    first = min(range(len(candidates)), key=lambda position: prefer(candidates[position])) if prefer else 0
    name = (where or st).selectbox("Run", names, index=first, key=key, help="CapsNet runs with saved weights (model.pt)")
    return next(run for run in candidates if run.name == name)


def model_or_stop(run: Run) -> nn.Module:
    """The run's model (cached per weights file), or one error line naming the problem and the page stops."""
    try:
        return model_for(run)
    except RunError as error:
        st.error(f"Cannot load this run's model: {error}", icon=":material/error:")
        st.stop()


def model_page_inputs(runs: Runs, *, key: str, where, prefer: Callable[[Run], int] | None = None
                      ) -> tuple[Run, nn.Module, np.ndarray, np.ndarray]:
    """What the model pages start from: the run chosen in `where` (opening on the one `prefer` ranks
    first, see choose_model_run), its CapsNet, and the test set of the dataset it trained on (uint8
    (N, H, W) images, labels). Stops the page, after one error line, when any of them cannot be had."""
    run = choose_model_run(runs, key=key, where=where, prefer=prefer)
    if run is None:
        st.stop()
    model = model_or_stop(run)
    try:
        images, labels = state.test_set(run.dataset_name)  # through the module: tests watch which set is loaded
    except DataError as error:
        st.error(f"The {run.dataset_name} test set is unavailable: {error}", icon=":material/error:")
        st.stop()
    st.caption(f"Test set: {get_dataset(run.dataset_name).description} ({len(images):,} digits)")
    return run, model, images, labels
