"""Where runs are: the runs roots, the run directories under a root, their names, and the
confinement rule (a run's files, links followed, must lie under its runs root)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .format import HISTORY_CSV, RUN_JSON, TEMPORARY_PATTERNS, WEIGHTS, RunError

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
RUNS_ROOT_ENV = "CAPSVIZ_RUNS"


def runs_roots_from_environment(environ: Mapping[str, str] | None = None) -> list[Path]:
    """$CAPSVIZ_RUNS, several roots separated by os.pathsep, else [checkpoints/]."""
    value = (os.environ if environ is None else environ).get(RUNS_ROOT_ENV) or ""
    roots = [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]
    return roots or [PROJECT_ROOT / "checkpoints"]


def default_runs_root() -> Path:
    return runs_roots_from_environment()[0]


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path`, links followed, lies under `root` (links followed): no `..` or link escapes."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a link loop, a name too long: not provably inside
        return False


def check_inside_root(run_dir: Path, root: Path) -> None:
    """Raise RunError when one of the run's files is a link that leads outside the runs root.
    Every reader of capsviz.store.files checks the file it reads the same way; this checks the
    files a run listing reads up front."""
    for name in (RUN_JSON, HISTORY_CSV, WEIGHTS):
        path = Path(run_dir) / name
        if (path.exists() or path.is_symlink()) and not is_inside(path, root):
            raise RunError(f"{path}: a link that leads outside the runs directory; not read")


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


def remove_temporary_files(run_dir: Path) -> list[Path]:
    """Delete the atomic writes' temporary files that a killed trainer left in run_dir."""
    leftovers = [path for pattern in TEMPORARY_PATTERNS for path in Path(run_dir).glob(pattern)]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers
