"""The Routing page's "Procedure 1, step by step" section: pick a primary capsule of the digit (a click on
the PrimaryCaps grid, a type, or the strongest) and an iteration, and follow its numbers through the
paper's equations. The numbers come from capsviz.analysis.procedure (the model's own routing), the figures and
equations from capsviz.dashboard.procedure_figures; this module is layout and widget state.

Every widget's key starts with "procedure_": procedure_mode (the strongest, the top contributor or
chosen), procedure_type, procedure_row, procedure_column, procedure_digit, procedure_iteration, and
procedure_grid (the clickable grid).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from ..analysis.procedure import capsule_steps, top_contributors
from ..model.routing_view import DigitRouting
from ..store import Run
from .page_helpers import show_table
from .procedure_figures import (
    capsule_picker_figure,
    contributors_figure,
    coupling_path_figure,
    digit_capsules_figure,
    equations,
    pose_figure,
    receptive_field_figure,
    votes_figure,
)
from .state import digit_routing

KEY = "procedure"
STRONGEST, TOP, CHOSEN = "strongest", "top", "chosen"
MODES = {STRONGEST: "Strongest", TOP: "Top contributor", CHOSEN: "Chosen"}
PREDICTED = "prediction"
EQUATION_TITLES = {
    "prediction": "Eq. 2: each primary capsule predicts every digit capsule",
    "coupling": "Eq. 3: the coupling is a softmax of the logits over the digit capsules j",
    "sum": "Eq. 2: a digit capsule's input is the coupled sum of the predictions",
    "squash": "Eq. 1: squash keeps the direction and brings the length below 1",
    "update": "Procedure 1, line 7: the agreement raises the logit",
}


def _choose(mode_key: str) -> None:
    st.session_state[mode_key] = CHOSEN


def _clicked() -> None:
    """The grid chart's selection (a click on a cell): that cell, and the capsule is then the chosen one."""
    selection = st.session_state.get(f"{KEY}_grid")
    points = (selection or {}).get("selection", {}).get("points", []) if selection else []
    if not points:
        return
    point = points[0]
    # the grid's points sit at x = column, y = row; customdata is not used, as the frontend does not
    # hand it back as the list it was (a real click raised KeyError on it)
    if point.get("x") is not None and point.get("y") is not None:
        cell = (round(float(point["y"])), round(float(point["x"])))
    else:  # the points are laid out row-major
        grid = st.session_state.get(f"{KEY}_grid_size", 6)
        cell = divmod(int(point.get("point_index", point.get("point_number", 0))), grid)
    st.session_state[f"{KEY}_row"], st.session_state[f"{KEY}_column"] = int(cell[0]), int(cell[1])
    st.session_state[f"{KEY}_mode"] = CHOSEN


def _chosen_capsule(procedure: DigitRouting, where) -> int:
    """The capsule index the widgets in `where` (three columns) name. In "the strongest" mode the widgets
    follow the digit's longest u_i, in "top contributor" mode the largest term of the predicted class's s_j
    in the model's last iteration; touching one of them, or clicking the grid, makes the capsule chosen."""
    state = st.session_state
    mode_key, type_key, row_key, column_key = (f"{KEY}_{name}" for name in ("mode", "type", "row", "column"))
    state[f"{KEY}_grid_size"] = procedure.grid
    state.setdefault(mode_key, STRONGEST)  # no `default=`: the callbacks set this key, which Streamlit warns about beside one
    mode = where[0].segmented_control("Primary capsule", list(MODES), format_func=MODES.get, key=mode_key,
                                      help="Strongest: the longest u_i of this digit. Top contributor: the largest "
                                      "|c_ij u_hat_{j|i}| into the predicted class in the model's last iteration. Both follow "
                                      "the digit. Chosen: the cell clicked in the grid and the type picked.") or STRONGEST
    if mode in (STRONGEST, TOP):  # set before the widgets exist in this run: they show that capsule
        followed = procedure.strongest if mode == STRONGEST else int(
            top_contributors(procedure, procedure.output_iteration, procedure.prediction, count=1).indices[0])
        state[type_key], state[row_key], state[column_key] = procedure.capsule_position(followed)
    else:  # another run's grid may be smaller
        state[type_key] = min(int(state.get(type_key, 0)), procedure.types - 1)
        state[row_key] = min(int(state.get(row_key, 0)), procedure.grid - 1)
        state[column_key] = min(int(state.get(column_key, 0)), procedure.grid - 1)
    capsule_type = where[1].selectbox("Capsule type", range(procedure.types), key=type_key, on_change=_choose,
                                      args=(mode_key,), help=f"One of the {procedure.types} PrimaryCaps types (8D each).")
    cells = where[2].columns(2)
    row = cells[0].number_input("Row", 0, procedure.grid - 1, key=row_key, on_change=_choose, args=(mode_key,))
    column = cells[1].number_input("Column", 0, procedure.grid - 1, key=column_key, on_change=_choose, args=(mode_key,))
    return procedure.capsule_index(int(capsule_type), int(row), int(column))


