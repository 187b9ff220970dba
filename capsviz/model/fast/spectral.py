"""PrimaryCaps' strided convolution computed through the DFT: the CPU fast path's main saving.

Why: on a CPU the 9x9 stride-2 PrimaryCaps convolution (256 -> 256 channels on 20x20) is most of a
training step, and oneDNN's direct bf16 kernels already run it close to the machine's peak. Going faster
means doing less arithmetic, which the convolution theorem allows:

1. A 2-D DFT of the input on an H x W grid, and of the kernel zero-padded to that grid. The grid is the
   part of the input that some output reads ((out - 1) * stride + kernel: 19 x 19 of MNIST's 20 x 20,
   whose last row and column a 9x9 stride-2 window never reaches). A valid correlation never wraps
   around that grid, so the circular correlation is exact: Z(k) = sum over input channels of
   X(k) conj(W(k)), and the stride only picks which outputs to keep.
2. Per frequency that sum is a complex matrix product (B x C) @ (C x O). Gauss's trick writes it as three
   real products, T1 = (Xr + Xi) Wr, T2 = Xr (Wr + Wi), T3 = Xi (Wr - Wi), with Zr = T1 - T3 and
   Zi = T1 - T2. The sums are folded into the DFT matrices, so the layer becomes three independent real
   products ("components") per frequency: one batched matmul, forward and in each backward product.
3. The inverse DFT is evaluated only at the strided valid outputs (6 x 6 for MNIST).

For MNIST (a 19x19 grid, 190 half-spectrum frequencies) the products cost 3 x 190 = 570 real
multiply-adds per (image, in-channel, out-channel) against 36 x 81 = 2916 for the direct convolution:
5.1x less arithmetic. Every DFT is a small dense real matrix applied as a matmul, separably (rows, then
columns), and each step's layout is what the next matmul reads; the only copies are transposes that
move whole channel runs. Measured on the 2-core CPU (AMD EPYC, AVX-512 bf16; batch 100, bf16): forward
and backward of this layer 77 ms against 210-230 ms for oneDNN's direct bf16 convolution.

Left on the table: in the k2 = 0 column of the half spectrum, k1 and H - k1 are conjugates, so 9 of the
190 frequencies repeat others (5% of the products); dropping them would break the separable layout.

Numerics: exact in float64 (tests compare with F.conv2d and run gradcheck). In bf16 the rounding error is
spread over all outputs instead of staying with each output's own sum: about 0.7% relative error on the
MNIST layer against 0.29% for a direct bf16 convolution. tests/test_fast_path_agreement.py checks that predictions and
losses match the plain fp32 path, and the benchmark's accuracy mode compares test error after training.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F


class Transforms(NamedTuple):
    """Real DFT matrices for an H x W circular correlation over the half spectrum (rfft2 layout).

    Frequencies k = (k1, k2), k1 < H and k2 <= W // 2 (K2 of them), are ordered k1-major: F = H * K2.
    rows:      (2*K2, W)   the DFT along a row: real parts, then imaginary parts, of each k2
    columns:   (3*H, 2*H)  the DFT along a column, from the row transform laid out (position, re/im),
                           straight to the three components Xr + Xi, Xr, Xi of each k1
    kernel_rows, kernel_columns: the same for a kernel on the top-left K x K of the grid, with the
                           components Wr, Wr + Wi, Wr - Wi that pair with the input's
    synthesis: (outputs, 3F)  z[s] = sum_k h(k) (Zr cos theta - Zi sin theta) / (H * W) at the strided
                           valid positions, written in T1, T2, T3; h(k) = 2 for half-spectrum frequencies
                           that stand for a conjugate pair
    """

    rows: torch.Tensor
    columns: torch.Tensor
    kernel_rows: torch.Tensor
    kernel_columns: torch.Tensor
    synthesis: torch.Tensor


@functools.lru_cache(maxsize=16)
def transforms(height: int, width: int, kernel: int, stride: int, dtype: torch.dtype, device: str) -> Transforms:
    f64 = torch.float64
    k1, k2 = torch.arange(height, dtype=f64), torch.arange(width // 2 + 1, dtype=f64)

    phi = 2 * math.pi * k2[:, None] * torch.arange(width, dtype=f64)[None] / width  # (K2, W)
    rows = torch.cat([torch.cos(phi), -torch.sin(phi)])

    # X(k1) = sum_h exp(-i psi) (Ar + i Ai) for the row transform A:  Xr = cos Ar + sin Ai,  Xi = cos Ai - sin Ar
    psi = 2 * math.pi * k1[:, None] * torch.arange(height, dtype=f64)[None] / height  # (k1, h)
    cos, sin = torch.cos(psi), torch.sin(psi)
    real = torch.stack([cos, sin], dim=2).reshape(height, 2 * height)  # columns laid out (h, re/im)
    imag = torch.stack([-sin, cos], dim=2).reshape(height, 2 * height)
    columns = torch.cat([real + imag, real, imag])
    real, imag = real[:, :2 * kernel], imag[:, :2 * kernel]
    kernel_columns = torch.cat([real, real + imag, real - imag])

    out_rows = torch.arange(0, height - kernel + 1, stride, dtype=f64)
    out_cols = torch.arange(0, width - kernel + 1, stride, dtype=f64)
    theta = 2 * math.pi * ((out_rows[:, None, None, None] * k1[:, None] / height)
                           + (out_cols[None, :, None, None] * k2[None, :] / width))  # (i, j, k1, k2)
    theta = theta.reshape(len(out_rows) * len(out_cols), -1)
    hermitian = torch.where((k2 == 0) | (2 * k2 == width), 1.0, 2.0).to(f64).repeat(height) / (height * width)
    cos, sin = torch.cos(theta) * hermitian, torch.sin(theta) * hermitian
    synthesis = torch.cat([cos - sin, sin, -cos], dim=1)  # Zr cos - Zi sin = T1 (cos - sin) + T2 sin - T3 cos
    matrices = (rows, columns, rows[:, :kernel], kernel_columns, synthesis)
    return Transforms(*(m.to(dtype=dtype, device=device).contiguous() for m in matrices))


def _analyse(values: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """(H, W, N) -> (3F, N): the components of the 2-D DFT over (H, W) of N signals."""
    height, width, signals = values.shape
    along_rows = torch.bmm(rows.expand(height, *rows.shape), values)  # (H, 2*K2, N), laid out (h, re/im, k2)
    return (columns @ along_rows.view(2 * height, -1)).view(-1, signals)  # (3*H, K2*N) = (3F, N)


def _analyse_transposed(spectrum: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Adjoint of _analyse: (3F, N) -> (H, W, N)."""
    height = columns.shape[1] // 2
    along_rows = (columns.T @ spectrum.view(columns.shape[0], -1)).view(height, rows.shape[0], -1)
    return torch.bmm(rows.T.expand(height, *rows.T.shape), along_rows)


