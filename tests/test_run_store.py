"""The run store's one reader (capsviz.store.files) against hostile run directories (issue 26): every
file kind is bounded, confined to its runs root, and parsed and checked into one RunError line, never
a traceback. Built from the shipped runs, copied: no training."""
import os
import shutil
import time
from pathlib import Path

import pytest

from capsviz import store
from capsviz.store import (
    DIMENSIONS,
    EVALUATION,
    HISTORY_CSV,
    ROUTING_CSV,
    RUN_JSON,
    WEIGHTS,
    RunError,
    load_run,
    read_dimensions,
    read_evaluation,
    read_routing,
)

from dashboard_fixtures import new_app

SHIPPED = store.default_runs_root()


def copy_run(name: str, root: Path, as_name: str | None = None) -> Path:
    return Path(shutil.copytree(SHIPPED / name, root / (as_name or name)))


@pytest.fixture()
def capsnet_run(tmp_path) -> Path:
    """A CapsNet run with every file kind: run.json, history.csv, model.pt, routing.csv, dimensions.npz,
    evaluation.json (the mnist-40 run's, beside mnist-r1's own files)."""
    run = copy_run("mnist-r1", tmp_path / "root")
    shutil.copy(SHIPPED / "mnist40-capsnet-r3" / EVALUATION, run / EVALUATION)
    return run


