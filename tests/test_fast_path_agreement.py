"""The fast path (bf16 autocast, channels_last, PrimaryCaps through the DFT on CPU) agrees with plain fp32
on a trained model."""
import pytest
import torch

from capsviz import load_mnist, load_run
from capsviz.model.fast import precision_context, prepare_images, prepare_model, tune_allocator
from capsviz.model.fast.modules import FastPrimaryCaps
from capsviz.model.losses import capsule_loss
from capsviz.store import default_runs_root
from trainer.loop import TrainConfig, select, validate


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_fast_and_plain_paths_agree_on_a_batch(precision):
    """The fast path forced to each precision gives the plain path's predictions and losses."""
    model = load_run(default_runs_root() / "mnist-r3").model
    images, labels = load_mnist("test")
    inputs = torch.from_numpy(images[:200].copy()).unsqueeze(1).float() / 255
    targets = torch.from_numpy(labels[:200])
    cpu = torch.device("cpu")
    results = {}
    with torch.no_grad():
        for fast in (False, True):
            net = prepare_model(model, cpu, fast, precision=precision)
            assert isinstance(net.primary, FastPrimaryCaps) is fast
            if fast:
                assert net.primary.spectral_dtype == {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]
            with precision_context(cpu, precision if fast else "fp32"):
                out = net(prepare_images(inputs, fast), targets)
                results[fast] = (out.predictions, capsule_loss(out, inputs, targets))
    (plain_predictions, plain_loss), (fast_predictions, fast_loss) = results[False], results[True]
    assert torch.equal(fast_predictions, plain_predictions)
    # fp32 through the DFT differs from the direct convolution only by rounding (about 1e-6 relative)
    tolerance = {"bf16": 0.02, "fp32": 1e-4}[precision]
    assert abs(fast_loss.total.item() - plain_loss.total.item()) <= tolerance * plain_loss.total.item()
    assert abs(fast_loss.margin.item() - plain_loss.margin.item()) <= 2.5 * tolerance * plain_loss.margin.item() + 1e-6


@pytest.mark.slow
def test_fast_path_reproduces_the_shipped_test_error():
    """All 10,000 test digits through the fast path (DFT PrimaryCaps in bf16) give the error the run
    recorded with its own fast path (oneDNN's direct bf16 convolution) within 0.05 points."""
    run = load_run(default_runs_root() / "mnist-r3")
    cpu = torch.device("cpu")
    model = prepare_model(run.model, cpu, fast=True, precision="bf16")
    assert isinstance(model.primary, FastPrimaryCaps) and model.primary.spectral_dtype == torch.bfloat16
    with torch.inference_mode():
        stats = validate(model, TrainConfig().task(), *select(*load_mnist("test"), None), TrainConfig(fast=True), cpu,
                         precision="bf16")
    assert 100 * (1 - stats.acc) == pytest.approx(run.info["final_test_error"], abs=0.05)


def test_allocator_tuning_applies_on_linux():
    import sys
    assert tune_allocator() is sys.platform.startswith("linux")
