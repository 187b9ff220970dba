"""The Routing page's "what the bug does" section: the shown run's trained weights route one digit twice,
by Procedure 1 (eq. 3's softmax over the classes j) and with the softmax taken over the input capsules i, the
bug most reported in public ports (capsviz.model.variants, docs/bugs.md), and their coupling maps are drawn side
by side at the page's iteration. The numbers are the two traces' own (capsviz.model.routing_view)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ..model.routing_view import coupling_maps, coupling_sums
from ..model.variants import NONE, VARIANTS, variant_of
from ..store import Run
from .routing_figures import coupling_maps_figure, training_provenance
from .state import digit_routing, model_for

BUG = "softmax-over-inputs"  # of the routing bugs, the one a single digit shows (shared logits need a batch)


def routing_bug_section(run: Run, image: np.ndarray, *, iterations: int, iteration: int, capsule_type,
                        from_uniform: bool, label: int | None, trained_with_bug: list[Run]) -> None:
    """`iteration` counts from 1, as the page's slider; `trained_with_bug`: runs trained with the bug on
    purpose, whose numbers the caption quotes."""
    st.subheader("A common port bug on this digit: the softmax over the inputs", help=VARIANTS[BUG].paper)
    trained_as = variant_of(model_for(run))
    if trained_as != NONE:
        st.caption(f"{run.name} was trained with the {trained_as} bug: its maps above already route as that bug does.")
        return
    paper = digit_routing(run, image, iterations=iterations)
    classes, inputs = paper.coupling.shape[1:]  # (T, n_out, n_in)
    routings = {
        f"Procedure 1: c_ij = softmax over the {classes} classes j": paper,
        f"The bug: softmax over the {inputs} inputs i": digit_routing(run, image, iterations=iterations, bug=BUG),
    }
    columns = st.columns(len(routings), gap="large")
    for position, (column, (title, routing)) in enumerate(zip(columns, routings.items())):
        maps = coupling_maps(routing, iteration, capsule_type=capsule_type, from_uniform=from_uniform)
        over_classes, over_inputs = coupling_sums(routing, iteration)
        with column:
            verdict = "" if label is None else (" ✓" if routing.prediction == label else " ✗")
            st.markdown(f"**{title}**  \nprediction **{routing.prediction}**{verdict}, "
                        f"|v| {routing.lengths[routing.prediction]:.3f}")
            # each its own colour scale: the bug's couplings are about n_in / n_out times smaller
            st.plotly_chart(coupling_maps_figure(maps, routing.image, zmax=float(np.abs(maps).max()) or 1.0,
                                                 prediction=routing.prediction, label=label),
                            width="stretch", key=f"routing_bug_maps_{position}")
            st.caption(f"Iteration {iteration}: each primary capsule's c_ij sums to {over_classes:.3g} over the classes; "
                       f"each class's to {over_inputs:.3g} over the primary capsules.")
    trained = "; ".join(training_provenance(other) for other in trained_with_bug)
    st.caption(
        f"The same trained weights, one rule of Procedure 1 changed: {VARIANTS[BUG].symptom}. Each side has its own "
        "colour scale. A model trained with the bug learns other weights besides"
        + (f" ({trained}; its curves: Routing curves, folder bugs)." if trained else
           " (train one: `python -m trainer.run --variant softmax-over-inputs`)."))
