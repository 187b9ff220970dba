"""Is the trainer of a run still there? A training trainer rewrites run.json at least every
HEARTBEAT_SECONDS with its pid, host and the time (heartbeat_at); a run marked running whose trainer
is gone reads back with the status "stale" (effective_status)."""
from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Mapping

from .checks import _integer
from .format import STALE

HEARTBEAT_SECONDS = 30.0  # how often a training trainer rewrites run.json at least
# A run whose heartbeat is older than this is taken for dead when its pid cannot be checked (another
# host). Generous: an evaluation or a slow first batch must never make a live run look stale.
STALE_AFTER_SECONDS = 15 * 60


def trainer_identity() -> dict:
    """What run.json records of the process that trains: the dashboard checks it (effective_status)."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "heartbeat_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


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
