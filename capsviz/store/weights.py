"""A run's weights: model.pt (latest weights: {"format", "model", "model_config", "dtype", "state_dict"};
float16 on disk by default, restored to float32 on load; compact int8 with per-channel scales in shipped
runs) and state.pt (the trainer's resume state). Loaded with torch.load(weights_only=True): no code runs."""
from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_torch_save
from ..data.datasets import DATASETS
from ..model import variants
from ..model.registry import model_from_config, model_kind
from .checks import show_value
from .files import read_bytes
from .format import FORMAT_VERSION, STATE, WEIGHTS, RunError


def write_weights(run_dir: Path, model: nn.Module, *, dtype: torch.dtype = torch.float16) -> None:
    state = {name: tensor.detach().to("cpu", dtype if tensor.is_floating_point() else tensor.dtype).contiguous()
             for name, tensor in model.state_dict().items()}
    atomic_torch_save(Path(run_dir) / WEIGHTS, {
        "format": FORMAT_VERSION, "model": model_kind(model), "model_config": model.config.to_dict(),
        "dtype": str(dtype).removeprefix("torch."), "state_dict": state, **variants.weights_entry(model),
    })


# ---- compact weights (what ships in checkpoints/) --------------------------------------------------
# int8 with one float32 scale per output channel (convolutions, linear layers) or per capsule pair (i, j)
# (DigitCaps' W_ij): a quarter of float32's bytes, half of float16's. Biases and small tensors stay
# float32. Symmetric rounding, q = round(w / scale) with scale = max|w| / 127 over the group, so that
# the largest weight of each group is exact and no group's range is set by another's.
COMPACT_MIN_ELEMENTS = 4096  # tensors smaller than this stay float32: they cost little and gain nothing
DIGIT_WEIGHT = "digits.weight"  # W_ij, (n_in, D_in, n_out * D_out): grouped by (i, j), not by output column


def quantise_int8(tensor: torch.Tensor, group_shape: tuple[int, ...], reduce_dims: tuple[int, ...]) -> dict:
    """{"q": int8 in group_shape, "scale": float32 broadcasting against it, "shape": the original shape}."""
    grouped = tensor.detach().to("cpu", torch.float32).reshape(group_shape)
    scale = grouped.abs().amax(dim=reduce_dims, keepdim=True) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero group stays zero
    q = torch.round(grouped / scale).clamp(-127, 127).to(torch.int8)
    return {"q": q.contiguous(), "scale": scale.contiguous(), "shape": list(tensor.shape)}


