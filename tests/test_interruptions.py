"""Fault injection: the trainer is stopped at each rename of the epoch-end commit path in turn
(state.pt, model.pt, history.csv, routing.csv, run.json; before and after each rename; in every epoch of a 3-epoch
run, and at the final "finished" write), by a simulated kill -9 (nothing of the trainer runs after it)
and by Ctrl-C (KeyboardInterrupt: the trainer settles the run directory and says what it keeps).
`python -m trainer.run --resume` (in-process) must then end with the history and weights of an
uninterrupted run.

The run is tiny (40 training and 20 test images, batches of 20, 1 routing, a narrow CapsNet through
TrainConfig.model, plain fp32): the commit path does not depend on the model's size, and 64 cases
stay within seconds. The real-size, real-signal version is scripts/kill_soak.py (not in CI).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

import capsviz.atomic
import trainer.run as trainer_cli
from capsviz import load_mnist, store
from trainer.loop import TrainConfig, Trainer, select

TIMING = ["epoch_seconds", "images_per_second", "eval_seconds", "wall_seconds", "timestamp"]
TINY = TrainConfig(routings=1, epochs=3, batch_size=20, subset=40, test_subset=20, fast=False, device="cpu",
                   model_options={"conv_channels": 8, "primary_types": 2, "decoder_hidden": [16, 32]})
EPOCH_COMMIT = [store.STATE, store.WEIGHTS, store.HISTORY_CSV, store.ROUTING_CSV, store.RUN_JSON]  # state.pt first: the commit point
# Every atomic rename of a run, in order: start()'s run.json, each epoch's commit, the "finished" run.json.
RENAMES = [store.RUN_JSON, *EPOCH_COMMIT * TINY.epochs, store.RUN_JSON]
# The faults: each rename after start()'s, before or after it happens.
POINTS = [(index, phase) for index in range(1, len(RENAMES)) for phase in ("before", "after")]


def point_name(index: int, phase: str) -> str:
    epoch = (index - 1) // len(EPOCH_COMMIT) + 1
    where = f"epoch{epoch}" if epoch <= TINY.epochs else "finished"
    return f"{where}-{RENAMES[index]}-{phase}-rename"


def committed_after(index: int, phase: str) -> int:
    """The epochs state.pt holds when the run stops at this point."""
    commits_done = [i for i, name in enumerate(RENAMES[:index + 1]) if name == store.STATE and i > 0]
    if RENAMES[index] == store.STATE and phase == "before":
        commits_done = commits_done[:-1]
    return len(commits_done)


class SimulatedKill(BaseException):
    """kill -9: not an Exception nor a KeyboardInterrupt, so no handler of the trainer runs."""


class FaultyOs:
    """capsviz.atomic's `os`, whose replace() (the rename that ends each atomic write) records the
    file names and raises `fault` at the rename numbered `at`, before or after it happens."""

    def __init__(self, *, at: int = -1, phase: str = "before", fault: type[BaseException] = SimulatedKill):
        self.at, self.phase, self.fault = at, phase, fault
        self.renamed: list[str] = []

    def __getattr__(self, name):
        return getattr(os, name)

    def replace(self, source, target) -> None:
        index = len(self.renamed)
        self.renamed.append(Path(target).name)
        if index == self.at and self.phase == "before":
            if self.fault is SimulatedKill:  # a real kill leaves the temporary file behind; keep a copy of it
                os.link(source, Path(source).with_name(f".{Path(target).name}.killed.tmp"))
            raise self.fault()
        os.replace(source, target)
        if index == self.at and self.phase == "after":
            raise self.fault()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one thread is faster than two fighting over a busy CPU (the same in every run
    here, so the comparison with the reference run holds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_data():
    train_images, train_labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    return {"train": (train_images[:TINY.subset], train_labels[:TINY.subset]),
            "test": (test_images[:TINY.test_subset], test_labels[:TINY.test_subset])}


def start_tiny_run(run_dir: Path, data: dict, messages: list[str]) -> Trainer:
    trainer = Trainer(TINY, run_dir, torch.device("cpu"), select(*data["train"], None), select(*data["test"], None),
                      log=messages.append, heartbeat_seconds=float("inf"))  # no time-dependent writes
    trainer.start(resume=False)
    return trainer


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory) -> Path:
    """The uninterrupted run, and a check that its renames are RENAMES."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    recorder = FaultyOs()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(capsviz.atomic, "os", recorder)
        start_tiny_run(run_dir, tiny_data, []).fit()
    assert recorder.renamed == RENAMES, "the commit order changed: update RENAMES (and think about why)"
    return run_dir


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / store.WEIGHTS, weights_only=True)["state_dict"]


