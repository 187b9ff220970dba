"""Routing: dynamic routing made visible, per iteration, per digit (picked or drawn), two runs side by
side, Procedure 1 step by step for one primary capsule (capsviz.dashboard.procedure_section), and over
training (Figure A.1). It opens on a run that routes (3 iterations when there is one)."""
import time

import numpy as np
import streamlit as st

from capsviz.analysis.iterations import iterations_table, routing_families
from capsviz.dashboard.bug_section import BUG, routing_bug_section
from capsviz.dashboard.digit_picker import pick_or_draw_digit
from capsviz.dashboard.figures import digit_figure
from capsviz.dashboard.page_helpers import model_page_inputs, show_table, start_page
from capsviz.dashboard.procedure_section import procedure_section
from capsviz.dashboard.routing_figures import (
    agreement_figure,
    coupling_maps_figure,
    entropy_figure,
    iterations_figure,
    lengths_by_iteration_figure,
    logit_change_figure,
    training_provenance,
)
from capsviz.dashboard.state import digit_routing, model_for, routing_history
from capsviz.model.routing_view import ALL_TYPES, coupling_maps
from capsviz.store import RunError

started = time.perf_counter()  # the page's server time, shown at its end (scripts/bench_dashboard.py reads it)

NO_COMPARISON = "(none)"
FROM_UNIFORM, ROUTED = "from_uniform", "routed"
MAP_MODES = {FROM_UNIFORM: "Change from uniform", ROUTED: "Routed length"}
MAX_ITERATIONS = 10

runs = start_page(__file__, "Routing by agreement (Procedure 1), iteration by iteration: each primary capsule i splits its vote "
                            "u_hat_{j|i} among the digit capsules j by its coupling c_ij = softmax_j(b_ij), and b_ij grows by the "
                            "agreement u_hat_{j|i} · v_j. With 1 iteration the coupling is uniform (1/10).")
controls = st.columns([4, 4, 7, 3, 3], vertical_alignment="bottom")


def routing_preference(candidate) -> int:
    """Which run the page opens on: one that routes, the paper's 3 iterations first. A 1-routing run's
    coupling is uniform by definition, a first sight of routing where nothing happens."""
    routings = candidate.routings or 1
    return 0 if routings == 3 else 1 if routings > 1 else 2


run, model, images, labels = model_page_inputs(runs, key="routing_run", where=controls[0], prefer=routing_preference)
others = [other for other in runs.with_capsules if other.name != run.name
          and other.dataset_name == run.dataset_name]  # the same digit must fit both models
compare_name = controls[1].selectbox("Side by side with", [NO_COMPARISON, *(other.name for other in others)],
                                     key="routing_compare", help="Another CapsNet run on the same dataset, e.g. 1 "
                                     "routing against 3, on the same digit.")
picked = pick_or_draw_digit(images, labels, key="routing_digit", where=controls[2:])
if picked is None:
    st.stop()

compared = []
if compare_name != NO_COMPARISON:
    other = next(other for other in others if other.name == compare_name)
    try:
        compared = [(other, model_for(other))]
    except RunError as error:
        st.error(f"Cannot load {other.name}'s model: {error}", icon=":material/error:")

shown = [(run, model), *compared]
traced = max(3, *(m.routings for _, m in shown))  # 3 at least: a 1-routing model's next steps are worth seeing
options = st.columns([5, 3, 3, 5], vertical_alignment="bottom")
iterations = options[1].number_input(
    "Iterations traced", 1, MAX_ITERATIONS, traced, key="routing_traced",
    help="Iterations past a model's own routings show where routing would go next; its output (prediction, "
         "lengths) is always after its own.")
capsule_type = options[2].selectbox(
    "Capsule types", [ALL_TYPES, *range(model.config.primary_types)], key="routing_type",
    format_func=lambda value: f"all {model.config.primary_types} summed" if value == ALL_TYPES else f"type {value}")
map_mode = options[3].segmented_control(
    "Maps show", list(MAP_MODES), format_func=MAP_MODES.get, default=FROM_UNIFORM, key="routing_map_mode",
    help="Change from uniform: (c_ij - 1/10) · |u_i|, what routing moved towards each class (orange) or away from it "
         "(blue) since iteration 1. Routed length: c_ij · |u_i|, all of what each position sends to each class.") or FROM_UNIFORM
routings = {shown_run.name: digit_routing(shown_run, picked.image, iterations=int(iterations)) for shown_run, _ in shown}
if iterations > 1:
    if st.session_state.get("routing_iteration", 1) > iterations:  # fewer iterations traced than the slider was at
        st.session_state["routing_iteration"] = int(iterations)
    iteration = options[0].slider("Routing iteration", 1, int(iterations), int(iterations), key="routing_iteration",
                                  help="The coupling c_ij used in this iteration (iteration 1's is uniform).")
else:
    iteration = 1
    options[0].caption("1 iteration traced: uniform coupling.")

