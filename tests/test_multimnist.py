"""MultiMNIST (paper section 6): the pair generator, the two-label loss and accuracy rule, and a short
real training through the ordinary trainer."""
import numpy as np
import pytest
import torch

from capsviz import load_mnist
from capsviz.data import multimnist
from capsviz.data.datasets import get_dataset
from capsviz.data.multimnist import CANVAS, SHIFT, TEST_SEED, centre, make_pairs, overlay, overlay_u8
from capsviz.model.losses import pair_margin_loss
from capsviz.model.tasks import CapsulePairTask, pair_correct, two_longest


def offset_of(layer: np.ndarray, digit: np.ndarray) -> tuple[int, int] | None:
    """The (dy, dx) by which a 28x28 `digit`, centred on the 36x36 canvas, was moved to give `layer`."""
    for dy in range(-SHIFT, SHIFT + 1):
        for dx in range(-SHIFT, SHIFT + 1):
            top, left = 4 + dy, 4 + dx
            canvas = np.zeros((CANVAS, CANVAS), np.uint8)
            canvas[top:top + 28, left:left + 28] = digit
            if np.array_equal(canvas, layer):
                return dy, dx
    return None


def test_test_pairs_differ_in_class_shift_within_4_and_are_the_same_every_time():
    spec = get_dataset("multimnist")
    layers, labels = spec.load("test")
    assert layers.shape == (10_000, 2, 36, 36) and labels.shape == (10_000, 2) and layers.dtype == np.uint8
    assert (labels[:, 0] != labels[:, 1]).all(), "the two digits are of different classes"
    digits, digit_labels = load_mnist("test")
    assert np.array_equal(labels[:, 0], digit_labels), "pair i starts with MNIST test digit i"
    offsets = set()
    for i in range(60):
        first = offset_of(layers[i, 0], digits[i])
        assert first is not None, f"pair {i}: the first layer is test digit {i} shifted by at most {SHIFT}"
        # the partner: some test digit of its label, shifted by at most 4 (the whole digit on the canvas)
        candidates = np.flatnonzero(digit_labels == labels[i, 1])
        ink = layers[i, 1].sum()
        second = next(offset_of(layers[i, 1], digits[j]) for j in candidates
                      if digits[j].sum() == ink and offset_of(layers[i, 1], digits[j]) is not None)
        offsets.update([first, second])
    assert len(offsets) > 30, "shifts spread over the 9x9 range"
    again, again_labels = multimnist.test_pairs()
    assert np.array_equal(again, layers) and np.array_equal(again_labels, labels), "deterministic from the seed"
    assert TEST_SEED == 36


def test_overlay_is_the_sum_clipped_at_one():
    a = torch.tensor([[0.0, 0.5, 0.7, 1.0]]).view(1, 1, 1, 4)
    b = torch.tensor([[0.0, 0.25, 0.6, 1.0]]).view(1, 1, 1, 4)
    assert torch.equal(overlay(torch.cat([a, b], 1)), torch.tensor([0.0, 0.75, 1.0, 1.0]).view(1, 1, 1, 4))
    layers, _ = multimnist.test_pairs()
    summed = layers[:50].astype(np.int64).sum(axis=1)
    assert np.array_equal(overlay_u8(layers[:50]), np.minimum(summed, 255))
    assert (summed > 255).any(), "the digits do overlap somewhere, so clipping is exercised"
    spec = get_dataset("multimnist")
    inputs, targets = spec.test_batch(torch.from_numpy(layers), torch.zeros(len(layers), 2, dtype=torch.long),
                                      torch.arange(50))
    assert torch.allclose(inputs[:, 0] * 255, torch.from_numpy(overlay_u8(layers[:50])).float(), atol=1e-3)


def test_training_pairs_are_fresh_each_batch_and_deterministic_from_the_seed():
    digits, labels = load_mnist("train")
    pool, pool_labels = torch.from_numpy(centre(digits[:3000])), torch.from_numpy(labels[:3000])
    first = torch.arange(200)

    def draw(seed_generator):
        return make_pairs(pool, pool_labels, first, shift=SHIFT, generator=seed_generator)

    generator = torch.Generator().manual_seed(7)
    inputs1, targets1 = draw(generator)
    inputs2, targets2 = draw(generator)
    assert (targets1.labels[:, 0] != targets1.labels[:, 1]).all()
    assert torch.equal(targets1.labels[:, 0], pool_labels[:200])
    assert not torch.equal(targets1.labels[:, 1], targets2.labels[:, 1]), "new partners every draw"
    assert torch.equal(inputs1, overlay(targets1.digits))
    again, again_targets = draw(torch.Generator().manual_seed(7))
    assert torch.equal(again, inputs1) and torch.equal(again_targets.labels, targets1.labels)
    for i in range(10):  # every layer is a pool digit of its label, moved by at most 4 pixels
        layer = (targets1.digits[i, 1] * 255).round().to(torch.uint8).numpy()
        partners = np.flatnonzero(labels[:3000] == int(targets1.labels[i, 1]))
        assert any(offset_of(layer, digits[j]) is not None for j in partners if digits[j].sum() == layer.sum())


def test_two_label_margin_loss_by_hand():
    lengths = torch.tensor([[0.95, 0.5, 0.2, 0.05]])  # classes 0 and 1 present
    labels = torch.tensor([[1, 0]])
    # present: max(0, 0.9 - 0.95)^2 = 0, max(0, 0.9 - 0.5)^2 = 0.16
    # absent:  0.5 max(0, 0.2 - 0.1)^2 = 0.005, 0.5 max(0, 0.05 - 0.1)^2 = 0
    assert pair_margin_loss(lengths, labels).item() == pytest.approx(0.165)


