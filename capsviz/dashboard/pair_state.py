"""What the MultiMNIST page reads through Streamlit's caches: the fixed test pairs, and pairs encoded
under a run's model (chunk by chunk, so a longer search for failures reuses the shorter one's)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ..analysis.digits import DigitCodes, encode_digits
from ..analysis.segmentation import PairSet, load_pair_set
from ..store import Run
from .state import _load_model, model_for, weights_stamp

PAIR_CHUNK = 100  # pairs encoded per cached chunk: a 36x36 CapsNet encodes a few dozen a second on a CPU


@st.cache_data(show_spinner="Making the MultiMNIST test pairs…", max_entries=1)
def pair_set() -> PairSet:
    """The 10,000 fixed test pairs (capsviz.data.multimnist). Raises DataError."""
    return load_pair_set()


@st.cache_data(show_spinner=False, max_entries=256)
def _pair_codes(path: str, stamp: tuple | None, start: int, stop: int) -> DigitCodes:
    return encode_digits(_load_model(path, stamp), pair_set().images[start:stop])


def pair_codes(run: Run, start: int, stop: int) -> DigitCodes:
    """Capsule lengths and poses of test pairs start..stop-1 under the run's model. Raises RunError."""
    model_for(run)  # a broken model.pt raises RunError before anything is cached
    return _pair_codes(str(run.path), weights_stamp(run), start, stop)


def scan_pair_codes(run: Run, count: int) -> DigitCodes:
    """The first `count` test pairs encoded, with a progress bar when it takes more than one chunk."""
    model_for(run)
    stamp = weights_stamp(run)
    starts = list(range(0, count, PAIR_CHUNK))
    bar = st.progress(0.0, text="Encoding test pairs") if len(starts) > 1 else None
    parts = []
    for done, start in enumerate(starts):
        parts.append(_pair_codes(str(run.path), stamp, start, min(start + PAIR_CHUNK, count)))
        if bar is not None:
            bar.progress((done + 1) / len(starts), text=f"Encoding test pairs: {min(start + PAIR_CHUNK, count)} / {count}")
    if bar is not None:
        bar.empty()
    return DigitCodes(np.concatenate([part.lengths for part in parts]), np.concatenate([part.poses for part in parts]))
