"""The dashboard's Plotly figures, built from plain data (no Streamlit): training curves with each
run's best test error marked, capsule lengths, digits as heatmaps, and image grids (Figure 3's
reconstructions, Figure 4's perturbations) as one image trace each, so they stay light to send."""
from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
from PIL import Image

from ..analysis.curves import X_EPOCH, X_WALL, Panel, ema, wall_time_unit
from ..analysis.groups import BANDS, band_limits, group_curve
from ..analysis.reconstructions import TARGET_LABEL, Reconstructions
from ..analysis.results import best_test_error, numeric_column

PALETTE = plotly.colors.qualitative.D3
TRAIN_DASH = "dash"
MARGIN_PLUS, MARGIN_MINUS = 0.9, 0.1  # the margin loss's targets for the true and the other capsules


def run_colors(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per run, so a run has the same colour in every chart."""
    return {name: PALETTE[position % len(PALETTE)] for position, name in enumerate(names)}


def _x_values(history: pd.DataFrame, x_axis: str, divisor: float) -> pd.Series | None:
    if x_axis == X_EPOCH:
        return history["epoch"]
    wall = numeric_column(history, "wall_seconds")
    if wall.isna().all():
        return None  # e.g. a Keras import with no timings: it cannot be placed on a time axis
    return wall / divisor


def curves_figure(histories: Mapping[str, pd.DataFrame], *, panel: Panel, x_axis: str = X_EPOCH,
                  smoothing: float = 0.0, log_y: bool = False, colors: Mapping[str, str] | None = None,
                  groups: Mapping[str, Sequence[str]] | None = None, band: str = BANDS[0],
                  show_seeds: bool = False, height: int = 340) -> go.Figure:
    """One panel of the curves page: every run's `panel.columns` overlaid (train dashed, test solid),
    smoothed by an EMA of weight `smoothing` with the raw values faint behind, and on the test error
    panel each run's best (raw) test error marked with a star. `groups` (group name -> its runs'
    names, on the epoch axis): a group of two or more runs is drawn as its mean with a band (its
    seeds' min-max or ±1 std), in the colour `colors` gives the group's name, its seeds faint
    behind when `show_seeds`."""
    assert x_axis in (X_EPOCH, X_WALL), f"x_axis must be {X_EPOCH!r} or {X_WALL!r}, got {x_axis!r}"
    groups = {name: [member for member in members if member in histories]
              for name, members in (groups or {}).items()} if x_axis == X_EPOCH else {}
    groups = {name: members for name, members in groups.items() if len(members) > 1}
    grouped = {member for members in groups.values() for member in members}
    colors = dict(colors or run_colors(list(histories)))
    longest = max((numeric_column(history, "wall_seconds").max() for history in histories.values()), default=np.nan)
    divisor, unit = wall_time_unit(float(longest) if longest == longest else 0.0)  # NaN: no run has timings
    x_title = "epoch" if x_axis == X_EPOCH else f"wall time ({unit})"
    figure = go.Figure()
    skipped = []
    for name, history in histories.items():
        x = _x_values(history, x_axis, divisor)
        if x is None:
            skipped.append(name)
            continue
        if name in grouped:
            if show_seeds:
                _add_faint_seed(figure, x, history, panel, colors.get(name, PALETTE[0]), name)
            continue
        color = colors.get(name, PALETTE[0])
        drawn = False
        for column in panel.columns:
            values = numeric_column(history, column)
            if values.isna().all():
                continue
            split, dash = _split_style(column)
            label = f"{name} · {split}" if split and len(panel.columns) > 1 else name
            if smoothing > 0:
                figure.add_trace(go.Scatter(x=x, y=values, mode="lines", line=dict(color=color, width=1, dash=dash),
                                            opacity=0.25, legendgroup=name, showlegend=False, hoverinfo="skip"))
            figure.add_trace(go.Scatter(
                x=x, y=ema(values, weight=smoothing) if smoothing > 0 else values, mode="lines+markers",
                marker=dict(size=4), line=dict(color=color, width=2, dash=dash), name=label, legendgroup=name,
                customdata=history["epoch"], hovertemplate="%{y:.4g} (epoch %{customdata})",
            ))
            drawn = True
        best = best_test_error(history) if "test_error" in panel.columns else None
        if best is not None and drawn:
            epoch, error = best
            best_x = x[history["epoch"] == epoch].iloc[0]
            figure.add_trace(go.Scatter(
                x=[best_x], y=[error], mode="markers", legendgroup=name, showlegend=False,
                marker=dict(symbol="star", size=15, color=color, line=dict(color="white", width=1)),
                name=f"{name} best", hovertemplate=f"best {error:.2f}% at epoch {epoch}",
            ))
    for name, members in groups.items():
        _add_group_traces(figure, [histories[member] for member in members], panel=panel, band=band,
                          smoothing=smoothing, color=colors.get(name, PALETTE[0]), name=name)
    subtitle = "dashed: train · solid: test" if len(panel.columns) > 1 else ""
    if "test_error" in panel.columns:
        subtitle = "★ each run's best test error"
    if groups:
        subtitle += f"{' · ' if subtitle else ''}groups: mean of their seeds, band {band}"
    if skipped:
        subtitle += f"{' · ' if subtitle else ''}no wall times: {', '.join(skipped)}"
    # No legend: colours are the same in every chart, and the page shows one key for all of them.
    figure.update_layout(
        title=dict(text=panel.title, subtitle=dict(text=subtitle)), height=height,
        margin=dict(l=10, r=10, t=64, b=10), hovermode="x unified", showlegend=False,
        xaxis_title=x_title, yaxis_title=panel.y_title,
    )
    figure.update_yaxes(type="log" if log_y else "linear")
    if x_axis == X_EPOCH:
        last_epoch = max((float(h["epoch"].max()) for h in histories.values() if len(h)), default=0.0)
        if last_epoch <= 15:  # whole epochs only; past 15 Plotly's own ticks are whole numbers anyway
            figure.update_xaxes(dtick=1, tick0=0)
    return figure


def _split_style(column: str) -> tuple[str, str]:
    """(split, dash) of a history column: train curves dashed, test and the rest solid."""
    split = "train" if column.startswith("train_") else "test" if column.startswith("test_") else ""
    return split, TRAIN_DASH if split == "train" else "solid"


def _add_faint_seed(figure: go.Figure, x: pd.Series, history: pd.DataFrame, panel: Panel, color: str, name: str) -> None:
    for column in panel.columns:
        values = numeric_column(history, column)
        if not values.isna().all():
            figure.add_trace(go.Scatter(x=x, y=values, mode="lines", opacity=0.35, showlegend=False,
                                        line=dict(color=color, width=1, dash=_split_style(column)[1]),
                                        name=name, hovertemplate=f"{name}: %{{y:.4g}}<extra></extra>"))


def _add_group_traces(figure: go.Figure, histories: Sequence[pd.DataFrame], *, panel: Panel, band: str,
                      smoothing: float, color: str, name: str) -> None:
    """A group's band (filled between its lower and upper edge) and its mean line, per column."""
    for column in panel.columns:
        curve = group_curve(histories, column)
        if curve["mean"].isna().all():
            continue
        split, dash = _split_style(column)
        lower, upper = band_limits(curve, band)
        fill = plotly.colors.unlabel_rgb(plotly.colors.convert_colors_to_same_type(color, "rgb")[0][0])
        figure.add_trace(go.Scatter(x=curve["epoch"], y=upper, mode="lines", line=dict(width=0), showlegend=False,
                                    hoverinfo="skip"))
        figure.add_trace(go.Scatter(x=curve["epoch"], y=lower, mode="lines", line=dict(width=0), fill="tonexty",
                                    fillcolor=f"rgba({fill[0]:.0f},{fill[1]:.0f},{fill[2]:.0f},0.18)",
                                    showlegend=False, hoverinfo="skip"))
        mean = ema(curve["mean"], weight=smoothing) if smoothing > 0 else curve["mean"]
        label = f"{name} · {split}" if split and len(panel.columns) > 1 else name
        figure.add_trace(go.Scatter(
            x=curve["epoch"], y=mean, mode="lines+markers", marker=dict(size=5, symbol="diamond"),
            line=dict(color=color, width=3, dash=dash), name=label, customdata=np.stack([curve["n"], curve["std"]], axis=-1),
            hovertemplate=f"{name}: mean %{{y:.4g}} (n=%{{customdata[0]}}, std %{{customdata[1]:.2g}})<extra></extra>"))


def class_bars_figure(values: np.ndarray, *, filled: Sequence[int], outlined: Sequence[int] = (),
                      value_name: str = "length", outline_color: str = PALETTE[2]) -> go.Figure:
    """One bar per class, valued: the `filled` classes (the prediction) in colour, the others grey, the
    `outlined` ones (the true labels) framed. The callers add titles, guides and axes."""
    values = np.asarray(values, dtype=float)
    colors = [PALETTE[0] if k in filled else "rgba(140,140,140,0.55)" for k in range(len(values))]
    outline = [3 if k in outlined else 0 for k in range(len(values))]
    return go.Figure(go.Bar(
        x=[str(k) for k in range(len(values))], y=values, marker=dict(color=colors, line=dict(color=outline_color, width=outline)),
        text=[f"{value:.2f}" for value in values], textposition="outside", cliponaxis=False,
        hovertemplate="class %{x}<br>" + value_name + " %{y:.4f}<extra></extra>",
    ))


def capsule_lengths_figure(lengths: np.ndarray, *, label: int | None = None, height: int = 260) -> go.Figure:
    """The 10 digit-capsule lengths (class probabilities), the longest (the prediction) filled,
    the true label outlined, and the margin loss's targets m+ = 0.9 and m- = 0.1 as guides."""
    lengths = np.asarray(lengths, dtype=float)
    prediction = int(lengths.argmax())
    figure = class_bars_figure(lengths, filled=[prediction], outlined=[] if label is None else [label])
    for level in (MARGIN_PLUS, MARGIN_MINUS):
        figure.add_hline(y=level, line=dict(dash="dot", width=1, color="gray"))
    label_text = f" · label {label} (outlined)" if label is not None else ""
    figure.update_layout(
        title=dict(text="Digit capsule lengths", subtitle=dict(text=f"prediction {prediction} (filled){label_text}")),
        height=height, margin=dict(l=10, r=10, t=60, b=10), showlegend=False,
        xaxis=dict(title="class", type="category"),
        # the margin loss's targets as labelled ticks rather than annotations, which would collide with the bars' text
        yaxis=dict(range=[0, 1.12], title="length ‖v‖", tickvals=[0, MARGIN_MINUS, 0.5, MARGIN_PLUS],
                   ticktext=["0", "m⁻ 0.1", "0.5", "m⁺ 0.9"]),
    )
    return figure


def digit_figure(image: np.ndarray, *, title: str = "", subtitle: str = "", height: int = 260) -> go.Figure:
    """One image in [0, 1] as a grey heatmap, pixel values on hover."""
    image = np.asarray(image, dtype=float)
    assert image.ndim == 2, f"expected one (H, W) image, got shape {image.shape}"
    figure = go.Figure(go.Heatmap(
        z=image, zmin=0, zmax=1, colorscale="gray", showscale=False,
        hovertemplate="x %{x}, y %{y}<br>%{z:.3f}<extra></extra>",
    ))
    figure.update_layout(title=dict(text=title, subtitle=dict(text=subtitle)), height=height,
                         margin=dict(l=4, r=4, t=60 if subtitle else 36 if title else 4, b=4))
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    return figure


def tile_mosaic(tiles: np.ndarray, *, gap: int = 2, row_gap: int | None = None) -> np.ndarray:
    """Images (rows, columns, H, W) in [0, 1] -> one RGBA uint8 mosaic with transparent gaps, so
    it sits on light and dark themes alike."""
    tiles = np.asarray(tiles, dtype=float)
    assert tiles.ndim == 4, f"expected tiles (rows, columns, H, W), got shape {tiles.shape}"
    rows, columns, height, width = tiles.shape
    row_gap = gap if row_gap is None else row_gap
    mosaic = np.zeros((rows * height + (rows - 1) * row_gap, columns * width + (columns - 1) * gap, 4), np.uint8)
    for row in range(rows):
        for column in range(columns):
            top, left = row * (height + row_gap), column * (width + gap)
            grey = np.clip(np.rint(tiles[row, column] * 255), 0, 255).astype(np.uint8)
            mosaic[top:top + height, left:left + width, :3] = grey[..., None]
            mosaic[top:top + height, left:left + width, 3] = 255
    return mosaic


def png_data_uri(pixels: np.ndarray, *, compress_level: int = 6) -> str:
    """An RGBA uint8 array as a PNG data URI: a grid of hundreds of digits then costs tens of
    kilobytes to send instead of a JSON array of every pixel. compress_level 1 (zlib's fastest) makes
    it a few kB larger and several times faster to encode, for figures redrawn on every interaction."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGBA").save(buffer, format="PNG", compress_level=compress_level)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image_figure(mosaic: np.ndarray, *, height: int) -> go.Figure:
    figure = go.Figure(go.Image(source=png_data_uri(mosaic), hoverinfo="skip"))
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=70, b=10))
    figure.update_xaxes(showgrid=False, zeroline=False, constrain="domain")
    figure.update_yaxes(showgrid=False, zeroline=False, scaleanchor="x", constrain="domain")
    return figure


def perturbation_figure(grid: np.ndarray, *, offsets: Sequence[float], digit_class: int, height: int = 900) -> go.Figure:
    """Figure 4: rows are the capsule's dimensions, columns the offsets added to that dimension; the
    unperturbed column (offset 0) is outlined."""
    grid = np.asarray(grid)
    dimensions, steps, tile_height, tile_width = grid.shape
    assert steps == len(offsets), f"{steps} columns for {len(offsets)} offsets"
    gap = 2
    figure = _image_figure(tile_mosaic(grid, gap=gap), height=height)
    centers_x = [column * (tile_width + gap) + tile_width / 2 for column in range(steps)]
    centers_y = [row * (tile_height + gap) + tile_height / 2 for row in range(dimensions)]
    figure.update_xaxes(tickvals=centers_x, ticktext=[f"{offset:+.2f}" for offset in offsets], side="top",
                        title_text="offset added to the dimension")
    figure.update_yaxes(tickvals=centers_y, ticktext=[f"dim {row + 1}" for row in range(dimensions)], title_text="")
    zero = [column for column, offset in enumerate(offsets) if abs(offset) < 1e-9]
    for column in zero:
        left = column * (tile_width + gap) - 1
        figure.add_shape(type="rect", x0=left, x1=left + tile_width + 1, y0=-1, y1=grid.shape[0] * (tile_height + gap) - 1,
                         line=dict(color=PALETTE[0], width=2))
    figure.update_layout(title=dict(text=f"Figure 4: perturbing each dimension of capsule {digit_class}",
                                    subtitle=dict(text="outlined: offset 0, the digit's own reconstruction")),
                         margin=dict(l=10, r=10, t=100, b=10))
    return figure


def reconstruction_grid_figure(sets: Sequence[Reconstructions], *, columns: int = 6, width_px: int = 1000) -> go.Figure:
    """Figure 3: each test digit beside its reconstruction(s), one per set in `sets` (e.g. decoded
    from the label, then from the prediction), captioned (l, p, r) and with the reconstruction error;
    misclassified digits framed in red."""
    assert sets, "no reconstructions to show"
    first = sets[0]
    count = len(first.table)
    for other in sets[1:]:
        assert other.table["index"].tolist() == first.table["index"].tolist(), "reconstruction sets must hold the same digits"
    if count == 0:
        figure = go.Figure()
        figure.update_layout(height=120, annotations=[dict(text="no digits to show", showarrow=False, x=0.5, y=0.5,
                                                           xref="paper", yref="paper")])
        figure.update_xaxes(visible=False)
        figure.update_yaxes(visible=False)
        return figure
    tile_height, tile_width = first.images.shape[1:]
    panels = 1 + len(sets)  # the input, then each reconstruction
    inner_gap, gap, caption = 1, 8, 13
    group_width = panels * tile_width + (panels - 1) * inner_gap
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    mosaic = np.zeros((rows * (tile_height + caption), columns * (group_width + gap) - gap, 4), np.uint8)
    figure = go.Figure()
    annotations, shapes = [], []
    for position in range(count):
        row, column = divmod(position, columns)
        top, left = row * (tile_height + caption) + caption, column * (group_width + gap)
        images = [first.images[position]] + [entry.reconstructions[position] for entry in sets]
        group = tile_mosaic(np.stack(images)[None], gap=inner_gap)
        mosaic[top:top + tile_height, left:left + group_width] = group
        record = first.table.iloc[position]
        targets = "/".join(str(int(entry.table["target"].iloc[position])) for entry in sets)
        errors = "/".join(f"{entry.table['error'].iloc[position]:.1f}" for entry in sets)
        correct = bool(record["correct"])
        annotations.append(dict(
            x=left + group_width / 2, y=top - 1, xref="x", yref="y", showarrow=False, yanchor="bottom",
            text=f"#{int(record['index'])} ({int(record['label'])}, {int(record['prediction'])}, {targets}) err {errors}",
            font=dict(size=10, color=None if correct else "#d62728"),
        ))
        if not correct:
            shapes.append(dict(type="rect", x0=left - 1.5, x1=left + group_width + 0.5, y0=top - 1.5,
                               y1=top + tile_height + 0.5, line=dict(color="#d62728", width=2)))
    height_px = int(width_px * mosaic.shape[0] / mosaic.shape[1]) + 80
    figure = _image_figure(mosaic, height=min(max(height_px, 200), 4000))
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    sources = ", ".join(f"from the {_target_name(entry)}" for entry in sets)
    figure.update_layout(
        annotations=annotations, shapes=shapes, margin=dict(l=4, r=4, t=60, b=4),
        title=dict(text="Reconstructions (Figure 3)",
                   subtitle=dict(text=f"each digit, then its reconstruction {sources} · (l, p, r) = label, prediction, "
                                      f"reconstruction target · err = sum of squared pixel errors · red: misclassified")),
    )
    return figure


def _target_name(entry: Reconstructions) -> str:
    return "label's capsule" if entry.target == TARGET_LABEL else "prediction's capsule"


def capsule_vector_figure(poses: np.ndarray, offsets: np.ndarray, *, digit_class: int, height: int = 230) -> go.Figure:
    """The 16 dimensions of one capsule: the encoder's values, and the edited values (value + offset)
    where an offset is set."""
    poses = np.asarray(poses, dtype=float)
    offsets = np.asarray(offsets, dtype=float)
    assert poses.shape == offsets.shape, f"one offset per dimension: {poses.shape} vs {offsets.shape}"
    dimensions = [str(d + 1) for d in range(len(poses))]
    figure = go.Figure([
        go.Bar(x=dimensions, y=poses, name="encoded", marker_color="rgba(140,140,140,0.6)",
               hovertemplate="dim %{x}<br>encoded %{y:.3f}<extra></extra>"),
        go.Bar(x=dimensions, y=poses + offsets, name="edited", marker_color=PALETTE[0],
               hovertemplate="dim %{x}<br>edited %{y:.3f}<extra></extra>"),
    ])
    figure.update_layout(
        title=dict(text=f"Capsule {digit_class}, dimension by dimension"), barmode="group", height=height,
        margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
        xaxis=dict(title="dimension", type="category"), yaxis_title="value",
    )
    return figure
