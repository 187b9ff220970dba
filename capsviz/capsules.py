"""Capsule building blocks: PrimaryCaps and DigitCaps (squash and dynamic routing are in .routing).

Shapes follow Sabour, Frosst & Hinton (2017), section 4, for a 28x28 input:
1152 primary capsules of 8D, 10 digit capsules of 16D.
"""
from __future__ import annotations

import torch
from torch import nn

from .routing import dynamic_routing, predictions, routed_with_fused_backward, squash
from .fast.spectral import spectral_conv2d


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
        self.out_capsules, self.routings, self.detach_inner = out_capsules, routings, detach_inner
        # stored as (n_in, D_in, n_out * D_out) so u_hat for all classes is one batched matmul per i
        self.weight = nn.Parameter(0.01 * torch.randn(in_capsules, in_dim, out_capsules * out_dim))
        # When set (the fast path, see capsviz.speed), training goes through routed_with_fused_backward:
        # the same forward, and a backward written by hand that never builds u_hat-sized temporaries.
        self.fused_backward = False

    def predictions(self, u: torch.Tensor) -> torch.Tensor:
        """u: (B, n_in, D_in) -> u_hat: (B, n_out, n_in, D_out)."""
        return predictions(u, self.weight, self.out_capsules)

    def forward(self, u: torch.Tensor, *, trace: bool = False):
        # Routing runs in float32 even under bf16 autocast: it is cheap next to the convolutions,
        # and the agreement sums over 1152 capsules lose too much in 8 bits of mantissa.
        with torch.autocast(device_type=u.device.type, enabled=False):
            if self.fused_backward and not trace:
                v = routed_with_fused_backward(u.float(), self.weight, out_capsules=self.out_capsules,
                                               iterations=self.routings, detach_inner=self.detach_inner)
                return v, None
            u_hat = self.predictions(u.float())
            return dynamic_routing(u_hat, iterations=self.routings, detach_inner=self.detach_inner, trace=trace)
