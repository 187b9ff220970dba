"""The Routing page's helpers without Streamlit: one digit's routing trace against the model's own,
coupling maps, entropy, agreements, Figure A.1's probe (in the trainer and in routing.csv), and the
drawn-digit preprocessing."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from capsviz import store
from capsviz.analysis.digits import to_inputs
from capsviz.data.drawing import canvas_gray, center_of_mass, to_mnist_digit
from capsviz.model.capsnet import CapsNet
from capsviz.model.routing_probe import routing_probe, routing_rows
from capsviz.model.routing_view import ALL_TYPES, agreement_split, coupling_entropy, coupling_maps, trace_digit


@pytest.fixture(scope="module")
def model() -> CapsNet:
    torch.manual_seed(0)
    model = CapsNet(routings=3).eval()
    model.digits.weight.data.mul_(20)  # an untrained 0.01 init barely routes: votes this large do, as trained ones
    return model


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255  # a "1"
    image[6:9, 9:12] = 180
    return image


def test_trace_digit_is_the_models_own_routing(model, digit):
    routing = trace_digit(model, digit)
    with torch.no_grad():
        output = model(to_inputs(digit[None]), trace=True, reconstruct=False)
    # (T, n_out, n_in) as the equations index c_ij; the model's batch trace is (B, T, n_in, n_out)
    assert routing.coupling.shape == (3, 10, 1152) and routing.digit_lengths.shape == (3, 10)
    np.testing.assert_allclose(routing.coupling, output.coupling[0].transpose(1, 2).numpy(), atol=1e-6)
    np.testing.assert_allclose(routing.logits, output.logits[0].transpose(1, 2).numpy(), atol=1e-5)
    np.testing.assert_allclose(routing.lengths, output.lengths[0].numpy(), atol=1e-5)
    assert routing.prediction == int(output.lengths[0].argmax())
    # the agreement of each iteration is what it added to the logits
    np.testing.assert_allclose(np.cumsum(routing.agreement, axis=0), routing.logits, atol=1e-5)


def test_coupling_maps_sum_over_classes_to_the_primary_lengths(model, digit):
    routing = trace_digit(model, digit)
    lengths = routing.primary_lengths.reshape(32, 6, 6)
    for iteration in range(1, routing.iterations + 1):
        maps = coupling_maps(routing, iteration)
        assert maps.shape == (10, 6, 6)
        np.testing.assert_allclose(maps.sum(axis=0), lengths.sum(axis=0), rtol=1e-5)
        one_type = coupling_maps(routing, iteration, capsule_type=7)
        np.testing.assert_allclose(one_type.sum(axis=0), lengths[7], rtol=1e-5)
    # 1 iteration: uniform coupling, each class gets a tenth of every capsule
    np.testing.assert_allclose(coupling_maps(routing, 1, capsule_type=ALL_TYPES), np.broadcast_to(lengths.sum(0) / 10, (10, 6, 6)),
                               rtol=1e-5)
    assert not np.allclose(coupling_maps(routing, 3)[0], lengths.sum(0) / 10), "later iterations are not uniform"
    with pytest.raises(AssertionError, match="iteration must be in 1..3"):
        coupling_maps(routing, 0)  # iterations count from 1, as the paper's


def test_entropy_of_one_iteration_is_log_10_and_routing_sharpens_it(model, digit):
    entropy = coupling_entropy(trace_digit(model, digit).coupling)
    assert entropy.shape == (3,)
    assert entropy[0] == pytest.approx(math.log(10), abs=1e-5)
    assert entropy[1] < math.log(10) - 1e-6 and entropy[2] < math.log(10) - 1e-6
    peaked = np.zeros((1, 10, 4))  # (T, n_out, n_in): every input sends all to class 3
    peaked[:, 3] = 1.0
    assert coupling_entropy(peaked) == pytest.approx([0.0])


def test_agreement_split_separates_the_winner_from_the_others(model, digit):
    routing = trace_digit(model, digit)
    winner, others = agreement_split(routing, 2)
    assert winner.shape == (1152,) and others.shape == (1152 * 9,)
    np.testing.assert_array_equal(winner, routing.agreement[1][routing.prediction])
    assert np.isclose(winner.sum() + others.sum(), routing.agreement[1].sum(), rtol=1e-4)


def test_routing_probe_has_one_row_per_iteration_with_the_mean_change(model, digit):
    images = torch.from_numpy(np.stack([digit, np.roll(digit, 3, axis=1), 255 - digit]))[:, None]  # (3, 1, 28, 28)
    rows = routing_probe(model, images, batch_size=2)  # two batches: the sums must add up across them
    assert [row["iteration"] for row in rows] == [1, 2, 3] and all(row["probe_digits"] == 3 for row in rows)
    traces = [trace_digit(model, image[0].numpy()) for image in images]
    for row in rows:
        t = row["iteration"] - 1
        assert row["mean_abs_logit_change"] == pytest.approx(np.mean([np.abs(r.agreement[t]).mean() for r in traces]), rel=1e-4)
        assert row["mean_abs_logit"] == pytest.approx(np.mean([np.abs(r.logits[t]).mean() for r in traces]), rel=1e-4)
    assert routing_rows([{"epoch": 1, "routing": rows}, {"epoch": 2}])[2]["epoch"] == 1


def test_the_trainer_writes_routing_csv_for_capsnet_runs(tiny_run, tmp_path):
    routing = store.read_routing(tiny_run)  # 1 routing, 1 epoch, probed on its 100 test digits
    assert routing[["epoch", "iteration", "probe_digits"]].values.tolist() == [[1, 1, 100]]
    assert (routing["mean_abs_logit_change"] > 0).all()
    assert store.read_routing(tmp_path).empty  # older runs (and the baseline CNN's) have none, and load
    (tmp_path / store.ROUTING_CSV).write_text("epoch,iteration,mean_abs_logit_change\n1,1,0.5\n")
    with pytest.raises(store.RunError, match="routing.csv: missing columns"):
        store.read_routing(tmp_path)
    store.write_routing(tmp_path, [{"epoch": 1, "iteration": 1, "mean_abs_logit_change": 0.5, "mean_abs_logit": 0.5,
                                    "probe_digits": 3, "seconds": 0.1}])
    pd.testing.assert_frame_equal(store.read_routing(tmp_path), pd.DataFrame(
        {"epoch": [1], "iteration": [1], "mean_abs_logit_change": [0.5], "mean_abs_logit": [0.5], "probe_digits": [3]}))


def test_a_drawn_stroke_is_fitted_in_20x20_and_centred_by_mass():
    canvas = np.zeros((280, 280, 4), np.uint8)  # what the canvas sends: white ink on black
    canvas[..., 3] = 255
    canvas[30:130, 170:220, :3] = 255  # a 100 x 50 bar in the top right corner
    ink = canvas_gray(canvas)
    assert ink.max() == 1.0 and ink[0, 0] == 0.0
    digit = to_mnist_digit(ink)
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    rows, columns = np.nonzero(digit > 25)
    assert rows.max() - rows.min() + 1 == 20, "the longer side fills the 20-pixel box"
    assert 9 <= columns.max() - columns.min() + 1 <= 11, "the aspect ratio is kept"
    row_mass, column_mass = center_of_mass(digit.astype(float))
    assert abs(row_mass - 13.5) <= 0.5 and abs(column_mass - 13.5) <= 0.5
    big = to_mnist_digit(ink, size=40)  # mnist-40: the same digit in the middle of a 40x40 canvas
    np.testing.assert_array_equal(big[6:34, 6:34], digit)
    assert to_mnist_digit(np.zeros((280, 280))) is None, "nothing drawn, no digit"


def test_tracing_past_the_models_routings_keeps_its_output(model, digit):
    own, longer = trace_digit(model, digit), trace_digit(model, digit, iterations=5)
    assert longer.iterations == 5 and longer.routings == 3
    np.testing.assert_allclose(longer.coupling[:3], own.coupling, atol=1e-6)
    np.testing.assert_array_equal(longer.lengths, longer.digit_lengths[2])  # the model's output: after its own 3
    np.testing.assert_allclose(longer.lengths, own.lengths, atol=1e-6)


def test_coupling_overlay_puts_each_square_over_its_receptive_field_centre():
    from capsviz.dashboard.routing_figures import OVERLAY_RGB, coupling_overlay

    maps = np.zeros((10, 6, 6), np.float32)
    maps[3, 2, 4] = 1.0  # class 3, PrimaryCaps row 2, column 4: receptive field rows 4-20, columns 8-24, centre (12, 16)
    mosaic = coupling_overlay(maps, np.zeros((28, 28), np.float32), zmax=1.0, scale=6, gap=6, row_gap=30, columns=5)
    assert mosaic.shape == (2 * 168 + 30, 5 * 168 + 4 * 6, 4)
    coloured = np.argwhere(mosaic[..., 0] > 0)
    tile_left = 3 * (168 + 6)
    rows, columns = coloured[:, 0], coloured[:, 1] - tile_left
    # a square 2 input pixels (12 upsampled) wide around the centre pixel's middle, (12.5, 16.5) * 6 = (75, 99)
    assert (rows.min(), rows.max() + 1) == (69, 81) and (columns.min(), columns.max() + 1) == (93, 105)
    expected = np.rint(np.array(OVERLAY_RGB) * 0.75).astype(np.uint8)
    np.testing.assert_array_equal(mosaic[75, tile_left + 99, :3], expected)


def test_training_caption_names_the_epochs_the_error_the_machine_and_the_commit():
    from capsviz.dashboard.routing_figures import training_provenance

    run = store.load_run(store.default_runs_root() / "mnist-r3")
    info, environment = run.info, run.info["environment"]
    caption = training_provenance(run)
    assert caption.startswith(f"mnist-r3: {info['epochs_done']} epoch(s), final test error {info['final_test_error']:.2f}%")
    assert f"trained on {environment['cpu']} (cpu, {environment['threads']} threads)" in caption, "the CPU by its name"
    assert caption.endswith(f"commit {environment['git_commit'][:7]}")
    fresh = store.Run(path=None, info={"status": "running", "environment": {}}, history=pd.DataFrame(), name="new")
    assert training_provenance(fresh) == "new: 0 epoch(s), final test error -, trained on unknown machine (?), commit unknown"


def test_the_trace_goes_through_the_models_own_modules(digit):
    """The dashboard and the probe trace with the model's own layers, whatever they compute: a DigitCaps that
    routes otherwise (here: votes doubled, as a recipe's option might) is traced as it runs."""
    from capsviz.analysis.digits import to_inputs
    from capsviz.model.capsnet import DigitCaps

    class DoubledVotes(DigitCaps):
        def predictions(self, u):
            return 2.0 * super().predictions(u)

    torch.manual_seed(0)
    model = CapsNet(routings=2).eval()
    doubled = DoubledVotes(in_capsules=1152, in_dim=8, out_capsules=10, out_dim=16, routings=2)
    doubled.load_state_dict(model.digits.state_dict())
    model.digits = doubled
    inputs = to_inputs(digit[None])
    trace = model.routing_trace(inputs)
    with torch.no_grad():
        output = model(inputs, reconstruct=False)
    assert trace.primary.shape == (1, 1152, 8) and trace.u_hat.shape == (1, 10, 1152, 16)
    assert trace.s.shape == trace.v.shape == (1, 2, 10, 16) and trace.agreement.shape == (1, 2, 1152, 10)
    torch.testing.assert_close(trace.v[:, -1], output.poses)  # what the model outputs, votes doubled
    torch.testing.assert_close(trace.logits[:, 1], trace.agreement[:, 0] + trace.agreement[:, 1])
    np.testing.assert_allclose(trace_digit(model, digit).lengths, output.lengths[0].numpy(), rtol=1e-5)


def test_the_authors_biases_are_traced_as_the_model_runs(digit):
    """The authors' recipe adds biases to PrimaryCaps and to s_j in DigitCaps: the trace is the model's own."""
    from capsviz.analysis.digits import to_inputs

    torch.manual_seed(0)
    model = CapsNet(routings=3, primary_scale=1 / 32, primary_bias=0.1, digit_bias=0.1).eval()
    inputs = to_inputs(digit[None])
    trace = model.routing_trace(inputs)
    with torch.no_grad():
        output = model(inputs, reconstruct=False)
    torch.testing.assert_close(trace.v[:, -1], output.poses)
    np.testing.assert_allclose(trace_digit(model, digit).lengths, output.lengths[0].numpy(), rtol=1e-5)
