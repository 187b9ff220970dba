"""Capsule building blocks: squash, dynamic routing (Procedure 1), PrimaryCaps and DigitCaps.

Shapes follow Sabour, Frosst & Hinton (2017), section 4, for a 28x28 input:
1152 primary capsules of 8D, 10 digit capsules of 16D.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .spectral import spectral_conv2d

# Added under the square root of |s|^2: keeps the gradient of squash finite at s = 0
# (a bare sqrt has an infinite derivative there, a known source of NaN losses in public ports).
SQUASH_EPS = 1e-8


def squash(s: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """v = |s|^2 / (1 + |s|^2) * s / |s|  (paper, eq. 1), written as s * |s| / (1 + |s|^2).

    The length of v is below 1 and its direction is that of s. At s = 0 the output is 0 and the
    gradient is finite thanks to SQUASH_EPS.
    """
    squared_norm = (s * s).sum(dim=dim, keepdim=True)
    norm = torch.sqrt(squared_norm + SQUASH_EPS)
    return s * (norm / (1.0 + squared_norm))


@dataclass
class RoutingTrace:
    """What dynamic routing did, one entry per iteration.

    coupling: (B, iterations, n_in, n_out) coupling coefficients c_ij used in each iteration.
    logits:   (B, iterations, n_in, n_out) routing logits b_ij after each iteration's update.
    """

    coupling: torch.Tensor
    logits: torch.Tensor


def dynamic_routing(
    u_hat: torch.Tensor, *, iterations: int, detach_inner: bool = False, trace: bool = False
) -> tuple[torch.Tensor, RoutingTrace | None]:
    """Routing by agreement (paper, Procedure 1).

    u_hat: (B, n_out, n_in, D) prediction vectors u_hat_{j|i}. Laid out with the output capsule
    before the input capsule so that both the weighted sum over i and the agreement are batched
    matrix products, with no (B, n_in, n_out, D) temporaries.
    Returns v: (B, n_out, D), and the trace when asked for.

    The logits b start at zero for every example on every call (not a parameter, not shared across
    the batch) and the softmax runs over the OUTPUT capsules j, as the paper specifies.
    detach_inner: when True, the iterations before the last see u_hat without gradient (what
    several PyTorch ports do); the paper is silent and the official code lets gradients through,
    which is our default.
    """
    assert iterations >= 1, f"routing needs at least one iteration, got {iterations}"
    batch, n_out, n_in, _ = u_hat.shape
    logits = u_hat.new_zeros(batch, n_out, n_in)  # (B, 10, 1152)
    u_hat_inner = u_hat.detach() if detach_inner else u_hat
    couplings, logit_history = [], []
    for iteration in range(iterations):
        last = iteration == iterations - 1
        u = u_hat if last else u_hat_inner
        coupling = F.softmax(logits, dim=1)  # over output capsules j: sums to 1 for each i
        s = (coupling.unsqueeze(2) @ u).squeeze(2)  # (B, 10, 1, 1152) @ (B, 10, 1152, 16) -> (B, 10, 16)
        v = squash(s)
        if trace:
            couplings.append(coupling)
        if not last or trace:
            # agreement u_hat_{j|i} . v_j; the last iteration's update is only needed for the trace
            # written v^T u_hat^T (a row times a transposed matrix) rather than u_hat v: the same
            # numbers, but CPU BLAS streams it about 3x faster (matrix-vector products with rows of 16
            # are a slow case), and this is the one read of u_hat that routing does twice per pass
            agreement = (v.unsqueeze(2) @ u.mT).squeeze(2)  # (B, 10, 1, 16) @ (B, 10, 16, 1152) -> (B, 10, 1152)
            logits = logits + agreement
            if trace:
                logit_history.append(logits)
    if not trace:
        return v, None
    # stored as (B, iterations, n_in, n_out): input capsules first, as in the paper's c_ij
    to_ij = lambda ts: torch.stack(ts, dim=1).transpose(2, 3).detach()  # noqa: E731
    return v, RoutingTrace(coupling=to_ij(couplings), logits=to_ij(logit_history))


class PrimaryCaps(nn.Module):
    """A 9x9 stride-2 convolution whose channels are grouped into `types` capsules of `dim` each."""

    def __init__(self, *, in_channels: int, types: int, dim: int, kernel_size: int = 9, stride: int = 2):
        super().__init__()
        self.types, self.dim = types, dim
        self.conv = nn.Conv2d(in_channels, types * dim, kernel_size, stride=stride)
        # When set (the CPU fast path, see capsviz.speed), the convolution is computed through the DFT in
        # this dtype: same weights, same function, about a third of the arithmetic (capsviz.spectral).
        self.spectral_dtype: torch.dtype | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.spectral_dtype is not None:
            out = spectral_conv2d(features, self.conv.weight, self.conv.bias, stride=self.conv.stride[0],
                                  dtype=self.spectral_dtype)
        else:
            out = self.conv(features)  # (B, 32*8, 6, 6)
        batch, _, height, width = out.shape
        # channel c belongs to capsule type c // dim; capsules ordered (type, row, column)
        out = out.reshape(batch, self.types, self.dim, height * width)
        out = out.transpose(2, 3).reshape(batch, self.types * height * width, self.dim)  # (B, 1152, 8)
        return squash(out.float())


class DigitCaps(nn.Module):
    """One 8x16 transform W_ij per (primary capsule i, digit capsule j), then dynamic routing."""

    def __init__(self, *, in_capsules: int, in_dim: int, out_capsules: int, out_dim: int,
                 routings: int, detach_inner: bool = False):
        super().__init__()
        assert 1 <= routings <= 10, f"routings must be in 1..10, got {routings}"
        self.in_capsules, self.out_capsules, self.out_dim = in_capsules, out_capsules, out_dim
        self.routings, self.detach_inner = routings, detach_inner
        # stored as (n_in, D_in, n_out * D_out) so u_hat for all classes is one batched matmul per i
        self.weight = nn.Parameter(0.01 * torch.randn(in_capsules, in_dim, out_capsules * out_dim))

    def predictions(self, u: torch.Tensor) -> torch.Tensor:
        """u: (B, n_in, D_in) -> u_hat: (B, n_out, n_in, D_out)."""
        batch = u.shape[0]
        u_hat = torch.bmm(u.transpose(0, 1), self.weight)  # (1152, B, 8) @ (1152, 8, 160) -> (1152, B, 160)
        u_hat = u_hat.view(self.in_capsules, batch, self.out_capsules, self.out_dim)
        return u_hat.permute(1, 2, 0, 3).contiguous()  # (B, 10, 1152, 16)

    def forward(self, u: torch.Tensor, *, trace: bool = False):
        # Routing runs in float32 even under bf16 autocast: it is cheap next to the convolutions,
        # and the agreement sums over 1152 capsules lose too much in 8 bits of mantissa.
        with torch.autocast(device_type=u.device.type, enabled=False):
            u_hat = self.predictions(u.float())
            return dynamic_routing(u_hat, iterations=self.routings, detach_inner=self.detach_inner, trace=trace)
