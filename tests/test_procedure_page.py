"""The Routing page's "Procedure 1, step by step" section through Streamlit's AppTest, on the shipped runs
(checkpoints/): the page opens on a run that routes, the equations carry the model's numbers for the
chosen capsule, and choosing another capsule or iteration changes them. The numbers are checked against
the model's forward pass, computed here without capsviz.analysis.procedure."""
import time

import numpy as np
import pytest
import streamlit as st
import torch
import torch.nn.functional as F

from capsviz.analysis.digits import load_test_set, to_inputs
from capsviz.store import RUNS_ROOT_ENV, default_runs_root, load_weights

from dashboard_fixtures import new_app

SHIPPED = default_runs_root()


def forward(run: str, index: int = 0):
    """The run's model on test digit `index`: the forward pass with its routing trace, and the strongest
    primary capsule (the longest u_i) as (index, type, row, column)."""
    model = load_weights(SHIPPED / run / "model.pt")
    images, _ = load_test_set("mnist" if model.config.input_size == 28 else "mnist-40")
    inputs = to_inputs(images[index:index + 1])
    with torch.no_grad():
        output = model(inputs, trace=True, reconstruct=False)
        lengths = model.primary(F.relu(model.conv1(inputs)))[0].norm(dim=-1)  # (n_in,)
    strongest = int(lengths.argmax())
    grid = model.config.primary_grid
    capsule_type, cell = divmod(strongest, grid * grid)
    return output, (strongest, capsule_type, *divmod(cell, grid))


def section_latex(app) -> list[str]:
    return [element.value.strip("$\n") for element in app.latex]  # AppTest gives st.latex's body within $$


def table(app):
    # AppTest does not carry a dataframe's key: the procedure's table is the one with a c_ij column
    [frame] = [element for element in app.dataframe if "c_ij" in element.value.columns]
    return frame.value


