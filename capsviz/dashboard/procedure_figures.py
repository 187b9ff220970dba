"""Procedure 1 step by step: the Plotly figures and the paper's equations with live numbers (LaTeX for
st.latex), from capsviz.analysis.procedure's arrays. Nothing here computes a number the model did not: the
equations print the procedure's values, rounded.

    capsule_picker_figure   the PrimaryCaps grid, one capsule type's |u_i| per cell; a click picks a cell
    receptive_field_figure  the digit, the chosen position's 17x17 receptive field framed
    pose_figure             u_i, the capsule's 8 numbers
    votes_figure            for each class j: |u_hat_{j|i}|, c_ij, u_hat_{j|i} . v_j and its cosine, in one iteration
    coupling_path_figure    c_ij over the iterations, one line per class
    digit_capsules_figure   |s_j| and |v_j| per class in one iteration
    contributors_figure     the primary capsules with the largest |c_ij u_hat_{j|i}| into one digit capsule
    equations               the five equations (eq. 2 twice, eq. 3, eq. 1, Procedure 1's update) as LaTeX
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis.procedure import CapsuleSteps, Contributors
from ..model.routing_view import DigitRouting
from .figures import PALETTE, digit_figure
from .routing_figures import receptive_field_centres

FOCUS_COLOR, CHOSEN_COLOR, OTHER_COLOR = PALETTE[1], PALETTE[3], "rgba(140,140,140,0.55)"
PICKER_PIXELS = 240  # the picker's plot area, square: marker sizes are set in pixels from it


def capsule_label(procedure: DigitRouting, index: int) -> str:
    capsule_type, row, column = procedure.capsule_position(index)
    return f"type {capsule_type} · row {row}, col {column}"


def capsule_picker_figure(procedure: DigitRouting, capsule_type: int, chosen: tuple[int, int] | None) -> go.Figure:
    """The PrimaryCaps grid as a board of squares, each as orange as that position's capsule of type
    `capsule_type` is long (|u_i|, below 1 by squash), the `chosen` (row, column) framed. One scatter
    point per cell, so that a click (Streamlit's selection) names the cell through its customdata."""
    grid = procedure.grid
    lengths = procedure.length_grid(capsule_type)  # (grid, grid)
    rows, columns = np.divmod(np.arange(grid * grid), grid)
    cell_pixels = PICKER_PIXELS / grid
    every = procedure.primary_lengths
    figure = go.Figure(go.Scatter(
        x=columns, y=rows, mode="markers+text" if grid <= 8 else "markers",
        text=[f"{length:.2f}" for length in lengths.ravel()], textfont=dict(size=10, color="rgba(0,0,0,0.7)"),
        # the colour spans this digit's capsules of every type: trained capsules are often all nearly 1 long
        marker=dict(symbol="square", size=0.9 * cell_pixels, color=lengths.ravel(), cmin=float(every.min()),
                    cmax=float(every.max()), colorscale=[[0, "rgba(255,90,20,0.06)"], [1, "rgba(255,90,20,1)"]],
                    line=dict(color="rgba(128,128,128,0.4)", width=1)),
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
        customdata=np.stack([rows, columns], axis=-1),
        hovertemplate=f"type {capsule_type} · row %{{customdata[0]}}, col %{{customdata[1]}}<br>|u_i| %{{marker.color:.3f}}"
                      "<extra>click to pick</extra>",
    ))
    if chosen is not None:  # its frame, a trace of its own (a click on it names the same cell)
        figure.add_trace(go.Scatter(
            x=[chosen[1]], y=[chosen[0]], mode="markers", customdata=[list(chosen)], hoverinfo="skip",
            marker=dict(symbol="square-open", size=0.98 * cell_pixels, color=CHOSEN_COLOR, line=dict(width=4))))
    figure.update_xaxes(visible=False, range=[-0.5, grid - 0.5], constrain="domain", fixedrange=True)
    figure.update_yaxes(visible=False, range=[grid - 0.5, -0.5], scaleanchor="x", constrain="domain", fixedrange=True)
    figure.update_layout(width=PICKER_PIXELS, height=PICKER_PIXELS + 30, margin=dict(l=0, r=0, t=30, b=0),
                         title=dict(text=f"|u_i| of type {capsule_type}: click a cell", font=dict(size=13)),
                         clickmode="event+select", dragmode=False, showlegend=False)
    return figure


def receptive_field_figure(procedure: DigitRouting, row: int, column: int, *, height: int = 270) -> go.Figure:
    """The digit with the chosen position's receptive field framed: Conv1 (9x9) then PrimaryCaps (9x9,
    stride 2) see the 17x17 pixels from (2 row, 2 column)."""
    figure = digit_figure(procedure.image, title="What it sees", subtitle=f"17x17 pixels at row {row}, col {column}",
                          height=height)
    figure.add_shape(type="rect", x0=2 * column - 0.5, x1=2 * column + 16.5, y0=2 * row - 0.5, y1=2 * row + 16.5,
                     line=dict(color=CHOSEN_COLOR, width=3))
    centre_x, centre_y = receptive_field_centres(procedure.grid)[[column, row]]
    figure.add_trace(go.Scatter(x=[centre_x], y=[centre_y], mode="markers", hoverinfo="skip",
                                marker=dict(symbol="square", size=8, color=CHOSEN_COLOR)))
    figure.update_layout(showlegend=False)
    return figure


def pose_figure(steps: CapsuleSteps, *, height: int = 250) -> go.Figure:
    """The primary capsule's pose u_i: its 8 numbers, and its length in the title."""
    figure = go.Figure(go.Bar(x=[str(d + 1) for d in range(len(steps.pose))], y=steps.pose, marker_color=CHOSEN_COLOR,
                              text=[f"{value:+.2f}" for value in steps.pose], textposition="outside", cliponaxis=False,
                              hovertemplate="dimension %{x}: %{y:+.4f}<extra></extra>"))
    limit = max(float(np.abs(steps.pose).max()), 1e-3) * 1.3
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=50, b=10), showlegend=False,
                         title=dict(text=f"Pose u_i, |u_i| = {steps.length:.3f}",
                                    subtitle=dict(text=f"type {steps.capsule_type} · row {steps.row}, col {steps.column}")),
                         xaxis=dict(title="dimension", type="category"), yaxis=dict(range=[-limit, limit]))
    return figure


