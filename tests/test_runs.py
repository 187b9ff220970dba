"""The run directory format: round trip through load_run, clear errors for broken runs, run.json
checked field by field, stale runs, links out of a runs root."""
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from capsviz import CapsNet, Run, RunError, list_runs, load_run
from capsviz.store import HISTORY_COLUMNS, STALE, check_inside_root, effective_status, load_weights, write_history, write_run_json, write_weights


def test_tiny_run_directory_is_complete(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"run.json", "history.csv", "model.pt", "state.pt"} <= names
    assert not [n for n in names if n.endswith(".tmp")], "no temporary files left behind"
    info = json.loads((tiny_run / "run.json").read_text())
    assert info["status"] == "finished" and info["epochs_done"] == 1
    assert info["config"]["routings"] == 1 and info["config"]["subset"] == 200
    assert info["environment"]["torch"] == torch.__version__ and info["environment"]["device"] == "cpu"
    checkpoint = torch.load(tiny_run / "model.pt", weights_only=True)
    assert checkpoint["state_dict"]["conv1.weight"].dtype == torch.float16


def test_load_run_round_trip(tiny_run):
    run = load_run(tiny_run)
    assert run.name == "tiny-r1" and run.status == "finished"
    assert list(run.history.columns) == HISTORY_COLUMNS and len(run.history) == 1
    assert run.history["test_error"].iloc[0] == pytest.approx(100 * (1 - run.history["test_acc"].iloc[0]))
    assert run.info["final_test_error"] == pytest.approx(run.history["test_error"].iloc[0])
    model = run.model
    assert not model.training and model.routings == 1
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    # the weights are the trained ones, restored from float16 on disk
    state = torch.load(tiny_run / "state.pt", weights_only=True)["model"]
    torch.testing.assert_close(model.conv1.weight, state["conv1.weight"], rtol=1e-3, atol=1e-4)
    assert list_runs(tiny_run.parent) == [tiny_run]



def test_a_run_says_its_setup_and_is_named_by_its_path_under_a_root(tiny_run, tmp_path):
    run = load_run(tiny_run)
    assert (run.dataset_name, run.model_name, run.routings, run.reconstruction) == ("mnist", "capsnet", 1, True)
    assert run.has_capsules and run.has_weights and not run.is_imported and not run.is_running
    nested = shutil.copytree(tiny_run, tmp_path / "sweep" / "r1", ignore=shutil.ignore_patterns("state.pt"))
    assert load_run(nested, root=tmp_path).name == "sweep/r1"
    assert load_run(nested, root=nested).name == "r1", "the root itself is a run: its own name"
    assert load_run(nested, root=tmp_path / "elsewhere").name == "r1"


def test_an_imported_history_is_a_run_without_a_directory(tiny_run):
    history = load_run(tiny_run).history
    run = Run.imported("CSV_Num3.csv", history)
    assert run.name == "keras: CSV_Num3.csv" and run.path is None and run.is_imported
    assert run.status == "imported" and not run.has_weights and run.model is None
    assert (run.dataset_name, run.model_name, run.routings, run.reconstruction) == (None, None, None, None)

def test_save_and_load_weights_keep_outputs(tmp_path):
    torch.manual_seed(0)
    model = CapsNet(routings=2).eval()
    write_weights(tmp_path, model, dtype=torch.float32)
    write_history(tmp_path, [])
    write_run_json(tmp_path, {"status": "finished", "config": {"routings": 2}})
    loaded = load_run(tmp_path).model
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images).reconstruction, model(images).reconstruction)


@pytest.fixture
def broken(tiny_run, tmp_path):
    target = tmp_path / "broken"
    shutil.copytree(tiny_run, target)
    return target


def test_missing_run_json(broken):
    (broken / "run.json").unlink()
    with pytest.raises(RunError, match=r"run.json: missing"):
        load_run(broken)


def test_invalid_run_json(broken):
    (broken / "run.json").write_text('{"status": "fini')
    with pytest.raises(RunError, match=r"run.json: not valid JSON"):
        load_run(broken)


def test_truncated_history(broken):
    text = (broken / "history.csv").read_text()
    (broken / "history.csv").write_text(text + "2,0.5,0.4\n")
    with pytest.raises(RunError, match=r"history.csv: truncated or malformed row"):
        load_run(broken)


def test_corrupt_weights(broken):
    (broken / "model.pt").write_bytes(b"\x00" * 100)
    run = load_run(broken)  # the history is still usable
    assert len(run.history) == 1
    with pytest.raises(RunError, match=r"model.pt: corrupt weights"):
        _ = run.model


def test_run_without_weights_keeps_history(broken):
    (broken / "model.pt").unlink()
    run = load_run(broken)
    assert run.model is None and not run.has_weights and len(run.history) == 1


def test_not_a_directory(tmp_path):
    with pytest.raises(RunError, match="no such run directory"):
        load_run(tmp_path / "nothing")


