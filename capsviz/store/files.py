"""The one reader of a run directory's files, and the writers they share.

Every file a run directory holds is read through read_bytes: it must be a regular file, it must lie
under the runs root when one is given (links followed: a link out of the root is not read), and it
must be within its kind's size limit (SIZE_LIMITS); it is then read whole, at most the limit's bytes,
from one open file. read_json and read_csv parse what it returns; every failure, of the file system or
of the parse, is one RunError naming the file and the problem. Each file kind's module checks the
content's shape on top (capsviz.store.run_json, .histories, .evaluation, .dimensions, .weights)."""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..atomic import atomic_write_text
from .format import FORMAT_VERSION, RunError
from .paths import is_inside


def read_bytes(path: Path, *, root: Path | None = None, missing_ok: bool = False) -> bytes | None:
    """The bytes of a run file, or None when it does not exist and `missing_ok`. RunError when it is
    missing, a link out of `root`, or unreadable."""
    path = Path(path)
    if root is not None and (path.exists() or path.is_symlink()) and not is_inside(path, root):
        raise RunError(f"{path}: a link that leads outside the runs directory; not read")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise RunError(f"{path}: missing") from None
    except OSError as error:
        raise RunError(f"{path}: cannot be read ({error.strerror})") from None


def parse_json(data: bytes, path: Path):
    """JSON text as Python values; RunError naming `path` when it is not JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None


def read_json(path: Path, *, root: Path | None = None, missing_ok: bool = False):
    """A run's JSON file, parsed; None when missing and `missing_ok`."""
    data = read_bytes(path, root=root, missing_ok=missing_ok)
    return None if data is None else parse_json(data, Path(path))


def read_csv(path: Path, columns: list[str], *, root: Path | None = None) -> pd.DataFrame:
    """A run's CSV file as read by pandas, or an empty frame with `columns` when the run has none.
    RunError naming the file when it is not CSV; its columns are the caller's to check."""
    if not Path(path).exists():
        return pd.DataFrame({column: pd.Series(dtype="float64") for column in columns})
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: unreadable CSV ({str(error).splitlines()[0]})") from None


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


def write_json(path: Path, content: dict) -> None:
    """A run's JSON file, atomically: strict JSON that every parser reads (finite_or_null has turned
    NaN and inf into null), with the format version first."""
    text = json.dumps(finite_or_null({"format": FORMAT_VERSION, **content}), indent=2, default=str, allow_nan=False)
    atomic_write_text(Path(path), text + "\n")


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """A run's CSV file (history.csv, routing.csv) from row dicts, atomically; other keys are left out."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