def _class_colors(classes: int, focus: int) -> list[str]:
    return [FOCUS_COLOR if j == focus else OTHER_COLOR for j in range(classes)]


def votes_figure(steps: CapsuleSteps, iteration: int, *, focus: int, height: int = 300) -> go.Figure:
    """Capsule i's ten votes in iteration `iteration` (from 1), one bar per class j in four panels: the
    prediction's length |u_hat_{j|i}|, the coupling c_ij it is sent with (uniform 1/10 dashed), the
    agreement u_hat_{j|i} . v_j that iteration adds to b_ij, and its cosine (direction alone)."""
    t = iteration - 1
    classes = steps.coupling.shape[1]
    x = [str(j) for j in range(classes)]
    colors = _class_colors(classes, focus)
    panels = [("|û_{j|i}|", steps.prediction_lengths, "{:.3f}"), ("c_ij", steps.coupling[t], "{:.3f}"),
              ("û_{j|i} · v_j", steps.agreement[t], "{:+.3f}"), ("cos(û_{j|i}, v_j)", steps.cosine[t], "{:+.2f}")]
    figure = make_subplots(rows=1, cols=4, subplot_titles=[title for title, _, _ in panels], horizontal_spacing=0.06)
    for column, (title, values, number) in enumerate(panels, start=1):
        custom = np.stack([steps.logits_before[t], steps.logits_after[t]], axis=-1)
        figure.add_trace(go.Bar(x=x, y=values, marker_color=colors, name=title, customdata=custom,
                                text=[number.format(value) for value in values], textposition="outside",
                                cliponaxis=False, textfont=dict(size=9),
                                hovertemplate=f"class %{{x}}: {title} %{{y:.4f}}<br>b_ij before %{{customdata[0]:.4f}}, "
                                              "after %{customdata[1]:.4f}<extra></extra>"), row=1, col=column)
        figure.update_xaxes(title_text="class j", type="category", row=1, col=column)
    figure.add_hline(y=1.0 / classes, line=dict(dash="dot", width=1, color="gray"), row=1, col=2)
    figure.update_yaxes(range=[-1.05, 1.05], row=1, col=4)
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return figure