def procedure_section(run: Run, image: np.ndarray, *, iterations: int, label: int | None) -> None:
    """The section for the digit `image` under the run's model, traced for `iterations` of routing."""
    procedure = digit_routing(run, image, iterations=iterations)
    st.subheader("Procedure 1, step by step", help="Sabour, Frosst & Hinton (2017), section 2: every number below is "
                 "the model's own, taken from its PrimaryCaps, its W_ij and the routing function its forward pass runs.")
    st.caption(f"Pick one of the {procedure.capsules:,} primary capsules ({procedure.types} types on a "
               f"{procedure.grid}x{procedure.grid} grid) and follow it through routing: its pose u_i, its ten "
               "predictions u_hat_{j|i}, how they are coupled to the digit capsules, and how agreeing with v_j raises "
               "the logits b_ij that the next iteration's coupling comes from.")
    controls = st.columns([5, 3, 3, 3], vertical_alignment="bottom")
    index = _chosen_capsule(procedure, controls[:3])
    focus_choice = controls[3].selectbox(
        "Digit capsule j", [PREDICTED, *range(procedure.s.shape[1])], key=f"{KEY}_digit",
        format_func=lambda value: f"the prediction ({procedure.prediction})" if value == PREDICTED else f"class {value}",
        help="The digit capsule whose equations, sum and contributors are shown.")
    focus = procedure.prediction if focus_choice == PREDICTED else int(focus_choice)
    if procedure.iterations > 1:
        if st.session_state.get(f"{KEY}_iteration", 1) > procedure.iterations:
            st.session_state[f"{KEY}_iteration"] = procedure.iterations
        iteration = st.slider("Iteration t", 1, procedure.iterations, key=f"{KEY}_iteration",
                              help="Step through Procedure 1: the coupling iteration t uses, the s_j and v_j it makes, "
                                   "and the agreement it adds to b_ij for iteration t + 1.")
    else:
        iteration = 1
        st.caption("1 iteration traced: the coupling is uniform, c_ij = 1/10, and no update is used.")
    beyond = iteration > procedure.routings
    steps = capsule_steps(procedure, index)
    contributors = top_contributors(procedure, iteration, focus, count=10, of=index)

    top = st.columns([3, 3, 4, 4])
    capsule_type, row, column = procedure.capsule_position(index)
    with top[0].container(key=f"{KEY}_picker"):
        st.plotly_chart(capsule_picker_figure(procedure, capsule_type, (row, column)), width="content",
                        key=f"{KEY}_grid", on_select=_clicked, selection_mode="points", config={"displayModeBar": False})
    top[1].plotly_chart(receptive_field_figure(procedure, row, column), width="stretch", key=f"{KEY}_field")
    top[2].plotly_chart(pose_figure(steps), width="stretch", key=f"{KEY}_pose")
    with top[3].container(key=f"{KEY}_summary"):
        where = "past the model's own" if beyond else f"of the model's {procedure.routings}"
        st.markdown(f"**Primary capsule i = {index}** (type {capsule_type}, row {row}, column {column}), "
                    f"|u_i| = {steps.length:.3f}, the {_ordinal(_length_rank(procedure, index))}longest of "
                    f"{procedure.capsules:,}. **Iteration {iteration}** ({where}): it sends "
                    f"{steps.coupling[iteration - 1, focus]:.1%} of its vote to digit capsule {focus}; its term ranks "
                    f"{contributors.rank:,} of {procedure.capsules:,} in s_{focus}.")
        verdict = "" if label is None else (" ✓" if procedure.prediction == label else f" ✗ (label {label})")
        st.caption(f"Prediction {procedure.prediction}{verdict}, |v| {procedure.lengths[procedure.prediction]:.3f}"
                   f" after iteration {procedure.output_iteration}.")

    for name, latex in equations(procedure, steps, contributors, iteration=iteration, digit=focus).items():
        with st.container(key=f"{KEY}_eq_{name}"):
            st.caption(EQUATION_TITLES[name])
            st.latex(latex)

    st.plotly_chart(votes_figure(steps, iteration, focus=focus), width="stretch", key=f"{KEY}_votes")
    charts = st.columns(3)
    charts[0].plotly_chart(coupling_path_figure(steps, iteration=iteration, focus=focus, routings=procedure.routings),
                           width="stretch", key=f"{KEY}_path")
    charts[1].plotly_chart(digit_capsules_figure(procedure, iteration, focus=focus), width="stretch", key=f"{KEY}_digits")
    charts[2].plotly_chart(contributors_figure(procedure, contributors, digit=focus, iteration=iteration, chosen=index),
                           width="stretch", key=f"{KEY}_contributors")
    t = iteration - 1
    table = pd.DataFrame({
        "|û_j|i|": steps.prediction_lengths, "b_ij before": steps.logits_before[t], "c_ij": steps.coupling[t],
        "|c_ij û_j|i|": np.linalg.norm(steps.contribution[t], axis=-1), "û_j|i · v_j": steps.agreement[t],
        "cos": steps.cosine[t], "b_ij after": steps.logits_after[t], "|v_j|": np.linalg.norm(procedure.v[t], axis=-1),
    }, index=pd.Index(range(len(steps.coupling[t])), name="class j"))
    show_table(table.style.format("{:.4f}"), key=f"{KEY}_table", hide_index=False)  # the index names the class j
    st.caption(f"Capsule {index} in iteration {iteration}, one row per digit capsule j: b_ij after = b_ij before + "
               "û_j|i · v_j, and c_ij = softmax over j of b_ij before. With 1 routing iteration, the model uses only "
               "iteration 1's coupling, uniform by definition.")


def _length_rank(procedure: DigitRouting, index: int) -> int:
    lengths = procedure.primary_lengths
    return int((lengths > lengths[index]).sum()) + 1


def _ordinal(number: int) -> str:
    """'' for 1 (the longest), else '2nd ', '11th ', ...: what goes before "longest"."""
    if number == 1:
        return ""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number:,}{suffix} "
