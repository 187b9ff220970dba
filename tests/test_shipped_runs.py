"""The runs that ship in checkpoints/: complete, and their weights give the error their run.json reports."""
import subprocess
from pathlib import Path

import pytest
import torch

from capsviz import load_mnist, load_run
from capsviz.model.fast import prepare_model
from capsviz.store import default_runs_root
from trainer.loop import TrainConfig, select, validate

SHIPPED = ["mnist-r1", "mnist-r3"]  # the like-for-like pair with weights
WEIGHTS_BUDGET = 45 * 2 ** 20  # all shipped model.pt together
TREE_BUDGET = 55 * 2 ** 20  # every tracked file: the tree must travel to a GPU machine


def shipped(name):
    path = default_runs_root() / name
    if not (path / "run.json").exists():
        pytest.fail(f"{path} is not shipped")
    return load_run(path)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_run_is_complete(name):
    run = shipped(name)
    assert run.status == "finished"
    assert run.config["subset"] is None and run.config["test_subset"] is None, "full MNIST"
    assert run.config["recon"] and run.config["routings"] == int(name[-1])
    assert len(run.history) == run.info["epochs_done"] == run.config["epochs"]
    assert run.info["environment"]["git_commit"], "code version recorded"
    assert run.info["wall_seconds"] > 0


def test_shipped_runs_share_settings_apart_from_routings():
    configs = [dict(shipped(name).config, routings=None) for name in SHIPPED]
    assert configs[0] == configs[1]


def test_shipped_weights_fit_the_budget():
    # shipped = tracked by git: weights trained locally beside them (ignored files) do not count
    root = Path(__file__).resolve().parent.parent
    listed = subprocess.run(["git", "ls-files", "checkpoints"], cwd=root, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell shipped files from local ones")
    weights = [root / name for name in listed.stdout.split() if name.endswith("/model.pt")]
    assert {w.parent.name for w in weights} == {"mnist-r1", "mnist-r3", "mnist40-capsnet-r3", "multimnist-r3"}
    assert sum(w.stat().st_size for w in weights) <= WEIGHTS_BUDGET


def test_shipped_weights_are_compact_and_the_tree_fits():
    root = Path(__file__).resolve().parent.parent
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell shipped files from local ones")
    tracked = [root / name for name in listed.stdout.split("\0") if name]
    assert sum(path.stat().st_size for path in tracked if path.is_file()) < TREE_BUDGET
    for path in tracked:
        if path.name == "model.pt" and path.parent.parent.name == "checkpoints":
            assert torch.load(path, weights_only=True).get("compact"), f"{path} ships compact (int8)"


def test_shipped_r3_meets_the_error_target():
    assert shipped("mnist-r3").info["final_test_error"] <= 0.50


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.slow
def test_shipped_weights_reproduce_reported_error(name):
    run = shipped(name)
    if not run.has_weights:
        pytest.skip(f"{name} ships its history only (weights budget)")
    config = TrainConfig(**{k: v for k, v in run.config.items() if k in TrainConfig.__dataclass_fields__})
    images, labels = select(*load_mnist("test"), None)
    # the fast path in fp32: the same function as the reference up to float rounding (tests/test_fast_path_agreement.py),
    # about three times cheaper on all 10,000 digits
    cpu = torch.device("cpu")
    model = prepare_model(run.model, cpu, True, precision="fp32")
    with torch.inference_mode():
        stats = validate(model, config.task(), images, labels, config, cpu, precision="fp32")
    # the run measured its own weights; int8 on disk (compact_weights) may flip a digit or two of 10,000
    # (mnist-r3: 30 wrong before, 32 after). Counted in digits: 0.32 - 0.30 is a hair above 0.02 in floats.
    wrong = round((1 - stats.acc) * len(labels))
    reported = round(run.info["final_test_error"] / 100 * len(labels))
    assert abs(wrong - reported) <= 2, f"{wrong} digits wrong of {len(labels)}; run.json reports {reported}"


def test_shipped_baseline_history_is_the_papers_cnn_on_full_mnist():
    """The baseline CNN ships its history and run.json only (35.4M parameters do not fit the weights
    budget); it loads as a baseline run whose history matches its run.json."""
    run = shipped("mnist-baseline")
    assert run.model_name == "baseline" and run.dataset_name == "mnist" and not run.has_weights
    assert run.info["parameters"] == 35_445_522
    assert run.config["subset"] is None and run.config["test_subset"] is None, "full MNIST"
    assert len(run.history) == run.info["epochs_done"] >= 1
    assert run.history["test_error"].iloc[-1] == run.info["final_test_error"]
    assert run.history["train_margin_loss"].isna().all(), "no capsule loss parts for a CNN"


def test_shipped_multimnist_weights_reproduce_their_recorded_error_on_the_first_500_pairs():
    # the whole 10,000-pair test set takes minutes on 2 cores; its first 500 pairs take seconds
    from scripts.evaluate_run import evaluate

    run = shipped("multimnist-r3")
    recorded = run.info["reevaluation"]["shipped_int8_first_500_test_error"]
    error, pairs, _ = evaluate(run.path, test_subset=500)
    assert pairs == 500 and abs(error - recorded) <= 0.41, f"{error:.2f}% against the recorded {recorded}% (2 pairs of slack)"
