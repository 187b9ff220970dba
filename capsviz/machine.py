"""The machine: which device a command runs on (resolve_device), and what machine a figure came from,
the one record that run.json's environment and the benchmark's JSON share (CPU model and the
instruction-set flags that decide the fast path's precision, torch, threads, GPU, git commit)."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The fast path's arithmetic a run may ask for (--precision; chosen per machine by capsviz.model.fast.precision).
# Named here, with the machine, so that the run format can check the setting without loading speed code.
PRECISIONS = ("auto", "bf16", "fp32")
# Variables that change which kernels run or how many threads they get: recorded when set, since a
# figure measured under them is not the machine's default (ONEDNN_MAX_CPU_ISA can emulate an older CPU).
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE")
KERNEL_VARIABLES = (*ISA_VARIABLES, "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu. Raises ValueError for a device this machine lacks."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available on this machine (try --device auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: Apple's MPS backend is not available on this machine (try --device auto)")
    if name not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {name}: unknown device (use auto, cpu, cuda or mps)")
    return torch.device(name)


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU's model name and what it does natively for bf16.

    avx512_bf16 / amx_bf16: x86 instructions that compute bf16 products at (at least) twice the fp32 rate;
    without them PyTorch and oneDNN emulate bf16 with fp32 arithmetic plus conversions, which is slower
    than fp32 itself. arm_bf16: the Armv8.6 BF16 extension (Apple M2 and later, Graviton 3)."""

    model: str
    avx512: bool
    avx512_bf16: bool
    amx_bf16: bool
    arm_bf16: bool

    @property
    def native_bf16(self) -> bool:
        return self.avx512_bf16 or self.amx_bf16 or self.arm_bf16

    def to_dict(self) -> dict:
        return {**asdict(self), "native_bf16": self.native_bf16}


def _cpuinfo() -> tuple[str | None, set[str]]:
    """Model name and flags from /proc/cpuinfo (Linux); (None, empty) elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, set()
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "features") and not flags:  # x86 says flags, Arm says Features
            flags = set(value.split())
    return model, flags


def _torch_cpu_check(name: str) -> bool:
    check = getattr(torch.cpu, name, None)  # private helpers of torch.cpu; absent in some builds
    try:
        return bool(check()) if check else False
    except RuntimeError:
        return False


@functools.cache
def cpu_features() -> CpuFeatures:
    model, flags = _cpuinfo()
    if model is None:
        model = platform.processor() or platform.machine() or "unknown CPU"
        if platform.system() == "Darwin":
            try:
                model = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                       text=True, timeout=5).stdout.strip() or model
            except (OSError, subprocess.SubprocessError):
                pass
    arm = platform.machine().lower() in ("arm64", "aarch64")
    return CpuFeatures(
        model=model,
        avx512=_torch_cpu_check("_is_avx512_supported"),
        avx512_bf16=_torch_cpu_check("_is_avx512_bf16_supported") or "avx512_bf16" in flags,
        amx_bf16=_torch_cpu_check("_is_amx_tile_supported") or "amx_bf16" in flags,
        arm_bf16=arm and "bf16" in flags,
    )


def git_commit() -> str | None:
    """HEAD of the checkout this code runs from, with -dirty when tracked files differ; None outside git."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                timeout=5)
        if result.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() + ("-dirty" if dirty else "")


def describe_machine(device: torch.device) -> dict:
    """Where a run trained or a benchmark measured. Plain JSON types only (state.pt loads weights_only)."""
    cpu = cpu_features()
    info = {"torch": str(torch.__version__), "python": platform.python_version(), "platform": platform.platform(),
            "device": device.type, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "git_commit": git_commit(), "processor": platform.processor() or platform.machine(),
            "cpu": cpu.model, "cpu_flags": {key: value for key, value in cpu.to_dict().items() if key != "model"}}
    overrides = {name: os.environ[name] for name in KERNEL_VARIABLES if name in os.environ}
    if overrides:
        info["kernel_variables"] = overrides
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info