# The fast subset (pytest -m "not slow") stops at the commit point alone: epoch 2's state.pt rename, before
# and after it; the other points are marked slow (the whole matrix: ~45 s on 2 busy cores).
FAST_POINTS = [(RENAMES.index(store.STATE, 1 + len(EPOCH_COMMIT)), phase) for phase in ("before", "after")]


@pytest.mark.parametrize("fault", [SimulatedKill, KeyboardInterrupt], ids=["kill", "ctrl-c"])
@pytest.mark.parametrize("index, phase", [
    pytest.param(*point, id=point_name(*point), marks=() if point in FAST_POINTS else pytest.mark.slow) for point in POINTS])
def test_resume_after_a_stop_at_each_commit_write_equals_the_uninterrupted_run(
        index, phase, fault, reference, tiny_data, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    messages: list[str] = []
    stopped = start_tiny_run(run_dir, tiny_data, messages)
    with monkeypatch.context() as patch:
        # counted from fit()'s first rename: start()'s run.json (RENAMES[0]) is behind us
        patch.setattr(capsviz.atomic, "os", FaultyOs(at=index - 1, phase=phase, fault=fault))
        with pytest.raises(fault):
            stopped.fit()

    kept = committed_after(index, phase)
    assert store.committed_epochs(run_dir) == kept
    said = [message for message in messages if message.startswith("interrupted")]  # not the epoch lines
    if fault is KeyboardInterrupt:
        # what the trainer says is what is on disk, and the files derived from state.pt agree with it
        [message] = said
        expected = (f"keeps {kept} complete epoch(s) on disk; continue with --resume --out {run_dir}" if kept
                    else f"no epoch was completed; start again with --resume --out {run_dir}")
        assert expected in message
        info = json.loads((run_dir / store.RUN_JSON).read_text())
        assert info["status"] == "interrupted" and info["epochs_done"] == kept
        assert len(store.read_history(run_dir)) == kept
    else:
        assert said == [], "a kill leaves no word"

    # --resume through the command line, with the tiny data set in place of MNIST's files
    monkeypatch.setattr(trainer_cli, "load_dataset", lambda config, split: tiny_data[split])
    assert trainer_cli.main(["--resume", "--out", str(run_dir)]) == 0, capsys.readouterr().err

    expected_history = pd.read_csv(reference / store.HISTORY_CSV).drop(columns=TIMING)
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / store.HISTORY_CSV).drop(columns=TIMING), expected_history)
    pd.testing.assert_frame_equal(store.read_routing(run_dir), store.read_routing(reference))  # every epoch's probe
    expected_weights, got = weights(reference), weights(run_dir)
    assert expected_weights.keys() == got.keys()
    assert all(torch.equal(expected_weights[name], got[name]) for name in expected_weights)
    info = json.loads((run_dir / store.RUN_JSON).read_text())
    assert info["status"] == "finished" and info["epochs_done"] == TINY.epochs
    assert store.committed_epochs(run_dir) == TINY.epochs
    assert not [path.name for path in run_dir.iterdir() if path.name.endswith(".tmp")], "temporary files removed"
