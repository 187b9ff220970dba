"""The DFT convolution (capsviz.model.fast.spectral) computes exactly F.conv2d, and the fast path uses it on CPU."""
import pytest
import torch
import torch.nn.functional as F

from capsviz import CapsNet
from capsviz.model.capsnet import PrimaryCaps
from capsviz.model.fast import prepare_model
from capsviz.model.fast.modules import FastPrimaryCaps, use_fast_modules
from capsviz.model.fast.spectral import spectral_conv2d

F64 = torch.float64


@pytest.mark.parametrize("batch, channels, out_channels, height, width, kernel, stride", [
    (3, 5, 7, 20, 20, 9, 2),  # PrimaryCaps on MNIST
    (2, 4, 6, 21, 21, 9, 2),  # odd size
    (2, 3, 4, 32, 32, 9, 2),  # affNIST's 40x40 after Conv1
    (2, 3, 5, 14, 12, 5, 1),  # rectangular, stride 1
    (2, 3, 5, 13, 17, 3, 3),  # stride that does not divide the size
])
def test_matches_conv2d_and_its_gradients_in_float64(batch, channels, out_channels, height, width, kernel, stride):
    torch.manual_seed(0)
    x = torch.randn(batch, channels, height, width, dtype=F64, requires_grad=True)
    weight = torch.randn(out_channels, channels, kernel, kernel, dtype=F64, requires_grad=True)
    bias = torch.randn(out_channels, dtype=F64, requires_grad=True)
    expected = F.conv2d(x, weight, bias, stride=stride)
    got = spectral_conv2d(x, weight, bias, stride=stride, dtype=F64)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)

    upstream = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, (x, weight, bias), upstream)
    got_grads = torch.autograd.grad(got, (x, weight, bias), upstream)
    for name, g, e in zip(("input", "weight", "bias"), got_grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10, msg=f"{name} gradient differs")


def test_gradcheck_without_bias():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 11, 11, dtype=F64, requires_grad=True)
    weight = torch.randn(4, 3, 5, 5, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: spectral_conv2d(x, w, stride=2, dtype=F64), (x, weight))


def test_bf16_error_stays_small_on_the_mnist_layer():
    """bf16 rounding in the frequency domain: measured ~0.7% relative error on this layer, ~2.4x the
    direct bf16 convolution's. A slip in a transform (a wrong sign, a missing conjugate pair) gives ~100%."""
    torch.manual_seed(0)
    x = torch.relu(torch.randn(16, 256, 20, 20)).to(memory_format=torch.channels_last)
    weight = 0.01 * torch.randn(256, 256, 9, 9)
    bias = 0.1 * torch.randn(256)
    exact = F.conv2d(x.double(), weight.double(), bias.double(), stride=2)
    got = spectral_conv2d(x.bfloat16(), weight, bias, stride=2, dtype=torch.bfloat16)
    assert got.dtype == torch.bfloat16
    relative = ((got.double() - exact).norm() / exact.norm()).item()
    assert relative < 0.012, f"relative error {relative:.4f}"


def test_gradients_come_back_in_the_inputs_dtypes_and_layout():
    x = torch.randn(2, 8, 20, 20).bfloat16().to(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(6, 8, 9, 9, requires_grad=True)
    bias = torch.randn(6, requires_grad=True)
    spectral_conv2d(x, weight, bias, stride=2).float().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and x.grad.is_contiguous(memory_format=torch.channels_last)
    assert weight.grad.dtype == torch.float32 and bias.grad.dtype == torch.float32
    assert weight.grad.shape == weight.shape and torch.isfinite(weight.grad).all()


def test_primary_caps_uses_it_exactly_when_asked():
    torch.manual_seed(0)
    model = CapsNet(routings=2).eval()
    images = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        direct = model(images).poses
        use_fast_modules(model, spectral_dtype=torch.float32)
        assert isinstance(model.primary, FastPrimaryCaps)
        spectral = model(images).poses
        model.primary.conv.weight.mul_(0.5)  # it reads the module's own weight
        halved = model(images).poses
    torch.testing.assert_close(spectral, direct, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(halved, spectral, atol=1e-4)


def test_fast_path_turns_it_on_for_cpu_only():
    model = CapsNet(routings=1)
    cpu = torch.device("cpu")
    fast = prepare_model(model, cpu, fast=True).primary
    assert isinstance(fast, FastPrimaryCaps) and fast.spectral_dtype == torch.bfloat16
    assert type(prepare_model(model, cpu, fast=False).primary) is PrimaryCaps
