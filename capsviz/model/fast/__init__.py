"""The fast path: all the speed work, kept apart from the reference model (capsviz.model.capsnet), which it
changes only by swapping modules in. `prepare_model` turns it on or off; the numbers behind each choice
are in README (Performance) and come from `python -m trainer.bench`.

    modules.py    FastPrimaryCaps, FastDigitCaps: the reference layers with a faster computation swapped in
    spectral.py   PrimaryCaps' convolution through the DFT (CPU)
    routing.py    DigitCaps' backward written by hand
    precision.py  bf16 or fp32, chosen per machine
    allocator.py  a glibc setting that keeps freed memory in the heap

Every swap computes the same function from the same parameters: tests/test_spectral.py,
tests/test_fast_routing_backward.py and tests/test_fast_path_agreement.py check that against the reference.
"""
from __future__ import annotations

import contextlib

import torch

from .allocator import tune_allocator
from .modules import use_fast_modules, use_reference_modules


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16 autocast for the convolutions and the decoder when the precision is bf16 (routing stays fp32,
    see DigitCaps); none for fp32, and none on MPS."""
    return torch.bfloat16 if precision == "bf16" and device.type in ("cpu", "cuda") else None


def precision_context(device: torch.device, precision: str):
    dtype = autocast_dtype(device, precision)
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device: torch.device, fast: bool, *, precision: str = "bf16") -> torch.nn.Module:
    """Moves `model` to `device` and switches the fast path on or off, in place: the same parameters
    (same objects, same state_dict keys) whichever way it is switched. `precision` ("bf16" or "fp32",
    see capsviz.model.fast.precision) is the arithmetic of the fast path; the plain path is always fp32."""
    assert precision in ("bf16", "fp32"), f"precision must be bf16 or fp32, got {precision!r}"
    model = model.to(device)
    if not fast:
        use_reference_modules(model)
        return model.to(memory_format=torch.contiguous_format)  # undoes the fast path's channels_last
    # On CPU the PrimaryCaps convolution goes through the DFT (capsviz.model.fast.spectral) in the chosen
    # precision: about 1.5x faster than oneDNN's direct bf16 kernel in bf16, and about 2.5-3x less time
    # than the direct fp32 kernel where bf16 is not native. GPUs keep cuDNN's direct kernels. DigitCaps
    # gets the same numbers from a backward that skips the u_hat-sized temporaries (capsviz.model.fast.routing).
    spectral_dtype = None
    if device.type == "cpu":
        spectral_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    use_fast_modules(model, spectral_dtype=spectral_dtype)
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
