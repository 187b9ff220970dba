"""The training CLI: refusals, a real short training, kill-and-resume, Ctrl-C."""
import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from conftest import ROOT, run_trainer
from trainer.run import main

TIMING = ["epoch_seconds", "images_per_second", "eval_seconds", "wall_seconds", "timestamp"]


@pytest.mark.parametrize("argv, message", [
    (["--routings", "0"], "--routings 0: must be between 1 and 10"),
    (["--routings", "11"], "--routings 11: must be between 1 and 10"),
    (["--epochs", "-1"], "--epochs -1: must be at least 1"),
    (["--lr-decay", "1.5"], "--lr-decay 1.5: must be in (0, 1]"),
    (["--device", "tpu"], "--device tpu: unknown device"),
    (["--resume"], "holds no run to resume"),
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
