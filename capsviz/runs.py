"""The run directory: the one contract between the trainer (writes) and the dashboard (reads).

    <run>/run.json     config, environment, status, epochs done, final and best test error
    <run>/history.csv  one row per finished epoch (HISTORY_COLUMNS)
    <run>/model.pt     latest weights: {"format", "model", "model_config", "dtype", "state_dict"}; float16 on
                       disk by default, restored to float32 on load; torch.load(weights_only=True) safe.
                       Shipped runs are compact ("compact" set, compact_weights): int8 with per-channel
                       scales, dequantised by load_weights
    <run>/state.pt     resume state (fp32 weights, optimizer, schedule, RNG, history); not shipped
    <run>/routing.csv  CapsNet runs: Figure A.1's routing statistics per epoch and iteration (ROUTING_COLUMNS);
                       derived from state.pt's history rows like history.csv; older runs lack it

Every file is replaced atomically. state.pt is written first at the end of an epoch and is the
commit point: the other three are derived from it, and --resume rewrites them from it.

run.json is strict JSON (no NaN or Infinity: a non-finite number is written as null) and is checked
field by field on load (validate_run_info), so that a damaged or hand-edited file is one RunError
naming the file and the field, never a crash further on. While training, the trainer rewrites it
at least every HEARTBEAT_SECONDS with its pid, host and the time (heartbeat_at): a run marked
running whose trainer is gone reads back with the status "stale" (effective_status).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from .atomic import atomic_torch_save, atomic_write_bytes, atomic_write_text
from .models import find_model_entry, model_from_config, model_kind
from .settings import CONFIG_RULES, LEGACY_SETTINGS, config_problems, with_legacy_settings  # noqa: F401

FORMAT_VERSION = 1
RUN_JSON, HISTORY_CSV, WEIGHTS, STATE = "run.json", "history.csv", "model.pt", "state.pt"
STATUSES = ("running", "finished", "interrupted", "failed")
STALE = "stale"  # not written by the trainer: what a run marked running reads back as once its trainer is gone
ROUTING_CSV = "routing.csv"  # Figure A.1 over training: see the routing.csv section below
# atomic.py's temporary names
TEMPORARY_PATTERNS = tuple(f".{name}.*.tmp" for name in (RUN_JSON, HISTORY_CSV, WEIGHTS, STATE, ROUTING_CSV))
HEARTBEAT_SECONDS = 30.0  # how often a training trainer rewrites run.json at least
# A run whose heartbeat is older than this is taken for dead when its pid cannot be checked (another
# host). Generous: an evaluation or a slow first batch must never make a live run look stale.
STALE_AFTER_SECONDS = 15 * 60
# test_acc is a fraction in [0, 1]; test_error is in percent, as the paper reports it.
HISTORY_COLUMNS = [
    "epoch", "train_loss", "train_margin_loss", "train_recon_loss", "train_acc",
    "test_loss", "test_margin_loss", "test_recon_loss", "test_acc", "test_error",
    "lr", "epoch_seconds", "images_per_second", "eval_seconds", "wall_seconds", "timestamp",
]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUNS_ROOT_ENV = "CAPSVIZ_RUNS"


class RunError(Exception):
    """A broken or missing run directory; the message is one line naming the file and the problem."""


def runs_roots_from_environment(environ: Mapping[str, str] | None = None) -> list[Path]:
    """$CAPSVIZ_RUNS, several roots separated by os.pathsep, else [checkpoints/]."""
    value = (os.environ if environ is None else environ).get(RUNS_ROOT_ENV) or ""
    roots = [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]
    return roots or [PROJECT_ROOT / "checkpoints"]


def default_runs_root() -> Path:
    return runs_roots_from_environment()[0]


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path`, links followed, lies under `root` (links followed): no `..` or link escapes."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


# ---- writing (the trainer) ---------------------------------------------------------------------

def finite_or_null(value):
    """`value` with every non-finite float (NaN, inf) replaced by None, in nested dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value


def write_run_json(run_dir: Path, info: dict) -> None:
    assert info.get("status") in STATUSES, f"status must be one of {STATUSES}, got {info.get('status')!r}"
    # allow_nan=False: strict JSON that every parser reads; finite_or_null has turned NaN and inf into null
    text = json.dumps(finite_or_null({"format": FORMAT_VERSION, **info}), indent=2, default=str, allow_nan=False)
    atomic_write_text(Path(run_dir) / RUN_JSON, text + "\n")


