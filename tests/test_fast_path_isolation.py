"""The fast path (capsviz.model.fast) is kept apart from the reference model (capsviz.model.capsnet): the reference
imports none of it, and switching a model to the fast path and back leaves it exactly as it was."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from capsviz.model.capsnet import CapsNet, DigitCaps, PrimaryCaps
from capsviz.model.fast import prepare_model
from capsviz.model.fast.modules import FastDigitCaps, FastPrimaryCaps, use_fast_modules, use_reference_modules

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def test_the_reference_model_imports_no_speed_code():
    """In a fresh interpreter, since this one has imported capsviz.model.fast already. Importing capsviz.model.capsnet
    runs capsviz/__init__.py too, so this also holds for `import capsviz` (what the dashboard does)."""
    code = ("import sys, capsviz.model.capsnet; "
            "print(sorted(m for m in sys.modules if m == 'capsviz.model.fast' or m.startswith('capsviz.model.fast.')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"capsviz.model.capsnet pulled in speed code: {result.stdout.strip()}"


def test_switching_to_the_fast_path_and_back_gives_the_reference_model_again():
    torch.manual_seed(0)
    model = CapsNet(routings=2).eval()
    images = torch.rand(3, 1, 28, 28)
    keys, parameters = list(model.state_dict()), list(model.parameters())
    with torch.no_grad():
        before = model(images)

    assert prepare_model(model, CPU, fast=True, precision="bf16") is model, "prepare_model works in place"
    assert type(model.primary) is FastPrimaryCaps and model.primary.spectral_dtype == torch.bfloat16
    assert type(model.digits) is FastDigitCaps
    prepare_model(model, CPU, fast=True, precision="fp32")  # prepared twice: the latest precision holds
    assert model.primary.spectral_dtype == torch.float32
    assert list(model.state_dict()) == keys, "the swap renamed weights: saved runs would not load"
    assert all(now is then for now, then in zip(model.parameters(), parameters, strict=True)), (
        "the swap replaced parameters: an optimizer built before it would train stale tensors")
    with torch.no_grad():
        fast = model(images)
    assert torch.equal(fast.predictions, before.predictions)

    prepare_model(model, CPU, fast=False)
    assert type(model.primary) is PrimaryCaps and type(model.digits) is DigitCaps
    assert not hasattr(model.primary, "spectral_dtype")
    assert list(model.state_dict()) == keys
    assert all(now is then for now, then in zip(model.parameters(), parameters, strict=True))
    with torch.no_grad():
        after = model(images)
    for name in ("lengths", "poses", "reconstruction"):
        assert torch.equal(getattr(after, name), getattr(before, name)), f"{name} changed by the round trip"


def test_without_a_spectral_dtype_only_digit_caps_is_swapped():
    """What prepare_model does on a GPU, where cuDNN's direct convolution is kept."""
    model = use_fast_modules(CapsNet(routings=1), spectral_dtype=None)
    assert type(model.primary) is PrimaryCaps and type(model.digits) is FastDigitCaps
    use_reference_modules(model)
    assert type(model.digits) is DigitCaps


class ScaledDigitCaps(DigitCaps):
    """A DigitCaps that routes otherwise (here: votes doubled): the fused backward was not written for it."""

    def predictions(self, u: torch.Tensor) -> torch.Tensor:
        return 2.0 * super().predictions(u)


def test_the_fused_routing_backward_refuses_a_routing_it_was_not_written_for():
    from capsviz.model.fast.modules import fused_routing_problem

    torch.manual_seed(0)
    model = CapsNet(routings=2)
    assert fused_routing_problem(model.digits) is None
    subclass = ScaledDigitCaps(in_capsules=1152, in_dim=8, out_capsules=10, out_dim=16, routings=2)
    assert "not a subclass's" in fused_routing_problem(subclass)
    assert fused_routing_problem(DigitCaps(in_capsules=1152, in_dim=8, out_capsules=10, out_dim=16, routings=2,
                                           bias=0.1)) is None, "the authors' bias on s_j: the backward has it"
    scaled = DigitCaps(in_capsules=1152, in_dim=8, out_capsules=10, out_dim=16, routings=2)
    scaled.gain = torch.nn.Parameter(torch.ones(()))  # a parameter the backward would leave without gradient
    assert "differentiates bias, weight only" in fused_routing_problem(scaled)

    # the swap leaves such layers on the reference routing (autograd's backward)...
    for layer in (subclass, scaled):
        model.digits = layer
        prepare_model(model, CPU, fast=True, precision="fp32")
        assert type(model.digits) is type(layer) and type(model.primary) is FastPrimaryCaps
    # ...and a fast layer made to hold one by hand refuses to run
    scaled.__class__ = FastDigitCaps
    with pytest.raises(TypeError, match="differentiates bias, weight only"):
        scaled(torch.rand(2, 1152, 8))