def coupling_path_figure(steps: CapsuleSteps, *, iteration: int, focus: int, routings: int, height: int = 300) -> go.Figure:
    """c_ij of the capsule over the iterations, one line per class: routing moving its vote. The chosen
    iteration and the model's own last one are marked."""
    iterations = np.arange(1, steps.coupling.shape[0] + 1)
    figure = go.Figure()
    for j in range(steps.coupling.shape[1]):
        figure.add_trace(go.Scatter(
            x=iterations, y=steps.coupling[:, j], mode="lines+markers", name=str(j),
            line=dict(width=3 if j == focus else 1.2, color=PALETTE[j % len(PALETTE)]), opacity=1.0 if j == focus else 0.5,
            hovertemplate=f"class {j}<br>iteration %{{x}}: c_ij %{{y:.4f}}<extra></extra>"))
    figure.add_vline(x=iteration, line=dict(color="gray", width=6), opacity=0.2)
    if routings < len(iterations):
        figure.add_vline(x=routings, line_dash="dot", line_color="gray", annotation_text="the model's output")
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), title="c_ij over the iterations",
                         # not from 0: a trained model may move c_ij by hundredths only
                         xaxis=dict(title="routing iteration", dtick=1), yaxis=dict(title="c_ij"),
                         legend=dict(orientation="h", y=-0.3, font=dict(size=10)))
    return figure


def digit_capsules_figure(procedure: DigitRouting, iteration: int, *, focus: int, height: int = 300) -> go.Figure:
    """|s_j| (the weighted sum) and |v_j| = |squash(s_j)| per class in iteration `iteration`."""
    t = iteration - 1
    classes = procedure.s.shape[1]
    x = [str(j) for j in range(classes)]
    s_lengths, v_lengths = np.linalg.norm(procedure.s[t], axis=-1), np.linalg.norm(procedure.v[t], axis=-1)
    figure = go.Figure([
        go.Bar(x=x, y=s_lengths, name="|s_j|", marker=dict(color=OTHER_COLOR, line=dict(
            color=[FOCUS_COLOR if j == focus else "rgba(0,0,0,0)" for j in range(classes)], width=2)),
            hovertemplate="class %{x}: |s_j| %{y:.4f}<extra></extra>"),
        go.Bar(x=x, y=v_lengths, name="|v_j| = |squash(s_j)|", marker_color=_class_colors(classes, focus),
               text=[f"{value:.2f}" for value in v_lengths], textposition="outside", cliponaxis=False,
               hovertemplate="class %{x}: |v_j| %{y:.4f}<extra></extra>"),
    ])
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), barmode="group",
                         title=f"Digit capsules in iteration {iteration}", xaxis=dict(title="class j", type="category"),
                         yaxis=dict(title="length", rangemode="tozero"), legend=dict(orientation="h", y=-0.3))
    return figure


def contributors_figure(procedure: DigitRouting, contributors: Contributors, *, digit: int, iteration: int,
                        chosen: int, height: int = 300) -> go.Figure:
    """The largest terms |c_ij u_hat_{j|i}| of s_j (j = `digit`), largest on top, the chosen capsule in
    its colour; each bar's text is the term's share of s_j along s_j itself."""
    labels = [capsule_label(procedure, int(index)) for index in contributors.indices]
    colors = [CHOSEN_COLOR if int(index) == chosen else FOCUS_COLOR for index in contributors.indices]
    figure = go.Figure(go.Bar(
        y=labels, x=contributors.magnitudes, orientation="h", marker_color=colors,
        text=[f"{share:+.1%} of s_{digit}" for share in contributors.shares], textposition="auto",
        hovertemplate="%{y}<br>|c_ij û_{j|i}| %{x:.4f}<extra></extra>"))
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=False,
                         title=f"Largest contributors to s_{digit} in iteration {iteration}",
                         xaxis=dict(title="|c_ij û_{j|i}|"), yaxis=dict(autorange="reversed", type="category"))
    return figure


