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
import os
import stat
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..atomic import atomic_write_text
from .format import FORMAT_VERSION, SIZE_LIMITS, RunError, size_text
from .paths import is_inside

# JSON deeper than this is no run file (run.json's deepest is 3): refused before Python's parser
# recurses through it and raises RecursionError.
MAX_JSON_DEPTH = 64


def read_bytes(path: Path, *, root: Path | None = None, missing_ok: bool = False) -> bytes | None:
    """The bytes of a run file whose kind is its name (run.json, history.csv, ...; SIZE_LIMITS), or None
    when it does not exist and `missing_ok`. RunError when it is missing, not a regular file, a link out
    of `root`, over its size limit, or unreadable."""
    path = Path(path)
    if root is not None and (path.exists() or path.is_symlink()) and not is_inside(path, root):
        raise RunError(f"{path}: a link that leads outside the runs directory; not read")
    limit = SIZE_LIMITS[path.name]
    try:
        with open(path, "rb") as handle:  # one open file: what is checked is what is read
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise RunError(f"{path}: not a regular file")
            if status.st_size > limit:
                raise RunError(f"{path}: {size_text(status.st_size)}, over the {size_text(limit)} limit for "
                               f"{path.name}; not read")
            data = handle.read(limit + 1)
    except FileNotFoundError:
        if missing_ok and not path.is_symlink():
            return None
        raise RunError(f"{path}: missing" if not path.is_symlink() else f"{path}: a link to nothing") from None
    except IsADirectoryError:
        raise RunError(f"{path}: a directory, not a file") from None
    except OSError as error:
        raise RunError(f"{path}: cannot be read ({error.strerror or type(error).__name__})") from None
    if len(data) > limit:  # grew while being read
        raise RunError(f"{path}: over the {size_text(limit)} limit for {path.name}; not read")
    return data


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether brackets outside strings nest deeper than `limit`: a cheap scan before parsing."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_json(data: bytes, path: Path):
    """JSON text as Python values; RunError naming `path` for anything that is not strict, shallow JSON."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None
    if json_depth_exceeds(text):
        raise RunError(f"{path}: not valid JSON (nested deeper than {MAX_JSON_DEPTH} levels)")
    try:
        # NaN and Infinity parse (CapsViz's writers never write them): each file kind's checks refuse them
        # where a number goes, naming the field
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:
        raise RunError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise RunError(f"{path}: not valid JSON ({str(error).splitlines()[0][:80]})") from None


def read_json(path: Path, *, root: Path | None = None, missing_ok: bool = False):
    """A run's JSON file, bounded and confined (read_bytes), parsed; None when missing and `missing_ok`."""
    data = read_bytes(path, root=root, missing_ok=missing_ok)
    return None if data is None else parse_json(data, Path(path))


def read_csv(path: Path, columns: list[str], *, root: Path | None = None) -> pd.DataFrame:
    """A run's CSV file as read by pandas, or an empty frame with `columns` when the run has none.
    RunError naming the file when it is not CSV; its columns are the caller's to check."""
    data = read_bytes(path, root=root, missing_ok=True)
    if data is None:
        return pd.DataFrame({column: pd.Series(dtype="float64") for column in columns})
    try:
        return pd.read_csv(io.BytesIO(data))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise RunError(f"{path}: unreadable CSV ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None


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
