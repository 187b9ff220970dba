"""A glibc allocator setting for the fast path (Linux only)."""
from __future__ import annotations

import ctypes
import sys

_allocator_tuned = False


def tune_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the OS.

    By default glibc serves blocks over 32 MiB with mmap and unmaps them on free, so every fresh
    (100, 10, 1152, 16) routing tensor (74 MB) costs page faults; on the 2-core CPU that was about
    a third of a training step. Linux with glibc only; elsewhere a no-op. Returns whether it applied.
    """
    global _allocator_tuned
    if _allocator_tuned or not sys.platform.startswith("linux"):
        return _allocator_tuned
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    _allocator_tuned = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2 ** 31 - 1))
    return _allocator_tuned
