"""The Robustness page's figures: the paper's comparison beside ours, accuracy against each transform,
and the explorer's class scores."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..analysis.robustness import BINS
from .figures import PALETTE, class_bars_figure, run_colors

SETS = {"Expanded MNIST (%)": "expanded MNIST (test)", "affNIST-like (%)": "affNIST-like (ours, generated)",
        "affNIST (%)": "affNIST (real)"}


def comparison_figure(table: pd.DataFrame, *, footer: str = "") -> go.Figure:
    """Grouped bars: for each source (the paper's CapsNet and CNN, then each run), its accuracy on
    expanded MNIST, on the affNIST-like set and on the real affNIST, where measured."""
    figure = go.Figure()
    for k, (column, name) in enumerate(SETS.items()):
        values = pd.to_numeric(table[column], errors="coerce")
        if values.notna().any():
            figure.add_trace(go.Bar(
                x=table["Source"], y=values, name=name, marker_color=PALETTE[k % len(PALETTE)],
                text=[f"{v:.1f}" if pd.notna(v) else "" for v in values], textposition="outside", cliponaxis=False,
                hovertemplate="%{x}<br>" + name + ": %{y:.2f}%<extra></extra>"))
    figure.update_layout(
        barmode="group", height=380, margin=dict(l=10, r=10, t=60, b=10),
        title=dict(text="Accuracy: the paper's CapsNet and CNN beside ours",
                   subtitle=dict(text=footer or "paper: affNIST 79% (CapsNet) vs 66% (CNN) at matched expanded-MNIST accuracy")),
        yaxis=dict(title="accuracy (%)", range=[0, 105]), legend=dict(orientation="h", y=-0.15))
    return figure


def transform_accuracy_figure(curves: Mapping[str, pd.DataFrame], transform: str, *, height: int = 300) -> go.Figure:
    """Accuracy in each magnitude bin of one transform, a line per run; the bin's size on hover."""
    label = BINS[transform][0]
    colors = run_colors(list(curves))
    figure = go.Figure()
    for name, frame in curves.items():
        figure.add_trace(go.Scatter(
            x=frame["centre"], y=frame["accuracy"], mode="lines+markers", name=name, line=dict(color=colors[name]),
            customdata=np.stack([frame["low"], frame["high"], frame["count"]], axis=-1),
            hovertemplate=name + "<br>%{customdata[0]:.3g} to %{customdata[1]:.3g}: %{y:.2f}% of %{customdata[2]} images"
                          "<extra></extra>"))
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), title=dict(text=f"Accuracy by {label}"),
                         xaxis=dict(title=label), yaxis=dict(title="accuracy (%)"), legend=dict(orientation="h", y=-0.3))
    return figure


def class_scores_figure(scores: np.ndarray, *, kind: str, title: str, label: int | None = None,
                        height: int = 240) -> go.Figure:
    """One model's 10 class scores (capsule lengths or softmax probabilities), the prediction filled and
    the true label outlined."""
    scores = np.asarray(scores, dtype=float)
    prediction = int(scores.argmax())
    figure = class_bars_figure(scores, filled=[prediction], outlined=[] if label is None else [label], value_name=kind)
    figure.update_layout(
        title=dict(text=title, subtitle=dict(text=f"prediction {prediction} (filled) · {kind}")), height=height,
        margin=dict(l=10, r=10, t=60, b=10), showlegend=False, xaxis=dict(title="class", type="category"),
        yaxis=dict(range=[0, 1.12], title=kind))
    return figure
