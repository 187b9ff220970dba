"""dimensions.npz: the capsule dimensions' measured meanings (capsviz.analysis.dimension_meanings), cached beside
the weights. Optional: older runs have none; a cache measured on other weights (its digest differs) is
ignored. Read with allow_pickle=False: no code runs."""
from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from .files import read_bytes
from .format import DIMENSIONS, RunError


def write_dimensions(run_dir: Path, arrays: Mapping) -> None:
    """Store the measurement's arrays ({name: numpy array}, `digest` among them), atomically."""
    assert "digest" in arrays, "a dimensions cache must name the weights it was measured from (digest)"
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(Path(run_dir) / DIMENSIONS, buffer.getvalue())


# name: the axes of its shape, in C classes, D capsule dimensions, P image properties and K offsets
SHAPES = {"slope": "CDP", "consistency": "CDP", "shift": "CDP", "typical": "CP", "spread": "CP", "digits": "C",
          "offsets": "K", "properties": "P", "digest": ""}
NUMERIC = ("slope", "consistency", "shift", "typical", "spread", "digits", "offsets")


def dimensions_problem(arrays: Mapping, shape: tuple[int, int] | None = None) -> str | None:
    """Whether the arrays are a measurement (dimension_meanings.DimensionMeanings.to_arrays): every key,
    numbers where numbers go, strings for the names, and shapes that agree with each other (and with
    `shape`, the model's (classes, capsule dimensions), when given)."""
    missing = [name for name in SHAPES if name not in arrays]
    if missing:
        return f"missing arrays {missing}"
    sizes: dict[str, int] = dict(zip("CD", shape)) if shape is not None else {}
    for name, axes in SHAPES.items():
        array = arrays[name]
        if array.ndim != len(axes):
            return f"{name} has {array.ndim} axes, needs {len(axes)}"
        kind = "numbers" if name in NUMERIC else "strings"
        if (array.dtype.kind not in "iuf") if kind == "numbers" else (array.dtype.kind != "U"):
            return f"{name} holds {array.dtype}, needs {kind}"
        for axis, size in zip(axes, array.shape):
            if sizes.setdefault(axis, size) != size:
                return f"{name} has shape {array.shape}: its {axis} axis is {size}, elsewhere {sizes[axis]}"
    if sizes["K"] < 2 or sizes["C"] < 1 or sizes["D"] < 1 or sizes["P"] < 1:
        return f"empty or too short arrays ({sizes})"
    return None


def read_dimensions(run_dir: Path, digest: str, *, root: Path | None = None,
                    shape: tuple[int, int] | None = None) -> dict | None:
    """The cached arrays when they were measured from weights of this `digest`; None when there is no
    cache or it is stale. A damaged file, a directory or a link out of `root` raises RunError, and so
    do arrays of other names or shapes (dimensions_problem; `shape` is the model's (classes, dimensions))."""
    path = Path(run_dir) / DIMENSIONS
    data = read_bytes(path, root=root, missing_ok=True)  # a directory or a link out of the root: RunError
    if data is None:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except Exception as error:
        raise RunError(f"{path}: unreadable dimensions cache ({type(error).__name__})") from None
    if "digest" not in arrays:
        raise RunError(f"{path}: a dimensions cache without the digest of its weights")
    if str(arrays["digest"]) != digest:
        return None  # measured on other weights: stale, not broken
    if problem := dimensions_problem(arrays, shape):
        raise RunError(f"{path}: {problem}")
    return arrays
