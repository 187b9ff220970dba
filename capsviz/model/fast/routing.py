"""DigitCaps' backward written by hand, for the fast path (capsviz.model.fast.modules.FastDigitCaps uses it).

capsviz.model.capsnet.dynamic_routing is the reference: plain tensor code that autograd differentiates, and the
one that records a trace for the dashboard. `routed_with_fused_backward` computes the same u_hat and the
same routing (it runs the reference's own loop, capsviz.model.capsnet.routing_iterations), with a backward
written by hand. Why: autograd's backward of routing builds a u_hat-sized (B, 10, 1152, 16) float32
tensor (74 MB at batch 100) for every use of u_hat, two per iteration when the inner iterations carry
gradient, as a batched outer product, and adds them up; then it transposes the sum to the layout of the
matrix product that made u_hat. That work is memory-bound. Every one of those gradients is a sum of outer
products over (i, d) for each (b, j),

    dL/du_hat[b, j, i, :] = sum_m  P_m[b, j, i] Q_m[b, j, :],

with P_m a coupling or an agreement gradient and Q_m a gradient of s or a v, so the hand-written backward
collects the small factors and builds the whole gradient once, straight in the layout the transform's
backward reads.

With a DigitCaps bias (the authors' code, recipe part "digit-bias"), s_t = sum_i c_ti u_hat_i + bias in
every iteration t, so dL/dbias is the sum over the iterations that carry gradient, and over the batch, of
dL/ds_t: a by-product of the loop above, (10, 16) numbers.
"""
from __future__ import annotations

import torch

from ..capsnet import predictions, routing_iterations, squash

# What the backward below was written for: DigitCaps' own routing, the softmax of eq. 3 over the output
# capsules j and the agreement u_hat_{j|i} . v_j (routing_iterations), with W_ij and optionally the bias on
# s_j its parameters. A layer that routes otherwise, or has a parameter this backward would leave without
# gradient, is refused (capsviz.model.fast.modules.fused_routing_problem) and keeps autograd's backward.
FUSED_PARAMETERS = frozenset({"weight", "bias"})


def _squash_backward(s: torch.Tensor, grad_v: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():  # (B, 10, 16): small enough to let autograd differentiate squash itself
        s = s.detach().requires_grad_()
        (grad_s,) = torch.autograd.grad(squash(s), s, grad_v)
    return grad_s


class _FusedRouting(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, weight, bias, out_capsules, iterations, detach_inner):
        u_hat = predictions(u, weight, out_capsules)  # (B, 10, 1152, 16)
        steps = list(routing_iterations(u_hat, iterations=iterations, bias=bias))  # no graph is built in here
        ctx.save_for_backward(u, weight, u_hat)
        # The last step's v is the output: kept on ctx it would make a reference cycle (output -> grad_fn
        # -> ctx -> output) that Python's collector cannot see through, and every training batch's routing
        # tensors would stay alive (trainers grew to 11 GB). backward never reads it.
        ctx.steps = steps[:-1] + [steps[-1]._replace(v=None)]
        ctx.detach_inner = detach_inner
        return steps[-1].v

    @staticmethod
    def backward(ctx, grad_v):
        u, weight, u_hat = ctx.saved_tensors
        steps, detach_inner = ctx.steps, ctx.detach_inner
        batch, n_out, n_in, dim = u_hat.shape
        rows = u_hat.view(batch * n_out, n_in, dim)  # (B*10, 1152, 16)
        factors: list[tuple[torch.Tensor, torch.Tensor]] = []  # (P_m (B, 10, 1152), Q_m (B, 10, 16))
        grad_logits = None  # dL/db of the iteration after the current one
        grad_bias = None  # dL/dbias: the sum of dL/ds_t over the batch and the iterations reached
        for t in reversed(range(len(steps))):
            coupling, s, v, _ = steps[t]
            if grad_logits is not None:
                # b_{t+1} = b_t + a_t with a_t = u_hat . v_t, so dL/da_t = dL/db_{t+1}
                grad_agreement = grad_logits
                grad_v = torch.bmm(grad_agreement.reshape(batch * n_out, 1, n_in), rows).view(batch, n_out, dim)
                factors.append((grad_agreement, v))
            grad_s = _squash_backward(s, grad_v)
            factors.append((coupling, grad_s))
            if ctx.needs_input_grad[2]:
                grad_bias = grad_s.sum(dim=0) if grad_bias is None else grad_bias + grad_s.sum(dim=0)  # (10, 16)
            if detach_inner or t == 0:  # detached: c of the last iteration carries no gradient; c_0 is uniform
                break
            grad_coupling = torch.bmm(grad_s.view(batch * n_out, 1, dim), rows.mT).view(batch, n_out, n_in)
            # softmax over j; b_t also reaches b_{t+1} unchanged
            grad_here = coupling * (grad_coupling - (coupling * grad_coupling).sum(dim=1, keepdim=True))
            grad_logits = grad_here if grad_logits is None else grad_here + grad_logits

        # dL/du_hat in the layout the transform's product wrote: (1152, B, 10, 16). One factor pair (inner
        # iterations detached, the default): a broadcast product writes it there directly. Several: one
        # batched product sums them, then one transpose.
        if len(factors) == 1:
            p, q = factors[0]
            grad_u_hat = torch.empty(n_in, batch, n_out, dim, dtype=u_hat.dtype, device=u_hat.device)
            torch.mul(p.permute(2, 0, 1).unsqueeze(-1), q.unsqueeze(0), out=grad_u_hat)
        else:
            p = torch.stack([p for p, _ in factors], dim=-1).view(batch * n_out, n_in, -1)  # (B*10, 1152, M)
            q = torch.stack([q for _, q in factors], dim=-2).view(batch * n_out, -1, dim)  # (B*10, M, 16)
            grad_u_hat = torch.bmm(p, q).view(batch, n_out, n_in, dim).permute(2, 0, 1, 3).contiguous()
        grad_u_hat = grad_u_hat.view(n_in, batch, n_out * dim)  # (1152, B, 160)
        grad_u = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_u = torch.bmm(grad_u_hat, weight.mT).transpose(0, 1)  # (1152, B, 8) -> (B, 1152, 8)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.bmm(u.transpose(0, 1).mT, grad_u_hat)  # (1152, 8, B) @ (1152, B, 160)
        return grad_u, grad_weight, grad_bias, None, None, None


def routed_with_fused_backward(u: torch.Tensor, weight: torch.Tensor, *, out_capsules: int, iterations: int,
                               detach_inner: bool, bias: torch.Tensor | None = None) -> torch.Tensor:
    """v = dynamic_routing(predictions(u, weight, out_capsules), ..., bias=bias)[0], with the backward of the
    module doc. u: (B, n_in, D_in) float32, weight: (n_in, D_in, n_out * D_out), bias: (n_out, D_out) or
    None -> v: (B, n_out, D_out)."""
    assert u.dtype == weight.dtype, f"u and weight must share a dtype, got {u.dtype} and {weight.dtype}"
    return _FusedRouting.apply(u, weight, bias, out_capsules, iterations, detach_inner)