# ---- run.json checked on load -------------------------------------------------------------------------

@pytest.mark.parametrize("change, problem", [
    ({"environment": "x"}, 'environment "x": must be an object'),
    ({"wall_seconds": "abc"}, 'wall_seconds "abc": must be a number of seconds, 0 or more'),
    ({"status": "done"}, 'status "done": must be one of running, finished, interrupted, failed'),
    ({"epochs_done": -1}, "epochs_done -1: must be a count of epochs, 0 or more"),
    ({"epochs_done": True}, "epochs_done true: must be a count of epochs, 0 or more"),
    ({"best_test_error": 250}, "best_test_error 250: must be a percentage or null"),
    ({"resumes": ["x"]}, 'resumes ["x"]: must be a list of objects'),
    ({"updated_at": "yesterday"}, 'updated_at "yesterday": must be an ISO time'),
    ({"format": 2}, "format 2: must be 1 (a newer CapsViz wrote it?)"),
    ({"config": {"routings": 999}}, "config.routings 999: must be between 1 and 10"),
    ({"config": {"routings": "3"}}, 'config.routings "3": must be between 1 and 10'),
    ({"config": {"lr": float("inf")}}, "config.lr inf: must be a finite number above 0"),
    ({"config": {"batch_size": 0}}, "config.batch_size 0: must be at least 1"),
    ({"config": {"model": []}}, "config.model []: unknown model (use capsnet, baseline)"),
    ({"config": {"dataset": "cifar"}}, "config.dataset \"cifar\": unknown dataset (use mnist, mnist-40, multimnist)"),
])
def test_run_json_with_a_bad_value_is_one_error_naming_file_and_field(broken, change, problem):
    info = json.loads((broken / "run.json").read_text())
    for key, value in change.items():
        info[key] = {**info[key], **value} if key == "config" else value
    (broken / "run.json").write_text(json.dumps(info))  # json.dumps writes inf as Infinity, as the old trainer did
    with pytest.raises(RunError) as error:
        load_run(broken)
    assert str(error.value) == f"{broken / 'run.json'}: {problem}"


def test_run_json_is_strict_json_with_non_finite_numbers_as_null(tmp_path):
    write_run_json(tmp_path, {"status": "failed", "config": {"routings": 1, "lr": float("inf")},
                              "final_test_error": float("nan"), "resumes": [{"x": float("-inf")}]})
    text = (tmp_path / "run.json").read_text()

    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant}")

    info = json.loads(text, parse_constant=refuse)
    assert info["config"]["lr"] is None and info["final_test_error"] is None and info["resumes"] == [{"x": None}]


def test_weights_that_are_not_finite_are_refused(tmp_path):
    model = CapsNet(routings=1)
    with torch.no_grad():
        model.decoder[0].weight[0, 0] = float("nan")
    write_weights(tmp_path, model)
    with pytest.raises(RunError, match=r"model.pt: weights are not finite \(NaN or inf in decoder.0.weight\); the run diverged"):
        load_weights(tmp_path / "model.pt")


# ---- stale runs ---------------------------------------------------------------------------------------

def ended_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_running_run_whose_trainer_is_gone_is_stale():
    here = socket.gethostname()
    now = dt.datetime.now(dt.timezone.utc)
    recent, old = now.isoformat(timespec="seconds"), (now - dt.timedelta(hours=1)).isoformat(timespec="seconds")
    live = {"status": "running", "pid": os.getpid(), "host": here, "heartbeat_at": old}
    assert effective_status(live) == "running", "same host: the live pid decides, however old the heartbeat"
    assert effective_status({**live, "pid": ended_pid()}) == STALE, "killed: its pid is gone"
    elsewhere = {"status": "running", "pid": 1, "host": "another-machine"}
    assert effective_status({**elsewhere, "heartbeat_at": recent}) == "running"
    assert effective_status({**elsewhere, "heartbeat_at": old}) == STALE, "another host: the heartbeat decides"
    assert effective_status({"status": "running", "updated_at": old}) == STALE, "older runs: updated_at"
    assert effective_status({**live, "pid": ended_pid(), "status": "finished"}) == "finished"


def test_list_runs_leaves_out_links_that_lead_outside_the_root(tiny_run, tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    shutil.copytree(tiny_run, root / "inside")
    shutil.copytree(tiny_run, outside / "secret")
    (root / "linked-dir").symlink_to(outside / "secret")
    (root / "linked-file").mkdir()
    (root / "linked-file" / "run.json").symlink_to(outside / "secret" / "run.json")
    assert list_runs(root) == [root / "inside"]
    (root / "inside" / "model.pt").unlink()
    (root / "inside" / "model.pt").symlink_to(outside / "secret" / "model.pt")
    with pytest.raises(RunError, match="model.pt: a link that leads outside the runs directory"):
        check_inside_root(root / "inside", root)
