"""dimensions.npz: the capsule dimensions' measured meanings (capsviz.dimension_meanings), cached beside
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


def read_dimensions(run_dir: Path, digest: str, *, root: Path | None = None) -> dict | None:
    """The cached arrays when they were measured from weights of this `digest`; None when there is no
    cache or it is stale. A damaged file raises RunError."""
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
    return arrays if str(arrays["digest"]) == digest else None
