"""The Routing page's Plotly figures, from plain data (capsviz.model.routing_view, routing.csv): coupling
maps over the input digit, the digit capsules' lengths and the coupling's entropy per iteration, the
agreements of the winner against the others, Figure A.1 over training, and runs that differ only in their
routing iterations side by side (capsviz.analysis.iterations)."""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis.iterations import last_epoch_logit_change
from ..model.routing_view import DigitRouting, agreement_split, coupling_entropy
from ..store import Run
from .figures import PALETTE, png_data_uri, run_colors

OVERLAY_RGB, NEGATIVE_RGB = (255, 90, 20), (40, 120, 255)
OVERLAY_OPACITY = 0.75  # of the fullest square: the digit stays visible under every square
MAP_COLOR = "rgb(255, 90, 20)"
ITERATION_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def receptive_field_centres(grid: int) -> np.ndarray:
    """Pixel coordinate of the centre of each PrimaryCaps position's receptive field, along one axis:
    Conv1 (9x9, stride 1) then PrimaryCaps (9x9, stride 2) see 17x17 pixels starting at 2 * position."""
    return 2 * np.arange(grid) + 8


def coupling_overlay(maps: np.ndarray, image: np.ndarray, *, zmax: float, scale: int = 6, gap: int = 6,
                     row_gap: int = 30, columns: int = 5) -> np.ndarray:
    """maps: (n_out, grid, grid); image: (H, W) in [0, 1] -> one RGBA uint8 mosaic, a tile per class:
    the digit in grey, upsampled `scale` times, and over it each PrimaryCaps position as a square at
    the centre of its receptive field, as opaque as |maps| / zmax: orange where positive, blue where
    negative (maps from uniform coupling). `scale` is even, so that the squares (2 input pixels wide,
    the PrimaryCaps stride) fall on whole pixels."""
    assert scale % 2 == 0, f"scale must be even, got {scale}"
    classes, grid, _ = maps.shape
    height, width = image.shape
    grey = np.repeat(np.repeat(np.clip(image, 0, 1), scale, axis=0), scale, axis=1)  # (H*s, W*s)
    # which PrimaryCaps row (column) each upsampled pixel row (column) lies in, -1 outside every square
    first = (2 * int(receptive_field_centres(grid)[0]) + 1) * scale // 2 - scale  # the centre pixel's middle, less half a square
    cell_of = lambda size: np.where((np.arange(size) >= first) & (np.arange(size) < first + 2 * scale * grid),  # noqa: E731
                                    (np.arange(size) - first) // (2 * scale), -1)
    rows_of, columns_of = cell_of(height * scale), cell_of(width * scale)
    inside = (rows_of[:, None] >= 0) & (columns_of[None, :] >= 0)  # (H*s, W*s)
    cells = np.clip(maps / max(zmax, 1e-12), -1, 1)  # (n_out, grid, grid)
    values = cells[:, np.clip(rows_of, 0, None)][:, :, np.clip(columns_of, 0, None)] * inside  # (n_out, H*s, W*s)
    alpha = (np.abs(values) * OVERLAY_OPACITY)[..., None]
    positive, negative = (np.array(rgb, dtype=np.float32) / 255.0 for rgb in (OVERLAY_RGB, NEGATIVE_RGB))
    color = np.where(values[..., None] >= 0, positive, negative)
    tiles = np.rint((grey[None, ..., None] * (1 - alpha) + color * alpha) * 255).astype(np.uint8)  # (n_out, H*s, W*s, 3)
    rows = math.ceil(classes / columns)
    mosaic = np.zeros((rows * height * scale + (rows - 1) * row_gap, columns * width * scale + (columns - 1) * gap, 4), np.uint8)
    for j in range(classes):
        top, left = (j // columns) * (height * scale + row_gap), (j % columns) * (width * scale + gap)
        mosaic[top:top + height * scale, left:left + width * scale, :3] = tiles[j]
        mosaic[top:top + height * scale, left:left + width * scale, 3] = 255
    return mosaic


def coupling_maps_figure(maps: np.ndarray, image: np.ndarray, *, zmax: float, prediction: int,
                         label: int | None = None, height: int = 330) -> go.Figure:
    """maps: (10, grid, grid) from capsviz.model.routing_view.coupling_maps; image: (H, W) in [0, 1]. One
    tile per class (coupling_overlay), sent as one PNG: twenty heatmaps would cost the server several
    times more. `zmax` is shared by all tiles (and by the iterations, when the page passes the same)."""
    classes = maps.shape[0]
    scale, gap, row_gap, columns = 6, 6, 30, 5
    mosaic = coupling_overlay(maps, image, zmax=zmax, scale=scale, gap=gap, row_gap=row_gap, columns=columns)
    figure = go.Figure(go.Image(source=png_data_uri(mosaic, compress_level=1), hoverinfo="skip"))
    tile_width, tile_height = image.shape[1] * scale, image.shape[0] * scale
    for j in range(classes):
        marked = j == prediction or j == label
        text = f"<b>{j}</b>" if j == prediction else str(j)
        if label is not None and j == label and label != prediction:
            text += " (label)"
        figure.add_annotation(x=(j % columns) * (tile_width + gap) + tile_width / 2, y=(j // columns) * (tile_height + row_gap),
                              text=text, showarrow=False, yshift=10, font=dict(size=14 if marked else 12))
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, scaleanchor="x", constrain="domain")
    figure.update_layout(height=height, margin=dict(l=0, r=0, t=24, b=0))
    return figure


def lengths_by_iteration_figure(routing: DigitRouting, *, label: int | None = None, height: int = 280) -> go.Figure:
    """|v_j| after each iteration, one line per class: the decision forming. The model's own output is
    after its `routings`-th iteration (marked); later iterations show where routing would go next."""
    iterations = np.arange(1, routing.iterations + 1)
    figure = go.Figure()
    winner = routing.prediction
    for j in range(routing.classes):
        highlighted = j in (winner, label)
        figure.add_trace(go.Scatter(
            x=iterations, y=routing.digit_lengths[:, j], mode="lines+markers+text" if highlighted else "lines",
            name=str(j), text=[""] * (routing.iterations - 1) + [str(j)] if highlighted else None, textposition="middle right",
            line=dict(width=3 if j == winner else 1.2, color=PALETTE[j % len(PALETTE)]),
            opacity=1.0 if highlighted else 0.45, hovertemplate=f"class {j}<br>iteration %{{x}}: |v| %{{y:.3f}}<extra></extra>"))
    figure.add_vline(x=routing.routings, line_dash="dot", line_color="gray",
                     annotation_text=f"the model's output ({routing.routings})",
                     annotation_position="top right" if routing.routings < routing.iterations else "top left")
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), title="Digit capsule lengths |v_j|",
                         xaxis=dict(title="routing iteration", dtick=1, range=[0.8, routing.iterations + 0.4]),
                         yaxis=dict(title="length", range=[0, 1.02]),
                         showlegend=False)
    return figure


