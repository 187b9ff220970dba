"""The fast path: how the model is run on each device. Numbers behind each choice are in README
(Performance) and come from `python -m trainer.bench`."""
from __future__ import annotations

import contextlib
import ctypes
import sys

import torch

from .capsules import DigitCaps, PrimaryCaps

_allocator_tuned = False


def tune_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the OS.

    By default glibc serves blocks over 32 MiB with mmap and unmaps them on free, so every fresh
    (100, 10, 1152, 16) routing tensor (74 MB) costs page faults; on the 2-core CPU that was about
    a third of a training step. Linux with glibc only; elsewhere a no-op. Returns whether it applied.
    """
    global _allocator_tuned
    if _allocator_tuned or not sys.platform.startswith("linux"):
        return _allocator_tuned
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    _allocator_tuned = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2 ** 31 - 1))
    return _allocator_tuned


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16 autocast for the convolutions and the decoder when the precision is bf16 (routing stays fp32,
    see DigitCaps); none for fp32, and none on MPS."""
    return torch.bfloat16 if precision == "bf16" and device.type in ("cpu", "cuda") else None


def precision_context(device: torch.device, precision: str):
    dtype = autocast_dtype(device, precision)
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device: torch.device, fast: bool, *, precision: str = "bf16") -> torch.nn.Module:
    """Moves `model` to `device` and switches the fast path's modules on or off. `precision` ("bf16" or
    "fp32", see capsviz.precision) is the arithmetic of the fast path; the plain path is always fp32."""
    assert precision in ("bf16", "fp32"), f"precision must be bf16 or fp32, got {precision!r}"
    model = model.to(device)
    # On CPU the PrimaryCaps convolution goes through the DFT (capsviz.spectral) in the chosen precision:
    # about 1.5x faster than oneDNN's direct bf16 kernel in bf16, and about 2.5-3x less time than the
    # direct fp32 kernel where bf16 is not native. GPUs keep cuDNN's direct kernels.
    spectral_dtype = None
    if fast and device.type == "cpu":
        spectral_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    for module in model.modules():
        if isinstance(module, PrimaryCaps):
            module.spectral_dtype = spectral_dtype
        if isinstance(module, DigitCaps):
            # same numbers; a backward that skips the u_hat-sized temporaries (capsviz.routing)
            module.fused_backward = fast
    if fast:
        tune_allocator()
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        if device.type in ("cpu", "cuda"):
            model = model.to(memory_format=torch.channels_last)  # what oneDNN / cuDNN kernels want
    return model


def optimizer_options(device: torch.device, fast: bool) -> dict:
    """Keyword arguments for torch.optim.Adam on the fast path: its fused CPU kernel makes one pass over
    parameters, gradients and moments instead of one per operation (same update rule; 3.7 ms instead of
    9.7 ms per step for CapsNet's 8.2M parameters on the 2-core CPU). CUDA keeps Adam's default there."""
    return {"fused": True} if fast and device.type == "cpu" else {"fused": None}


def prepare_images(images: torch.Tensor, fast: bool) -> torch.Tensor:
    return images.contiguous(memory_format=torch.channels_last) if fast and images.device.type != "mps" else images
