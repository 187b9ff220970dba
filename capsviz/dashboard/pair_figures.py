"""The MultiMNIST page's figures (Figure 5 made interactive): colour images and the capsule lengths
of a pair. Plotly only; what they show is computed in capsviz.analysis.segmentation."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .figures import MARGIN_MINUS, MARGIN_PLUS, class_bars_figure

FIRST_COLOUR, SECOND_COLOUR = "rgb(214,39,40)", "rgb(44,160,44)"  # red and green, as in Figure 5


def rgb_figure(rgb: np.ndarray, *, title: str = "", subtitle: str = "", height: int = 260) -> go.Figure:
    """An RGB uint8 image (H, W, 3), pixel values on hover."""
    rgb = np.asarray(rgb)
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8, f"expected RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}"
    figure = go.Figure(go.Image(z=rgb, hovertemplate="x %{x}, y %{y}<br>RGB %{z}<extra></extra>"))
    figure.update_layout(title=dict(text=title, subtitle=dict(text=subtitle)), height=height,
                         margin=dict(l=4, r=4, t=60 if subtitle else 36 if title else 4, b=4))
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, scaleanchor="x", constrain="domain")
    return figure


def pair_lengths_figure(lengths: np.ndarray, *, labels: Sequence[int], predicted: Sequence[int],
                        drawn: Sequence[int] = (), height: int = 260) -> go.Figure:
    """The 10 capsule lengths of a pair: the two longest (the prediction) filled, the two labels
    outlined, the capsules being drawn marked in their colours beneath; m+ and m- as guides."""
    lengths = np.asarray(lengths, dtype=float)
    predicted, labels = [int(k) for k in predicted], [int(k) for k in labels]
    figure = class_bars_figure(lengths, filled=predicted, outlined=labels, outline_color="black")
    for colour, digit_class in zip((FIRST_COLOUR, SECOND_COLOUR), drawn):
        figure.add_trace(go.Scatter(x=[str(digit_class)], y=[-0.06], mode="markers", hoverinfo="skip",
                                    marker=dict(symbol="triangle-up", size=12, color=colour)))
    for level in (MARGIN_PLUS, MARGIN_MINUS):
        figure.add_hline(y=level, line=dict(dash="dot", width=1, color="gray"))
    figure.update_layout(
        title=dict(text="Digit capsule lengths", subtitle=dict(
            text=f"predicted {predicted[0]} and {predicted[1]} (filled) · labels {labels[0]} and {labels[1]} (outlined)")),
        height=height, margin=dict(l=10, r=10, t=60, b=10), showlegend=False,
        xaxis=dict(title="class", type="category"),
        yaxis=dict(range=[-0.1, 1.12], title="length ‖v‖", tickvals=[0, MARGIN_MINUS, 0.5, MARGIN_PLUS],
                   ticktext=["0", "m⁻ 0.1", "0.5", "m⁺ 0.9"]),
    )
    return figure
