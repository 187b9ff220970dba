"""Squash, dynamic routing and the model's shapes, against the paper's definitions."""
import pytest
import torch

from capsviz import CapsNet, dynamic_routing, squash


def naive_routing(u_hat_ij: torch.Tensor, iterations: int) -> torch.Tensor:
    """Procedure 1 written with explicit per-(i, j) indices, layout (B, n_in, n_out, D)."""
    batch, n_in, n_out, _ = u_hat_ij.shape
    b = torch.zeros(batch, n_in, n_out, dtype=u_hat_ij.dtype)
    for _ in range(iterations):
        c = torch.softmax(b, dim=2)  # over output capsules j
        s = torch.einsum("bij,bijd->bjd", c, u_hat_ij)
        norm2 = (s ** 2).sum(-1, keepdim=True)
        v = norm2 / (1 + norm2) * s / norm2.sqrt()
        b = b + torch.einsum("bijd,bjd->bij", u_hat_ij, v)
    return v


def test_squash_length_below_one_and_direction_kept():
    s = torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 3, 64)[:, None]
    # strictly below 1 in float64; float32 rounds 1 - 1/(1 + |s|^2) to 1.0 once |s| is above about 4,000
    assert (squash(s.double()).norm(dim=-1) < 1).all()
    v = squash(s)
    lengths, s_lengths = v.norm(dim=-1), s.norm(dim=-1)
    assert (lengths <= 1).all()
    expected = s_lengths ** 2 / (1 + s_lengths ** 2)
    torch.testing.assert_close(lengths, expected, rtol=1e-4, atol=1e-6)
    cosine = torch.nn.functional.cosine_similarity(v, s, dim=-1)
    torch.testing.assert_close(cosine, torch.ones(64), rtol=0, atol=1e-5)


def test_squash_finite_gradient_at_zero():
    s = torch.zeros(3, 16, requires_grad=True)
    v = squash(s)
    assert torch.equal(v, torch.zeros(3, 16))
    v.sum().backward()
    assert torch.isfinite(s.grad).all()


@pytest.mark.parametrize("iterations", [1, 2, 3, 5])
def test_routing_matches_procedure_1(iterations):
    torch.manual_seed(0)
    u_hat_ij = torch.randn(4, 50, 10, 16, dtype=torch.float64) * 0.1
    v, trace = dynamic_routing(u_hat_ij.permute(0, 2, 1, 3), iterations=iterations, trace=True)
    torch.testing.assert_close(v, naive_routing(u_hat_ij, iterations))
    assert trace.coupling.shape == (4, iterations, 50, 10)
    assert trace.logits.shape == (4, iterations, 50, 10)


def test_coupling_sums_to_one_over_classes_and_first_iteration_is_uniform():
    torch.manual_seed(0)
    model = CapsNet(routings=3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 28, 28), trace=True)
    coupling = out.coupling  # (B, 3, 1152, 10)
    torch.testing.assert_close(coupling.sum(-1), torch.ones(2, 3, 1152))
    torch.testing.assert_close(coupling[:, 0], torch.full((2, 1152, 10), 0.1))
    assert not torch.allclose(coupling[:, -1], coupling[:, 0]), "routing changed nothing"


def test_logits_are_per_example_not_shared():
    torch.manual_seed(0)
    model = CapsNet(routings=2).eval()
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        both = model(images, trace=True)
        first = model(images[:1], trace=True)
    torch.testing.assert_close(both.logits[:1], first.logits, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(both.logits[0], both.logits[1])


def test_detach_inner_changes_only_gradients():
    torch.manual_seed(0)
    u_hat = torch.randn(2, 10, 30, 16, requires_grad=True)
    v_all, _ = dynamic_routing(u_hat, iterations=3, detach_inner=False)
    v_last, _ = dynamic_routing(u_hat, iterations=3, detach_inner=True)
    torch.testing.assert_close(v_all, v_last)
    grad_all, = torch.autograd.grad(v_all.pow(2).sum(), u_hat)
    grad_last, = torch.autograd.grad(v_last.pow(2).sum(), u_hat)
    assert not torch.allclose(grad_all, grad_last)


@pytest.mark.parametrize("size, primary", [(28, 1152), (40, 32 * 12 * 12)])
def test_shapes(size, primary):
    model = CapsNet(routings=1, input_size=size)
    assert model.config.primary_capsules == primary
    out = model(torch.rand(3, 1, size, size), trace=True)
    assert out.lengths.shape == (3, 10)
    assert out.poses.shape == (3, 10, 16)
    assert out.reconstruction.shape == (3, 1, size, size)
    assert out.coupling.shape == (3, 1, primary, 10)
    assert ((out.lengths >= 0) & (out.lengths < 1)).all()


def test_parameter_count_matches_paper():
    model = CapsNet()
    assert round(model.parameter_count() / 1e6, 1) == 8.2  # paper: 8.2M with the decoder
    assert round(model.parameter_count(decoder=False) / 1e6, 1) == 6.8  # and 6.8M without


def test_decode_agrees_with_forward():
    torch.manual_seed(0)
    model = CapsNet(routings=3).eval()
    images = torch.rand(4, 1, 28, 28)
    labels = torch.tensor([3, 1, 4, 1])
    with torch.no_grad():
        out = model(images)
        torch.testing.assert_close(model.decode(out.poses, out.predictions), out.reconstruction)
        with_labels = model(images, labels)
        torch.testing.assert_close(model.decode(with_labels.poses, labels), with_labels.reconstruction)
        single = model.decode(out.poses[:1], int(out.predictions[0]))
        torch.testing.assert_close(single, out.reconstruction[:1])


def test_decode_uses_only_the_chosen_capsule():
    torch.manual_seed(0)
    model = CapsNet(routings=1).eval()
    poses = torch.randn(1, 10, 16) * 0.3
    edited = poses.clone()
    edited[0, 5] += 1.0  # a capsule that is masked out
    with torch.no_grad():
        torch.testing.assert_close(model.decode(poses, 2), model.decode(edited, 2))
        assert not torch.allclose(model.decode(poses, 5), model.decode(edited, 5))
