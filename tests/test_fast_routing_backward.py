"""The fast path's DigitCaps backward (capsviz.model.fast.routing) gives autograd's gradients of the reference routing."""
import pytest
import torch

from capsviz import CapsNet
from capsviz.model.capsnet import dynamic_routing, predictions
from capsviz.model.fast import prepare_model
from capsviz.model.fast.modules import FastDigitCaps, use_reference_modules
from capsviz.model.fast.routing import routed_with_fused_backward

F64 = torch.float64


def inputs(batch=4, n_in=50, seed=0):
    torch.manual_seed(seed)
    u = (0.3 * torch.randn(batch, n_in, 8, dtype=F64)).requires_grad_()
    weight = (0.1 * torch.randn(n_in, 8, 10 * 16, dtype=F64)).requires_grad_()
    return u, weight


@pytest.mark.parametrize("detach_inner", [True, False])
@pytest.mark.parametrize("iterations", [1, 2, 3, 5])
def test_same_output_and_gradients_as_autograd_through_the_reference(iterations, detach_inner):
    u, weight = inputs()
    upstream = torch.randn(4, 10, 16, dtype=F64)
    expected = dynamic_routing(predictions(u, weight, 10), iterations=iterations, detach_inner=detach_inner)[0]
    got = routed_with_fused_backward(u, weight, out_capsules=10, iterations=iterations, detach_inner=detach_inner)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    expected_grads = torch.autograd.grad(expected, (u, weight), upstream)
    got_grads = torch.autograd.grad(got, (u, weight), upstream)
    for name, g, e in zip(("u", "weight"), got_grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12, msg=f"{name} gradient differs")


def test_detaching_the_inner_iterations_changes_the_gradient():
    """Guards the test above against a backward that ignores detach_inner."""
    u, weight = inputs()
    grads = [torch.autograd.grad(routed_with_fused_backward(u, weight, out_capsules=10, iterations=3,
                                                            detach_inner=detach).sum(), u)[0]
             for detach in (True, False)]
    assert not torch.allclose(grads[0], grads[1], rtol=1e-3, atol=0)


def test_gradcheck_with_gradient_through_every_iteration():
    u, weight = inputs(batch=2, n_in=6, seed=1)
    assert torch.autograd.gradcheck(
        lambda u, w: routed_with_fused_backward(u, w, out_capsules=10, iterations=3, detach_inner=False), (u, weight),
        fast_mode=True)  # a random projection of the Jacobian: 60 s to 1 s; the exact comparison with autograd is above


def test_fast_path_model_trains_with_it_and_keeps_the_trace():
    torch.manual_seed(0)
    model = CapsNet(routings=3)
    images, labels = torch.rand(3, 1, 28, 28), torch.tensor([1, 2, 3])
    grads = {}
    for fast in (False, True):
        net = prepare_model(model, torch.device("cpu"), fast)
        assert isinstance(net.digits, FastDigitCaps) is fast
        use_reference_modules(net.primary)  # compare the routing backward alone, in float32
        net.zero_grad()
        net(images, labels).lengths.sum().backward()
        grads[fast] = net.digits.weight.grad.clone(), net.conv1.weight.grad.clone()
    for plain, fused in zip(grads[False], grads[True]):
        torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        out = net(images, trace=True)  # the trace still comes from the reference routing
    assert out.coupling.shape == (3, 3, 1152, 10)
