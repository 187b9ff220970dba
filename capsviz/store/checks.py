"""Tests of single values as run files hold them (JSON numbers, strings), shared by the schema of
run.json and of evaluation.json, and how a bad value is shown in an error."""
from __future__ import annotations

import datetime as dt
import json
import math


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


def show_value(value) -> str:
    """A value as run.json or a command line spells it, cut short: 999, "abc", inf, null."""
    try:
        text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    except (ValueError, RecursionError):  # an int of more digits than Python prints, a deep list
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."
