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
