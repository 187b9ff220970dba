"""The common bugs of public CapsNet ports as variants (capsviz.model.variants): each computes what its bug
computes, the reference CapsNet stays the paper's, the fast path keeps a variant, and a variant trains
through the trainer, is recorded in run.json and model.pt, and comes back from capsviz.load_run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from capsviz import load_run, store
from capsviz.model import variants
from capsviz.model.baseline import BaselineCNN
from capsviz.model.capsnet import CapsNet, DigitCaps, routing_iterations, squash
from capsviz.model.fast import prepare_model
from capsviz.model.fast.modules import FastDigitCaps
from capsviz.model.routing_view import trace_digit
from capsviz.model.tasks import CapsuleTask, ClassifierTask
from capsviz.model.variants.routing import SharedLogitsDigitCaps, SoftmaxOverInputsDigitCaps, variant_routing_iterations
from trainer.loop import TrainConfig
from trainer.run import CliError, plan
from trainer.sweep import load_grid

from conftest import run_trainer

BUGS = [name for name in variants.VARIANTS if name != variants.NONE]


def routed_model(variant: str = variants.NONE, *, routings: int = 3) -> CapsNet:
    """A seeded CapsNet whose routing moves: untrained weights agree too little to change c_ij, so W is
    scaled up (the same for every variant, so they differ only in their bug)."""
    torch.manual_seed(0)
    model = CapsNet(routings=routings).eval()
    with torch.no_grad():
        model.digits.weight.mul_(50.0)
    return variants.apply_to_model(variant, model)


def images(count: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


# ---- the reference stays the paper's ------------------------------------------------------------------

def test_the_reference_capsnet_computes_what_it_computed_before_the_variants_existed():
    # numbers from this seed and input before capsviz.model.variants was written (capsviz.model.capsnet is unchanged)
    with torch.no_grad():
        out = routed_model()(images(), trace=True)
    expected_lengths = [0.67416829, 0.82799464, 0.64754814, 0.78527528, 0.70355582, 0.64130509,
                        0.46906593, 0.76909786, 0.66245455, 0.64532244]
    np.testing.assert_allclose(out.lengths[0].numpy(), expected_lengths, rtol=1e-4)
    np.testing.assert_allclose(out.coupling[:, -1].amax(dim=(1, 2)).numpy(), [0.17655329, 0.17156307], rtol=1e-4)
    np.testing.assert_allclose(out.coupling[:, -1].amin(dim=(1, 2)).numpy(), [0.06438943, 0.06040547], rtol=1e-4)


def test_applying_a_variant_changes_that_model_only_never_the_reference_classes():
    with torch.no_grad():
        before = routed_model()(images()).lengths
        for name in BUGS:  # built, applied and run: nothing of it may leak into the reference
            routed_model(name)(images(), images().new_zeros(2).long())
        after = routed_model()(images()).lengths
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert type(CapsNet(routings=1).digits) is DigitCaps and variants.variant_of(CapsNet(routings=1)) == variants.NONE


def test_with_its_rules_kept_the_variant_routing_is_the_reference_routing():
    u_hat = torch.randn(3, 10, 1152, 16, generator=torch.Generator().manual_seed(0)) * 0.05
    bias = torch.full((10, 16), 0.1)  # the authors' recipe's bias on s_j: a variant keeps it too
    for options in ({}, {"bias": bias, "detach_inner": True}):
        reference = list(routing_iterations(u_hat, iterations=3, update_last=True, **options))
        kept = list(variant_routing_iterations(u_hat, iterations=3, update_last=True, **options))
        for ours, theirs in zip(kept, reference):
            for a, b in zip(ours, theirs):
                torch.testing.assert_close(a, b)


def test_a_variant_of_the_authors_recipe_keeps_its_bias():
    model = TrainConfig(recipe="authors", variant="softmax-over-inputs").build_model()
    assert type(model.digits) is SoftmaxOverInputsDigitCaps and model.digits.bias is not None
    with torch.no_grad():
        v, _ = model.digits(torch.zeros(1, 1152, 8))  # no votes: s_j is the bias alone
    torch.testing.assert_close(v[0], squash(model.digits.bias))


# ---- each variant computes its bug ----------------------------------------------------------------

def test_softmax_over_inputs_makes_c_sum_to_one_over_the_inputs_not_the_classes():
    with torch.no_grad():
        reference = routed_model()(images(), trace=True).coupling  # (B, T, 1152, 10)
        bug = routed_model("softmax-over-inputs")(images(), trace=True).coupling
    ones = lambda t: torch.ones_like(t)  # noqa: E731
    torch.testing.assert_close(reference.sum(dim=3), ones(reference.sum(dim=3)))  # eq. 3: over j
    torch.testing.assert_close(bug.sum(dim=2), ones(bug.sum(dim=2)))  # the bug: over i, for every class
    assert (bug.sum(dim=3) - 1).abs().max() > 0.9  # and not over j: 10/1152 at the first iteration
    torch.testing.assert_close(bug[:, 0], torch.full_like(bug[:, 0], 1 / 1152))  # softmax(0) over 1152 inputs


def test_shared_logits_make_one_examples_coupling_depend_on_the_others():
    first, second = images(2, seed=1), images(1, seed=2)
    batch_a = torch.cat([first[:1], second])  # example 2 is the same digit in both batches,
    batch_b = torch.cat([first[1:], second])  # beside a different example 1
    for name, depends in ((variants.NONE, False), ("shared-logits", True)):
        model = routed_model(name)
        with torch.no_grad():
            a, b = model(batch_a, trace=True), model(batch_b, trace=True)
            alone = model(second, trace=True)
        same = torch.allclose(a.coupling[1, -1], b.coupling[1, -1], atol=1e-6)
        assert same != depends, name
        assert torch.allclose(a.lengths[1], alone.lengths[0], atol=1e-5) != depends, name
    # and the shared logits are the sum of the examples' own agreements: identical for every example
    bug = routed_model("shared-logits")
    with torch.no_grad():
        out = bug(batch_a, trace=True)
    torch.testing.assert_close(out.logits[0], out.logits[1])


def test_unmasked_decoder_feeds_all_ten_capsules_to_the_decoder():
    seen = {}
    for name in (variants.NONE, "unmasked-decoder"):
        model = routed_model(name)
        handle = model.decoder.register_forward_hook(lambda module, args, output, name=name: seen.update({name: args[0]}))
        with torch.no_grad():
            out = model(images(), torch.tensor([3, 7]))
        handle.remove()
        blocks = seen[name].view(2, 10, 16)
        nonzero = (blocks.abs().sum(dim=2) > 0).sum(dim=1)
        if name == variants.NONE:
            assert nonzero.tolist() == [1, 1]  # section 4.1: only the correct digit capsule
        else:
            assert nonzero.tolist() == [10, 10]
            torch.testing.assert_close(seen[name], out.poses.flatten(1))
            with torch.no_grad():  # so the reconstruction cannot be steered by the class asked for
                torch.testing.assert_close(model.decode(out.poses, 3), model.decode(out.poses, 7))


def test_recon_mean_scales_the_mean_squared_error_not_the_sum():
    model, inputs, labels = routed_model(), images(), torch.tensor([3, 7])
    reference_task = CapsuleTask()
    bug_task = variants.apply_to_task("recon-mean", CapsuleTask())
    with torch.no_grad():
        reference = reference_task.step(model, inputs, labels)
        bug = bug_task.step(model, inputs, labels)
        recon = model(inputs, labels).reconstruction
    weight = reference_task.recon_weight
    summed = ((recon - inputs) ** 2).flatten(1).sum(dim=1).mean()
    mean = F.mse_loss(recon, inputs)
    torch.testing.assert_close(reference.total - reference.margin, weight * summed)  # section 4.1
    torch.testing.assert_close(bug.total - bug.margin, weight * mean, rtol=1e-3, atol=1e-9)  # the bug: 784x less
    torch.testing.assert_close(bug.margin, reference.margin)
    torch.testing.assert_close(bug.reconstruction, reference.reconstruction)  # reported as the correct run's
    # and its gradient is the mean's: the decoder learns 784x more slowly than in the paper
    model.zero_grad()
    bug_task.step(model, inputs, labels).total.backward()
    bug_grad = model.decoder[4].weight.grad.clone()
    model.zero_grad()
    (weight * F.mse_loss(model(inputs, labels).reconstruction, inputs)).backward()
    torch.testing.assert_close(bug_grad, model.decoder[4].weight.grad, rtol=1e-3, atol=1e-12)


def test_variants_refuse_what_they_cannot_change():
    with pytest.raises(variants.VariantError, match="unknown variant"):
        variants.get_variant("softmax-over-classes")
    with pytest.raises(variants.VariantError, match="no capsules"):
        variants.apply_to_model("softmax-over-inputs", BaselineCNN())
    with pytest.raises(variants.VariantError, match="no capsules"):
        variants.apply_to_task("recon-mean", ClassifierTask())
    for name in ("recon-mean", "unmasked-decoder"):
        with pytest.raises(variants.VariantError, match="needs one"):
            variants.apply_to_task(name, CapsuleTask(reconstruct=False))


def test_every_variant_says_what_it_changes_the_paper_line_and_the_symptom():
    for name in BUGS:
        variant = variants.get_variant(name)
        assert variant.changes and variant.paper and variant.symptom, name


# ---- the fast path keeps a variant ----------------------------------------------------------------

@pytest.mark.parametrize("name, digit_caps", [("softmax-over-inputs", SoftmaxOverInputsDigitCaps),
                                              ("shared-logits", SharedLogitsDigitCaps)])
def test_the_fast_path_leaves_a_variants_digit_caps_alone(name, digit_caps):
    model = routed_model(name)
    with torch.no_grad():
        plain = model(images()).lengths
    prepare_model(model, torch.device("cpu"), True, precision="fp32")
    assert type(model.digits) is digit_caps
    with torch.no_grad():
        fast = model(images().contiguous(memory_format=torch.channels_last)).lengths
    torch.testing.assert_close(fast, plain, rtol=1e-3, atol=1e-5)  # the spectral convolution's rounding only
    prepare_model(model, torch.device("cpu"), False)
    assert type(model.digits) is digit_caps
    reference = prepare_model(routed_model(), torch.device("cpu"), True, precision="fp32")
    assert type(reference.digits) is FastDigitCaps  # the reference still gets the fast version
    # a variant applied after the fast path replaces the fast DigitCaps, which then stays the variant's
    late = variants.apply_to_model(name, prepare_model(routed_model(), torch.device("cpu"), True, precision="fp32"))
    assert type(late.digits) is digit_caps


# ---- trained, recorded, reloaded ------------------------------------------------------------------

def test_the_trainer_refuses_a_variant_that_does_not_apply(tmp_path):
    out = ["--out", str(tmp_path / "run")]
    with pytest.raises(CliError, match="unknown variant"):
        plan(["--variant", "bogus", *out])
    with pytest.raises(CliError, match="no capsules"):
        plan(["--model", "baseline", "--variant", "recon-mean", *out])
    with pytest.raises(CliError, match="needs one"):
        plan(["--no-recon", "--variant", "unmasked-decoder", *out])
    config, *_ = plan(["--variant", "shared-logits", *out])
    assert config.variant == "shared-logits"


def test_runs_older_than_the_setting_read_as_the_papers_model(tmp_path):
    store.write_run_json(tmp_path, {"status": "finished", "config": {"routings": 3, "epochs": 1}})
    assert store.read_run_json(tmp_path)["config"]["variant"] == variants.NONE
    store.write_run_json(tmp_path, {"status": "finished", "config": {"variant": "softmax-over-classes"}})
    with pytest.raises(store.RunError, match="config.variant"):
        store.read_run_json(tmp_path)


@pytest.fixture(scope="module")
def variant_runs(tmp_path_factory) -> dict:
    """Each variant trained by `python -m trainer.run --variant NAME` on the fast path: 1 epoch of 200
    training images, 3 routings with reconstruction, tested on 100."""
    root = tmp_path_factory.mktemp("variants")
    for name in BUGS:
        result = run_trainer("--variant", name, "--routings", "3", "--epochs", "1", "--subset", "200",
                             "--test-subset", "100", "--precision", "fp32", "--out", str(root / name))
        assert result.returncode == 0, result.stderr
    return {name: root / name for name in BUGS}


@pytest.mark.slow
@pytest.mark.parametrize("name", BUGS)
def test_a_variant_trains_is_recorded_and_comes_back_with_its_modules(variant_runs, name):
    run_dir = variant_runs[name]
    run = load_run(run_dir)
    assert run.config["variant"] == name and run.status == "finished" and len(run.history) == 1
    assert np.isfinite(run.history["test_loss"]).all() and len(store.read_routing(run_dir))
    stored = torch.load(run_dir / store.WEIGHTS, map_location="cpu", weights_only=True)
    variant = variants.get_variant(name)
    assert stored.get("variant", variants.NONE) == variants.variant_of(run.model)
    assert isinstance(run.model, CapsNet)
    if variant.digit_caps:
        assert type(run.model.digits) is variant.digit_caps
    if variant.capsnet:
        assert type(run.model) is variant.capsnet
    if variant.task:  # a loss variant: the model is the paper's, the run says which loss trained it
        assert variants.variant_of(run.model) == variants.NONE and "variant" not in stored
    json.loads((run_dir / store.RUN_JSON).read_text())  # strict JSON still
    # compact weights (what ships) keep the variant
    store.compact_weights(run_dir)
    assert variants.variant_of(store.load_weights(run_dir / store.WEIGHTS)) == variants.variant_of(run.model)


@pytest.mark.slow
def test_the_routing_page_traces_the_variants_coupling(variant_runs):
    model = load_run(variant_runs["softmax-over-inputs"]).model
    digit = np.asarray(images(1)[0, 0])
    routing = trace_digit(model, digit)
    np.testing.assert_allclose(routing.coupling.sum(axis=2), 1.0, rtol=1e-4)  # over the inputs i, per class j
    assert abs(routing.coupling[0].sum(axis=0) - 1).max() > 0.9  # not over the classes j


@pytest.mark.slow
def test_a_resume_with_another_variant_is_refused(variant_runs):
    with pytest.raises(CliError, match="variant"):
        plan(["--resume", "--variant", "none", "--out", str(variant_runs["recon-mean"])])


# ---- the grid that trains them side by side ---------------------------------------------------------

def test_the_bugs_grid_is_the_correct_run_then_each_variant_with_the_same_settings():
    grid = load_grid("bugs")
    assert [point.settings.get("variant", variants.NONE) for point in grid.points] == [variants.NONE, *BUGS]
    for point in grid.points:
        assert point.settings["routings"] == 3 and point.settings["recon"] is True and point.settings["model"] == "capsnet"
    others = [{k: v for k, v in point.settings.items() if k != "variant"} for point in grid.points]
    assert all(settings == others[0] for settings in others)
