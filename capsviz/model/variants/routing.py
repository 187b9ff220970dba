"""Procedure 1 with one of its rules broken, as public ports break it: the routing of the
softmax-over-inputs and shared-logits variants (capsviz.model.variants).

The reference (capsviz.model.capsnet.routing_iterations) keeps two rules that this function can break, one at a
time:

    coupling_over="inputs"  c = softmax of b over the INPUT capsules i (1152 of them), where eq. 3 takes it
                            over the output capsules j: c_ij = exp(b_ij) / sum_k exp(b_ik)
    shared_logits=True      one set of logits b_ij for the whole batch, each iteration adding the agreement
                            summed over the batch's examples, where Procedure 1 starts b_ij at 0 for every
                            example and updates it from that example alone

Everything else is the reference's (same layout, same float32, same optional stop of the gradient through
the inner iterations), so that a variant differs from the paper in its one bug and nothing else: with both
rules kept this computes exactly what the reference does (tests/test_variants.py checks that).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..capsnet import DigitCaps, RoutingStep, RoutingTrace, routed, squash

OUTPUTS, INPUTS = "outputs", "inputs"


def variant_routing_iterations(u_hat: torch.Tensor, *, iterations: int, detach_inner: bool = False,
                               update_last: bool = False, bias: torch.Tensor | None = None,
                               coupling_over: str = OUTPUTS, shared_logits: bool = False) -> Iterator[RoutingStep]:
    """Procedure 1, one RoutingStep per iteration, with the rule named by `coupling_over` or `shared_logits`
    broken (see the module's docstring). u_hat: (B, n_out, n_in, D), as the reference lays it out; bias as the
    reference's (the authors' recipe), so that a variant of that recipe differs from it in its bug alone. The
    coupling and logits in each step are (B, n_out, n_in) even when the logits are shared (the same numbers
    for every example), so that traces and the Routing page read them as the reference's."""
    assert iterations >= 1, f"routing needs at least one iteration, got {iterations}"
    assert coupling_over in (OUTPUTS, INPUTS), f"coupling_over must be {OUTPUTS} or {INPUTS}, got {coupling_over!r}"
    batch, n_out, n_in, _ = u_hat.shape
    # the shared-logits bug: one (1, n_out, n_in) tensor for the batch instead of one per example
    logits = u_hat.new_zeros(1 if shared_logits else batch, n_out, n_in)
    softmax_dim = 1 if coupling_over == OUTPUTS else 2  # dim 1 is j (the classes), dim 2 is i (the primary capsules)
    u_hat_inner = u_hat.detach() if detach_inner else u_hat
    for iteration in range(iterations):
        last = iteration == iterations - 1
        u = u_hat if last else u_hat_inner
        coupling = F.softmax(logits, dim=softmax_dim).expand(batch, n_out, n_in)
        s = (coupling.unsqueeze(2) @ u).squeeze(2)  # (B, 10, 1, 1152) @ (B, 10, 1152, 16) -> (B, 10, 16)
        if bias is not None:  # as the reference: detached with u_hat in the inner iterations
            s = s + (bias if last or not detach_inner else bias.detach())
        v = squash(s)
        updated = None
        if not last or update_last:
            agreement = (v.unsqueeze(2) @ u.mT).squeeze(2)  # (B, 10, 1152): u_hat_{j|i} . v_j per example
            if shared_logits:  # every example's agreement lands in the one set of logits
                agreement = agreement.sum(dim=0, keepdim=True)
            logits = logits + agreement
            updated = logits.expand(batch, n_out, n_in)
        yield RoutingStep(coupling, s, v, updated)


class VariantDigitCaps(DigitCaps):
    """DigitCaps whose routing is variant_routing_iterations with this class's broken rule. The same
    parameters under the same names as the reference (a variant's weights load into it and back), so the
    variants swap it in by changing a module's class, as the fast path does (capsviz.model.fast.modules). The fast
    path replaces only modules whose type is exactly DigitCaps, so it leaves these alone."""

    coupling_over: str = OUTPUTS
    shared_logits: bool = False

    def routing_iterations(self, u_hat: torch.Tensor, *, iterations: int, detach_inner: bool = False,
                           update_last: bool = False) -> Iterator[RoutingStep]:
        """This module's routing, step by step: what capsviz.model.routing_view traces instead of the reference's."""
        return variant_routing_iterations(u_hat, iterations=iterations, detach_inner=detach_inner,
                                          update_last=update_last, bias=self.bias, coupling_over=self.coupling_over,
                                          shared_logits=self.shared_logits)

    def forward(self, u: torch.Tensor, *, trace: bool = False,
                iterations: int | None = None) -> tuple[torch.Tensor, RoutingTrace | None]:
        with torch.autocast(device_type=u.device.type, enabled=False):  # float32 routing, as the reference
            u_hat = self.predictions(u.float())  # (B, 10, 1152, 16)
            steps = list(self.routing_iterations(u_hat, iterations=iterations or self.routings,
                                                 detach_inner=self.detach_inner, update_last=trace))
        return routed(steps, u_hat, trace=trace)  # the trace as the reference records it


class SoftmaxOverInputsDigitCaps(VariantDigitCaps):
    """The softmax-over-inputs bug: c_ij sums to 1 over the primary capsules i, not over the classes j."""

    coupling_over = INPUTS


class SharedLogitsDigitCaps(VariantDigitCaps):
    """The shared-logits bug: one b_ij for the whole batch, updated with the agreement summed over it."""

    shared_logits = True
