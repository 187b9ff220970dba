"""The time-to-accuracy chart: test error against hours on one machine, with the thresholds marked."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..analysis.time_to_accuracy import THRESHOLDS, Contender, run_clock, time_to_error
from .figures import PALETTE


def time_to_accuracy_figure(contenders: list[Contender], *, thresholds: tuple[float, ...] = THRESHOLDS,
                            title: str = "", height: int = 380) -> go.Figure:
    """Each contender's test error (log scale) against hours on its clock; a dashed line per threshold and a
    marker where each run first reaches it (a moment chosen on the test set, as time-to-accuracy figures are)."""
    figure = go.Figure()
    for position, contender in enumerate(contenders):
        color = PALETTE[position % len(PALETTE)]
        hours = run_clock(contender.history, seconds_per_epoch=contender.seconds_per_epoch) / 3600
        errors = contender.history["test_error"].to_numpy(dtype=float)
        figure.add_trace(go.Scatter(x=hours, y=errors, mode="lines+markers", name=contender.label,
                                    line=dict(color=color), marker=dict(size=4),
                                    customdata=contender.history["epoch"],
                                    hovertemplate="%{y:.2f}% after epoch %{customdata} (%{x:.2f} h)<extra></extra>"))
        for threshold in thresholds:
            crossing = time_to_error(contender.history, threshold, seconds_per_epoch=contender.seconds_per_epoch)
            if crossing:
                figure.add_trace(go.Scatter(x=[crossing.seconds / 3600], y=[crossing.error], mode="markers",
                                            marker=dict(color=color, size=11, symbol="diamond"), showlegend=False,
                                            hovertemplate=f"first at or below {threshold}%: epoch {crossing.epoch}, "
                                                          f"{crossing.seconds / 3600:.2f} h<extra></extra>"))
    for threshold in thresholds:
        figure.add_hline(y=threshold, line=dict(dash="dash", color="grey", width=1),
                         annotation_text=f"{threshold}%", annotation_position="top left")
    figure.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50 if title else 20, b=10),
                         legend=dict(orientation="h", y=-0.2), hovermode="closest")
    figure.update_xaxes(title="hours on this machine")
    figure.update_yaxes(title="test error (%)", type="log", tickformat=".2f",
                        range=[np.log10(0.3), np.log10(2.0)])
    return figure