def test_a_pair_is_right_only_when_both_digits_are():
    lengths = torch.tensor([[0.1, 0.9, 0.8, 0.0], [0.1, 0.9, 0.8, 0.0], [0.7, 0.9, 0.8, 0.0]])
    predicted = two_longest(lengths)
    assert predicted.tolist() == [[1, 2], [1, 2], [1, 2]]
    labels = torch.tensor([[2, 1], [1, 2], [0, 1]])
    assert pair_correct(predicted, labels).tolist() == [True, True, False]


def test_pair_task_reconstructs_each_digit_from_its_own_capsule():
    spec = get_dataset("multimnist")
    torch.manual_seed(0)
    from capsviz.model.registry import build_model

    model = build_model("capsnet", spec, routings=1, overrides={"conv_channels": 16, "primary_types": 4,
                                                                 "decoder_hidden": (32, 64)})
    inputs, targets = spec.example_batch(4, torch.Generator().manual_seed(0))
    result = CapsulePairTask().step(model, inputs, targets)
    poses = model(inputs, reconstruct=False).poses
    first, second = model.decode(poses, targets.labels[:, 0]), model.decode(poses, targets.labels[:, 1])
    expected = ((first - targets.digits[:, :1]) ** 2).flatten(1).sum(1).mean() \
        + ((second - targets.digits[:, 1:]) ** 2).flatten(1).sum(1).mean()
    assert result.reconstruction.item() == pytest.approx(expected.item(), rel=1e-5)
    assert result.total.item() == pytest.approx(result.margin.item() + 0.0005 * expected.item(), rel=1e-5)


@pytest.mark.slow
def test_short_real_training_beats_chance(multimnist_run):
    """1 epoch on 4,000 fresh pairs of a small CapsNet (the multimnist_run fixture) names both digits of
    far more test pairs than chance (about 1 in 45 for an unordered pair of different classes): 15.4% of
    500 test pairs on the 2-core AMD EPYC."""
    from capsviz import store

    history = store.read_history(multimnist_run)
    accuracy = 100 - float(history["test_error"].iloc[-1])
    assert accuracy > 3 * 100 / 45, f"{accuracy:.1f}% of test pairs right, chance is about 2.2%"


def test_the_baseline_on_multimnist_is_refused_in_one_line(tmp_path, capsys):
    from trainer.run import main

    assert main(["--dataset", "multimnist", "--model", "baseline", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--model baseline: trains on one label per image, not 2" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_shipped_multimnist_run_is_labelled_honestly_and_sits_beside_the_papers_5_2():
    from capsviz import load_run
    from capsviz.analysis.results import run_summary_row
    from capsviz.store import default_runs_root

    run = load_run(default_runs_root() / "multimnist-r3")
    assert run.status == "interrupted" and run.dataset_name == "multimnist" and run.routings == 3 and run.reconstruction
    assert run.info["dataset"]["labels_per_image"] == 2 and run.info["model"]["input_size"] == 36
    assert run.info["parameters"] == 11_361_808  # a 36x36 CapsNet: 10x10x32 = 3,200 primary capsules
    from capsviz.model.capsnet import CapsNetConfig

    config = CapsNetConfig.from_dict(run.info["model"])
    assert (config.primary_grid, config.primary_capsules) == (10, 3200)
    assert len(run.history) == run.info["epochs_done"] == 24 and run.config["epochs"] == 30
    assert run.history["test_error"].iloc[-1] == run.info["final_test_error"] == 16.06
    again = run.info["reevaluation"]
    assert again["test_pairs"] == 10_000 and 0 < again["test_error"] < 100 and again["commit"]
    assert "lost trainer code" in run.info["history_test_set"]
    row = run_summary_row(run)
    assert row["Paper (%)"] == 5.2 and row["Status"] == "interrupted"


@pytest.mark.slow
def test_evaluate_run_reproduces_the_error_a_run_measured(multimnist_run):
    """scripts/evaluate_run.py (how multimnist-r3 was re-evaluated) gives the tiny run's own final test
    error from its weights: the same test pairs, the same rule."""
    from capsviz import store
    from scripts.evaluate_run import evaluate

    error, count, _ = evaluate(multimnist_run, weights="state.pt", test_subset=500)
    assert count == 500
    assert error == pytest.approx(float(store.read_history(multimnist_run)["test_error"].iloc[-1]), abs=0.21)


@pytest.mark.slow
def test_evaluate_run_names_a_state_whose_weights_do_not_fit_in_one_line(multimnist_run, tmp_path, capsys):
    import shutil

    from scripts.evaluate_run import main

    run = shutil.copytree(multimnist_run, tmp_path / "run", ignore=shutil.ignore_patterns("state.pt"))
    torch.save({"model": {"not.a.capsnet.weight": torch.zeros(1)}}, run / "state.pt")
    assert main([str(run), "--weights", "state.pt", "--test-subset", "10"]) == 1
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "state.pt: its weights do not fit the run's model" in message, message


def test_class_blocks_are_computed_once_per_pool_and_never_lent_to_another():
    from capsviz.data.multimnist import class_blocks

    pool, other = torch.tensor([0, 1, 1, 2]), torch.tensor([2, 2, 0, 1])
    assert class_blocks(pool) is class_blocks(pool), "the same pool's blocks are reused"
    order, starts, counts = class_blocks(other)
    assert counts.tolist() == [1, 1, 2] and starts.tolist() == [0, 1, 2] and order.tolist() == [2, 3, 0, 1]