def entropy_figure(routing: DigitRouting, *, height: int = 280) -> go.Figure:
    """Mean entropy of c_i over the classes per iteration, with uniform coupling's log 10 for reference;
    the axis zoomed on the values, which a trained model may move by thousandths of a nat only."""
    iterations = np.arange(1, routing.iterations + 1)
    entropy = coupling_entropy(routing.coupling)
    uniform = math.log(routing.classes)
    margin = max(0.002, 0.15 * (uniform - float(entropy.min())))  # trained routing may move it by thousandths: zoom in
    figure = go.Figure(go.Scatter(x=iterations, y=entropy, mode="lines+markers", name="mean entropy",
                                  hovertemplate="iteration %{x}: %{y:.3f} nats<extra></extra>"))
    figure.add_hline(y=uniform, line_dash="dot", line_color="gray", annotation_text=f"uniform: log {routing.classes}")
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), title="How peaked the coupling is",
                         xaxis=dict(title="routing iteration", dtick=1), yaxis=dict(title="mean entropy of c_i (nats)",
                                                                                     range=[entropy.min() - margin, uniform + margin]))
    return figure


def agreement_figure(routing: DigitRouting, *, height: int = 300) -> go.Figure:
    """Per iteration, the distribution of u_hat_{j|i} . v_j for the winning class against all the
    others', as box plots computed here (quartiles and 1st/99th percentiles), so little is sent."""
    figure = go.Figure()
    winner = routing.prediction
    for name, color, part in ((f"winner ({winner})", MAP_COLOR, 0), ("the other classes", "gray", 1)):
        stats = [np.percentile(agreement_split(routing, t)[part], [1, 25, 50, 75, 99])
                 for t in range(1, routing.iterations + 1)]
        low, q1, median, q3, high = np.array(stats).T
        figure.add_trace(go.Box(x=np.arange(1, routing.iterations + 1), q1=q1, median=median, q3=q3, lowerfence=low,
                                upperfence=high, name=name, marker_color=color, boxpoints=False))
    figure.update_layout(height=height, boxmode="group", margin=dict(l=10, r=10, t=60, b=10),
                         title=dict(text="Agreement u_hat_{j|i} · v_j", subtitle=dict(
                             text="box: quartiles and median; whiskers: 1st and 99th percentiles")),
                         xaxis=dict(title="routing iteration", dtick=1), yaxis=dict(title="agreement"),
                         legend=dict(orientation="h", y=-0.25))
    return figure