@pytest.fixture
def shipped_app(monkeypatch):
    if not (SHIPPED / "mnist-r3" / "model.pt").exists():
        pytest.skip("the shipped mnist-r3 run has no weights here")
    monkeypatch.setenv(RUNS_ROOT_ENV, str(SHIPPED))
    st.cache_data.clear()  # cold: weights, the test set and the trace loaded by the page itself
    st.cache_resource.clear()
    app = new_app(timeout=300).run()
    started = time.perf_counter()
    app.switch_page("pages/routing.py").run()
    print(f"\nRouting page with Procedure 1, first picture (cold caches): {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    app.run()
    print(f"Routing page with Procedure 1, rerun (warm caches): {time.perf_counter() - started:.2f} s")
    assert not app.exception, [exception.value for exception in app.exception]
    return app


@pytest.mark.slow  # the shipped runs opened cold: weights and the whole test set loaded
def test_the_routing_page_opens_on_a_run_that_routes_and_steps_through_procedure_1(shipped_app):
    app = shipped_app
    assert app.selectbox(key="routing_run").value == "mnist-r3", "the page opens on 3 routings, not on mnist-r1"
    assert not app.warning, [warning.value for warning in app.warning]
    output, (strongest, capsule_type, row, column) = forward("mnist-r3")
    prediction = int(output.lengths[0].argmax())

    # the strongest capsule is chosen at first, and the widgets say where it is
    assert app.segmented_control(key="procedure_mode").value == "strongest"
    assert (app.selectbox(key="procedure_type").value, app.number_input(key="procedure_row").value,
            app.number_input(key="procedure_column").value) == (capsule_type, row, column)
    assert app.slider(key="procedure_iteration").value == 1
    latex = section_latex(app)
    assert len(latex) == 5
    assert f"c_{{{strongest},{prediction}}}" in latex[1] and latex[1].endswith("= 0.1000"), "iteration 1: uniform"
    assert any(f"Primary capsule i = {strongest}" in markdown.value for markdown in app.markdown)

    # the table's numbers are the forward pass's: c_ij, b_ij, |v_j|
    frame = table(app)
    np.testing.assert_allclose(frame["c_ij"].to_numpy(), output.coupling[0, 0, strongest].numpy(), atol=1e-6)
    app.slider(key="procedure_iteration").set_value(3).run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert section_latex(app) != latex, "the equations follow the iteration"
    frame = table(app)
    np.testing.assert_allclose(frame["c_ij"].to_numpy(), output.coupling[0, 2, strongest].numpy(), atol=1e-6)
    np.testing.assert_allclose(frame["b_ij before"].to_numpy(), output.logits[0, 1, strongest].numpy(), atol=1e-5)
    np.testing.assert_allclose(frame["b_ij after"].to_numpy(), output.logits[0, 2, strongest].numpy(), atol=1e-5)
    np.testing.assert_allclose(frame["|v_j|"].to_numpy(), output.lengths[0].numpy(), atol=1e-5)
    coupling = output.coupling[0, 2, strongest, prediction].item()
    assert f"= {coupling:.4f}" in section_latex(app)[1]

    # another capsule: a type, then a row; the capsule is then the chosen one
    latex = section_latex(app)
    other_type = (capsule_type + 5) % 32
    app.selectbox(key="procedure_type").set_value(other_type).run()
    assert app.segmented_control(key="procedure_mode").value == "chosen"
    chosen = (other_type * 6 + row) * 6 + column
    assert f"c_{{{chosen},{prediction}}}" in section_latex(app)[1] and section_latex(app) != latex
    np.testing.assert_allclose(table(app)["c_ij"].to_numpy(), output.coupling[0, 2, chosen].numpy(), atol=1e-6)
    app.number_input(key="procedure_row").set_value((row + 1) % 6).run()
    chosen = (other_type * 6 + (row + 1) % 6) * 6 + column
    assert f"c_{{{chosen},{prediction}}}" in section_latex(app)[1]
    # another digit capsule j
    other_class = (prediction + 1) % 10
    app.selectbox(key="procedure_digit").set_value(other_class).run()
    assert f"c_{{{chosen},{other_class}}}" in section_latex(app)[1]
    # back to the strongest
    app.segmented_control(key="procedure_mode").set_value("strongest").run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.selectbox(key="procedure_type").value == capsule_type
    assert f"c_{{{strongest},{other_class}}}" in section_latex(app)[1]

    # 1 iteration traced: no slider, uniform coupling, exactly 1/10
    app.number_input(key="routing_traced").set_value(1).run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert any("1 iteration traced: the coupling is uniform" in caption.value for caption in app.caption)
    assert (table(app)["c_ij"].to_numpy() == np.float32(0.1)).all()


@pytest.mark.slow  # the shipped runs opened cold: weights and the whole test set loaded
def test_procedure_1_on_the_40x40_run(shipped_app):
    app = shipped_app
    if "mnist40-capsnet-r3" not in app.selectbox(key="routing_run").options:
        pytest.skip("no shipped 40x40 CapsNet run with weights")
    app.selectbox(key="routing_run").set_value("mnist40-capsnet-r3").run()
    assert not app.exception, [exception.value for exception in app.exception]
    output, (strongest, capsule_type, row, column) = forward("mnist40-capsnet-r3")
    assert app.number_input(key="procedure_row").max == 11, "a 12x12 PrimaryCaps grid"
    assert (app.selectbox(key="procedure_type").value, app.number_input(key="procedure_row").value,
            app.number_input(key="procedure_column").value) == (capsule_type, row, column)
    app.slider(key="procedure_iteration").set_value(3).run()
    frame = table(app)
    np.testing.assert_allclose(frame["c_ij"].to_numpy(), output.coupling[0, 2, strongest].numpy(), atol=1e-6)
    np.testing.assert_allclose(frame["|v_j|"].to_numpy(), output.lengths[0].numpy(), atol=1e-5)
    app.number_input(key="procedure_column").set_value(11).run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert f"i = {(capsule_type * 12 + row) * 12 + 11}" in section_latex(app)[2]


@pytest.mark.slow  # the shipped runs opened cold: weights and the whole test set loaded
def test_the_top_contributor_mode_follows_the_largest_term_of_the_prediction(shipped_app):
    app = shipped_app
    output, _ = forward("mnist-r3")
    prediction = int(output.lengths[0].argmax())
    app.segmented_control(key="procedure_mode").set_value("top").run()
    assert not app.exception, [exception.value for exception in app.exception]
    index = (app.selectbox(key="procedure_type").value * 6 + app.number_input(key="procedure_row").value) * 6 \
        + app.number_input(key="procedure_column").value
    app.slider(key="procedure_iteration").set_value(3).run()
    latex = section_latex(app)
    assert f"i = {index}:\\ \\text{{rank 1 of 1152" in latex[2], latex[2]
    assert f"c_{{{index},{prediction}}}" in latex[1]


@pytest.mark.parametrize("point", [
    {"curve_number": 0, "point_number": 16, "point_index": 16, "x": 4, "y": 2, "customdata": {"0": 2, "1": 4}},
    {"curve_number": 0, "point_number": 16, "point_index": 16},  # without coordinates: row-major
], ids=["x-y", "point_index"])
def test_a_click_on_the_grid_picks_its_cell(point, monkeypatch):
    """The grid chart's selection, as Streamlit's frontend reports a clicked point (PlotlyState), becomes
    the chosen capsule's row and column. Driven in a browser by tests/test_procedure_browser.py."""
    from capsviz.dashboard import procedure_section

    state = {"procedure_grid": {"selection": {"points": [point], "point_indices": [16], "box": [], "lasso": []}},
             "procedure_grid_size": 6, "procedure_mode": "strongest", "procedure_row": 0, "procedure_column": 0}
    monkeypatch.setattr(procedure_section.st, "session_state", state)
    procedure_section._clicked()
    assert (state["procedure_row"], state["procedure_column"], state["procedure_mode"]) == (2, 4, "chosen")
    state["procedure_grid"] = {"selection": {"points": [], "point_indices": [], "box": [], "lasso": []}}
    procedure_section._clicked()  # a click that deselects: nothing changes
    assert (state["procedure_row"], state["procedure_column"]) == (2, 4)