def trainer_identity() -> dict:
    """What run.json records of the process that trains: the dashboard checks it (effective_status)."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "heartbeat_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """A run's CSV file (history.csv, routing.csv) from row dicts, atomically; other keys are left out."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def write_history(run_dir: Path, rows: list[dict]) -> None:
    write_csv(Path(run_dir) / HISTORY_CSV, HISTORY_COLUMNS, rows)


def write_weights(run_dir: Path, model: nn.Module, *, dtype: torch.dtype = torch.float16) -> None:
    state = {name: tensor.detach().to("cpu", dtype if tensor.is_floating_point() else tensor.dtype).contiguous()
             for name, tensor in model.state_dict().items()}
    atomic_torch_save(Path(run_dir) / WEIGHTS, {
        "format": FORMAT_VERSION, "model": model_kind(model), "model_config": model.config.to_dict(),
        "dtype": str(dtype).removeprefix("torch."), "state_dict": state,
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


def remove_temporary_files(run_dir: Path) -> list[Path]:
    """Delete the atomic writes' temporary files that a killed trainer left in run_dir."""
    leftovers = [path for pattern in TEMPORARY_PATTERNS for path in Path(run_dir).glob(pattern)]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def read_run_json(run_dir: Path) -> dict:
    """run.json, checked by validate_run_info. Raises RunError naming the file and the problem."""
    path = Path(run_dir) / RUN_JSON
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None
    except OSError as error:
        raise RunError(f"{path}: cannot be read ({error.strerror})") from None
    if isinstance(info, dict) and isinstance(info.get("config"), dict):
        info["config"] = upgrade_config(info["config"])
    problem = run_info_problem(info)
    if problem:
        raise RunError(f"{path}: {problem}")
    return info


def upgrade_config(config: dict) -> dict:
    """A config as today's trainer writes it. Runs written before datasets and models had names (the
    shipped mnist-r1/r2/r3) trained CapsNet on MNIST and kept CapsNet overrides under "model"."""
    config = dict(config)
    if isinstance(config.get("model"), dict):
        config["model_options"] = config.pop("model")
    config.setdefault("model", "capsnet")
    config.setdefault("dataset", "mnist")
    return with_legacy_settings(config)


# ---- checking run.json ---------------------------------------------------------------------------

def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a count


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _optional(check):
    return lambda value: value is None or check(value)


def _timestamp(value) -> bool:
    try:
        return isinstance(value, str) and dt.datetime.fromisoformat(value) is not None
    except ValueError:
        return False


# The training settings' rules (config_problems, CONFIG_RULES) and the values of runs that predate a setting
# (LEGACY_SETTINGS, with_legacy_settings) are declared with the settings themselves: capsviz.settings.

# The other fields of run.json, when present: (what it must be, its test). status and config are required.
INFO_RULES: dict[str, tuple[str, object]] = {
    "format": (f"must be {FORMAT_VERSION} (a newer CapsViz wrote it?)", lambda v: v == FORMAT_VERSION and _integer(v)),
    "name": ("must be a string", lambda v: isinstance(v, str)),
    "status": (f"must be one of {', '.join(STATUSES)}", lambda v: v in STATUSES),
    "model": ("must be an object", lambda v: isinstance(v, dict)),
    "dataset": ("must be an object", lambda v: isinstance(v, dict)),
    "processes": ("must be a count of processes", lambda v: _integer(v) and v >= 1),
    "parameters": ("must be a count", lambda v: _integer(v) and v >= 0),
    "parameters_without_decoder": ("must be a count", lambda v: _integer(v) and v >= 0),
    "environment": ("must be an object", lambda v: isinstance(v, dict)),
    "resumes": ("must be a list of objects", lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v)),
    "started_at": ("must be an ISO time", _timestamp),
    "updated_at": ("must be an ISO time", _timestamp),
    "heartbeat_at": ("must be an ISO time", _timestamp),
    "pid": ("must be a process id", lambda v: _integer(v) and v >= 1),
    "host": ("must be a host name", lambda v: isinstance(v, str)),
    "wall_seconds": ("must be a number of seconds, 0 or more", _optional(lambda v: _finite(v) and v >= 0)),
    "epochs_done": ("must be a count of epochs, 0 or more", lambda v: _integer(v) and v >= 0),
    "final_test_error": ("must be a percentage or null", _optional(lambda v: _finite(v) and 0 <= v <= 100)),
    "best_test_error": ("must be a percentage or null", _optional(lambda v: _finite(v) and 0 <= v <= 100)),
    "best_epoch": ("must be an epoch number or null", _optional(lambda v: _integer(v) and v >= 1)),
    "error": ("must be a string", lambda v: isinstance(v, str)),
}


def show_value(value) -> str:
    """A value as run.json or a command line spells it, cut short: 999, "abc", inf, null."""
    text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def run_info_problem(info) -> str | None:
    """The first problem of a run.json's content, as "field value: what it must be", or None."""
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        return "no 'config' object; not a CapsViz run"
    if "status" not in info:
        return "no 'status'"
    for name, (rule, ok) in INFO_RULES.items():
        if name in info and not ok(info[name]):
            return f"{name} {show_value(info[name])}: {rule}"
    for name, value, rule in config_problems(info["config"]):
        return f"config.{name} {show_value(value)}: {rule}"
    return None


# ---- is the trainer still there? -----------------------------------------------------------------

def process_alive(pid: int) -> bool | None:
    """Whether process `pid` exists on this machine; None where that cannot be asked (Windows, where
    os.kill with signal 0 would end the process)."""
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OverflowError:
        return False
    return True


def heartbeat_age(info: Mapping, now: dt.datetime | None = None) -> float | None:
    """Seconds since the trainer last wrote run.json (heartbeat_at, or updated_at of older runs)."""
    stamp = info.get("heartbeat_at") or info.get("updated_at")
    if not isinstance(stamp, str):
        return None
    try:
        written = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if written.tzinfo is None:
        written = written.replace(tzinfo=dt.timezone.utc)
    return ((now or dt.datetime.now(dt.timezone.utc)) - written).total_seconds()


def trainer_gone(info: Mapping, *, now: dt.datetime | None = None, host: str | None = None) -> bool:
    """Whether the trainer of a run marked running has stopped without saying so (killed, machine
    rebooted): on this host, its pid is not alive; elsewhere (or when the pid cannot be checked), its
    heartbeat is older than STALE_AFTER_SECONDS."""
    if info.get("status") != "running":
        return False
    pid = info.get("pid")
    if info.get("host") == (host or socket.gethostname()) and _integer(pid):
        alive = process_alive(pid)
        if alive is not None:
            return not alive
    age = heartbeat_age(info, now)
    return age is not None and age > STALE_AFTER_SECONDS


def effective_status(info: Mapping) -> str:
    """run.json's status, or STALE for a run marked running whose trainer is gone."""
    status = info.get("status", "unknown")
    return STALE if status == "running" and trainer_gone(info) else status


def summarize(history: list[dict]) -> dict:
    """The run.json figures derived from the history rows."""
    if not history:
        return {"epochs_done": 0, "final_test_error": None, "best_test_error": None, "best_epoch": None}
    best = min(history, key=lambda row: row["test_error"])
    return {"epochs_done": int(history[-1]["epoch"]), "final_test_error": history[-1]["test_error"],
            "best_test_error": best["test_error"], "best_epoch": int(best["epoch"])}


# ---- reading (the dashboard, tests, anyone) ----------------------------------------------------

def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """A run's CSV file as read by pandas, or an empty frame with `columns` when the run has none.
    RunError naming the file when it is not CSV; its columns are the caller's to check."""
    if not path.exists():
        return pd.DataFrame({column: pd.Series(dtype="float64") for column in columns})
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: unreadable CSV ({str(error).splitlines()[0]})") from None


def read_history(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / HISTORY_CSV
    history = _read_csv(path, HISTORY_COLUMNS)
    if not path.exists():
        return history
    required = ["epoch", "test_error", "timestamp"]
    missing = [column for column in required if column not in history.columns]
    if missing:
        raise RunError(f"{path}: missing columns {missing}")
    # a cut-off row lacks its last fields (timestamp); a damaged one has non-numbers where numbers go
    numbers = history[["epoch", "test_error"]].apply(pd.to_numeric, errors="coerce")
    if numbers.isna().any(axis=None) or history["timestamp"].isna().any():
        raise RunError(f"{path}: truncated or malformed row")
    return history


def load_weights(path: Path) -> nn.Module:
    """The model a weights file holds (CapsNet when it names none, as older runs do), in eval mode."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except Exception as error:
        raise RunError(f"{path}: corrupt weights ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "model_config" not in checkpoint:
        raise RunError(f"{path}: not a CapsViz weights file (needs state_dict and model_config)")
    try:
        model = model_from_config(checkpoint.get("model", "capsnet"), checkpoint["model_config"])
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


# ---- evaluation.json: a finished model's tests beyond its training set's (capsviz.robustness) -----
# Written by trainer.robustness: {"format", "evaluated_at", "environment", "weights", "sets": {name: record}}.
# Optional: runs without it load as before (Run.evaluation is None).
EVALUATION = "evaluation.json"


def write_evaluation(run_dir: Path, evaluation: dict) -> None:
    assert isinstance(evaluation.get("sets"), dict), "an evaluation holds its sets' records under 'sets'"
    text = json.dumps(finite_or_null({"format": FORMAT_VERSION, **evaluation}), indent=2, default=str, allow_nan=False)
    atomic_write_text(Path(run_dir) / EVALUATION, text + "\n")


def read_evaluation(run_dir: Path) -> dict | None:
    """evaluation.json, or None where the run has none. Raises RunError naming the file and the problem."""
    path = Path(run_dir) / EVALUATION
    if not path.exists():
        return None
    try:
        evaluation = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None
    except OSError as error:
        raise RunError(f"{path}: cannot be read ({error.strerror})") from None
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("sets"), dict):
        raise RunError(f"{path}: no 'sets' object; not a CapsViz evaluation")
    if evaluation.get("format") != FORMAT_VERSION:
        raise RunError(f"{path}: format {show_value(evaluation.get('format'))}: must be {FORMAT_VERSION}")
    for name, record in evaluation["sets"].items():
        accuracy = record.get("accuracy") if isinstance(record, dict) else None
        if not (_finite(accuracy) and 0 <= accuracy <= 100):
            raise RunError(f"{path}: sets.{name}.accuracy {show_value(accuracy)}: must be a percentage")
    return evaluation


IMPORTED = "imported"  # the status of a history imported from elsewhere (Keras): nothing trains it here


@dataclass
class Run:
    """One run, as the dashboard, the tests and a notebook see it: a run directory read back
    (load_run), or a history imported from Keras with no directory (Run.imported: `path` is None,
    `info` holds only a status). `model` loads on first use (None without weights). Picklable
    before `model` is used, so that Streamlit's cache_data can keep it. Settings that do not apply
    to the run's model read None: a baseline CNN has no routings and no reconstruction."""

    path: Path | None
    info: dict
    history: pd.DataFrame = field(repr=False)
    name: str = ""  # default: the directory's name; load_run(root=...) names it by its path under the root

    def __post_init__(self) -> None:
        if not self.name:
            assert self.path is not None, "a run without a directory needs a name"
            self.name = self.path.name

    @classmethod
    def imported(cls, name: str, history: pd.DataFrame) -> "Run":
        """A history written elsewhere (Keras' CSVLogger), to be overlaid on the curves page."""
        return cls(path=None, info={"status": IMPORTED}, history=history, name=f"keras: {name}")

    @property
    def is_imported(self) -> bool:
        return self.path is None

    @property
    def config(self) -> dict:
        return self.info.get("config") or {}

    @property
    def dataset_name(self) -> str | None:
        """The registry name of the dataset it trained on (capsviz.datasets), None for an import."""
        return self.config.get("dataset")

    @property
    def model_name(self) -> str | None:
        """The registry name of its model (capsviz.models), None for an import."""
        return self.config.get("model")

    @property
    def has_capsules(self) -> bool:
        """Whether its model has capsules to show and a decoder to draw with (its registry entry says)."""
        entry = find_model_entry(self.model_name)
        return entry is not None and entry.has_capsules

    @property
    def routings(self) -> int | None:
        entry = find_model_entry(self.model_name)
        return self.config.get("routings") if entry is not None and entry.routes else None

    @property
    def reconstruction(self) -> bool | None:
        return self.config.get("recon") if self.has_capsules else None

    @property
    def status(self) -> str:
        """run.json's status; "stale" for a run marked running whose trainer is gone. A property, not
        a field: it follows the trainer's process while the run sits in a cache."""
        return effective_status(self.info)

    @property
    def is_running(self) -> bool:
        """Training now: marked running, with its trainer still there."""
        return self.status == "running"

    @property
    def is_stale(self) -> bool:
        return self.status == STALE

    @property
    def has_weights(self) -> bool:
        return self.path is not None and (self.path / WEIGHTS).exists()

    @cached_property
    def model(self) -> nn.Module | None:
        return load_weights(self.path / WEIGHTS) if self.has_weights else None

    @cached_property
    def evaluation(self) -> dict | None:
        """evaluation.json (read_evaluation), None without one or for an import; RunError when broken."""
        return None if self.path is None else read_evaluation(self.path)


def load_run(path: str | Path, *, root: str | Path | None = None) -> Run:
    """Read a run directory, named by its path relative to `root` when given (so that runs in nested
    folders keep distinct names), else by the directory's name. Raises RunError (one line naming the
    file and problem) when run.json or history.csv is broken; broken weights raise RunError when
    `.model` is first used."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    return Run(path=path, info=read_run_json(path), history=read_history(path), name=run_name(path, root))


def run_name(path: Path, root: str | Path | None) -> str:
    if root is not None:
        try:
            relative = path.resolve().relative_to(Path(root).resolve())
            if relative.parts:
                return relative.as_posix()
        except ValueError:  # not under root: the directory name is the best we have
            pass
    return path.name  # also when the root itself is the run


def list_runs(root: str | Path | None = None) -> list[Path]:
    """Run directories (those holding a run.json) under `root`, default checkpoints/ or $CAPSVIZ_RUNS.
    A run directory or run.json that is a link leading outside `root` is left out."""
    root = Path(root) if root is not None else default_runs_root()
    if not root.is_dir():
        return []
    return sorted(path.parent for path in root.rglob(RUN_JSON) if is_inside(path, root))


def check_inside_root(run_dir: Path, root: Path) -> None:
    """Raise RunError when one of the run's files is a link that leads outside the runs root."""
    for name in (RUN_JSON, HISTORY_CSV, WEIGHTS):
        path = Path(run_dir) / name
        if (path.exists() or path.is_symlink()) and not is_inside(path, root):
            raise RunError(f"{path}: a link that leads outside the runs directory; not read")



# ---- routing.csv: Figure A.1 over training (trainer.routing_probe) --------------------------------

# One row per (epoch, routing iteration), measured at the end of the epoch on the probe set (the first
# probe_digits test digits): the mean |delta b_ij| that iteration added to the routing logits, and the mean
# |b_ij| after it (the last iteration's: the final logits). Runs of CapsNet only; older runs lack the file.
ROUTING_COLUMNS = ["epoch", "iteration", "mean_abs_logit_change", "mean_abs_logit", "probe_digits"]


def write_routing(run_dir: Path, rows: list[dict]) -> None:
    write_csv(Path(run_dir) / ROUTING_CSV, ROUTING_COLUMNS, rows)


def read_routing(run_dir: Path) -> pd.DataFrame:
    """routing.csv, or an empty frame with its columns when the run has none (older runs, the baseline).
    Raises RunError naming the file when it is damaged."""
    path = Path(run_dir) / ROUTING_CSV
    routing = _read_csv(path, ROUTING_COLUMNS)
    if not path.exists():
        return routing
    missing = [column for column in ROUTING_COLUMNS if column not in routing.columns]
    if missing:
        raise RunError(f"{path}: missing columns {missing}")
    numbers = routing[ROUTING_COLUMNS].apply(pd.to_numeric, errors="coerce")
    if numbers.isna().any(axis=None):
        raise RunError(f"{path}: truncated or malformed row")
    return numbers


# ---- Capsule dimensions' measured meanings (capsviz.dimension_meanings), cached beside the weights.
# Optional: older runs have none; a cache measured on other weights (its digest differs) is ignored.
DIMENSIONS = "dimensions.npz"


def write_dimensions(run_dir: Path, arrays: Mapping) -> None:
    """Store the measurement's arrays ({name: numpy array}, `digest` among them), atomically."""
    import numpy as np

    assert "digest" in arrays, "a dimensions cache must name the weights it was measured from (digest)"
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(Path(run_dir) / DIMENSIONS, buffer.getvalue())


def read_dimensions(run_dir: Path, digest: str) -> dict | None:
    """The cached arrays when they were measured from weights of this `digest`; None when there is no
    cache or it is stale. A damaged file raises RunError."""
    import numpy as np

    path = Path(run_dir) / DIMENSIONS
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except Exception as error:
        raise RunError(f"{path}: unreadable dimensions cache ({type(error).__name__})") from None
    if "digest" not in arrays:
        raise RunError(f"{path}: a dimensions cache without the digest of its weights")
    return arrays if str(arrays["digest"]) == digest else None
