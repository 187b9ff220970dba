"""Shared fixtures. Runs are made by the real trainer, on small MNIST subsets."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["dashboard_fixtures"]  # the dashboard tests' fixtures, available to every test module


def run_trainer(*args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """`python -m trainer.run ARGS` in a subprocess from the repo root."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "trainer.run", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, **popen)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A real 1-routing run: 1 epoch on 200 training images, evaluated on 100 test images."""
    out = tmp_path_factory.mktemp("runs") / "tiny-r1"
    result = run_trainer("--routings", "1", "--epochs", "1", "--subset", "200", "--test-subset", "100",
                         "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out
