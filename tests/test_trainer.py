"""The training CLI: refusals, a real short training, kill-and-resume, Ctrl-C, non-finite losses,
stale-run heartbeats. The stop-at-every-write matrix is in test_interruptions.py."""
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import capsviz.model.tasks
import trainer.loop
from capsviz import store
from trainer.run import main

from conftest import ROOT, run_trainer

TIMING = ["epoch_seconds", "images_per_second", "eval_seconds", "wall_seconds", "timestamp"]


@pytest.mark.parametrize("argv, message", [
    (["--routings", "0"], "--routings 0: must be between 1 and 10"),
    (["--routings", "11"], "--routings 11: must be between 1 and 10"),
    (["--epochs", "-1"], "--epochs -1: must be at least 1"),
    (["--lr-decay", "1.5"], "--lr-decay 1.5: must be in (0, 1]"),
    (["--device", "tpu"], "--device tpu: unknown device"),
    (["--resume"], "holds no run to resume"),
    # non-finite values: `--lr inf` used to train to NaN and end "finished"
    (["--lr", "inf"], "--lr inf: must be a finite number above 0"),
    (["--lr", "nan"], "--lr nan: must be a finite number above 0"),
    (["--lr", "0"], "--lr 0.0: must be a finite number above 0"),
    (["--recon-weight", "inf"], "--recon-weight inf: must be a finite number, 0 or more"),
    (["--lr-decay", "nan"], "--lr-decay nan: must be in (0, 1]"),
    (["--seed", "-1"], "--seed -1: must be an integer from 0 to 2**63 - 1"),
    # more images than MNIST has: used to train on all 60,000 without a word
    (["--subset", "1000000000"], "--subset 1000000000: more than the 60,000 training images available"),
    (["--test-subset", "10001"], "--test-subset 10001: more than the 10,000 test images available"),
])
def test_cli_refuses_bad_values_before_touching_files(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_refuses_missing_cuda(tmp_path, capsys):
    assert main(["--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_cli_refuses_other_config_in_existing_run(tiny_run, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in tiny_run.iterdir()}
    assert main(["--routings", "3", "--out", str(tiny_run)]) == 2
    assert "holds a run with a different config (routings: run has 1, asked for 3" in capsys.readouterr().err
    assert main(["--routings", "1", "--subset", "200", "--test-subset", "100", "--epochs", "1", "--out", str(tiny_run)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["--resume", "--routings", "2", "--out", str(tiny_run)]) == 2
    assert "other settings (routings: run has 1, asked for 2)" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in tiny_run.iterdir()} == before, "nothing was touched"


@pytest.mark.slow
def test_short_training_beats_chance(tmp_path):
    out = tmp_path / "learn"
    # small batches: more updates per image, so a short run on a subset learns quickly
    result = run_trainer("--routings", "2", "--epochs", "2", "--subset", "1000", "--test-subset", "500",
                         "--batch-size", "25", "--out", str(out))
    assert result.returncode == 0, result.stderr
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert history["train_loss"].iloc[1] < history["train_loss"].iloc[0]
    assert history["test_error"].iloc[-1] < 50, "10 classes: chance is 90% error"
    assert (history["images_per_second"] > 0).all()
    assert "epoch   2/2" in result.stdout


QUICK = ["--routings", "1", "--epochs", "3", "--subset", "300", "--test-subset", "100"]


def wait_for_rows(path, rows, process, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and len(pd.read_csv(path)) >= rows:
            return
        assert process.poll() is None, "trainer ended early"
        time.sleep(0.05)
    raise TimeoutError(f"{path} never reached {rows} rows")


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(tmp_path):
    straight = tmp_path / "straight"
    assert run_trainer(*QUICK, "--out", str(straight)).returncode == 0

    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "trainer.run", *QUICK, "--out", str(killed)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_rows(killed / "history.csv", 1, process)
    time.sleep(0.5)  # into epoch 2
    process.kill()
    process.wait()
    # the last complete epoch is intact
    info = json.loads((killed / "run.json").read_text())
    assert info["status"] == "running" and info["epochs_done"] in (1, 2)
    torch.load(killed / "model.pt", weights_only=True)

    result = run_trainer("--resume", "--out", str(killed))
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout
    a = pd.read_csv(straight / "history.csv").drop(columns=TIMING)
    b = pd.read_csv(killed / "history.csv").drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b)
    weights_a = torch.load(straight / "model.pt", weights_only=True)["state_dict"]
    weights_b = torch.load(killed / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    info = json.loads((killed / "run.json").read_text())
    assert info["status"] == "finished"
    assert [r["after_epoch"] for r in info["resumes"]] in ([1], [2]), "the resume is recorded"
    assert info["environment"]["torch"] == torch.__version__


@pytest.mark.slow
def test_ctrl_c_marks_run_interrupted(tmp_path):
    out = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "trainer.run", *QUICK, "--out", str(out)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_rows(out / "history.csv", 1, process)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 130
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted" and info["epochs_done"] >= 1
    assert "--resume" in stdout
    # and it can be continued to the end
    assert run_trainer("--resume", "--out", str(out)).returncode == 0
    assert json.loads((out / "run.json").read_text())["epochs_done"] == 3


@pytest.mark.slow
def test_resume_switches_adams_kernel_with_the_path(tmp_path):
    """A saved optimizer carries its run's kernel choice; a resume that turns the fast path on or off
    must train with the kernel of the path it runs (fused Adam on the CPU fast path)."""
    from dataclasses import replace

    from capsviz import load_mnist
    from trainer.loop import TrainConfig, Trainer, select

    cpu = torch.device("cpu")
    data = select(*load_mnist("train"), 100), select(*load_mnist("test"), 50)
    plain = TrainConfig(routings=1, epochs=1, subset=100, test_subset=50, fast=False, device="cpu")
    first = Trainer(plain, tmp_path / "run", cpu, *data, log=lambda message: None)
    first.fit()
    assert first.optimizer.param_groups[0]["fused"] is None

    resumed = Trainer(replace(plain, fast=True, epochs=2), tmp_path / "run", cpu, *data, log=lambda message: None)
    resumed.restore()
    assert resumed.optimizer.param_groups[0]["fused"] is True
    resumed.fit()
    assert len(resumed.history) == 2 and all(torch.isfinite(p).all() for p in resumed.model.parameters())


# ---- one-line refusals of paths ---------------------------------------------------------------------

def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_cli_refuses_an_out_that_is_a_file_or_under_one(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert main(["--out", str(a_file)]) == 2
    assert f"--out {a_file}: is a file, not a directory" in one_error_line(capsys)
    assert main(["--out", str(a_file / "run")]) == 2
    assert f"is under {a_file}, which is a file" in one_error_line(capsys)
    assert a_file.read_text() == "keep me"


def test_cli_refuses_a_data_dir_that_does_not_exist_or_is_under_a_file(tmp_path, capsys):
    mistyped = tmp_path / "mnsit"
    assert main(["--data-dir", str(mistyped), "--out", str(tmp_path / "run")]) == 2
    assert f"{mistyped}: no such directory (mistyped?)" in one_error_line(capsys)
    assert not mistyped.exists() and not (tmp_path / "run").exists(), "nothing created, no 55 MB written"
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert main(["--data-dir", str(a_file / "mnist"), "--out", str(tmp_path / "run")]) == 2
    assert f"is under {a_file}, which is a file" in one_error_line(capsys)


def writable(directory: Path) -> bool:
    try:
        (directory / ".probe").touch()
        (directory / ".probe").unlink()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def read_only(directory: Path):
    """`directory` made unwritable: chmod 555, and where that does not stop root (tests often run as
    root), chattr +i. Skips when neither works here, rather than proving nothing."""
    directory.chmod(0o555)
    immutable = False
    try:
        if writable(directory) and shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode == 0
        if writable(directory):
            pytest.skip("cannot make a read-only directory here: root ignores chmod, and chattr +i is not allowed")
        yield directory
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        directory.chmod(0o755)


def test_cli_refuses_an_out_in_a_read_only_folder(tmp_path, capsys):
    folder = tmp_path / "shared"
    folder.mkdir()
    with read_only(folder):
        assert main(["--out", str(folder / "run")]) == 2
        assert f"--out {folder / 'run'}: cannot write in {folder}" in one_error_line(capsys)
    assert list(folder.iterdir()) == []


def test_cli_refuses_to_resume_a_read_only_run(tiny_run, tmp_path, capsys):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    with read_only(run):
        assert main(["--resume", "--epochs", "2", "--out", str(run)]) == 2
        assert f"--out {run}: cannot write in {run}" in one_error_line(capsys)
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before


def test_resume_names_the_bad_run_json_not_a_flag(tiny_run, tmp_path, capsys):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    info["config"]["routings"] = 999
    (run / "run.json").write_text(json.dumps(info))
    assert main(["--resume", "--out", str(run)]) == 2
    err = one_error_line(capsys)
    assert f"{run / 'run.json'}: config.routings 999: must be between 1 and 10" in err
    assert "--routings" not in err


def test_fresh_start_refuses_run_files_without_run_json(tiny_run, tmp_path, capsys):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "run.json").unlink()
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    assert main(["--routings", "1", "--out", str(run)]) == 2
    assert "holds history.csv, model.pt, state.pt but no run.json" in one_error_line(capsys)
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before


def test_resume_without_state_keeps_a_run_that_has_epochs(tiny_run, tmp_path, capsys):
    """A shipped run has no state.pt: --resume must refuse, not start it again over its history."""
    run = shutil.copytree(tiny_run, tmp_path / "run", ignore=shutil.ignore_patterns("state.pt"))
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    assert main(["--resume", "--epochs", "2", "--out", str(run)]) == 2
    assert "state.pt is missing (the resume state was not kept), so the 1 epoch(s)" in one_error_line(capsys)
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before


# ---- interruptions ------------------------------------------------------------------------------------

def test_ctrl_c_during_start_up_is_one_line(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("trainer.run.load_dataset", interrupted)  # Ctrl-C while MNIST loads
    assert main(["--out", str(tmp_path / "run")]) == 130
    assert "interrupted during start-up; nothing was written" in one_error_line(capsys)


def test_ctrl_c_while_python_loads_torch_is_one_line(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "trainer.run", "--out", str(tmp_path / "run"), *QUICK], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # importing torch takes seconds: the signal lands in start-up
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in stderr and stderr.count("\n") == 1 and "interrupted" in stderr, stderr


@pytest.mark.slow
def test_sigterm_in_the_first_epoch_then_resume_starts_it_again(tmp_path):
    """Before the first commit there is nothing to continue: the message says so, and --resume
    starts the run again in its directory (it used to be neither resumable nor restartable)."""
    out = tmp_path / "first-epoch"
    process = subprocess.Popen([sys.executable, "-m", "trainer.run", *QUICK, "--epochs", "1", "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "run.json").exists():  # written before the first batch
        assert process.poll() is None and time.time() < deadline, "trainer ended early"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 130
    assert f"no epoch was completed; start again with --resume --out {out}" in stdout
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "state.pt").exists()

    result = run_trainer("--resume", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "restarting" in result.stdout
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    assert len(pd.read_csv(out / "history.csv")) == 1


# ---- non-finite losses -------------------------------------------------------------------------------

def strict_json(text: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"run.json holds {constant}: not valid JSON")
    return json.loads(text, parse_constant=refuse)


SMALL = ["--routings", "1", "--epochs", "2", "--subset", "40", "--test-subset", "20", "--batch-size", "20"]


@pytest.mark.slow
def test_nan_loss_fails_the_run_naming_where_and_keeps_the_last_good_epoch(tmp_path, capsys, monkeypatch):
    out = tmp_path / "diverged"
    real_loss, training_calls = capsviz.model.tasks.capsule_loss, []

    def poisoned(output, images, labels, **kwargs):
        parts = real_loss(output, images, labels, **kwargs)
        if torch.is_grad_enabled():  # a training batch (evaluation runs under no_grad)
            training_calls.append(1)
            if len(training_calls) == 3:  # epoch 2, batch 1
                parts.margin = parts.margin * math.nan
                parts.total = parts.margin + parts.total
        return parts

    monkeypatch.setattr(capsviz.model.tasks, "capsule_loss", poisoned)
    # a forced precision: the auto trial would run training steps through the poisoned loss first
    # the per-epoch decay: its rule for a new base rate is what this checks (a cosine plan is scaled: test_schedules)
    assert main([*SMALL, "--precision", "fp32", "--schedule", "exp-epoch", "--out", str(out)]) == 1
    err = one_error_line(capsys)
    assert "error: epoch 2, batch 1 of 2: the margin loss is nan; the run is marked failed." in err
    assert f"{out} keeps 1 complete epoch(s) on disk; continue with --resume --out {out} --lr 0.0001" in err
    info = strict_json((out / "run.json").read_text())
    assert info["status"] == "failed" and info["epochs_done"] == 1
    assert info["error"] == "epoch 2, batch 1 of 2: the margin loss is nan"
    assert store.committed_epochs(out) == 1 and len(pd.read_csv(out / "history.csv")) == 1
    state = torch.load(out / "state.pt", weights_only=True)["model"]
    saved = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(saved[name], state[name].half()) for name in saved), "model.pt is the last good epoch"

    monkeypatch.setattr(capsviz.model.tasks, "capsule_loss", real_loss)
    assert main(["--resume", "--lr", "0.0001", "--out", str(out)]) == 0  # lr may change on --resume
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    assert history["lr"].tolist() == pytest.approx([0.001, 0.0001 * 0.9]), "the new base rate, decayed once"
    info = strict_json((out / "run.json").read_text())
    assert info["status"] == "finished" and info["config"]["lr"] == 0.0001
    assert info["resumes"][-1]["changes"] == {"lr": [0.001, 0.0001]}


@pytest.mark.parametrize("margin, reconstruction, total, part", [
    (math.nan, 1.0, math.nan, "margin"), (0.5, math.inf, math.inf, "reconstruction"), (0.5, 1.0, math.inf, "total"),
])
def test_check_finite_loss_names_the_part(margin, reconstruction, total, part):
    from capsviz.model.tasks import StepResult

    def result(*values):
        margin, reconstruction, total = (None if v is None else torch.tensor(v) for v in values)
        return StepResult(total=total, margin=margin, reconstruction=reconstruction, correct=torch.ones(1, dtype=torch.bool))

    with pytest.raises(trainer.loop.TrainingDiverged, match=f"^epoch 3, batch 7 of 9: the {part} loss is"):
        trainer.loop.check_finite_loss(result(margin, reconstruction, total), where="epoch 3, batch 7 of 9")
    trainer.loop.check_finite_loss(result(0.5, 1.0, 0.6), where="fine")
    # a model without margin or reconstruction parts (the CNN) is checked on its total alone
    with pytest.raises(trainer.loop.TrainingDiverged, match="the total loss is nan"):
        trainer.loop.check_finite_loss(result(None, None, math.nan), where="cnn")


# ---- heartbeat ----------------------------------------------------------------------------------------

def test_run_json_carries_pid_host_and_a_heartbeat_during_an_epoch(tmp_path, monkeypatch):
    from capsviz import load_mnist
    from trainer.loop import TrainConfig, Trainer, select

    data = select(*load_mnist("train"), 40), select(*load_mnist("test"), 20)
    config = TrainConfig(routings=1, epochs=1, batch_size=10, subset=40, test_subset=20, device="cpu")
    written = []
    real_write = store.write_run_json

    def recording(run_dir, info):
        written.append((info["status"], info["epochs_done"]))
        real_write(run_dir, info)

    monkeypatch.setattr(store, "write_run_json", recording)
    every_batch = Trainer(config, tmp_path / "run", torch.device("cpu"), *data, log=lambda message: None,
                          heartbeat_seconds=0.0)
    every_batch.start(resume=False)
    every_batch.fit()
    # start, a heartbeat after each of the 4 batches, the epoch's commit, finished
    assert written == [("running", 0)] * 5 + [("running", 1), ("finished", 1)]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    assert store.heartbeat_age(info) < 60
