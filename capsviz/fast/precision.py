"""The fast path's arithmetic, chosen per machine: bf16 where the hardware computes it natively, fp32
elsewhere.

Why: bf16 autocast and the bf16 DFT convolution roughly double the fast path's speed on a CPU with
AVX-512 BF16 or AMX (4.4x plain fp32 on an AMD EPYC), but on a CPU without them (Intel Cascade Lake,
AMD Zen 2/3, Apple M1, most laptops) bf16 is emulated with fp32 arithmetic plus conversions and costs
more than it saves: there the same fast path in fp32 is the fast one (see README, Performance).

`--precision auto` (the default) asks the CPU what it has, and where bf16 is native confirms it with a
short measured trial of both candidates on the real model (a few steps each, about a second), in the
spirit of cudnn.benchmark: a CPU can report the instructions and still run them slowly (a virtual
machine, a throttled core). `bf16` and `fp32` force the choice. The choice and its reason are printed
once and recorded in run.json's environment.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ..machine import CpuFeatures, cpu_features

PRECISIONS = ("auto", "bf16", "fp32")
# bf16 must beat fp32 by this much in the trial to be kept: within it, the two are a tie, and fp32
# (exact products) wins a tie.
TRIAL_MARGIN = 0.95


@dataclass(frozen=True)
class PrecisionChoice:
    """The arithmetic a run's fast path uses, why, and the trial's timings when one ran."""

    precision: str  # "bf16" or "fp32"
    requested: str  # "auto", "bf16" or "fp32"
    reason: str
    trial_ms: dict | None = None  # milliseconds per training step of each candidate

    def to_dict(self) -> dict:
        return asdict(self)


def check_precision(name: str) -> str:
    if name not in PRECISIONS:
        raise ValueError(f"--precision {name}: unknown precision (use auto, bf16 or fp32)")
    return name


def choose_precision(requested: str, device: torch.device, *, fast: bool = True,
                     features: CpuFeatures | None = None,
                     trial: Callable[[], dict[str, float]] | None = None) -> PrecisionChoice:
    """Decide the fast path's precision for `device`.

    features: the CPU's answer (default: this machine's, capsviz.machine.cpu_features).
    trial: measures both candidates, returning {"bf16": ms, "fp32": ms} per step; called only for
    `auto` on a CPU that reports native bf16. Without it the capability answer decides alone.
    """
    check_precision(requested)
    if not fast:
        return PrecisionChoice("fp32", requested, "plain path: fp32 throughout")
    if requested != "auto":
        return PrecisionChoice(requested, requested, f"--precision {requested} asked for")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", requested, f"{torch.cuda.get_device_name(device)} computes bf16 natively")
        return PrecisionChoice("fp32", requested, f"{torch.cuda.get_device_name(device)} lacks native bf16")
    if device.type != "cpu":
        return PrecisionChoice("fp32", requested, f"no bf16 autocast on {device.type}")
    features = features or cpu_features()
    if not features.native_bf16:
        return PrecisionChoice("fp32", requested, f"{features.model} has no native bf16 (no AVX-512 BF16, AMX or "
                                                  "Arm BF16): bf16 would be emulated and slower than fp32")
    what = "AMX" if features.amx_bf16 else "AVX-512 BF16" if features.avx512_bf16 else "Arm BF16"
    if trial is None:
        return PrecisionChoice("bf16", requested, f"{features.model} has {what}")
    timings = {name: round(ms, 2) for name, ms in trial().items()}
    if timings["bf16"] <= TRIAL_MARGIN * timings["fp32"]:
        return PrecisionChoice("bf16", requested, f"{features.model} has {what}, and a trial step took "
                                                  f"{timings['bf16']:.0f} ms in bf16 against {timings['fp32']:.0f} ms in fp32",
                               timings)
    return PrecisionChoice("fp32", requested, f"{features.model} reports {what}, but a trial step took "
                                              f"{timings['bf16']:.0f} ms in bf16 against {timings['fp32']:.0f} ms in fp32",
                           timings)


def time_steps(step: Callable[[], None], *, warmup: int = 1, repeats: int = 3) -> float:
    """Median milliseconds of `step()` after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append(1000 * (time.perf_counter() - start))
    return sorted(samples)[len(samples) // 2]
