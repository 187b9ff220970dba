"""What the Capsule space page reads through Streamlit's caches: a run's capsule_space.npz when it
was computed from the run's weights (or one line saying why not), a map computed in the page when
there is none (into Streamlit's cache: the dashboard never writes into a run directory), and the
hand-over of a digit to the Capsule dimensions and Routing pages."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from ..analysis.capsule_space import CAPSULE_SPACE, CapsuleSpace, CapsuleSpaceError, project_codes, read_capsule_space
from ..analysis.digits import PICK_INDEX
from ..store import WEIGHTS, Run, RunError
from .dimension_views import weights_digest
from .state import file_stamp, scan_codes, test_set

MAP_COMMAND = "python scripts/map_capsule_space.py"
SUBSETS = (500, 2000, 5000, 10000)  # the first N test digits, for a map computed in the page
DEFAULT_SUBSET = 1  # 2000: a map in about a minute on 2 idle cores
# The pages a digit can be opened on, with the session-state keys of their run selector and digit
# picker (digit_picker.pick_or_draw_digit's keys: <key>_mode and <key>_index).
OPEN_ON = {
    "dimensions": ("pages/dimensions.py", "Capsule dimensions", "dimensions_run", "digit"),
    "routing": ("pages/routing.py", "Routing", "routing_run", "routing_digit"),
}


@st.cache_data(show_spinner=False, max_entries=16)
def _read(path: str, stamp: tuple | None, digest: str) -> CapsuleSpace | str | None:
    try:
        return read_capsule_space(Path(path), digest)
    except CapsuleSpaceError as error:
        return str(error)


@dataclass(frozen=True)
class Mapped:
    space: CapsuleSpace | None
    problem: str | None  # why there is no shipped map: one line of plain text (the page escapes it)


def shipped_space(run: Run) -> Mapped:
    """The run's capsule_space.npz, when it was computed from these weights on the run's dataset.
    Its problem names the run and file: text from the run directory, to be escaped where it is shown."""
    try:
        digest = weights_digest(run)
    except RunError as error:
        return Mapped(None, f"cannot load its weights: {error}")
    result = _read(str(run.path), file_stamp(run.path / CAPSULE_SPACE), digest)
    if isinstance(result, str):
        return Mapped(None, result)
    if result is None:
        stale = (run.path / CAPSULE_SPACE).exists()
        return Mapped(None, f"{run.name}'s {CAPSULE_SPACE} was computed from other weights" if stale
                      else f"{run.name} has no {CAPSULE_SPACE}")
    if result.dataset != run.dataset_name:
        return Mapped(None, f"{run.name}'s {CAPSULE_SPACE} maps another test set ({result.dataset})")
    return Mapped(result, None)


@st.cache_data(show_spinner=False, max_entries=8)
def _project(path: str, stamp: tuple | None, digest: str, dataset: str, count: int, _codes, _labels) -> CapsuleSpace:
    # keyed by the weights (path, file version, digest) and the digit count; the codes themselves
    # are not hashed: they follow from the key
    return project_codes(_codes, _labels, np.arange(count), digest=digest, dataset=dataset)


def computed_space(run: Run, count: int) -> CapsuleSpace:
    """A map of the run's first `count` test digits computed now: encoded chunk by chunk with a
    progress bar (state.scan_codes, whose chunks the other pages share), then projected. Kept in
    Streamlit's cache, never written to the run. Raises RunError for broken weights."""
    codes = scan_codes(run, count, progress_text=f"Encoding {run.name}'s test digits")
    _, labels = test_set(run.dataset_name)
    with st.spinner(f"t-SNE of {count:,} digits (about {max(1, count // 170)} s on 2 cores)…"):
        return _project(str(run.path), file_stamp(run.path / WEIGHTS), weights_digest(run), run.dataset_name, count,
                        codes, labels[:count])


COMPUTED_KEY = "capsule_space_computed"  # {run path: digit count} of the maps this session computed


def remember_computed(run: Run, count: int) -> None:
    st.session_state.setdefault(COMPUTED_KEY, {})[str(run.path)] = int(count)


def computed_space_if_cached(run: Run) -> CapsuleSpace | None:
    """The map this session computed for the run (computed_space), without computing anything new
    unless Streamlit's cache has dropped it meanwhile."""
    # st.cache_data has no "peek": whether a map was computed is remembered in the session instead
    count = st.session_state.get(COMPUTED_KEY, {}).get(str(run.path))
    return computed_space(run, count) if count is not None else None


SWITCH_KEY = "capsule_space_switch_to"  # the page a button asked to open (switched to by the page script)


def hand_over_digit(page: str, run_name: str, index: int) -> None:
    """A button's on_click: set the run selector and digit picker of `page` (OPEN_ON) to test digit
    `index` of the run (its widgets take them up when it runs), and ask for the switch, which the
    page script makes with switch_to_requested_page (st.switch_page has no effect in a callback)."""
    path, _, run_key, picker_key = OPEN_ON[page]
    st.session_state[run_key] = run_name
    st.session_state[f"{picker_key}_mode"] = PICK_INDEX
    st.session_state[f"{picker_key}_index"] = int(index)
    st.session_state[SWITCH_KEY] = path


def switch_to_requested_page() -> None:
    path = st.session_state.pop(SWITCH_KEY, None)
    if path is not None:
        st.switch_page(path)
