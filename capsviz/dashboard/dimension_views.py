"""What the Capsule dimensions page shows of the measured dimension meanings
(capsviz.analysis.dimension_meanings): each run's cached measurement (or why there is none), the decoder's
weights for the browser, the sliders' names, and the dimension x property heatmap."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ..analysis.dimension_meanings import WEAK, DimensionMeanings, model_digest
from ..analysis.image_properties import UNITS
from ..store import DIMENSIONS, WEIGHTS, Run, RunError, read_dimensions
from .live_decoder import weights_payload
from .state import file_stamp, model_for

MEASURE_COMMAND = "python scripts/measure_dimensions.py"


@st.cache_resource(show_spinner=False, max_entries=8)
def _digest(path: str, stamp: tuple | None, _model) -> str:
    return model_digest(_model)


def weights_digest(run: Run) -> str:
    """model_digest of the run's weights, computed once per weights file version."""
    return _digest(str(run.path), file_stamp(run.path / WEIGHTS), model_for(run))


@st.cache_resource(show_spinner=False, max_entries=8)
def _payload(path: str, stamp: tuple | None, _model) -> dict:
    return weights_payload(_model)


def decoder_payload(run: Run) -> dict:
    """The decoder's weights for live_decoder.js, built once per weights file version."""
    return _payload(str(run.path), file_stamp(run.path / WEIGHTS), model_for(run))


@st.cache_data(show_spinner=False, max_entries=16)
def _read(path: str, root: str | None, stamp: tuple | None, digest: str, shape: tuple[int, int]) -> DimensionMeanings | str | None:
    try:
        arrays = read_dimensions(Path(path), digest, root=None if root is None else Path(root), shape=shape)
    except RunError as error:
        return str(error)
    return DimensionMeanings.from_arrays(arrays) if arrays is not None else None


@dataclass(frozen=True)
class Measured:
    meanings: DimensionMeanings | None
    problem: str | None  # why there is no measurement, one line


def run_meanings(run: Run) -> Measured:
    """The run's cached measurement, when it was measured from these weights."""
    try:
        digest = weights_digest(run)
    except RunError as error:
        return Measured(None, f"cannot load its weights: {error}")
    config = model_for(run).config
    result = _read(str(run.path), None if run.root is None else str(run.root), file_stamp(run.path / DIMENSIONS), digest,
                   (config.num_classes, config.digit_dim))
    if isinstance(result, DimensionMeanings):
        return Measured(result, None)
    command = f"`{MEASURE_COMMAND} {run.path}`"
    if isinstance(result, str):
        return Measured(None, f"{result}; remeasure with {command}")
    stale = (run.path / DIMENSIONS).exists()
    return Measured(None, (f"{run.name}'s {DIMENSIONS} was measured on other weights; remeasure with {command}"
                           if stale else f"{run.name} has not been measured yet: {command} (about 45 s on 2 cores)"))


def slider_labels(meanings: DimensionMeanings | None, digit_class: int, dimensions: int) -> tuple[list[str], list[str]]:
    """'dim 7 · width +' per dimension (1-based, as the page counts), and a hover hint with the numbers."""
    if meanings is None:
        return [f"dim {d + 1}" for d in range(dimensions)], ["not measured" for _ in range(dimensions)]
    labels, hints = [], []
    for d in range(dimensions):
        labels.append(f"dim {d + 1} · {meanings.label(digit_class, d)}")
        shift = meanings.shift[digit_class, d]
        order = np.argsort(shift)[::-1][:2]
        hints.append("; ".join(
            f"{meanings.properties[p]} {meanings.slope[digit_class, d, p] * 0.5:+.2f} {UNITS[meanings.properties[p]]} "
            f"over the range ({shift[p]:.1f} px of edge movement, {meanings.consistency[digit_class, d, p]:.0%} "
            f"of digits agree)" for p in order))
    return labels, hints


def labelled_properties(meanings: DimensionMeanings) -> list[int]:
    """The properties a label can name (ink is measured but follows the others)."""
    return [p for p in range(len(meanings.properties)) if meanings.shift[..., p].any()]


def meanings_heatmap(meanings: DimensionMeanings, digit_class: int, *, title: str, height: int = 430,
                     zmax: float | None = None) -> go.Figure:
    """Dimension x property: how far each property moves the ink's edges over Figure 4's range (px,
    times its consistency), the label on each row. `zmax`: a colour scale shared with another run's."""
    columns = labelled_properties(meanings)
    shift = meanings.shift[digit_class][:, columns]  # (D, P')
    slope = meanings.slope[digit_class][:, columns] * 0.5
    consistency = meanings.consistency[digit_class][:, columns]
    rows = [f"{d + 1} · {meanings.label(digit_class, d)}" for d in range(shift.shape[0])]
    names = [meanings.properties[p] for p in columns]
    hover = np.dstack([slope, consistency])
    figure = go.Figure(go.Heatmap(
        z=shift, x=names, y=rows, customdata=hover, colorscale="Blues", zmin=0, zmax=zmax, colorbar=dict(title="px"),
        hovertemplate="dim %{y}<br>%{x}: %{z:.1f} px of edge movement<br>change over the range %{customdata[0]:+.2f}"
                      "<br>%{customdata[1]:.0%} of digits agree<extra></extra>"))
    figure.update_layout(title=dict(text=title, subtitle=dict(
        text=f"class {digit_class}, {int(meanings.digits[digit_class])} test digits, offsets ±{meanings.offsets.max():g}")),
        height=height, margin=dict(l=4, r=4, t=64, b=4))
    figure.update_yaxes(autorange="reversed", type="category")
    return figure


def shared_zmax(*measured: DimensionMeanings | None, digit_class: int) -> float | None:
    """The largest shift of `digit_class` among the runs shown, so that their heatmaps share a scale."""
    peaks = [float(meanings.shift[digit_class].max()) for meanings in measured if meanings is not None]
    return max(peaks) if peaks else None


def summary_table(rows: list[dict]) -> pd.DataFrame:
    """The comparison table of summary_row's rows: text columns ("3 / 10"), NaN (an empty cell) for a
    run not measured, never None."""
    return pd.DataFrame(rows).astype("str")


def summary_row(name: str, meanings: DimensionMeanings | None) -> dict:
    """One run's line of the comparison table."""
    if meanings is None:
        return {"Run": name, "Classes with a width dimension": None, "Dimensions with one property": None,
                "Weak": None}
    classes, dimensions = meanings.slope.shape[:2]
    weak = sum(meanings.label(c, d) == WEAK for c in range(classes) for d in range(dimensions))
    return {"Run": name, "Classes with a width dimension": f"{len(meanings.classes_with('width'))} / {classes}",
            "Dimensions with one property": f"{meanings.interpretable()} / {classes * dimensions}",
            "Weak": f"{weak} / {classes * dimensions}"}
