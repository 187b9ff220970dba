"""The Capsule space page's map (capsviz.analysis.capsule_space), built from plain data (no Streamlit): one
point per test digit, coloured by true class, by correctness or by the predicted capsule's length,
each point carrying its test index so that a click names the digit.

WebGL scatter traces (Scattergl): 10,000 points pan and zoom smoothly, and numpy arrays go to the
browser as base64, not as JSON lists, so a full map is about 300 KB to send."""
from __future__ import annotations

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from ..analysis.capsule_space import PCA, PROJECTIONS, CapsuleSpace

BY_CLASS, BY_CORRECTNESS, BY_LENGTH = "class", "correctness", "length"
COLOUR_MODES = {BY_CLASS: "True class", BY_CORRECTNESS: "Correct or not", BY_LENGTH: "Capsule length"}
CLASS_COLOURS = plotly.colors.qualitative.D3  # 10 colours: one per class
CORRECT_COLOUR, WRONG_COLOUR = "rgba(150,150,150,0.35)", "#d62728"
SELECTED_COLOUR = "#111111"
HOVER = ("test digit #%{customdata[0]}<br>label %{customdata[1]} · predicted %{customdata[2]} "
         "(‖v‖ %{customdata[3]:.2f})<br>runner-up %{customdata[4]} (‖v‖ %{customdata[5]:.2f})<extra></extra>")


def hover_data(space: CapsuleSpace) -> np.ndarray:
    """(N, 6) per point: test index, label, prediction, its length, runner-up class, its length."""
    runner, runner_length = space.runner_up()
    return np.column_stack([space.indices, space.labels, space.predictions, np.round(space.predicted_lengths, 3),
                            runner, np.round(runner_length, 3)]).astype(np.float32)


def axis_titles(space: CapsuleSpace, projection: str) -> tuple[str, str]:
    if projection == PCA:
        return (f"PC 1 ({space.explained[0]:.0%} of the variance)", f"PC 2 ({space.explained[1]:.0%})")
    return (f"{PROJECTIONS[projection]} 1", f"{PROJECTIONS[projection]} 2")


def _points(figure: go.Figure, coords: np.ndarray, custom: np.ndarray, mask: np.ndarray, *,
            name: str, marker: dict) -> None:
    figure.add_trace(go.Scattergl(x=coords[mask, 0], y=coords[mask, 1], customdata=custom[mask], mode="markers",
                                  name=name, marker=marker, hovertemplate=HOVER))


def space_figure(space: CapsuleSpace, *, projection: str, colour: str, title: str = "", subtitle: str = "",
                 selected: int | None = None, height: int = 560) -> go.Figure:
    """The map: every digit of `space` at its `projection`'s coordinates, coloured by `colour` (one
    of COLOUR_MODES), test digit `selected` (an index, when it is on the map) ringed."""
    assert projection in PROJECTIONS, f"unknown projection {projection!r}: use one of {list(PROJECTIONS)}"
    assert colour in COLOUR_MODES, f"unknown colouring {colour!r}: use one of {list(COLOUR_MODES)}"
    coords = space.coords[projection]
    custom = hover_data(space)
    figure = go.Figure()
    size = 4 if len(space) > 3000 else 6  # dense maps need small points to show their structure
    if colour == BY_CLASS:
        for digit_class in range(space.lengths.shape[1]):
            _points(figure, coords, custom, space.labels == digit_class, name=str(digit_class),
                    marker=dict(size=size, color=CLASS_COLOURS[digit_class % len(CLASS_COLOURS)], opacity=0.75))
    elif colour == BY_CORRECTNESS:
        wrong = ~space.correct
        _points(figure, coords, custom, ~wrong, name=f"correct ({int((~wrong).sum()):,})",
                marker=dict(size=size, color=CORRECT_COLOUR))
        # the errors last, so that they are drawn over the correct digits around them
        _points(figure, coords, custom, wrong, name=f"misclassified ({int(wrong.sum()):,})",
                marker=dict(size=size + 3, color=WRONG_COLOUR, symbol="x"))
    else:
        _points(figure, coords, custom, np.ones(len(space), bool), name="‖v‖ of the prediction",
                marker=dict(size=size, color=np.round(space.predicted_lengths, 3), colorscale="Viridis", cmin=0,
                            cmax=1, opacity=0.8, colorbar=dict(title=dict(text="‖v‖"), thickness=12)))
    at = space.position(selected) if selected is not None else None
    if at is not None:
        figure.add_trace(go.Scattergl(
            x=coords[at:at + 1, 0], y=coords[at:at + 1, 1], customdata=custom[at:at + 1], mode="markers",
            name=f"#{selected}", hovertemplate=HOVER,
            marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color=SELECTED_COLOUR, width=2.5))))
    x_title, y_title = axis_titles(space, projection)
    figure.update_layout(
        title=dict(text=title, subtitle=dict(text=subtitle)), height=height, margin=dict(l=10, r=10, t=70, b=10),
        legend=dict(title=dict(text=COLOUR_MODES[colour] if colour != BY_LENGTH else ""), itemsizing="constant"),
        showlegend=colour != BY_LENGTH or at is not None, hovermode="closest",
        # t-SNE's axes have no units and PCA's are in capsule units: ticks would only distract
        xaxis=dict(title=x_title, showticklabels=False, zeroline=False),
        yaxis=dict(title=y_title, showticklabels=False, zeroline=False, scaleanchor="x"),
    )
    return figure


def space_summary(space: CapsuleSpace) -> str:
    """One line under a map: digits, errors, and how sure the network is."""
    wrong = int((~space.correct).sum())
    return (f"{len(space):,} test digits · {wrong} misclassified ({wrong / max(len(space), 1):.2%}) · median ‖v‖ of "
            f"the prediction {np.median(space.predicted_lengths):.2f}")
