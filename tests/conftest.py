"""Shared fixtures. Runs are made by the real trainer, on small MNIST subsets."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["dashboard_fixtures"]  # the dashboard tests' fixtures, available to every test module


def run_trainer(*args: str, timeout: float = 300, process: bool = False, **popen) -> subprocess.CompletedProcess:
    """`python -m trainer.run ARGS` from the repo root, its exit code and output captured.

    By default in this process (trainer.run.main, from argument parsing on): a new process spends seconds
    importing torch, and torch._dynamo, which Adam's constructor pulls in, before it trains a step, and the
    suite trains dozens of runs. `process=True` (or any subprocess option) starts a real
    `python -m trainer.run` instead; tests of signals and kills start their own."""
    if process or popen:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.run([sys.executable, "-m", "trainer.run", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout, **popen)
    from trainer.run import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's refusals
            code = exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess(["trainer.run", *args], code, stdout.getvalue(), stderr.getvalue())


def train_run(tmp_path_factory, name: str, *args: str) -> Path:
    """A real run trained by `python -m trainer.run ARGS` into a fresh folder named `name`."""
    out = tmp_path_factory.mktemp("runs") / name
    result = run_trainer(*args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A real 1-routing run: 1 epoch on 200 training images, evaluated on 100 test images."""
    return train_run(tmp_path_factory, "tiny-r1", "--routings", "1", "--epochs", "1", "--subset", "200",
                     "--test-subset", "100")


@pytest.fixture(scope="session")
def baseline_run(tmp_path_factory) -> Path:
    """A real run of the paper's baseline CNN: 1 epoch on 100 training images, tested on 50."""
    return train_run(tmp_path_factory, "baseline", "--model", "baseline", "--epochs", "1", "--subset", "100",
                     "--test-subset", "50", "--batch-size", "50")


@pytest.fixture(scope="session")
def mnist40_run(tmp_path_factory) -> Path:
    """A real 1-routing CapsNet run on mnist-40 (40x40 canvases): 1 epoch on 100 images, tested on 50."""
    return train_run(tmp_path_factory, "capsnet-40", "--dataset", "mnist-40", "--routings", "1", "--epochs", "1",
                     "--subset", "100", "--test-subset", "50")


# A small CapsNet for MultiMNIST (36x36 pairs), trained in this process by the ordinary trainer: the full
# 11.4M-parameter network learns too slowly for a test, this one names both digits of 15% of test pairs
# after 1 epoch on 4,000 pairs (chance: about 2%).
MULTIMNIST_TINY = {"conv_channels": 16, "primary_types": 8, "decoder_hidden": [64, 128]}


@pytest.fixture(scope="session")
def multimnist_run(tmp_path_factory) -> Path:
    """A real 1-routing MultiMNIST run with weights: 1 epoch on 4,000 fresh pairs, tested on 500."""
    import torch

    from capsviz.data.datasets import get_dataset
    from trainer.loop import TrainConfig, Trainer, select

    out = tmp_path_factory.mktemp("runs") / "multimnist-tiny"
    config = TrainConfig(dataset="multimnist", routings=1, epochs=1, subset=4000, test_subset=500, batch_size=20,
                         lr=3e-3, recon=False, precision="fp32", model_options=dict(MULTIMNIST_TINY))
    spec = get_dataset("multimnist")
    train = select(*spec.load("train"), config.subset)
    test = select(*spec.load("test"), config.test_subset)
    trainer = Trainer(config, out, torch.device("cpu"), train, test, log=lambda message: None)
    trainer.start(resume=False)
    trainer.fit()
    return out