def logit_change_figure(routing_by_run: Mapping[str, pd.DataFrame], *, height: int = 360) -> go.Figure:
    """Figure A.1 over training: left, the mean |delta b_ij| of each iteration per epoch (log scale),
    a colour per run, a dash per iteration; right, the last epoch's values against the iteration."""
    figure = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35], horizontal_spacing=0.08,
                           subplot_titles=("mean |Δb_ij| per epoch", "last epoch, by iteration"))
    colors = run_colors(list(routing_by_run))
    for name, frame in routing_by_run.items():
        if frame.empty:
            continue
        for iteration, rows in frame.groupby("iteration"):
            figure.add_trace(go.Scatter(
                x=rows["epoch"], y=rows["mean_abs_logit_change"], mode="lines+markers", name=f"{name} · iteration {iteration}",
                line=dict(color=colors[name], dash=ITERATION_DASHES[(int(iteration) - 1) % len(ITERATION_DASHES)]),
                legendgroup=name, hovertemplate=f"{name}<br>iteration {iteration}, epoch %{{x}}: %{{y:.3g}}<extra></extra>"),
                row=1, col=1)
        last = frame[frame["epoch"] == frame["epoch"].max()].sort_values("iteration")
        figure.add_trace(go.Scatter(
            x=last["iteration"], y=last["mean_abs_logit_change"], mode="lines+markers", legendgroup=name, showlegend=False,
            line=dict(color=colors[name]), hovertemplate=f"{name}, epoch {int(last['epoch'].iloc[0])}<br>"
                                                         "iteration %{x}: %{y:.3g}<extra></extra>"), row=1, col=2)
    figure.update_yaxes(type="log", title="mean |Δb_ij| (probe set)", row=1, col=1)
    figure.update_yaxes(type="log", row=1, col=2)
    figure.update_xaxes(title="epoch", row=1, col=1)
    figure.update_xaxes(title="routing iteration", dtick=1, row=1, col=2)
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.2))
    return figure


def training_provenance(run: Run) -> str:
    """Where a run's numbers come from, in one line: epochs, final test error, machine, commit."""
    info, environment = run.info, run.info.get("environment") or {}
    error = info.get("final_test_error")
    machine = environment.get("cpu") or environment.get("processor") or "unknown machine"
    threads = f", {environment['threads']} threads" if environment.get("threads") else ""
    commit = (environment.get("git_commit") or "unknown")[:7]
    return (f"{run.name}: {info.get('epochs_done', 0)} epoch(s), final test error "
            f"{'-' if error is None else f'{error:.2f}%'}, trained on {machine} ({environment.get('device', '?')}{threads}), "
            f"commit {commit}")


def iterations_figure(table: pd.DataFrame, routing_by_run: Mapping[str, pd.DataFrame], *, height: int = 340) -> go.Figure:
    """How many iterations (capsviz.analysis.iterations): left, each run's final test error against its routing
    iterations; middle, its training seconds per epoch; right, the last epoch's mean |delta b_ij| per
    iteration, a line per run (routing.csv), coloured as its marker in the other two."""
    figure = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                           subplot_titles=("final test error (%)", "training seconds / epoch",
                                           "last epoch: mean |Δb_ij| by iteration"))
    colors = run_colors(list(table["Run"]))
    for _, row in table.iterrows():
        name, routings = row["Run"], int(row["Routings"])
        hover = f"{name}<br>{routings} routing(s): %{{y:.3g}}<extra></extra>"
        for column, col in (("Final test error (%)", 1), ("Seconds / epoch", 2)):
            if pd.notna(row[column]):
                figure.add_trace(go.Scatter(x=[routings], y=[row[column]], mode="markers", name=name, legendgroup=name,
                                            showlegend=col == 1, marker=dict(color=colors[name], size=10),
                                            hovertemplate=hover), row=1, col=col)
        change = last_epoch_logit_change(routing_by_run.get(name))
        if len(change):
            figure.add_trace(go.Scatter(x=change.index, y=change.to_numpy(), mode="lines+markers", legendgroup=name,
                                        showlegend=False, line=dict(color=colors[name]),
                                        hovertemplate=f"{name}<br>iteration %{{x}}: %{{y:.3g}}<extra></extra>"),
                             row=1, col=3)
    # a faint line through each panel's markers in routing order, so the trend reads at a glance
    ordered = table.sort_values("Routings")
    for column, col in (("Final test error (%)", 1), ("Seconds / epoch", 2)):
        known = ordered[ordered[column].notna()]
        figure.add_trace(go.Scatter(x=known["Routings"], y=known[column], mode="lines", showlegend=False,
                                    hoverinfo="skip", line=dict(color="rgba(120,120,120,0.5)", width=1)), row=1, col=col)
    for col in (1, 2):
        figure.update_xaxes(title="routing iterations", tickvals=sorted(table["Routings"].unique()), row=1, col=col)
    figure.update_xaxes(title="iteration", dtick=1, row=1, col=3)
    figure.update_yaxes(type="log", row=1, col=3)
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25))
    return figure
