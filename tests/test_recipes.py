"""The recipes (capsviz.training.recipes): each part of the authors' recipe computes what the authors' TensorFlow code
computes (Sarasra/models, research/capsules), written out again here independently, as their code does it;
"paper" leaves the model and the loss as they were; bad names are refused."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from capsviz import CapsNet, load_run
from capsviz.model.capsnet import CapsNetConfig, DigitCaps, PrimaryCaps, dynamic_routing, predictions
from capsviz.model.fast import prepare_model
from capsviz.model.fast.modules import FastDigitCaps, FastPrimaryCaps, use_fast_modules
from capsviz.model.fast.routing import routed_with_fused_backward
from capsviz.model.losses import RECON_WEIGHT, capsule_loss, margin_loss, pair_margin_loss
from capsviz.model.tasks import CapsulePairTask, CapsuleTask
from capsviz.training.recipes import AUTHORS_PARTS, RecipeError, model_options, recipe_parts, recipe_problem, task_options

F64 = torch.float64
PAPER_KEYS = ["conv1.weight", "conv1.bias", "primary.conv.weight", "primary.conv.bias", "digits.weight",
              "decoder.0.weight", "decoder.0.bias", "decoder.2.weight", "decoder.2.bias", "decoder.4.weight",
              "decoder.4.bias"]


# ---- the authors' formulas, as their TF code computes them ----------------------------------------------

def tf_squash(x, axis):
    """layers._squash: x / |x| * |x|^2 / (1 + |x|^2), the norm over the atoms."""
    norm = torch.linalg.vector_norm(x, dim=axis, keepdim=True)
    return x / norm * (norm ** 2 / (1 + norm ** 2))


def authors_margin(raw_logits, labels_one_hot):
    """layers._margin_loss(labels, raw_logits, margin=0.4, downweight=0.5), then reduce_mean over batch x classes."""
    logits = raw_logits - 0.5
    positive = labels_one_hot * (logits < 0.4).float() * (logits - 0.4) ** 2
    negative = (1 - labels_one_hot) * (logits > -0.4).float() * (logits + 0.4) ** 2
    return (0.5 * positive + 0.5 * 0.5 * negative).mean()


def authors_routing(votes, biases, num_routing):
    """layers._update_routing with votes [batch, input_dim, output_dim, atoms, ...]: logits start at zero, the
    softmax runs over output_dim, the biases are added to the weighted sum in every iteration."""
    logits = votes.new_zeros(votes.shape[:3] + votes.shape[4:])  # [batch, input_dim, output_dim, ...]
    for _ in range(num_routing):
        route = F.softmax(logits, dim=2)
        preactivate = (route.unsqueeze(3) * votes).sum(dim=1) + biases
        activation = tf_squash(preactivate, axis=2)  # [batch, output_dim, atoms, ...]
        logits = logits + (votes * activation.unsqueeze(1)).sum(dim=3)
    return activation


def authors_primary(features, kernel, biases, types=32, atoms=8):
    """conv_slim_capsule(input_dim=1, output_dim=32, output_atoms=8, num_routing=1): a convolution without a
    bias, votes routed once from their one input over the 32 output types, biases [32, 8]."""
    votes = F.conv2d(features, kernel, None, stride=2)  # (B, 256, 6, 6)
    batch, _, height, width = votes.shape
    votes = votes.view(batch, 1, types, atoms, height, width)  # [batch, input_dim=1, output_dim, atoms, h, w]
    out = authors_routing(votes, biases.view(types, atoms, 1, 1), num_routing=1)  # (B, 32, 8, 6, 6)
    return out.flatten(3).transpose(2, 3).reshape(batch, -1, atoms)  # ours: capsules (type, row, column)


def authors_digits(u, weight, biases, num_routing, out_capsules=10):
    """layers.capsule: votes u_i W_ij [batch, 1152, 10, 16], routed with biases [10, 16]."""
    votes = torch.einsum("bid,idk->bik", u, weight).unflatten(2, (out_capsules, -1))
    return authors_routing(votes, biases, num_routing)


# ---- names --------------------------------------------------------------------------------------------

def test_recipe_names_and_parts():
    assert recipe_parts("paper") == frozenset()
    assert recipe_parts("authors") == frozenset(AUTHORS_PARTS) == {"margin", "primary", "digit-bias", "init"}
    assert recipe_parts("authors:margin,init") == {"margin", "init"}
    assert model_options("paper") == {} and task_options("paper") == {}
    assert model_options("authors") == {"primary_scale": 1 / 32, "primary_bias": 0.1, "digit_bias": 0.1,
                                        "init": "truncated-normal"}
    assert task_options("authors") == {"margin_reduction": "half-mean"}
    assert model_options("authors:margin") == {} and task_options("authors:margin") == {"margin_reduction": "half-mean"}
    assert model_options("authors:digit-bias") == {"digit_bias": 0.1}
    assert task_options("authors:digit-bias") == {"margin_reduction": "sum"}
    assert all(isinstance(text, str) and "\n" not in text for text in AUTHORS_PARTS.values())


@pytest.mark.parametrize("name, message", [
    ("Authors", "unknown recipe 'Authors'"), ("authors:", "unknown part ''"),
    ("authors:margin,bias", "unknown part 'bias'"), ("paper:margin", "unknown recipe 'paper:margin'"),
])
def test_unknown_recipes_are_refused_in_one_line_listing_the_valid_ones(name, message):
    for call in (recipe_parts, model_options, task_options):
        with pytest.raises(RecipeError, match=message) as error:
            call(name)
        text = str(error.value)
        assert "\n" not in text and "paper" in text and "digit-bias" in text
    assert message in recipe_problem(name)
    assert recipe_problem("authors:init") is None and recipe_problem("paper") is None
    assert "recipe name" in recipe_problem(3)


def test_trainer_refuses_a_recipe_for_the_baseline_and_unknown_names():
    from trainer.loop import TrainConfig
    for recipe in ("authors", "authors:init"):
        with pytest.raises(ValueError, match="baseline"):
            TrainConfig(model="baseline", recipe=recipe).task()
    TrainConfig(model="baseline").task()
    with pytest.raises(RecipeError):
        TrainConfig(recipe="authors:dropout").task()
    with pytest.raises(ValueError, match="margin reduction"):
        CapsuleTask(margin_reduction="mean")


def test_an_explicit_model_option_overrides_the_recipe():
    from trainer.loop import TrainConfig
    model = TrainConfig(recipe="authors", model_options={"digit_bias": None}).build_model()
    assert model.digits.bias is None and model.primary.bias is not None


# ---- paper: unchanged ----------------------------------------------------------------------------------

def test_paper_recipe_keeps_the_model_and_loss():
    torch.manual_seed(0)
    default = CapsNet(routings=2)
    torch.manual_seed(0)
    paper = CapsNet(routings=2, **model_options("paper"))
    assert list(paper.state_dict()) == list(default.state_dict()) == PAPER_KEYS
    for name, tensor in default.state_dict().items():
        assert torch.equal(tensor, paper.state_dict()[name]), name
    images, labels = torch.rand(3, 1, 28, 28), torch.tensor([1, 2, 3])
    a, b = default(images, labels), paper(images, labels)
    assert torch.equal(a.poses, b.poses) and torch.equal(a.reconstruction, b.reconstruction)
    assert torch.equal(CapsuleTask(**task_options("paper")).step(paper, images, labels).total,
                       capsule_loss(a, images, labels).total)
    config = CapsNetConfig()
    assert (config.primary_scale, config.primary_bias, config.digit_bias, config.init) == (1.0, None, None, "pytorch")


def test_an_old_saved_config_without_the_options_loads_as_the_paper():
    old = CapsNetConfig().to_dict()
    for key in ("primary_scale", "primary_bias", "digit_bias", "init"):
        old.pop(key)
    assert CapsNetConfig.from_dict(old) == CapsNetConfig()


def test_authors_state_dict_keys():
    keys = list(CapsNet(**model_options("authors")).state_dict())
    assert set(keys) == set(PAPER_KEYS) - {"primary.conv.bias"} | {"primary.bias", "digits.bias"}


# ---- margin --------------------------------------------------------------------------------------------

def test_margin_part_is_the_authors_margin_loss():
    torch.manual_seed(0)
    lengths, labels = torch.rand(7, 10), torch.randint(0, 10, (7,))
    expected = authors_margin(lengths, F.one_hot(labels, 10).float())
    torch.testing.assert_close(margin_loss(lengths, labels, reduction="half-mean"), expected)
    torch.testing.assert_close(margin_loss(lengths, labels), 20 * expected)  # the paper's: 2K times theirs
    pairs = torch.stack([labels, (labels + 3) % 10], dim=1)
    present = F.one_hot(pairs, 10).sum(1).float()
    torch.testing.assert_close(pair_margin_loss(lengths, pairs, reduction="half-mean"), authors_margin(lengths, present))


def test_margin_part_through_the_task_keeps_the_reconstruction_term():
    torch.manual_seed(0)
    model = CapsNet(routings=1)
    images, labels = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    task = CapsuleTask(**task_options("authors:margin"))
    torch.manual_seed(1)
    result = task.step(model, images, labels)
    with torch.no_grad():
        out = model(images, labels)
    margin = authors_margin(out.lengths, F.one_hot(labels, 10).float())
    recon = ((out.reconstruction - images) ** 2).flatten(1).sum(1).mean()  # the same sum of squares, over the batch
    torch.testing.assert_close(result.margin, margin)
    torch.testing.assert_close(result.total, margin + RECON_WEIGHT * recon)
    assert CapsulePairTask(**task_options("authors")).margin_reduction == "half-mean"


# ---- primary --------------------------------------------------------------------------------------------

def primary_layer(dtype=torch.float32):
    torch.manual_seed(0)
    layer = PrimaryCaps(in_channels=256, types=32, dim=8, scale=1 / 32, bias=0.1).to(dtype)
    with torch.no_grad():  # biases away from their initial 0.1, so that the layout of [32, 8] is tested
        layer.bias.add_(0.05 * torch.randn(32, 8, dtype=dtype))
    features = torch.relu(torch.randn(3, 256, 20, 20, dtype=dtype))
    return layer, features


def test_primary_part_is_a_one_input_routing_over_32_types():
    layer, features = primary_layer(F64)
    assert layer.conv.bias is None and layer.bias.shape == (32, 8)
    expected = authors_primary(features, layer.conv.weight, layer.bias)
    torch.testing.assert_close(layer(features).double(), expected, rtol=1e-6, atol=1e-7)  # SQUASH_EPS apart


@pytest.mark.parametrize("spectral_dtype, tolerance", [(torch.float32, 1e-4), (torch.bfloat16, 3e-2)])
def test_primary_part_on_the_fast_path(spectral_dtype, tolerance):
    layer, features = primary_layer()
    expected = authors_primary(features.double(), layer.conv.weight.double(), layer.bias.double()).float()
    use_fast_modules(layer, spectral_dtype=spectral_dtype)
    assert isinstance(layer, FastPrimaryCaps)
    torch.testing.assert_close(layer(features), expected, rtol=tolerance, atol=tolerance * 0.1)


# ---- digit-bias ------------------------------------------------------------------------------------------

def digit_inputs(batch=4, n_in=50, seed=0):
    torch.manual_seed(seed)
    u = (0.3 * torch.randn(batch, n_in, 8, dtype=F64)).requires_grad_()
    weight = (0.1 * torch.randn(n_in, 8, 10 * 16, dtype=F64)).requires_grad_()
    bias = (0.1 + 0.05 * torch.randn(10, 16, dtype=F64)).requires_grad_()
    return u, weight, bias


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("routings", [1, 3])
def test_digit_bias_is_added_before_squash_in_every_iteration(routings, fast):
    torch.manual_seed(0)
    layer = DigitCaps(in_capsules=1152, in_dim=8, out_capsules=10, out_dim=16, routings=routings, bias=0.1)
    with torch.no_grad():
        layer.bias.add_(0.05 * torch.randn(10, 16))
    if fast:
        use_fast_modules(layer, spectral_dtype=None)
        assert isinstance(layer, FastDigitCaps)
    u = 0.3 * torch.randn(5, 1152, 8)
    expected = authors_digits(u.double(), layer.weight.double(), layer.bias.double(), routings).float()
    torch.testing.assert_close(layer(u)[0], expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("detach_inner", [True, False])
@pytest.mark.parametrize("iterations", [1, 3])
def test_fused_backward_with_a_digit_bias_gives_autograds_gradients(iterations, detach_inner):
    u, weight, bias = digit_inputs()
    upstream = torch.randn(4, 10, 16, dtype=F64)
    expected = dynamic_routing(predictions(u, weight, 10), iterations=iterations, detach_inner=detach_inner,
                               bias=bias)[0]
    got = routed_with_fused_backward(u, weight, out_capsules=10, iterations=iterations, detach_inner=detach_inner,
                                     bias=bias)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    expected_grads = torch.autograd.grad(expected, (u, weight, bias), upstream)
    got_grads = torch.autograd.grad(got, (u, weight, bias), upstream)
    for name, g, e in zip(("u", "weight", "bias"), got_grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12, msg=f"{name} gradient differs")


def test_gradcheck_of_the_fused_backward_with_a_digit_bias():
    u, weight, bias = digit_inputs(batch=2, n_in=6, seed=1)
    assert torch.autograd.gradcheck(
        lambda u, w, b: routed_with_fused_backward(u, w, out_capsules=10, iterations=3, detach_inner=False, bias=b),
        (u, weight, bias), fast_mode=True)
    # with the inner iterations detached, the bias's gradient is the last iteration's alone, as in the reference
    v = routed_with_fused_backward(u, weight, out_capsules=10, iterations=3, detach_inner=True, bias=bias)
    reference = dynamic_routing(predictions(u, weight, 10), iterations=3, detach_inner=True, bias=bias)[0]
    torch.testing.assert_close(torch.autograd.grad(v.sum(), bias)[0], torch.autograd.grad(reference.sum(), bias)[0])


# ---- init --------------------------------------------------------------------------------------------------

# the standard deviation of a normal cut at +-2 std, as a fraction of the uncut one
TRUNCATED_STD = math.sqrt(1 - 4 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(2 / math.sqrt(2)))


def test_init_part_draws_truncated_normals_with_the_authors_std():
    torch.manual_seed(0)
    model = CapsNet(**model_options("authors:init"))
    params = dict(model.named_parameters())
    expected = {"conv1.weight": 0.05, "primary.conv.weight": 0.1, "digits.weight": 0.1, "decoder.0.weight": 0.1,
                "decoder.2.weight": 0.1, "decoder.4.weight": 0.1}
    for name, std in expected.items():
        w = params[name].detach().double().flatten()
        n = w.numel()
        assert abs(w.mean().item()) < 5 * std / math.sqrt(n), name
        assert w.std().item() == pytest.approx(std * TRUNCATED_STD, rel=6 / math.sqrt(n) + 2e-3), name
        assert w.abs().max().item() <= 2 * std + 1e-7, f"{name}: beyond 2 std"
        assert w.abs().max().item() > 1.95 * std, f"{name}: not reaching 2 std"
    for name in ("conv1.bias", "primary.conv.bias", "decoder.0.bias", "decoder.2.bias", "decoder.4.bias"):
        assert torch.all(params[name] == 0.1), name
    authors = CapsNet(**model_options("authors"))
    assert torch.all(authors.primary.bias == 0.1) and torch.all(authors.digits.bias == 0.1)
    assert authors.digits.weight.abs().max().item() <= 0.2 + 1e-7


# ---- the whole recipe, on both paths, and through the trainer -----------------------------------------------

def test_authors_model_on_the_fast_path_computes_the_reference():
    torch.manual_seed(0)
    model = CapsNet(routings=3, **model_options("authors"))
    images, labels = torch.rand(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])
    task = CapsuleTask(**task_options("authors"))
    results = {}
    for fast in (False, True):
        net = prepare_model(model, torch.device("cpu"), fast, precision="fp32")
        net.zero_grad()
        result = task.step(net, images, labels)
        result.total.backward()
        results[fast] = result.total.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}
    torch.testing.assert_close(results[True][0], results[False][0], rtol=1e-4, atol=1e-6)
    for name in ("primary.bias", "digits.bias", "digits.weight", "conv1.weight"):
        torch.testing.assert_close(results[True][1][name], results[False][1][name], rtol=2e-3, atol=1e-6,
                                   msg=name)


@pytest.mark.slow
def test_a_tiny_training_run_with_the_authors_recipe_records_it_and_reloads(tmp_path):
    from capsviz import load_mnist
    from trainer.loop import TrainConfig, Trainer, select

    config = TrainConfig(routings=1, epochs=1, subset=200, test_subset=100, device="cpu", recipe="authors")
    out = tmp_path / "authors"
    trainer = Trainer(config, out, torch.device("cpu"), select(*load_mnist("train"), 200),
                      select(*load_mnist("test"), 100), log=lambda message: None)
    trainer.start(resume=False)
    trainer.fit()
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["recipe"] == "authors" and info["status"] == "finished"
    run = load_run(out)
    assert run.config["recipe"] == "authors"
    model = run.model
    assert (model.config.primary_scale, model.config.primary_bias, model.config.digit_bias, model.config.init) == (
        1 / 32, 0.1, 0.1, "truncated-normal")
    assert model.primary.conv.bias is None and model.digits.bias.shape == (10, 16)
    assert not torch.all(model.digits.bias == 0.1)  # trained
    assert math.isfinite(run.history["test_error"].iloc[-1])