class _SpectralConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, dtype):
        batch, channels, full_height, full_width = x.shape
        out_channels, _, size, _ = weight.shape
        out_h, out_w = (full_height - size) // stride + 1, (full_width - size) // stride + 1
        # Only the rows and columns that some output reads go into the DFT: when the stride does not
        # divide the size, the last ones are never read (row 19 of 20 for MNIST), and a smaller grid
        # means fewer frequencies, so fewer products (19 x 10 instead of 20 x 11 for MNIST).
        height, width = (out_h - 1) * stride + size, (out_w - 1) * stride + size
        dft = transforms(height, width, size, stride, dtype, str(x.device))

        signals = x[:, :, :height, :width].to(dtype).permute(2, 3, 0, 1)
        signals = signals.reshape(height, width, batch * channels)  # (H, W, B*C)
        xf = _analyse(signals, dft.rows, dft.columns).view(-1, batch, channels)  # (3F, B, C)
        # taps first, so that the transform comes out laid out (3F, O, C) for the products (a cheap copy
        # when the weight is channels_last, as the fast path makes it)
        taps = weight.to(dtype).permute(2, 3, 0, 1).reshape(size, size, out_channels * channels)
        wf = _analyse(taps, dft.kernel_rows, dft.kernel_columns)
        wf = wf.view(-1, out_channels, channels)  # (3F, O, C)
        products = torch.bmm(xf, wf.mT)  # (3F, B, O): T1, T2, T3 for every frequency
        y = (dft.synthesis @ products.view(products.shape[0], -1)).view(out_h * out_w, batch, out_channels)
        if bias is not None:
            y = y + bias.to(dtype)
        ctx.save_for_backward(xf, wf)
        ctx.meta = (x.dtype, weight.dtype, full_height, full_width, height, width, size, stride, dtype, bias is not None)
        return y.permute(1, 2, 0).view(batch, out_channels, out_h, out_w)

    @staticmethod
    def backward(ctx, grad_out):
        xf, wf = ctx.saved_tensors
        x_dtype, w_dtype, full_height, full_width, height, width, size, stride, dtype, has_bias = ctx.meta
        batch, out_channels, out_h, out_w = grad_out.shape
        dft = transforms(height, width, size, stride, dtype, str(grad_out.device))
        channels = xf.shape[2]
        grad_y = grad_out.to(dtype).permute(2, 3, 0, 1).reshape(out_h * out_w, batch * out_channels)
        grad_products = (dft.synthesis.T @ grad_y).view(-1, batch, out_channels)  # (3F, B, O)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_xf = torch.bmm(grad_products, wf)  # (3F, B, C)
            signals = _analyse_transposed(grad_xf, dft.rows, dft.columns)  # (H, W, B*C)
            # back to (B, C, H, W) in channels_last memory, what the convolution before wants; the rows
            # and columns left out of the grid get zeros (the pad is the copy that the permute needs anyway)
            grad_x = signals.view(height, width, batch, channels).permute(2, 0, 1, 3)
            grad_x = F.pad(grad_x, (0, 0, 0, full_width - width, 0, full_height - height)).contiguous()
            grad_x = grad_x.permute(0, 3, 1, 2).to(x_dtype)
        if ctx.needs_input_grad[1]:
            grad_wf = torch.bmm(grad_products.mT, xf)  # (3F, O, C)
            taps = _analyse_transposed(grad_wf.view(grad_wf.shape[0], -1), dft.kernel_rows, dft.kernel_columns)
            grad_w = taps.view(size, size, out_channels, channels).permute(2, 0, 1, 3).contiguous()
            grad_w = grad_w.permute(0, 3, 1, 2).to(w_dtype)  # (O, C, K, K) in channels_last memory
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3)).to(w_dtype)
        return grad_x, grad_w, grad_b, None, None


def spectral_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                    stride: int = 1, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """F.conv2d(x, weight, bias, stride=stride) without padding, computed through the DFT (module doc).

    The arithmetic runs in `dtype` (bf16 matmuls accumulate in float32) and so does the output; the
    gradients come back in the inputs' own dtypes. Square kernels only.
    """
    assert x.dim() == 4 and weight.dim() == 4 and x.shape[1] == weight.shape[1], (
        f"expected (B, C, H, W) input and (O, C, K, K) weight, got {tuple(x.shape)} and {tuple(weight.shape)}")
    assert weight.shape[2] == weight.shape[3], f"square kernels only, got {tuple(weight.shape[2:])}"
    assert min(x.shape[2:]) >= weight.shape[2], f"input {tuple(x.shape[2:])} is smaller than the kernel"
    return _SpectralConv.apply(x, weight, bias, stride, dtype)
