"""The fast path (bf16 autocast, channels_last, PrimaryCaps through the DFT on CPU) agrees with plain fp32
on a trained model."""
import pytest
import torch

from capsviz import load_mnist, load_run
from capsviz.losses import capsule_loss
from capsviz.runs import default_runs_root
from capsviz.speed import precision_context, prepare_images, prepare_model, tune_allocator
from trainer.loop import TrainConfig, select, validate


def test_fast_and_plain_paths_agree_on_a_batch():
    model = load_run(default_runs_root() / "mnist-r3").model
    images, labels = load_mnist("test")
    inputs = torch.from_numpy(images[:200].copy()).unsqueeze(1).float() / 255
    targets = torch.from_numpy(labels[:200])
    cpu = torch.device("cpu")
    results = {}
    with torch.no_grad():
        for fast in (False, True):
            net = prepare_model(model, cpu, fast)
            assert net.primary.spectral_dtype == (torch.bfloat16 if fast else None)
            with precision_context(cpu, fast):
                out = net(prepare_images(inputs, fast), targets)
                results[fast] = (out.predictions, capsule_loss(out, inputs, targets))
    (plain_predictions, plain_loss), (fast_predictions, fast_loss) = results[False], results[True]
    assert torch.equal(fast_predictions, plain_predictions)
    assert abs(fast_loss.total.item() - plain_loss.total.item()) <= 0.02 * plain_loss.total.item()
    assert abs(fast_loss.margin.item() - plain_loss.margin.item()) <= 0.05 * plain_loss.margin.item() + 1e-4


def test_fast_path_reproduces_the_shipped_test_error():
    """All 10,000 test digits through the fast path (DFT PrimaryCaps in bf16) give the error the run
    recorded with its own fast path (oneDNN's direct bf16 convolution) within 0.05 points."""
    run = load_run(default_runs_root() / "mnist-r3")
    cpu = torch.device("cpu")
    model = prepare_model(run.model, cpu, fast=True)
    assert model.primary.spectral_dtype == torch.bfloat16
    with torch.inference_mode():
        stats = validate(model, *select(*load_mnist("test"), None), TrainConfig(fast=True), cpu)
    assert 100 * (1 - stats.acc) == pytest.approx(run.info["final_test_error"], abs=0.05)


def test_allocator_tuning_applies_on_linux():
    import sys
    assert tune_allocator() is sys.platform.startswith("linux")
