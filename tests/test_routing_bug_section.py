"""What the softmax-over-inputs bug does to one digit (the Routing page's bug section): the run's own weights
routed with the bug are what a model built as the variant computes, the run's model is left as it was, and
the page shows both couplings with what they sum to."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from capsviz import load_mnist, load_run
from capsviz.model import variants
from capsviz.model.capsnet import CapsNet
from capsviz.model.routing_view import coupling_maps, coupling_sums, trace_digit

from conftest import ROOT
from dashboard_fixtures import open_app


@pytest.fixture(scope="module")
def model():
    """The shipped 3-routing run's weights: a random model's capsules are too short for the bug's routing to
    move c_ij at all in float32 (s_j is n_in / n_out times smaller under it)."""
    return load_run(ROOT / "checkpoints" / "mnist-r3").model


@pytest.fixture(scope="module")
def digit():
    images, _ = load_mnist("test")
    return images[0]


def test_routed_with_bug_is_the_variant_on_the_same_weights_and_leaves_the_model_alone(model, digit):
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    buggy = variants.routed_with_bug("softmax-over-inputs", model)
    assert variants.variant_of(buggy) == "softmax-over-inputs" and variants.variant_of(model) == variants.NONE
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    built = variants.apply_to_model("softmax-over-inputs", CapsNet(routings=3).eval())
    built.load_state_dict(model.state_dict())
    ours, theirs = trace_digit(buggy, digit, iterations=3), trace_digit(built, digit, iterations=3)
    np.testing.assert_allclose(ours.coupling, theirs.coupling, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.digit_lengths, theirs.digit_lengths, rtol=1e-6, atol=1e-9)
    paper = trace_digit(model, digit, iterations=3)
    assert not np.allclose(paper.coupling[1], ours.coupling[1]), "the bug routes differently"


def test_only_routing_bugs_and_only_the_reference(model):
    assert variants.routing_bugs() == ["softmax-over-inputs", "shared-logits"]
    with pytest.raises(variants.VariantError, match="recon-mean: not a routing bug"):
        variants.routed_with_bug("recon-mean", model)
    with pytest.raises(variants.VariantError, match="already routes as softmax-over-inputs"):
        variants.routed_with_bug("shared-logits", variants.routed_with_bug("softmax-over-inputs", model))


def test_coupling_sums_tell_which_axis_the_softmax_ran_over(model, digit):
    paper = trace_digit(model, digit, iterations=3)
    buggy = trace_digit(variants.routed_with_bug("softmax-over-inputs", model), digit, iterations=3)
    for iteration in (1, 2, 3):
        assert coupling_sums(paper, iteration) == pytest.approx((1.0, 1152 / 10), rel=1e-5)
        assert coupling_sums(buggy, iteration) == pytest.approx((10 / 1152, 1.0), rel=1e-5)
    # iteration 1 is uniform under either rule: nothing has moved from it
    assert np.abs(coupling_maps(buggy, 1, from_uniform=True)).max() == 0.0
    assert np.abs(coupling_maps(buggy, 3, from_uniform=True)).max() > 0.0
    # the paper's maps from uniform still sum to 0 over the classes at every position
    np.testing.assert_allclose(coupling_maps(paper, 3, from_uniform=True).sum(axis=0), 0.0, atol=1e-5)


def test_the_routing_page_shows_the_bug_beside_procedure_1(runs_root, monkeypatch):
    app = open_app(runs_root, monkeypatch, "pages/routing.py")
    assert any("softmax over the inputs" in header.value for header in app.subheader)
    assert app.get_by_key("routing_bug_maps_0") is not None and app.get_by_key("routing_bug_maps_1") is not None
    sums = [caption.value for caption in app.caption if caption.value.startswith("Iteration ")]
    assert len(sums) == 2
    assert "sums to 1 over the classes" in sums[0], sums[0]
    assert "to 1 over the primary capsules" in sums[1], sums[1]
    assert app.get_by_key("routing_bug_maps_0").proto.spec != app.get_by_key("routing_bug_maps_1").proto.spec
    predictions = [block.value for block in app.markdown if block.value.startswith("**Procedure 1") or
                   block.value.startswith("**The bug")]
    assert len(predictions) == 2 and all("prediction **" in text for text in predictions), predictions