def compact_tensor(name: str, tensor: torch.Tensor, model_config: Mapping) -> dict | torch.Tensor:
    """One state_dict entry as stored compactly: a quantised dict, or the tensor itself in float32
    (biases, small tensors, integers)."""
    if not tensor.is_floating_point():
        return tensor
    if tensor.dim() < 2 or tensor.numel() < COMPACT_MIN_ELEMENTS:
        return tensor.detach().to("cpu", torch.float32).contiguous()
    if name.endswith(DIGIT_WEIGHT):
        n_in, d_in, out = tensor.shape  # (1152, 8, 160) at 28x28
        n_out = model_config.get("num_classes", 10)
        assert out % n_out == 0, f"{name}: {out} columns do not split into {n_out} capsules"
        return quantise_int8(tensor, (n_in, d_in, n_out, out // n_out), (1, 3))  # a scale per (i, j)
    return quantise_int8(tensor, tuple(tensor.shape), tuple(range(1, tensor.dim())))  # a scale per output


def expanded_state_dict(checkpoint: Mapping) -> dict:
    """model.pt's state_dict as tensors: compact entries dequantised to float32, others as stored."""
    state = checkpoint["state_dict"]
    if not checkpoint.get("compact"):
        return dict(state)
    out = {}
    for name, entry in state.items():
        if isinstance(entry, dict):
            assert {"q", "scale", "shape"} <= set(entry), f"{name}: compact entry lacks q, scale or shape"
            out[name] = (entry["q"].float() * entry["scale"]).reshape(entry["shape"])
        else:
            out[name] = entry
    return out


def compact_weights(run_dir: Path) -> tuple[int, int]:
    """Rewrite a run's model.pt in compact int8 (atomically: the old file stays whole until the new one
    is complete). Returns (bytes before, bytes after). A file already compact is left as it is."""
    path = Path(run_dir) / WEIGHTS
    before = path.stat().st_size if path.exists() else 0
    load_weights(path)  # one clear RunError for a missing, corrupt or ill-fitting file, before anything is written
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("compact"):
        return before, before
    config = checkpoint["model_config"]
    state = {name: compact_tensor(name, tensor, config) for name, tensor in checkpoint["state_dict"].items()}
    atomic_torch_save(path, {**checkpoint, "dtype": "int8", "compact": "int8-per-channel", "state_dict": state})
    return before, path.stat().st_size


def write_state(run_dir: Path, state: dict) -> None:
    atomic_torch_save(Path(run_dir) / STATE, {"format": FORMAT_VERSION, **state})


def read_state(run_dir: Path, *, mmap: bool = False) -> dict:
    """state.pt; `mmap` maps the tensors instead of reading them (to look at the epoch count cheaply)."""
    path = Path(run_dir) / STATE
    if not path.exists():
        raise RunError(f"{path}: no resume state (the run never finished an epoch, or it was not kept)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:
        raise RunError(f"{path}: corrupt resume state ({type(error).__name__})") from None


def committed_epochs(run_dir: Path) -> int:
    """The epochs state.pt holds: what is on disk and what --resume continues from (0 without state.pt)."""
    if not (Path(run_dir) / STATE).exists():
        return 0
    return int(read_state(run_dir, mmap=True)["epoch"])


def _plain(value):
    """A config value as JSON reads it back (tuples as lists), to compare model.pt's with run.json's."""
    return json.loads(json.dumps(value, default=str))


def weights_problem(checkpoint: Mapping, info: Mapping) -> str | None:
    """How model.pt disagrees with its run.json, or None: another model (a baseline's weights in a
    CapsNet run), another image size, channels or classes than the run's dataset (a 28x28 model in an
    mnist-40 run), or a model setting other than run.json's record of the model."""
    config = info.get("config") or {}
    model = checkpoint.get("model", "capsnet")
    if model != config.get("model", "capsnet"):
        return f"holds a {show_value(model)} model; run.json's config.model is {show_value(config.get('model'))}"
    model_config = checkpoint["model_config"]
    spec = DATASETS.get(config.get("dataset"))
    if spec is not None:
        for key, expected in (("input_size", spec.image_size), ("in_channels", spec.channels), ("num_classes", spec.classes)):
            if key in model_config and model_config[key] != expected:
                return (f"model_config.{key} {show_value(model_config[key])}: the run's dataset {spec.name} "
                        f"needs {expected}")
    recorded = info.get("model")
    if isinstance(recorded, Mapping):
        for key in sorted(set(recorded) & set(model_config)):
            if _plain(model_config[key]) != _plain(recorded[key]):
                return (f"model_config.{key} {show_value(_plain(model_config[key]))}: run.json's model.{key} is "
                        f"{show_value(recorded[key])}")
    return None


def load_weights(path: Path, *, root: Path | None = None, info: Mapping | None = None) -> nn.Module:
    """The model a weights file holds (CapsNet when it names none, as older runs do), in eval mode.
    Read through the one reader (bounded, confined to `root`); weights_only: no code runs. With `info`
    (the run's run.json), weights that disagree with it (weights_problem) are a RunError."""
    path = Path(path)
    data = read_bytes(path, root=root)
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:
        raise RunError(f"{path}: corrupt weights ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "model_config" not in checkpoint:
        raise RunError(f"{path}: not a CapsViz weights file (needs state_dict and model_config)")
    if not isinstance(checkpoint["model_config"], dict):
        raise RunError(f"{path}: model_config {show_value(checkpoint['model_config'])}: must be an object")
    if info is not None and (problem := weights_problem(checkpoint, info)):
        raise RunError(f"{path}: {problem}")
    try:
        model = model_from_config(checkpoint.get("model", "capsnet"), checkpoint["model_config"])
        variants.apply_to_model(checkpoint.get("variant", variants.NONE), model)  # a bug's modules, trained on purpose
        model.load_state_dict({name: tensor.float() if tensor.is_floating_point() else tensor
                               for name, tensor in expanded_state_dict(checkpoint).items()})
    except (AssertionError, RuntimeError, TypeError, ValueError) as error:
        raise RunError(f"{path}: weights do not fit the model ({str(error).splitlines()[0]})") from None
    # a diverged run's weights would draw blank digits and meaningless capsules without a word
    broken = [name for name, tensor in model.state_dict().items()
              if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if broken:
        raise RunError(f"{path}: weights are not finite (NaN or inf in {broken[0]}); the run diverged")
    return model.eval()