# -----------------------------------------------------------------------------
# The equations with the live numbers


def _vector(values: np.ndarray, shown: int = 4) -> str:
    """A column vector in LaTeX, its first `shown` entries and a vertical ellipsis when longer."""
    entries = [f"{value:+.3f}" for value in values[:shown]] + ([r"\vdots"] if len(values) > shown else [])
    return r"\begin{pmatrix}" + r"\\".join(entries) + r"\end{pmatrix}"


def equations(procedure: DigitRouting, steps: CapsuleSteps, contributors: Contributors, *, iteration: int,
              digit: int) -> dict[str, str]:
    """The paper's equations for capsule i and digit capsule j = `digit` in iteration `iteration`, each
    written generally, then with this iteration's numbers. Keys: prediction (eq. 2, u_hat = W u),
    coupling (eq. 3), sum (eq. 2, s_j), squash (eq. 1), update (Procedure 1, line 7)."""
    t, i, j = iteration - 1, steps.index, digit
    b, c = steps.logits_before[t], steps.coupling[t]
    u_hat = steps.predictions[j]
    s, v = procedure.s[t, j], procedure.v[t, j]
    s_norm, v_norm = float(np.linalg.norm(s)), float(np.linalg.norm(v))
    exponentials = float(np.exp(b).sum())
    return {
        "prediction": (rf"\hat{{u}}_{{j|i}} = W_{{ij}}\,u_i \qquad \hat{{u}}_{{{j}|{i}}} = W_{{{i},{j}}}\,"
                       rf"{_vector(steps.pose)} = {_vector(u_hat)}, \quad \|u_{{{i}}}\| = {steps.length:.3f},\;"
                       rf"\|\hat{{u}}_{{{j}|{i}}}\| = {steps.prediction_lengths[j]:.3f}"),
        "coupling": (rf"c_{{ij}} = \frac{{\exp(b_{{ij}})}}{{\sum_k \exp(b_{{ik}})}} \qquad c_{{{i},{j}}} = "
                     rf"\frac{{e^{{{b[j]:.4f}}}}}{{\sum_k e^{{b_{{{i},k}}}}}} = \frac{{{np.exp(b[j]):.4f}}}{{{exponentials:.4f}}}"
                     rf" = {c[j]:.4f}"),
        "sum": (rf"s_j = \sum_i c_{{ij}}\,\hat{{u}}_{{j|i}} \qquad s_{{{j}}} = \underbrace{{{c[j]:.4f} \cdot "
                rf"{_vector(u_hat)}}}_{{i = {i}:\ \text{{rank {contributors.rank} of {procedure.capsules}, "
                rf"{contributors.share * 100:+.2f}\%}}}} + \sum_{{i' \neq {i}}} c_{{i'{j}}}\,\hat{{u}}_{{{j}|i'}} = {_vector(s)},"
                rf"\quad \|s_{{{j}}}\| = {s_norm:.3f}"),
        "squash": (rf"v_j = \frac{{\|s_j\|^2}}{{1 + \|s_j\|^2}} \frac{{s_j}}{{\|s_j\|}} \qquad \|v_{{{j}}}\| = "
                   rf"\frac{{{s_norm:.3f}^2}}{{1 + {s_norm:.3f}^2}} = {v_norm:.4f}, \quad v_{{{j}}} = {_vector(v)}"),
        "update": (rf"b_{{ij}} \leftarrow b_{{ij}} + \hat{{u}}_{{j|i}} \cdot v_j \qquad b_{{{i},{j}}} = "
                   rf"{b[j]:.4f} {'+' if steps.agreement[t, j] >= 0 else '-'} {abs(steps.agreement[t, j]):.4f} = "
                   rf"{steps.logits_after[t, j]:.4f} \quad (\cos = {steps.cosine[t, j]:+.3f})"),
    }
