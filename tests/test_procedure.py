"""Procedure 1 step by step (capsviz.analysis.procedure) without Streamlit: every number is the forward pass's own,
on the shipped runs (28x28 and 40x40 MNIST, 36x36 MultiMNIST) and on a small model."""
import numpy as np
import pytest
import torch

from capsviz import load_run
from capsviz.analysis.digits import load_test_set, to_inputs
from capsviz.analysis.procedure import capsule_steps, top_contributors
from capsviz.model.capsnet import CapsNet, squash
from capsviz.model.routing_view import trace_digit
from capsviz.store import default_runs_root

SHIPPED = {"mnist-r3": 3, "mnist40-capsnet-r3": 3}


def shipped_model(name: str):
    path = default_runs_root() / name
    if not (path / "model.pt").exists():
        pytest.skip(f"{name} has no shipped weights here")
    return load_run(path).model


def test_digits(model, count: int = 2) -> np.ndarray:
    """uint8 (count, H, W): the run's first test digits when the dataset is at hand (MNIST and its 40x40
    canvases), else reproducible noise strokes (equality with the forward pass needs no real digit)."""
    size = model.config.input_size
    if size in (28, 40):
        images, _ = load_test_set("mnist" if size == 28 else "mnist-40")
        return images[:count]
    rng = np.random.default_rng(0)
    return (rng.random((count, size, size)) > 0.8).astype(np.uint8) * 255


test_digits.__test__ = False  # a helper, not a test


def check_against_forward(model, images: np.ndarray, *, routings: int) -> None:
    with torch.no_grad():
        output = model(to_inputs(images), trace=True, reconstruct=False)
    for number, image in enumerate(images):
        procedure = trace_digit(model, image)
        assert procedure.iterations == routings == procedure.routings
        # v_j of the last iteration is the model's output, its lengths the class scores
        np.testing.assert_allclose(procedure.v[-1], output.poses[number].numpy(), atol=1e-6)
        np.testing.assert_allclose(procedure.lengths, output.lengths[number].numpy(), atol=1e-5)
        assert procedure.prediction == int(output.lengths[number].argmax())
        # the coupling and logits are the model's own trace, (T, n_in, n_out) there, (T, n_out, n_in) here
        np.testing.assert_allclose(procedure.coupling, output.coupling[number].transpose(1, 2).numpy(), atol=1e-6)
        np.testing.assert_allclose(procedure.logits, output.logits[number].transpose(1, 2).numpy(), atol=1e-5, rtol=1e-5)
        # eq. 3: c sums to 1 over j; the first iteration's is uniform
        np.testing.assert_allclose(procedure.coupling.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(procedure.coupling[0], 1.0 / output.lengths.shape[1], atol=1e-7)
        # Procedure 1: b after iteration t is the sum of the agreements of iterations 1..t
        np.testing.assert_allclose(np.cumsum(procedure.agreement, axis=0), procedure.logits, atol=1e-4, rtol=1e-5)
        # eq. 2: s_j = sum_i c_ij u_hat_{j|i}, and eq. 1: v_j = squash(s_j)
        s = np.einsum("tji,jid->tjd", procedure.coupling.astype(np.float64), procedure.predictions.astype(np.float64))
        np.testing.assert_allclose(procedure.s, s, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(procedure.v, squash(torch.from_numpy(procedure.s)).numpy(), atol=1e-6)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_procedure_is_the_forward_pass_of_the_shipped_runs(name):
    model = shipped_model(name)
    check_against_forward(model, test_digits(model), routings=SHIPPED[name])


def test_the_procedure_is_the_forward_pass_on_multimnist():
    model = shipped_model("multimnist-r3")
    assert model.config.input_size == 36
    check_against_forward(model, test_digits(model, 1), routings=3)


def test_one_routing_couples_exactly_a_tenth():
    torch.manual_seed(0)
    model = CapsNet(routings=1).eval()
    image = test_digits(model, 1)[0]
    procedure = trace_digit(model, image)
    assert procedure.iterations == 1
    assert (procedure.coupling == np.float32(0.1)).all(), "softmax of zeros: exactly 1/10"
    check_against_forward(model, image[None], routings=1)


@pytest.fixture(scope="module")
def procedure():
    model = shipped_model("mnist-r3")
    return trace_digit(model, test_digits(model, 1)[0])


def test_one_capsule_across_the_iterations(procedure):
    index = procedure.strongest
    assert procedure.primary_lengths[index] == procedure.primary_lengths.max()
    capsule_type, row, column = procedure.capsule_position(index)
    assert procedure.capsule_index(capsule_type, row, column) == index
    assert procedure.length_grid(capsule_type)[row, column] == procedure.primary_lengths[index]
    steps = capsule_steps(procedure, index)
    assert steps.pose.shape == (8,) and steps.predictions.shape == (10, 16) and steps.coupling.shape == (3, 10)
    np.testing.assert_allclose(steps.prediction_lengths, np.linalg.norm(steps.predictions, axis=-1))
    # c_ij = softmax_j(b_ij) of the logits the iteration finds, and b_ij + agreement = the next logits
    softmax = np.exp(steps.logits_before) / np.exp(steps.logits_before).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(steps.coupling, softmax, atol=1e-6)
    np.testing.assert_allclose(steps.logits_before + steps.agreement, steps.logits_after, atol=1e-4, rtol=1e-5)
    np.testing.assert_array_equal(steps.logits_before[1:], steps.logits_after[:-1])
    assert (steps.logits_before[0] == 0).all()
    # the agreement is u_hat . v, its cosine the same over the lengths
    v = procedure.v  # (T, 10, 16)
    np.testing.assert_allclose(steps.agreement, np.einsum("jd,tjd->tj", steps.predictions, v), atol=1e-6)
    expected = steps.agreement / (steps.prediction_lengths[None] * np.linalg.norm(v, axis=-1))
    np.testing.assert_allclose(steps.cosine, expected, rtol=1e-5)
    assert (np.abs(steps.cosine) <= 1 + 1e-6).all()
    np.testing.assert_allclose(steps.contribution, steps.coupling[..., None] * steps.predictions[None], rtol=1e-6)


def test_the_largest_contributors_to_a_digit_capsule(procedure):
    digit = procedure.prediction
    for iteration in range(1, procedure.iterations + 1):
        top = top_contributors(procedure, iteration, digit, count=10, of=procedure.strongest)
        assert len(top.indices) == 10 and (np.diff(top.magnitudes) <= 0).all()
        terms = procedure.coupling[iteration - 1, digit][:, None] * procedure.predictions[digit]
        magnitudes = np.linalg.norm(terms, axis=-1)
        assert top.magnitudes[0] == pytest.approx(magnitudes.max())
        assert 1 <= top.rank <= procedure.capsules
        # the shares of all capsules sum to 1: s_j is their sum
        every = top_contributors(procedure, iteration, digit, count=procedure.capsules)
        assert every.shares.sum() == pytest.approx(1.0, abs=1e-4)
        assert top_contributors(procedure, iteration, digit, of=int(top.indices[0])).rank == 1


def test_more_iterations_than_the_model_routes_keep_its_output(procedure):
    model = shipped_model("mnist-r3")
    longer = trace_digit(model, procedure.image, iterations=5)
    assert longer.iterations == 5 and longer.output_iteration == 3
    np.testing.assert_allclose(longer.v[:3], procedure.v, atol=1e-6)
    assert longer.prediction == procedure.prediction