columns = st.columns(len(shown), gap="large")
for position, (column, (shown_run, _)) in enumerate(zip(columns, shown)):
    routing = routings[shown_run.name]
    with column:
        head = st.columns([1, 2], vertical_alignment="center")
        head[0].plotly_chart(digit_figure(routing.image, title=picked.title, subtitle=picked.subtitle, height=200),
                             width="stretch", key=f"routing_input_{shown_run.name}")
        verdict = "" if picked.label is None else (" ✓" if routing.prediction == picked.label else f" ✗ (label {picked.label})")
        with head[1].container(key=f"routing_prediction_{position}"):
            st.metric(f"{shown_run.name} · {routing.routings} routing(s)", f"prediction {routing.prediction}{verdict}",
                      f"|v| {routing.lengths[routing.prediction]:.3f}", delta_color="off")
        every = [coupling_maps(routing, t, capsule_type=capsule_type, from_uniform=map_mode == FROM_UNIFORM)
                 for t in range(1, routing.iterations + 1)]  # one colour scale for every iteration
        maps = every[iteration - 1]
        st.plotly_chart(coupling_maps_figure(maps, routing.image, zmax=max(np.abs(m).max() for m in every),
                                             prediction=routing.prediction, label=picked.label),
                        width="stretch", key=f"routing_maps_{shown_run.name}")
        charts = st.columns(2)
        charts[0].plotly_chart(lengths_by_iteration_figure(routing, label=picked.label), width="stretch",
                               key=f"routing_lengths_{shown_run.name}")
        charts[1].plotly_chart(entropy_figure(routing), width="stretch", key=f"routing_entropy_{shown_run.name}")
        st.plotly_chart(agreement_figure(routing), width="stretch", key=f"routing_agreement_{shown_run.name}")
        st.caption(training_provenance(shown_run))
st.caption(f"Coupling maps of iteration {iteration}, one per class: each square is one PrimaryCaps position (6x6 for "
           "28x28 inputs) drawn at the centre of its 17x17-pixel receptive field, as opaque as its capsules' length |u_i| "
           "times their coupling to that class (or its change from the uniform 1/10), one colour scale for all classes and "
           "iterations: which strokes vote for which digit. A capsule that barely exists (short u_i) stays transparent.")

procedure_section(run, picked.image, iterations=int(iterations), label=picked.label)

routing_bug_section(run, picked.image, iterations=int(iterations), iteration=int(iteration), capsule_type=capsule_type,
                    from_uniform=map_mode == FROM_UNIFORM, label=picked.label,
                    trained_with_bug=[other for other in runs.runs if other.config.get("variant") == BUG])

st.subheader("Over training: Figure A.1", help="Measured by the trainer at the end of each epoch on the first 300 "
             "test digits (the same for every run of a dataset): the mean |Δb_ij| each routing iteration adds.")
routed = {}
missing = []
for candidate in runs.runs:
    if not candidate.has_capsules or candidate.path is None:
        continue
    try:
        frame = routing_history(candidate)
    except RunError as error:
        st.error(str(error), icon=":material/error:")
        continue
    if len(frame):
        routed[candidate.name] = frame
    else:
        missing.append(candidate.name)
if routed:
    chosen = st.multiselect("Runs", list(routed), default=list(routed), key="routing_a1_runs")
    st.plotly_chart(logit_change_figure({name: routed[name] for name in chosen}), width="stretch", key="routing_a1")
    by_name = runs.by_name()
    st.caption(" · ".join(training_provenance(by_name[name]) for name in chosen))
    partial = [name for name in chosen if routed[name]["epoch"].min() > 1]
    if partial:
        st.caption(f"{', '.join(partial)}: recomputed from the saved weights for the last epoch only; earlier epochs "
                   "were trained before the trainer recorded routing.")
else:
    st.info("No run has routing statistics yet (routing.csv): runs trained from now on record them each epoch.",
            icon=":material/info:")
if missing:
    st.caption(f"Without routing statistics (trained before the trainer recorded them): {', '.join(missing)}.")
st.subheader("How many iterations?", help="The paper tried 1, 3, 5, 7 and 10 routing iterations and chose 3. Runs "
             "that differ only in their routings (their seed, length and machine settings aside) side by side.")
families = routing_families(runs.runs)
if families:
    family_names = [family.name for family in families]
    family = families[st.selectbox("Runs that differ only in their routings", range(len(families)),
                                   format_func=lambda position: f"{family_names[position]} "
                                   f"({', '.join(map(str, families[position].routings))} iterations)",
                                   key="routing_family")]
    # routing.csv as Figure A.1 read it above (a run without one, or with a damaged one, shows empty cells)
    family_routing = {member.name: routed[member.name] for member in family.runs if member.name in routed}
    table = iterations_table(family.runs, family_routing)
    st.plotly_chart(iterations_figure(table, family_routing), width="stretch", key="routing_iterations")
    number = st.column_config.NumberColumn
    show_table(table, column_config={
        "Run": st.column_config.TextColumn(pinned=True, width="medium"),
        "Final test error (%)": number("Final error (%)", format="%.2f", help="Test error of the last epoch"),
        "Final test loss": number("Test loss", format="%.3g"),
        "Seconds / epoch": number("s / epoch", format="%.0f",
                                  help="Mean training seconds per epoch, on the machine and under the load it trained "
                                       "with (below): compare runs trained together"),
        "Δb, first iteration": number(format="%.3g", help="Last epoch's mean |Δb_ij| of iteration 1 (routing.csv)"),
        "Δb, last iteration": number(format="%.3g", help="Last epoch's mean |Δb_ij| of the run's last iteration: how "
                                                         "far routing still was from settling when it stopped"),
    })
    st.caption(" · ".join(training_provenance(member) for member in family.runs))
else:
    st.info("No runs that differ only in their routings: train a few, e.g. `python -m trainer.run --routings 5 "
            "--epochs 3 --out checkpoints/routings/r5-seed0` beside r1 and r3.", icon=":material/info:")
st.caption(f"Page traced and drawn in {1000 * (time.perf_counter() - started):.0f} ms on the server", help=(
    "From the top of this page's script to here: tracing the digit through each model, and building and sending "
    "every figure. Measured by scripts/bench_dashboard.py."))
