"""The run directory format: round trip through load_run, and clear errors for broken runs."""
import json
import shutil

import pytest
import torch

from capsviz import CapsNet, RunError, list_runs, load_run
from capsviz.runs import HISTORY_COLUMNS, write_history, write_run_json, write_weights


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
        run.model


def test_run_without_weights_keeps_history(broken):
    (broken / "model.pt").unlink()
    run = load_run(broken)
    assert run.model is None and not run.has_weights and len(run.history) == 1


def test_not_a_directory(tmp_path):
    with pytest.raises(RunError, match="no such run directory"):
        load_run(tmp_path / "nothing")