def one_line_error(call, *words: str) -> str:
    with pytest.raises(RunError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


# ---- item 3: deep nesting ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", [RUN_JSON, EVALUATION])
def test_deeply_nested_json_is_one_run_error(capsnet_run, name):
    (capsnet_run / name).write_text("[" * 100_000 + "]" * 100_000)  # 200 KB: RecursionError in json.loads
    read = (lambda: load_run(capsnet_run)) if name == RUN_JSON else (lambda: read_evaluation(capsnet_run))
    one_line_error(read, name, "not valid JSON", "nested")
    (capsnet_run / name).write_text('{"a": ' * 100_000)  # unclosed as well
    one_line_error(read, name, "not valid JSON")


def test_an_integer_too_long_to_convert_is_one_run_error(capsnet_run):
    text = (capsnet_run / RUN_JSON).read_text().replace('"status"', '"pid": ' + "9" * 5000 + ', "status"', 1)
    (capsnet_run / RUN_JSON).write_text(text)
    one_line_error(lambda: load_run(capsnet_run), RUN_JSON, "not valid JSON")


# ---- item 7: a directory where a file goes -------------------------------------------------------------

@pytest.mark.parametrize("name", [ROUTING_CSV, HISTORY_CSV, EVALUATION, RUN_JSON])
def test_a_directory_in_place_of_a_file_is_one_run_error(capsnet_run, name):
    (capsnet_run / name).unlink()
    (capsnet_run / name).mkdir()
    read = {ROUTING_CSV: lambda: read_routing(capsnet_run), EVALUATION: lambda: read_evaluation(capsnet_run)}.get(
        name, lambda: load_run(capsnet_run))
    one_line_error(read, name, "a directory")


# ---- item 8: links out of the runs root ----------------------------------------------------------------

@pytest.mark.parametrize("name", [EVALUATION, ROUTING_CSV, DIMENSIONS, WEIGHTS, HISTORY_CSV, RUN_JSON])
def test_every_file_kind_is_confined_to_the_runs_root(capsnet_run, tmp_path, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(capsnet_run / name, outside / name)
    (capsnet_run / name).symlink_to(outside / name)
    root = capsnet_run.parent
    if name in (HISTORY_CSV, RUN_JSON):
        one_line_error(lambda: load_run(capsnet_run, root=root), name, "outside the runs directory")
        return
    run = load_run(capsnet_run, root=root)
    read = {EVALUATION: lambda: run.evaluation, ROUTING_CSV: lambda: read_routing(capsnet_run, root=root),
            DIMENSIONS: lambda: read_dimensions(capsnet_run, "any", root=root), WEIGHTS: lambda: run.model}[name]
    one_line_error(read, name, "outside the runs directory")
    assert load_run(capsnet_run) is not None, "without a root (the trainer, a script) a link is followed"


def test_links_inside_the_root_are_read(capsnet_run):
    shared = capsnet_run.parent / "shared"
    shared.mkdir()
    shutil.move(capsnet_run / ROUTING_CSV, shared / ROUTING_CSV)
    (capsnet_run / ROUTING_CSV).symlink_to(shared / ROUTING_CSV)
    assert len(read_routing(capsnet_run, root=capsnet_run.parent)) > 0


# ---- item 9: bounded reads -------------------------------------------------------------------------------

def test_a_2_gb_history_is_refused_at_once_with_its_size(capsnet_run):
    os.truncate(capsnet_run / HISTORY_CSV, 2 * 10**9)  # sparse: no disk used
    started = time.perf_counter()
    message = one_line_error(lambda: load_run(capsnet_run), HISTORY_CSV, "2.0 GB", "over the 20.0 MB limit")
    assert time.perf_counter() - started < 1.0, message


@pytest.mark.parametrize("name", [RUN_JSON, ROUTING_CSV, EVALUATION, DIMENSIONS, WEIGHTS])
def test_every_file_kind_has_a_size_limit(capsnet_run, name):
    limit = store.SIZE_LIMITS[name]
    os.truncate(capsnet_run / name, limit + 1)
    read = {RUN_JSON: lambda: load_run(capsnet_run), ROUTING_CSV: lambda: read_routing(capsnet_run),
            EVALUATION: lambda: read_evaluation(capsnet_run), DIMENSIONS: lambda: read_dimensions(capsnet_run, "x"),
            WEIGHTS: lambda: load_run(capsnet_run).model}[name]
    one_line_error(read, name, "over the", "limit")


def test_the_limits_hold_the_shipped_runs_with_room():
    for path in SHIPPED.rglob("*"):
        if path.name in store.SIZE_LIMITS:
            assert path.stat().st_size < store.SIZE_LIMITS[path.name] / 2, path


# ---- item 6: evaluation.json checked whole ---------------------------------------------------------------

def _affnist(evaluation: dict) -> dict:
    return evaluation["sets"]["affnist-like"]


# (what is broken, how): each passed the old reader's checks (sets an object, accuracies percentages)
# and crashed the Robustness page
BROKEN_EVALUATIONS = {
    "training a list": lambda e: e.update(training=[1, 2]),
    "environment a string": lambda e: e.update(environment="cpu"),
    "target a string": lambda e: e["training"].update(target_accuracy="99.2"),
    "epochs a string": lambda e: e["training"].update(epochs="six"),
    "by_transform a list": lambda e: _affnist(e).update(by_transform=[1]),
    "a transform's bins a list": lambda e: _affnist(e)["by_transform"].update(rotation=[1, 2]),
    "garbage base64": lambda e: _affnist(e).update(correct="!!not base64!!"),
    "correct shorter than images": lambda e: _affnist(e).update(correct=_affnist(e)["correct"][:100]),
    "counts of another length": lambda e: _affnist(e)["by_transform"]["scale"].update(count=[1, 2, 3]),
    "NaN in a list": lambda e: _affnist(e)["by_transform"]["shear"]["accuracy"].__setitem__(0, float("nan")),
    "1e300 images": lambda e: _affnist(e).update(images=1e300),
    "10**30 images": lambda e: _affnist(e).update(images=10**30),
    "images a string": lambda e: _affnist(e).update(images="10000"),
    "edges not numbers": lambda e: _affnist(e)["by_transform"]["rotation"].update(edges=["a", "b"]),
    "a set a list": lambda e: e["sets"].update(affnist=[99.0]),
}


def write_broken_evaluation(run_dir: Path, breaking) -> None:
    import json

    evaluation = json.loads((SHIPPED / "mnist40-capsnet-r3" / EVALUATION).read_text())
    breaking(evaluation)
    # NaN is written as the token NaN, as Python's json does by default (CapsViz's writers never do)
    (run_dir / EVALUATION).write_text(json.dumps(evaluation))


@pytest.mark.parametrize("variant", list(BROKEN_EVALUATIONS))
def test_a_broken_evaluation_is_one_run_error(capsnet_run, variant):
    write_broken_evaluation(capsnet_run, BROKEN_EVALUATIONS[variant])
    one_line_error(lambda: read_evaluation(capsnet_run), EVALUATION)


def test_the_shipped_evaluations_pass_the_checks():
    for path in SHIPPED.rglob(EVALUATION):
        assert read_evaluation(path.parent) is not None


def test_the_robustness_page_names_each_broken_evaluation(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    copy_run("mnist40-capsnet-r3", root)
    for number, breaking in enumerate(BROKEN_EVALUATIONS.values()):
        write_broken_evaluation(copy_run("mnist40-baseline-pool", root, f"broken-{number}"), breaking)
    monkeypatch.setenv(store.RUNS_ROOT_ENV, str(root))
    app = new_app().run()
    app.switch_page("pages/robustness.py").run()
    assert not app.exception, [exception.value for exception in app.exception]
    skipped = [error.value for error in app.error if "Evaluation skipped" in error.value]
    assert len(skipped) == len(BROKEN_EVALUATIONS), skipped
    assert app.dataframe[0].value["Source"].tolist()[-1] == "mnist40-capsnet-r3", "the healthy run still shows"


# ---- item 10: weights that disagree with run.json --------------------------------------------------------

def edit_run_json(run_dir: Path, edit) -> None:
    import json

    info = json.loads((run_dir / RUN_JSON).read_text())
    edit(info)
    (run_dir / RUN_JSON).write_text(json.dumps(info))


def test_a_28x28_model_in_an_mnist40_run_is_one_run_error(tmp_path):
    run_dir = copy_run("mnist40-capsnet-r3", tmp_path / "root")
    shutil.copy(SHIPPED / "mnist-r1" / WEIGHTS, run_dir / WEIGHTS)
    run = load_run(run_dir, root=run_dir.parent)
    one_line_error(lambda: run.model, WEIGHTS, "input_size 28", "mnist-40 needs 40")


def test_a_baselines_weights_in_a_capsnet_run_is_one_run_error(capsnet_run):
    edit_run_json(capsnet_run, lambda info: info["config"].update(model="baseline"))
    one_line_error(lambda: load_run(capsnet_run).model, WEIGHTS, '"capsnet" model', '"baseline"')


def test_weights_of_other_routings_than_run_json_records_are_one_run_error(capsnet_run):
    edit_run_json(capsnet_run, lambda info: info["model"].update(routings=3))
    one_line_error(lambda: load_run(capsnet_run).model, WEIGHTS, "routings")


def test_the_shipped_weights_agree_with_their_runs():
    for path in SHIPPED.rglob(WEIGHTS):
        assert load_run(path.parent, root=SHIPPED).model is not None


def test_the_pages_show_disagreeing_weights_as_one_line(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    run_dir = copy_run("mnist40-capsnet-r3", root)
    shutil.copy(SHIPPED / "mnist-r1" / WEIGHTS, run_dir / WEIGHTS)
    monkeypatch.setenv(store.RUNS_ROOT_ENV, str(root))
    app = new_app().run()
    for page in ("pages/dimensions.py", "pages/reconstructions.py", "pages/routing.py", "pages/robustness.py"):
        app.switch_page(page).run()
        assert not app.exception, (page, [exception.value for exception in app.exception])


# ---- item 11: counts beyond any run ----------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("parameters", 10**40), ("parameters_without_decoder", 10**20),
                                         ("epochs_done", 10**30), ("wall_seconds", 1e300), ("processes", 10**12)])
def test_counts_beyond_any_run_are_one_run_error(capsnet_run, field, value):
    edit_run_json(capsnet_run, lambda info: info.update({field: value}))
    one_line_error(lambda: load_run(capsnet_run), RUN_JSON, field)


# ---- item 12: dimensions.npz of the right digest but the wrong content -------------------------------------

def dimensions_arrays(run_dir: Path) -> dict:
    import numpy as np

    with np.load(run_dir / DIMENSIONS) as stored:
        return {name: stored[name] for name in stored.files}


@pytest.mark.parametrize("breaking", ["missing slope", "slope of 5 dimensions", "typical of 3 classes", "text digits"])
def test_dimensions_of_the_right_digest_but_wrong_arrays_are_one_run_error(capsnet_run, breaking):
    import numpy as np

    arrays = dimensions_arrays(capsnet_run)
    digest = str(arrays["digest"])
    if breaking == "missing slope":
        del arrays["slope"]
    elif breaking == "slope of 5 dimensions":
        arrays["slope"] = arrays["slope"][:, :5]
    elif breaking == "typical of 3 classes":
        arrays["typical"] = arrays["typical"][:3]
    else:
        arrays["digits"] = np.array(["a"] * 10)
    (capsnet_run / DIMENSIONS).unlink()
    store.write_dimensions(capsnet_run, arrays)
    one_line_error(lambda: read_dimensions(capsnet_run, digest, shape=(10, 16)), DIMENSIONS)


def test_dimensions_of_another_model_shape_are_one_run_error(capsnet_run):
    digest = str(dimensions_arrays(capsnet_run)["digest"])
    assert read_dimensions(capsnet_run, digest, shape=(10, 16)) is not None
    one_line_error(lambda: read_dimensions(capsnet_run, digest, shape=(10, 8)), DIMENSIONS, "D axis")


def test_dimensions_as_a_directory_is_an_error_naming_the_file(capsnet_run):
    (capsnet_run / DIMENSIONS).unlink()
    (capsnet_run / DIMENSIONS).mkdir()
    one_line_error(lambda: read_dimensions(capsnet_run, "any"), DIMENSIONS, "a directory")


def test_the_capsule_tools_name_a_run_without_weights_or_without_capsules(tiny_run, baseline_run, tmp_path, capsys):
    """scripts/measure_dimensions.py and scripts/map_capsule_space.py read runs through load_capsule_run: one
    line naming the file or the model, exit 1, and the other runs are still done."""
    import importlib.util

    no_weights = shutil.copytree(tiny_run, tmp_path / "no-weights", ignore=shutil.ignore_patterns(WEIGHTS, "state.pt"))
    with pytest.raises(store.RunError, match=r"no-weights/model\.pt: missing; nothing to map$"):
        store.load_capsule_run(no_weights, purpose="map")
    with pytest.raises(store.RunError, match=r"a baseline run has no capsules to measure$"):
        store.load_capsule_run(baseline_run, purpose="measure")
    assert store.load_capsule_run(tiny_run, purpose="map").has_capsules

    path = Path(__file__).resolve().parent.parent / "scripts" / "measure_dimensions.py"
    spec = importlib.util.spec_from_file_location("measure_dimensions", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(no_weights), str(baseline_run)]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [f"error: {no_weights / WEIGHTS}: missing; nothing to measure",
                      f"error: {baseline_run}: a baseline run has no capsules to measure"]
