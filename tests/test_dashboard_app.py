"""Every dashboard page through Streamlit's AppTest, on runs the tests make (conftest's tiny real
run, plus synthetic and broken runs beside it): pages render without exceptions, a dimension
slider redraws the reconstruction, and empty and broken runs roots are handled."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from capsviz.dashboard.page_helpers import MULTIMNIST_TRAIN_COMMAND, TRAIN_COMMAND
from capsviz.dashboard.page_table import PAGE_TABLE, page_by_path
from capsviz.dashboard.safe_html import text as html_text
from capsviz.store import RUNS_ROOT_ENV

from dashboard_fixtures import DASHBOARD, KERAS_HISTORIES, assert_no_exception, new_app, open_app

PAGES = [page.path for page in PAGE_TABLE]


def chart_spec(app: AppTest, key: str) -> str:
    return app.get_by_key(key).proto.spec


def error_lines(app: AppTest) -> list[str]:
    return [error.value for error in app.error]


# ---- each page with healthy runs ------------------------------------------------------------------

def test_home_lists_runs_beside_table1(runs_root, monkeypatch):
    app = open_app(runs_root, monkeypatch)
    runs_table, paper_table = app.dataframe[0].value, app.dataframe[-1].value  # Table 1 measured shows full-MNIST runs only
    assert runs_table["Run"].tolist() == ["r3-curves", "r3-live", "tiny-r1"]
    assert runs_table.set_index("Run").loc["tiny-r1", "Routings"] == "1"
    assert runs_table.set_index("Run").loc["r3-live", "Status"] == "running"
    assert paper_table["MNIST (%)"].tolist()[-1] == "0.25 ± 0.005"
    assert not app.error
    assert "3 run(s) · 1 training" in app.sidebar.caption[0].value


def test_curves_page_overlays_runs_with_controls(runs_root, monkeypatch):
    app = open_app(runs_root, monkeypatch, "pages/curves.py")
    assert app.multiselect(key="curve_runs").value == ["r3-curves", "r3-live", "tiny-r1"], (
        "a run with a history but no weights is on the curves page")
    assert len(app.get("plotly_chart")) == 3, "one chart per default metric"
    before = chart_spec(app, "curve_Test error")
    app.slider(key="curve_smoothing").set_value(0.6)
    app.toggle(key="curve_log").set_value(True)
    app.segmented_control(key="curve_x").set_value("wall time")
    app.multiselect(key="curve_panels").select("Learning rate").select("Epoch time").run()
    assert_no_exception(app)
    assert len(app.get("plotly_chart")) == 5
    after = chart_spec(app, "curve_Test error")
    assert after != before and '"type":"log"' in after and "wall time" in after
    summary = app.dataframe[0].value
    assert summary.set_index("Run").loc["r3-curves", "Epochs"] == 6
    assert app.get("download_button"), "the combined CSV is offered"


def test_curves_page_imports_keras_histories_and_rejects_a_bad_one(runs_root, monkeypatch):
    app = open_app(runs_root, monkeypatch, "pages/curves.py")
    app.file_uploader(key="keras_uploads").set_value([
        ("CSV_Num3.csv", (KERAS_HISTORIES / "CSV_Num3.csv").read_bytes(), "text/csv"),
        ("notes.csv", b"step,loss\n1,0.5\n", "text/csv"),
    ]).run()
    assert_no_exception(app)
    assert "keras: CSV_Num3.csv" in app.multiselect(key="curve_runs").options
    [error] = error_lines(app)
    assert "notes.csv" in error and "no 'epoch' column" in error and "\n" not in error
    app.multiselect(key="curve_runs").set_value(["tiny-r1", "keras: CSV_Num3.csv"]).run()
    assert_no_exception(app)
    summary = app.dataframe[0].value.set_index("Run")
    assert summary.loc["keras: CSV_Num3.csv", "Final test error (%)"] == pytest.approx(0.54)
    assert summary.loc["keras: CSV_Num3.csv", "Epochs"] == 50


def editor_data(app: AppTest) -> dict:
    """What the page sent the live decoder (capsviz/dashboard/live_decoder.js): the capsule, its
    class, the slider labels and range."""
    [editor] = app.get("bidi_component")
    proto = editor.proto
    return json.loads(proto.mixed.json if proto.WhichOneof("data") == "mixed" else proto.json)


def set_offsets(app: AppTest, offsets: list[float]) -> AppTest:
    """What the browser sends back when a slider is released."""
    app.session_state["live_decoder"] = {"offsets": offsets}
    return app.run()


def test_dimension_editor_gets_the_capsule_and_takes_the_offsets_back(runs_root, monkeypatch):
    app = open_app(runs_root, monkeypatch, "pages/dimensions.py")
    data = editor_data(app)
    assert len(data["capsule"]) == 16 and data["size"] == 28 and data["limit"] == 0.25, "Figure 4's range"
    assert data["weights"] is not None and [layer["rows"] for layer in data["weights"]["layers"]] == [512, 1024, 784]
    assert [label.split(" ·")[0] for label in data["labels"]] == [f"dim {d + 1}" for d in range(16)]
    original, unedited = chart_spec(app, "capsule_vector"), chart_spec(app, "unedited_reconstruction")
    assert "Figure 4" in chart_spec(app, "figure4")
    set_offsets(app, [0.0, 0.0, 0.0, 0.25] + [0.0] * 12)
    assert_no_exception(app)
    assert chart_spec(app, "capsule_vector") != original, "the offsets sent back reach the server"
    assert any("d4 +0.25" in caption.value for caption in app.caption)
    assert chart_spec(app, "unedited_reconstruction") == unedited
    assert editor_data(app)["weights"] is None, "the weights go to the browser once per session"


def test_dimension_page_picks_digits_by_class_and_at_random_and_widens_the_range(runs_root, monkeypatch):
    app = open_app(runs_root, monkeypatch, "pages/dimensions.py")
    app.segmented_control(key="digit_mode").set_value("class").run()
    app.selectbox(key="digit_class").set_value(3).run()
    assert_no_exception(app)
    assert "label 3" in chart_spec(app, "input_digit")
    app.segmented_control(key="digit_mode").set_value("random").run()
    first = chart_spec(app, "input_digit")
    app.button[0].click().run()  # draw another digit
    assert_no_exception(app)
    assert chart_spec(app, "input_digit") != first
    app.selectbox(key="capsule_range").set_value(1.0).run()
    assert_no_exception(app)
    assert editor_data(app)["limit"] == 1.0
    assert "+1.00" in chart_spec(app, "figure4")


def test_reconstructions_page_grid_filter_and_targets(runs_root, monkeypatch):
    app = open_app(runs_root, monkeypatch, "pages/reconstructions.py")
    assert app.selectbox(key="reconstructions_run").options == ["r3-live", "tiny-r1"], (
        "only runs with weights are offered on the model pages")
    assert "Figure 3" in chart_spec(app, "reconstruction_grid")
    table = app.dataframe[0].value
    assert len(table) == 24 and table["index"].tolist() == list(range(24))
    app.segmented_control(key="recon_source").set_value("Both").run()
    assert_no_exception(app)
    assert {"error (label)", "error (prediction)"} <= set(app.dataframe[0].value.columns)
    app.segmented_control(key="recon_show").set_value("Misclassified").run()
    app.select_slider(key="recon_search").set_value(200).run()
    assert_no_exception(app)
    assert any("of the first 200 test digits are misclassified" in caption.value for caption in app.caption)
    table = app.dataframe[0].value
    assert len(table) > 0 and not table["correct"].any() and table["index"].max() < 200


# ---- runs of other models and datasets --------------------------------------------------------------
# (marked slow: mixed_root trains a baseline CNN and a mnist-40 CapsNet with the real trainer first)

@pytest.mark.slow
def test_home_names_each_runs_dataset_and_model_and_the_baseline_has_no_routings(mixed_root, monkeypatch):
    app = open_app(mixed_root, monkeypatch)
    table = app.dataframe[0].value.set_index("Run")
    assert table.loc["baseline", ["Dataset", "Model", "Routings", "Reconstruction"]].tolist() == [
        "mnist", "baseline", "-", "-"]
    assert table.loc["baseline", "Paper (%)"] == 0.39, "Table 1's baseline row"
    assert table.loc["capsnet-40", ["Dataset", "Model", "Routings"]].tolist() == ["mnist-40", "capsnet", "1"]
    assert table.loc["tiny-r1", ["Dataset", "Model"]].tolist() == ["mnist", "capsnet"]
    assert not app.error


@pytest.mark.slow
def test_curves_page_overlays_the_baseline_beside_capsnet_runs(mixed_root, monkeypatch):
    app = open_app(mixed_root, monkeypatch, "pages/curves.py")
    assert app.multiselect(key="curve_runs").value == ["baseline", "capsnet-40", "tiny-r1"]
    # the baseline has no margin or reconstruction loss: those panels draw the CapsNet runs alone
    app.multiselect(key="curve_panels").select("Margin loss").select("Reconstruction loss").run()
    assert_no_exception(app)
    assert len(app.get("plotly_chart")) == 5
    assert "tiny-r1" in chart_spec(app, "curve_Margin loss") and "baseline" not in chart_spec(app, "curve_Margin loss")
    assert "baseline" in chart_spec(app, "curve_Test error")
    assert app.dataframe[0].value.set_index("Run").loc["baseline", "Routings"] == "-"


@pytest.mark.parametrize("page, key", [("pages/dimensions.py", "dimensions_run"),
                                       ("pages/reconstructions.py", "reconstructions_run"),
                                       ("pages/routing.py", "routing_run")])
@pytest.mark.slow
def test_model_pages_offer_capsnet_runs_only(mixed_root, monkeypatch, page, key):
    app = open_app(mixed_root, monkeypatch, page)
    assert app.selectbox(key=key).options == ["capsnet-40", "tiny-r1"], "the baseline has no capsules to show"


@pytest.mark.parametrize("page", ["pages/dimensions.py", "pages/reconstructions.py"])
@pytest.mark.slow
def test_model_pages_say_why_when_only_a_baseline_has_weights(baseline_only_root, monkeypatch, page):
    app = open_app(baseline_only_root, monkeypatch, page)
    assert not app.main.selectbox and not app.error
    assert any("Only runs without capsules (baseline) have weights" in info.value for info in app.info)


@pytest.mark.slow
def test_a_mnist_40_run_shows_its_own_40x40_test_digits(mixed_root, monkeypatch):
    from capsviz.dashboard import state

    loaded = []
    original = state.test_set

    def watched_test_set(dataset):
        images, labels = original(dataset)
        loaded.append((dataset, images.shape[1:]))
        return images, labels

    monkeypatch.setattr(state, "test_set", watched_test_set)
    app = open_app(mixed_root, monkeypatch, "pages/dimensions.py")
    assert app.selectbox(key="dimensions_run").value == "capsnet-40"
    assert set(loaded) == {("mnist-40", (40, 40))}, "the run's own dataset, not MNIST's 28x28"
    assert any("40x40" in caption.value for caption in app.caption)
    assert len(editor_data(app)["capsule"]) == 16 and editor_data(app)["size"] == 40
    set_offsets(app, [0.25] + [0.0] * 15)
    assert_no_exception(app)
    app.selectbox(key="dimensions_run").set_value("tiny-r1").run()
    assert_no_exception(app)
    assert loaded[-1] == ("mnist", (28, 28))


# ---- empty and broken runs roots ------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES)
def test_empty_runs_root_says_how_to_train(empty_root, monkeypatch, page):
    app = open_app(empty_root, monkeypatch, page)
    commands = (TRAIN_COMMAND, MULTIMNIST_TRAIN_COMMAND)  # the MultiMNIST page's runs train on pairs
    assert any(command in info.value for info in app.info for command in commands), (
        "the empty state gives the command to train")
    assert not app.error
    assert app.title[0].value == page_by_path(page).page_heading, "the heading the page table gives it"


def test_broken_runs_are_one_error_line_each_and_the_rest_works(broken_root, monkeypatch):
    app = open_app(broken_root, monkeypatch)
    errors = error_lines(app)
    assert len(errors) == 2 and all("\n" not in error for error in errors)
    assert any("bad-json" in error and "run.json: not valid JSON" in error for error in errors)
    assert any("truncated-csv" in error and "history.csv: truncated or malformed row" in error for error in errors)
    assert app.dataframe[0].value["Run"].tolist() == ["corrupt-weights", "good", "just-started"]

    app.switch_page("pages/curves.py").run()
    assert_no_exception(app)
    assert len(error_lines(app)) == 2 and app.get("plotly_chart")

    app.switch_page("pages/dimensions.py").run()
    assert_no_exception(app)
    assert app.selectbox(key="dimensions_run").value == "corrupt-weights"
    [load_error] = [error for error in error_lines(app) if "Cannot load" in error]
    assert "model.pt: corrupt weights" in load_error
    app.selectbox(key="dimensions_run").set_value("good").run()
    assert_no_exception(app)
    assert len(error_lines(app)) == 2 and len(editor_data(app)["capsule"]) == 16, "the good run still works"

    app.switch_page("pages/reconstructions.py").run()
    assert_no_exception(app)


# ---- which runs a browser can open ------------------------------------------------------------------

def test_the_sidebar_picks_among_the_roots_given_on_the_command_line(empty_root, runs_root, monkeypatch):
    # `streamlit run dashboard.py -- --runs A --runs B` runs the script with sys.argv = [script, options]
    monkeypatch.setattr(sys, "argv", [str(DASHBOARD), "--runs", str(empty_root), f"--runs={runs_root}"])
    app = open_app(runs_root / "ignored: the command line wins", monkeypatch)
    choice = app.sidebar.selectbox(key="runs_root")
    assert choice.options == [str(empty_root), str(runs_root)] and choice.value == str(empty_root)
    assert not app.sidebar.text_input, "no free-text path"
    assert len(app.dataframe) == 1  # only the paper's table: no runs
    choice.set_value(str(runs_root)).run()
    assert_no_exception(app)
    assert app.dataframe[0].value["Run"].tolist() == ["r3-curves", "r3-live", "tiny-r1"]


def test_a_forged_runs_directory_in_the_session_is_not_opened(runs_root, monkeypatch):
    """A path in the widget's state that is not one of the roots (AppTest can put one there before
    the first run; a browser only picks an option) is ignored: the first root is shown."""
    monkeypatch.setenv(RUNS_ROOT_ENV, str(runs_root / "r3-live"))  # a root holding one run
    app = new_app()
    app.session_state["runs_root"] = str(runs_root)
    app.run()
    assert_no_exception(app)
    assert app.dataframe[0].value["Run"].tolist() == ["r3-live"]
    assert app.sidebar.selectbox(key="runs_root").value == str(runs_root / "r3-live")


def test_several_roots_from_the_environment(empty_root, runs_root, monkeypatch):
    app = open_app(Path(f"{empty_root}{os.pathsep}{runs_root}"), monkeypatch)
    assert app.sidebar.selectbox(key="runs_root").options == [str(empty_root), str(runs_root)]


def test_a_bad_dashboard_option_is_one_error_line(empty_root, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(DASHBOARD), "--run", str(empty_root)])
    monkeypatch.setenv(RUNS_ROOT_ENV, str(empty_root))
    app = new_app().run()
    assert_no_exception(app)
    assert error_lines(app) == ["dashboard option '--run' not understood: use -- --runs DIR [--runs DIR2]"]


def test_no_page_tells_whether_a_path_exists(empty_root, tmp_path, monkeypatch):
    """The runs root is the operator's choice; even so the empty state reads the same for a folder
    that exists and one that does not."""
    missing = tmp_path / "no-such-folder"
    for page in PAGES:
        said = {root: [info.value.replace(str(root), "ROOT") for info in open_app(root, monkeypatch, page).info]
                for root in (empty_root, missing)}
        assert said[empty_root] == said[missing] and said[missing], page


# ---- run.json with wrong values, and runs whose trainer is gone ----------------------------------------

@pytest.fixture()
def badly_typed_root(tiny_run, tmp_path) -> Path:
    """One good run beside three whose run.json values have the wrong type or range."""
    root = tmp_path / "typed"
    shutil.copytree(tiny_run, root / "good", ignore=shutil.ignore_patterns("state.pt"))
    for name, change in {"env-string": {"environment": "x"}, "wall-text": {"wall_seconds": "abc"},
                         "routings-999": {"config": {"routings": 999}}}.items():
        run = shutil.copytree(root / "good", root / name)
        info = json.loads((run / "run.json").read_text())
        info.update({key: {**info[key], **value} if key == "config" else value for key, value in change.items()})
        (run / "run.json").write_text(json.dumps(info))
    return root


def test_run_json_values_of_the_wrong_type_are_one_broken_run_line_on_every_page(badly_typed_root, monkeypatch):
    for page in PAGES:
        app = open_app(badly_typed_root, monkeypatch, page)  # raises on any exception in the page
        errors = [error for error in error_lines(app) if error.startswith("Broken run skipped")]
        assert len(errors) == 3 and all("\n" not in error for error in errors), page
        assert any('env-string/run.json: environment "x": must be an object' in error for error in errors)
        assert any('wall-text/run.json: wall_seconds "abc"' in error for error in errors)
        assert any("routings-999/run.json: config.routings 999: must be between 1 and 10" in error for error in errors)
    home = open_app(badly_typed_root, monkeypatch)
    assert home.dataframe[0].value["Run"].tolist() == ["good"]


@pytest.fixture()
def stale_root(tiny_run, tmp_path) -> Path:
    """A run marked running whose trainer has ended: its pid is gone."""
    root = tmp_path / "stale"
    run = shutil.copytree(tiny_run, root / "killed", ignore=shutil.ignore_patterns("state.pt"))
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    info = json.loads((run / "run.json").read_text())
    info.update(status="running", pid=process.pid, host=socket.gethostname())
    info["config"]["epochs"] = 5
    (run / "run.json").write_text(json.dumps(info))
    return root


def test_a_run_whose_trainer_is_gone_shows_as_stopped_not_training(stale_root, monkeypatch):
    app = open_app(stale_root, monkeypatch)
    assert app.dataframe[0].value.set_index("Run").loc["killed", "Status"] == "stopped (trainer gone)"
    assert "1 run(s) · 1 stale" in app.sidebar.caption[0].value
    assert app.metric[1].value == "0", "not counted as training now"
    app.switch_page("pages/curves.py").run()
    assert_no_exception(app)
    page_text = " ".join(element.value for element in app.markdown) + " ".join(c.value for c in app.caption)
    assert "(training)" not in page_text and "Refreshing" not in page_text, "no auto-refresh for a dead run"


def test_a_run_still_training_is_marked_and_refreshes(runs_root, monkeypatch):
    app = open_app(runs_root, monkeypatch, "pages/curves.py")
    page_text = " ".join(element.value for element in app.markdown) + " ".join(c.value for c in app.caption)
    # the colour key writes run names escaped (capsviz.dashboard.safe_html): "-" is "&#45;" there
    assert f"{html_text('r3-live')} <small>(training)</small>" in page_text
    assert "Refreshing every 10 s while training: r3-live" in page_text


def test_a_failed_run_says_why_on_home(tiny_run, tmp_path, monkeypatch):
    run = shutil.copytree(tiny_run, tmp_path / "root" / "nan", ignore=shutil.ignore_patterns("state.pt"))
    info = json.loads((run / "run.json").read_text())
    info.update(status="failed", error="epoch 2, batch 1 of 2: the margin loss is nan")
    (run / "run.json").write_text(json.dumps(info))
    app = open_app(tmp_path / "root", monkeypatch)
    assert [warning.value for warning in app.warning] == ["Run nan failed: epoch 2, batch 1 of 2: the margin loss is nan"]


def test_the_dashboard_listens_on_this_machine_only_by_default():
    settings = tomllib.loads((DASHBOARD.parent / ".streamlit" / "config.toml").read_text())
    assert settings["server"]["address"] == "127.0.0.1"
