"""capsviz.analysis.digits, capsviz.analysis.perturbations (Figure 4) and capsviz.analysis.reconstructions (Figure 3): test
digits through a CapsNet, tested without Streamlit."""
import numpy as np
import pytest
import torch

from capsviz import CapsNet
from capsviz.analysis.digits import (
    PICK_CLASS,
    PICK_INDEX,
    PICK_RANDOM,
    DigitCodes,
    decode_poses,
    encode_digits,
    load_test_set,
    misclassified,
    pick_digit,
)
from capsviz.analysis.perturbations import decode_with_offsets, perturbation_grid, perturbation_offsets
from capsviz.analysis.reconstructions import TARGET_LABEL, TARGET_PREDICTION, reconstruct_digits, reconstruction_table


@pytest.fixture(scope="module")
def model() -> CapsNet:
    torch.manual_seed(0)
    return CapsNet(routings=1).eval()


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Eight made-up 'digits' (blobs at different places) with labels, as uint8 like MNIST."""
    generator = np.random.default_rng(0)
    images = np.zeros((8, 28, 28), np.uint8)
    for k in range(8):
        top, left = generator.integers(2, 14, size=2)
        images[k, top:top + 12, left:left + 8] = generator.integers(120, 256, size=(12, 8))
    return images, np.array([3, 1, 4, 1, 5, 9, 2, 6])


# ---- Figure 4: perturbations ---------------------------------------------------------------------

def test_perturbation_offsets_are_the_papers():
    offsets = perturbation_offsets()
    assert len(offsets) == 11
    np.testing.assert_allclose(offsets, np.arange(-5, 6) * 0.05, atol=1e-12)
    assert offsets[5] == 0.0, "the middle offset must be exactly 0"
    assert len(perturbation_offsets(limit=1.0, step=0.2)) == 11
    with pytest.raises(AssertionError, match="multiple of step"):
        perturbation_offsets(limit=0.25, step=0.15)


def test_perturbation_grid_shape_and_middle_column_is_the_unperturbed_reconstruction(model, digits):
    images, labels = digits
    codes = encode_digits(model, images[:1])
    label = int(labels[0])
    grid = perturbation_grid(model, codes.poses[0], label, offsets=perturbation_offsets())
    assert grid.shape == (16, 11, 28, 28)
    unperturbed = decode_poses(model, codes.poses[:1], label)[0]
    for dimension in range(16):
        np.testing.assert_allclose(grid[dimension, 5], unperturbed, atol=1e-6)
    assert not np.allclose(grid[0, 0], grid[0, 10]), "offsets of -0.25 and +0.25 should draw different images"
    assert not np.allclose(grid[0, 0], grid[1, 0]), "different dimensions should draw different images"


def test_perturbation_grid_adds_the_offset_to_one_dimension(model, digits):
    images, labels = digits
    poses = encode_digits(model, images[:1]).poses[0]
    label = int(labels[0])
    grid = perturbation_grid(model, poses, label, offsets=perturbation_offsets())
    edited = torch.from_numpy(poses.copy())[None]
    edited[0, label, 6] += 0.15  # offset column 8 is +0.15
    with torch.no_grad():
        expected = model.decode(edited, label)[0, 0].numpy()
    np.testing.assert_allclose(grid[6, 8], expected, atol=1e-6)


def test_decode_with_zero_offsets_matches_the_models_own_masked_reconstruction(model, digits):
    images, labels = digits
    inputs = torch.from_numpy(images[:2].copy()).float().div(255).unsqueeze(1)
    with torch.no_grad():
        output = model(inputs, torch.from_numpy(labels[:2]))
    codes = encode_digits(model, images[:2])
    for k in range(2):
        mine = decode_with_offsets(model, codes.poses[k], int(labels[k]), np.zeros(16))
        np.testing.assert_allclose(mine, output.reconstruction[k, 0].numpy(), atol=1e-5)


def test_decode_with_offsets_changes_the_image(model, digits):
    images, labels = digits
    poses = encode_digits(model, images[:1]).poses[0]
    base = decode_with_offsets(model, poses, int(labels[0]), np.zeros(16))
    moved = decode_with_offsets(model, poses, int(labels[0]), np.eye(16)[3] * 0.25)
    assert np.abs(moved - base).max() > 1e-4
    with pytest.raises(AssertionError, match="one offset per dimension"):
        decode_with_offsets(model, poses, 0, np.zeros(15))


# ---- Figure 3: reconstructions -------------------------------------------------------------------

def test_reconstruct_digits_from_label_and_prediction(model, digits):
    images, labels = digits
    codes = encode_digits(model, images)
    assert codes.lengths.shape == (8, 10) and codes.poses.shape == (8, 10, 16)
    indices = np.arange(100, 108)
    from_label = reconstruct_digits(model, images, labels, codes, target=TARGET_LABEL, indices=indices)
    from_prediction = reconstruct_digits(model, images, labels, codes, target=TARGET_PREDICTION, indices=indices)
    table = from_label.table
    assert list(table.columns) == ["index", "label", "prediction", "target", "correct", "length", "error"]
    assert table["index"].tolist() == indices.tolist()
    assert (table["target"] == table["label"]).all() and (from_prediction.table["target"] == codes.predictions).all()
    assert (table["correct"] == (table["label"] == table["prediction"])).all()
    expected_error = ((from_label.reconstructions - images / 255.0) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(table["error"], expected_error, rtol=1e-5)
    np.testing.assert_allclose(from_label.reconstructions[0], decode_poses(model, codes.poses[:1], int(labels[0]))[0],
                               atol=1e-6)
    both = reconstruction_table([from_label, from_prediction])
    assert list(both.columns) == ["index", "label", "prediction", "correct", "length", "target (label)", "error (label)",
                                  "target (prediction)", "error (prediction)"]
    np.testing.assert_array_equal(both["error (prediction)"], from_prediction.table["error"])
    wrong = ~table["correct"].to_numpy()
    assert wrong.any(), "an untrained model should get some of these wrong"
    # decoding another capsule draws another image (an untrained decoder draws nearly the same grey)
    assert np.abs(from_label.reconstructions[wrong] - from_prediction.reconstructions[wrong]).max() > 0
    np.testing.assert_array_equal(from_label.reconstructions[~wrong], from_prediction.reconstructions[~wrong])


def test_misclassified_positions():
    lengths = np.eye(10)[[3, 1, 4, 2]] * 0.9  # predictions 3, 1, 4, 2
    codes = DigitCodes(lengths, np.zeros((4, 10, 16)))
    np.testing.assert_array_equal(misclassified(np.array([3, 1, 5, 2, 7, 7]), codes), [2])
    np.testing.assert_array_equal(codes.take([2, 0]).predictions, [4, 3])


# ---- picking digits ------------------------------------------------------------------------------

def test_pick_digit_by_index_class_and_random():
    labels = np.array([7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert pick_digit(labels, mode=PICK_INDEX, index=6) == 6
    assert pick_digit(labels, mode=PICK_CLASS, digit_class=4) == 4
    assert pick_digit(labels, mode=PICK_CLASS, digit_class=4, occurrence=1) == 6
    assert pick_digit(labels, mode=PICK_CLASS, digit_class=4, occurrence=2) == 4, "occurrences wrap around"
    drawn = {pick_digit(labels, mode=PICK_RANDOM, seed=seed) for seed in range(40)}
    assert drawn <= set(range(10)) and len(drawn) > 3
    assert pick_digit(labels, mode=PICK_RANDOM, seed=5) == pick_digit(labels, mode=PICK_RANDOM, seed=5)
    with pytest.raises(AssertionError, match="index must be in"):
        pick_digit(labels, mode=PICK_INDEX, index=10)
    with pytest.raises(AssertionError, match="no digit of class 3"):
        pick_digit(labels, mode=PICK_CLASS, digit_class=3)
    with pytest.raises(ValueError, match="unknown pick mode"):
        pick_digit(labels, mode="nearest")


# ---- test sets -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset, size", [("mnist", 28), ("mnist-40", 40)])
def test_test_digits_are_the_datasets_test_set_in_grayscale(dataset, size):
    images, labels = load_test_set(dataset)
    assert images.shape == (10_000, size, size) and images.dtype == np.uint8 and labels.shape == (10_000,)


def test_a_mnist_40_capsnet_encodes_and_decodes_40x40_digits():
    torch.manual_seed(0)
    model = CapsNet(routings=1, input_size=40).eval()
    images, labels = load_test_set("mnist-40")
    codes = encode_digits(model, images[:2])
    assert codes.poses.shape == (2, 10, 16)
    assert decode_poses(model, codes.poses, labels[:2]).shape == (2, 40, 40)
