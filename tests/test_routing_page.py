"""The Routing page through Streamlit's AppTest, on the dashboard tests' runs root (conftest's tiny
real run, which records routing.csv, and a synthetic run with weights beside it)."""
import shutil

from capsviz.store import ROUTING_CSV, STATE, WEIGHTS

from dashboard_fixtures import open_app


def test_routing_page_traces_a_digit_compares_runs_and_plots_figure_a1(runs_root, monkeypatch):
    app = open_app(runs_root, monkeypatch, "pages/routing.py")
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.selectbox(key="routing_run").value == "r3-live"  # the first CapsNet run with weights
    assert [metric.label for metric in app.metric] == ["r3-live · 1 routing(s)"]
    assert app.slider(key="routing_iteration").value == 3, "a 1-routing model is traced 3 iterations, shown at the last"
    maps = app.get_by_key("routing_maps_r3-live").proto.spec
    app.slider(key="routing_iteration").set_value(1).run()
    assert app.get_by_key("routing_maps_r3-live").proto.spec != maps, "the coupling maps follow the iteration"
    assert any("Coupling maps of iteration 1" in caption.value for caption in app.caption)

    app.selectbox(key="routing_compare").set_value("tiny-r1")
    app.selectbox(key="routing_type").set_value(5)
    app.number_input(key="routing_digit_index").set_value(7).run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert [metric.label for metric in app.metric] == ["r3-live · 1 routing(s)", "tiny-r1 · 1 routing(s)"]
    assert app.get_by_key("routing_maps_tiny-r1") is not None
    # Figure A.1: tiny-r1 was trained with the probe; the synthetic runs were not
    assert app.multiselect(key="routing_a1_runs").value == ["tiny-r1"]
    assert '"type":"log"' in app.get_by_key("routing_a1").proto.spec
    assert any("Without routing statistics" in caption.value and "r3-live" in caption.value for caption in app.caption)
    assert any("Page traced and drawn in" in caption.value for caption in app.caption)

    app.segmented_control(key="routing_digit_mode").set_value("class").run()
    app.selectbox(key="routing_digit_class").set_value(3).run()
    assert not app.exception and "label 3" in app.get_by_key("routing_input_r3-live").proto.spec
    app.segmented_control(key="routing_digit_mode").set_value("random").run()
    before = app.get_by_key("routing_input_r3-live").proto.spec
    app.button(key="routing_digit_another").click().run()
    assert not app.exception and app.get_by_key("routing_input_r3-live").proto.spec != before, "another random digit"

    app.segmented_control(key="routing_digit_mode").set_value("drawn").run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert any("Nothing drawn yet" in info.value for info in app.info), "drawing mode waits for a drawing"
    assert not app.metric


def test_routing_page_with_broken_weights_and_a_damaged_routing_csv(tiny_run, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    good = shutil.copytree(tiny_run, root / "good", ignore=shutil.ignore_patterns(STATE))
    corrupt = shutil.copytree(good, root / "a-corrupt-weights")
    (corrupt / WEIGHTS).write_bytes((corrupt / WEIGHTS).read_bytes()[:1000])
    damaged = shutil.copytree(good, root / "damaged-routing")
    text = (damaged / ROUTING_CSV).read_text()
    (damaged / ROUTING_CSV).write_text(text[: len(text) - 12])  # the last row cut off mid-line
    app = open_app(root, monkeypatch, "pages/routing.py")
    assert not app.exception, [exception.value for exception in app.exception]
    [error] = [error.value for error in app.error]
    assert "Cannot load this run's model" in error and "model.pt: corrupt weights" in error
    app.selectbox(key="routing_run").set_value("good").run()
    assert not app.exception, [exception.value for exception in app.exception]
    [error] = [error.value for error in app.error]  # one line for the damaged file; the page goes on
    assert "damaged-routing/routing.csv: truncated or malformed row" in error
    assert app.multiselect(key="routing_a1_runs").value == ["a-corrupt-weights", "good"] and app.metric


def test_picked_codes_of_a_test_digit_and_of_a_drawn_one(tiny_run):
    import numpy as np

    from capsviz.analysis.digits import encode_digits, load_test_set
    from capsviz.dashboard.digit_picker import PickedDigit, picked_codes
    from capsviz.store import load_run

    run = load_run(tiny_run)
    images, _ = load_test_set("mnist")
    test_digit = PickedDigit(image=images[5], label=1, index=5, title="", subtitle="")
    drawn = PickedDigit(image=np.roll(images[5], 2, axis=1), label=None, index=None, title="", subtitle="")
    np.testing.assert_allclose(picked_codes(run, run.model, test_digit).lengths, encode_digits(run.model, images[5:6]).lengths,
                               atol=1e-6)
    np.testing.assert_allclose(picked_codes(run, run.model, drawn).lengths, encode_digits(run.model, drawn.image[None]).lengths)
