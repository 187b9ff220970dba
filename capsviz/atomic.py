"""Atomic file replacement: write a temporary file beside the target, fsync, then rename over it.
A kill at any moment leaves either the old complete file or the new complete file, never a mix."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would have given
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.replace(temporary, path)
        except OSError as error:  # the file being written is what the error is about, not the temporary one
            raise type(error)(error.errno, error.strerror, str(path)) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(path: Path, obj) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def nearest_existing(path: Path) -> tuple[Path, str | None]:
    """The nearest part of `path` that exists (itself or an ancestor), and what is wrong when that is not a
    folder ("is a file", "is under X, which is a file"): a folder cannot be made there."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir():
        return existing, None
    return existing, "is a file" if existing == path else f"is under {existing}, which is a file"
