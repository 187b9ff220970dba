"""run.json: a run's config, environment, status, epochs done and test errors, checked field by field
on load (run_info_problem) so that a damaged or hand-edited file is one RunError naming the file and
the field, never a crash further on."""
from __future__ import annotations

from pathlib import Path

from .checks import _finite, _integer, _optional, _timestamp, show_value
from .config_rules import config_problems, with_legacy_settings
from .files import read_json, write_json
from .format import FORMAT_VERSION, RUN_JSON, STATUSES, RunError

# Counts beyond any run, inside what a table column (int64) holds: 10**40 parameters crashed the home table
MAX_PARAMETERS = 10**15
MAX_EPOCHS = 10**7

# The other fields of run.json, when present: (what it must be, its test). status and config are required.
INFO_RULES: dict[str, tuple[str, object]] = {
    "format": (f"must be {FORMAT_VERSION} (a newer CapsViz wrote it?)", lambda v: v == FORMAT_VERSION and _integer(v)),
    "name": ("must be a string", lambda v: isinstance(v, str)),
    "status": (f"must be one of {', '.join(STATUSES)}", lambda v: v in STATUSES),
    "model": ("must be an object", lambda v: isinstance(v, dict)),
    "dataset": ("must be an object", lambda v: isinstance(v, dict)),
    "processes": ("must be a count of processes", lambda v: _integer(v) and 1 <= v <= 1_000_000),
    "parameters": (f"must be a count up to {MAX_PARAMETERS:.0e}", lambda v: _integer(v) and 0 <= v <= MAX_PARAMETERS),
    "parameters_without_decoder": (f"must be a count up to {MAX_PARAMETERS:.0e}",
                                   lambda v: _integer(v) and 0 <= v <= MAX_PARAMETERS),
    "environment": ("must be an object", lambda v: isinstance(v, dict)),
    "resumes": ("must be a list of objects", lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v)),
    "started_at": ("must be an ISO time", _timestamp),
    "updated_at": ("must be an ISO time", _timestamp),
    "heartbeat_at": ("must be an ISO time", _timestamp),
    "pid": ("must be a process id", lambda v: _integer(v) and 1 <= v < 2 ** 63),
    "host": ("must be a host name", lambda v: isinstance(v, str)),
    "wall_seconds": ("must be a number of seconds, 0 or more", _optional(lambda v: _finite(v) and 0 <= v <= 1e10)),
    "epochs_done": ("must be a count of epochs, 0 or more", lambda v: _integer(v) and 0 <= v <= MAX_EPOCHS),
    "final_test_error": ("must be a percentage or null", _optional(lambda v: _finite(v) and 0 <= v <= 100)),
    "best_test_error": ("must be a percentage or null", _optional(lambda v: _finite(v) and 0 <= v <= 100)),
    "best_epoch": ("must be an epoch number or null", _optional(lambda v: _integer(v) and 1 <= v <= MAX_EPOCHS)),
    "error": ("must be a string", lambda v: isinstance(v, str)),
}


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


def read_run_json(run_dir: Path, *, root: Path | None = None) -> dict:
    """run.json, checked by run_info_problem. Raises RunError naming the file and the problem."""
    path = Path(run_dir) / RUN_JSON
    info = read_json(path, root=root)
    if isinstance(info, dict) and isinstance(info.get("config"), dict):
        info["config"] = upgrade_config(info["config"])
    problem = run_info_problem(info)
    if problem:
        raise RunError(f"{path}: {problem}")
    return info


def upgrade_config(config: dict) -> dict:
    """A config as today's trainer writes it. Runs written before datasets and models had names (the
    7-epoch runs in checkpoints/mnist-x0.9/) trained CapsNet on MNIST and kept CapsNet overrides under "model"."""
    config = dict(config)
    if isinstance(config.get("model"), dict):
        config["model_options"] = config.pop("model")
    config.setdefault("model", "capsnet")
    config.setdefault("dataset", "mnist")
    return with_legacy_settings(config)


def write_run_json(run_dir: Path, info: dict) -> None:
    assert info.get("status") in STATUSES, f"status must be one of {STATUSES}, got {info.get('status')!r}"
    write_json(Path(run_dir) / RUN_JSON, info)


def summarize(history: list[dict]) -> dict:
    """The run.json figures derived from the history rows."""
    if not history:
        return {"epochs_done": 0, "final_test_error": None, "best_test_error": None, "best_epoch": None}
    best = min(history, key=lambda row: row["test_error"])
    return {"epochs_done": int(history[-1]["epoch"]), "final_test_error": history[-1]["test_error"],
            "best_test_error": best["test_error"], "best_epoch": int(best["epoch"])}
