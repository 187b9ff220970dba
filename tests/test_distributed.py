"""torchrun: two processes on the CPU (gloo) train the same run as one process with the same global batch."""
import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from conftest import ROOT

TIMING = ["epoch_seconds", "images_per_second", "eval_seconds", "wall_seconds", "timestamp"]
ARGS = ["--routings", "1", "--epochs", "2", "--subset", "200", "--test-subset", "100", "--batch-size", "50",
        "--precision", "fp32"]


def train(out, *, processes: int):
    env = {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = [*launcher, "-m", "trainer.run"] if processes > 1 else [sys.executable, "-m", "trainer.run"]
    return subprocess.run([*command, *ARGS, "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
    """Same shuffle, shifts and global batch of 50 (25 per rank), so the same run up to float rounding:
    the gradient of the batch mean is summed in another order (two half-batch sums added by all-reduce),
    which moves float32 results by about 1e-7 relative per step; over 8 Adam steps we allow 1e-5
    relative on the losses and 1e-5 absolute on the weights, and the same correct counts."""
    single, parallel = tmp_path / "single", tmp_path / "parallel"
    one = train(single, processes=1)
    assert one.returncode == 0, one.stderr
    two = train(parallel, processes=2)
    assert two.returncode == 0, two.stderr + two.stdout
    assert "2 processes" in two.stdout and two.stdout.count("epoch   2/2") == 1, "rank 0 alone speaks"
    a = pd.read_csv(single / "history.csv").drop(columns=TIMING)
    b = pd.read_csv(parallel / "history.csv").drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b, rtol=1e-5)
    assert (a["test_acc"] == b["test_acc"]).all() and (a["train_acc"] == b["train_acc"]).all()
    # the fp32 weights of the resume state (model.pt rounds them to float16, whose steps are coarser)
    weights_a = torch.load(single / "state.pt", weights_only=True)["model"]
    weights_b = torch.load(parallel / "state.pt", weights_only=True)["model"]
    for name in weights_a:
        torch.testing.assert_close(weights_a[name], weights_b[name], rtol=0, atol=1e-5)
    info = json.loads((parallel / "run.json").read_text())
    assert info["status"] == "finished" and info["processes"] == 2
    assert sorted(p.name for p in parallel.iterdir() if p.name.startswith(".")) == [], "no temporary files"


@pytest.mark.slow
def test_parallel_run_resumes(tmp_path):
    out = tmp_path / "run"
    first = train(out, processes=2)
    assert first.returncode == 0, first.stderr
    env = {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    more = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "trainer.run", "--resume", "--epochs", "3", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert more.returncode == 0, more.stderr
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1, 2, 3]


@pytest.mark.parametrize("size, world", [(50, 2), (7, 2), (100, 3), (5, 4)])
def test_parts_of_a_batch_cover_it_once(size, world):
    from trainer.distributed import Distributed

    parts = [Distributed(rank=r, world_size=world).part(size) for r in range(world)]
    covered = [i for part in parts for i in range(size)[part]]
    assert covered == list(range(size))
    assert max(len(range(size)[p]) for p in parts) - min(len(range(size)[p]) for p in parts) <= 1
    scale = sum(Distributed(rank=r, world_size=world).loss_scale(len(range(size)[p]), size) for r, p in enumerate(parts))
    assert scale == pytest.approx(world), "averaged over ranks, the scaled shard means are the batch mean"


def test_every_rank_stops_when_one_rank_diverged():
    """A rank whose own loss is finite still stops when another rank's is not (else it would wait in
    DDP's all-reduce for a rank that has left)."""
    from trainer.distributed import Distributed
    from trainer.loop import TrainingDiverged, stop_if_any_rank_diverged

    class OtherRankDiverged(Distributed):
        def all_ranks(self, flag, device):
            return False

    cpu = torch.device("cpu")
    with pytest.raises(TrainingDiverged, match="^epoch 2, batch 1 of 3: a loss is not finite on another process$"):
        stop_if_any_rank_diverged(None, OtherRankDiverged(rank=0, world_size=2), cpu, where="epoch 2, batch 1 of 3")
    with pytest.raises(TrainingDiverged, match="the margin loss is nan"):
        stop_if_any_rank_diverged("epoch 2, batch 1 of 3: the margin loss is nan", Distributed(), cpu, where="x")
    stop_if_any_rank_diverged(None, Distributed(), cpu, where="fine")


@pytest.mark.slow
def test_a_budget_run_under_torchrun_plans_once_for_every_process(tmp_path):
    """--budget under torchrun: rank 0 times the epochs and decides the plan, every rank follows it (a rank
    that planned on its own would wait at a collective for ever); --epochs caps the plan at 2."""
    out = tmp_path / "budget"
    env = {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "trainer.run", *ARGS, "--budget", "1h", "--out", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("budget: planned 2 epoch(s)") == 1, "rank 0 alone speaks"
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and info["processes"] == 2 and info["epochs_done"] == 2
    assert info["budget"]["seconds"] == 3600 and info["budget"]["max_epochs"] == 2
    assert info["budget"]["planned_epochs"] == 2
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1, 2]
