"""The fast path's capsule layers: subclasses of the reference PrimaryCaps and DigitCaps
(capsviz.model.capsnet) that compute the same function from the same parameters, faster.

prepare_model (capsviz.model.fast) swaps them in by changing the class of the model's own modules rather than
building new ones: the parameters stay the same objects under the same names, so state_dict keys, saved
weights and an optimizer's references are untouched, and swapping back gives the reference modules.
"""
from __future__ import annotations

import torch
from torch import nn

from ..capsnet import MAX_ROUTINGS, MIN_ROUTINGS, DigitCaps, PrimaryCaps, RoutingTrace
from .routing import FUSED_PARAMETERS, routed_with_fused_backward
from .spectral import spectral_conv2d


class FastPrimaryCaps(PrimaryCaps):
    """PrimaryCaps with its convolution computed through the DFT (capsviz.model.fast.spectral) in
    `spectral_dtype`: the same weights and function, about a fifth of the arithmetic. For CPUs. The
    authors' scale and capsule bias (recipe part "primary") are applied by PrimaryCaps.forward after this;
    their convolution has no bias (conv.bias None), which spectral_conv2d takes."""

    spectral_dtype: torch.dtype  # set by use_fast_modules

    def convolve(self, features: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        return spectral_conv2d(features, conv.weight, conv.bias, stride=conv.stride[0],
                               dtype=self.spectral_dtype)  # (B, 32*8, 6, 6)


def fused_routing_problem(module: nn.Module) -> str | None:
    """Why the hand-written backward (capsviz.model.fast.routing) cannot stand in for `module`'s routing, or None when
    it can: it was written for the reference DigitCaps' routing (not a subclass's, which may route otherwise),
    with no parameter but W_ij and its bias, and the routing settings in their range."""
    if type(module) not in (DigitCaps, FastDigitCaps):
        return (f"{type(module).__name__}: the fused routing backward was written for DigitCaps' own routing "
                f"(softmax over the output capsules, dot-product agreement), not a subclass's")
    names = {name for name, _ in module.named_parameters()} | {name for name, _ in module.named_buffers()}
    if not {"weight"} <= names <= FUSED_PARAMETERS:
        return (f"DigitCaps with {', '.join(sorted(names))}: the fused routing backward differentiates "
                f"{', '.join(sorted(FUSED_PARAMETERS))} only")
    routings, detach_inner = getattr(module, "routings", None), getattr(module, "detach_inner", None)
    if not (isinstance(routings, int) and MIN_ROUTINGS <= routings <= MAX_ROUTINGS and isinstance(detach_inner, bool)):
        return f"DigitCaps with routings {routings!r}, detach_inner {detach_inner!r}: not a routing the fused backward knows"
    return None


class FastDigitCaps(DigitCaps):
    """DigitCaps with a backward written by hand (capsviz.model.fast.routing) that skips autograd's u_hat-sized
    temporaries. The same forward; with trace=True (the dashboard) it is the reference's own forward,
    the one that records coupling and logits. Refuses (TypeError) a layer the backward was not written for
    (fused_routing_problem); use_fast_modules does not swap those in."""

    def forward(self, u: torch.Tensor, *, trace: bool = False,
                iterations: int | None = None) -> tuple[torch.Tensor, RoutingTrace | None]:
        if trace or iterations is not None:
            return super().forward(u, trace=trace, iterations=iterations)
        problem = fused_routing_problem(self)
        if problem:
            raise TypeError(problem)
        with torch.autocast(device_type=u.device.type, enabled=False):  # float32 routing, as the reference
            v = routed_with_fused_backward(u.float(), self.weight, out_capsules=self.out_capsules,
                                           iterations=self.routings, detach_inner=self.detach_inner, bias=self.bias)
        return v, None  # (B, 10, 16)


def use_fast_modules(model: nn.Module, *, spectral_dtype: torch.dtype | None) -> nn.Module:
    """Every DigitCaps in `model` becomes a FastDigitCaps, and every PrimaryCaps a FastPrimaryCaps computing
    in `spectral_dtype` when one is given (None keeps the reference convolution). In place; returns model.
    A DigitCaps the fused backward was not written for (fused_routing_problem) keeps the reference routing."""
    use_reference_modules(model)  # from a known start: a model prepared before may hold either version
    for module in model.modules():
        # exact types: a subclass of the reference is not ours to replace
        if type(module) is DigitCaps and fused_routing_problem(module) is None:
            module.__class__ = FastDigitCaps
        elif type(module) is PrimaryCaps and spectral_dtype is not None:
            module.__class__ = FastPrimaryCaps
            module.spectral_dtype = spectral_dtype
    return model


def use_reference_modules(model: nn.Module) -> nn.Module:
    """Undoes use_fast_modules: every fast module in `model` is its reference class again. In place."""
    for module in model.modules():
        if type(module) is FastPrimaryCaps:
            del module.spectral_dtype
            module.__class__ = PrimaryCaps
        elif type(module) is FastDigitCaps:
            module.__class__ = DigitCaps
    return model
