"""The fast path's arithmetic, chosen per machine: bf16 where the hardware computes it natively, fp32
elsewhere.

Why: bf16 autocast and the bf16 DFT convolution roughly double the fast path's speed on a CPU with
AVX-512 BF16 or AMX (4.4x plain fp32 on an AMD EPYC), but on a CPU without them (Intel Cascade Lake,
AMD Zen 2/3, Apple M1, most laptops) bf16 is emulated with fp32 arithmetic plus conversions and costs
more than it saves: there the same fast path in fp32 is the fast one (see README, Performance).

`--precision auto` (the default) asks the CPU what it has, and where bf16 is native confirms it with a
short measured trial of both candidates on the real model (a few steps each, about a second), in the
spirit of cudnn.benchmark: a CPU can report the instructions and still run them slowly (a virtual
machine, a throttled core). A run too short for the trial to pay (under TRIAL_MIN_IMAGES training
images in all: a smoke test, a demo, the test suite's runs) skips it and takes the CPU's answer. `bf16` and
`fp32` force the choice. The choice and its reason are printed once and recorded in run.json's environment.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ...machine import ISA_VARIABLES, PRECISIONS, CpuFeatures, cpu_features

# The trial overrules the CPU's answer only when bf16 is clearly slower: each candidate's figure is the
# fastest of several steps (a busy machine slows single steps, never speeds them up), and bf16 is kept
# unless it takes more than this factor of fp32's time. Within it the CPU's answer stands, so two runs on
# one machine choose alike (runs of the same seed then match exactly).
TRIAL_MARGIN = 1.1

# The trial costs a dozen training steps of 16 images plus two copies of the model, about 3 s on a 2-core
# Xeon with AMX, at every start. It changes the choice only on a CPU that reports bf16 and runs it slowly (a
# VM with capped instructions: bf16 at twice fp32's time), where a run without it takes up to twice as long.
# Under a tenth of an MNIST epoch (20-60 s of training) we take the CPU's answer and spare every short run
# the trial. Our choice; the paper trains on GPUs and says nothing of precision.
TRIAL_MIN_IMAGES = 6000


@dataclass(frozen=True)
class PrecisionChoice:
    """The arithmetic a run's fast path uses, why, and the trial's timings when one ran."""

    precision: str  # "bf16" or "fp32"
    requested: str  # "auto", "bf16" or "fp32"
    reason: str
    trial_ms: dict | None = None  # milliseconds per training step of each candidate

    def to_dict(self) -> dict:
        return asdict(self)


def same_cpu(a: dict, b: dict) -> bool:
    """Whether two machine records (capsviz.machine.describe_machine) describe the same kind of CPU. A cap on
    the kernels' instruction sets (ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS) makes it another kind: the
    same CPU capped at Cascade Lake's instructions runs bf16 at half fp32's speed."""
    def caps(record: dict) -> dict:
        variables = record.get("kernel_variables") or {}
        return {name: value for name, value in variables.items() if name in ISA_VARIABLES}

    return (a.get("device") == b.get("device") == "cpu" and a.get("cpu") == b.get("cpu")
            and a.get("cpu_flags") == b.get("cpu_flags") and caps(a) == caps(b))


def kept_on_resume(previous: dict, current: dict, requested: str) -> PrecisionChoice | None:
    """On --resume with `auto` on the same kind of CPU, the precision the run last trained with, so a
    resumed run continues exactly as it would have; None elsewhere (another machine decides afresh)."""
    precision = previous.get("precision")
    if requested != "auto" or precision not in ("bf16", "fp32") or not same_cpu(previous, current):
        return None
    return PrecisionChoice(precision, requested, f"kept from the run's last start on this kind of CPU "
                                                 f"({previous.get('precision_reason', 'no reason recorded')})")


def check_precision(name: str) -> str:
    if name not in PRECISIONS:
        raise ValueError(f"--precision {name}: unknown precision (use auto, bf16 or fp32)")
    return name


def choose_precision(requested: str, device: torch.device, *, fast: bool = True,
                     features: CpuFeatures | None = None,
                     trial: Callable[[], dict[str, float]] | None = None,
                     training_images: int | None = None) -> PrecisionChoice:
    """Decide the fast path's precision for `device`.

    features: the CPU's answer (default: this machine's, capsviz.machine.cpu_features).
    trial: measures both candidates, returning {"bf16": ms, "fp32": ms} per step; called only for
    `auto` on a CPU that reports native bf16. Without it the capability answer decides alone.
    training_images: how many images the run trains on in all (None: unknown, as for a time budget); under
    TRIAL_MIN_IMAGES the trial is skipped.
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
    if training_images is not None and training_images < TRIAL_MIN_IMAGES:
        return PrecisionChoice("bf16", requested, f"{features.model} has {what} (no trial: a run of "
                                                  f"{training_images:,} training images is too short for it to pay)")
    timings = {name: round(ms, 2) for name, ms in trial().items()}
    if timings["bf16"] <= TRIAL_MARGIN * timings["fp32"]:
        return PrecisionChoice("bf16", requested, f"{features.model} has {what}, and a trial step took "
                                                  f"{timings['bf16']:.0f} ms in bf16 against {timings['fp32']:.0f} ms in fp32",
                               timings)
    return PrecisionChoice("fp32", requested, f"{features.model} reports {what}, but a trial step took "
                                              f"{timings['bf16']:.0f} ms in bf16 against {timings['fp32']:.0f} ms in fp32",
                           timings)


def time_steps(steps: dict[str, Callable[[], None]], *, warmup: int = 1, repeats: int = 5) -> dict[str, float]:
    """Fastest milliseconds of each candidate's `step()` over `repeats` calls after `warmup` untimed ones.
    The candidates take turns, so a burst of other work on the machine slows both alike."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            samples[name].append(1000 * (time.perf_counter() - start))
    return {name: min(times) for name, times in samples.items()}
