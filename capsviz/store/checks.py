"""Tests of single values as run files hold them (JSON numbers, strings), shared by the schema of
run.json and of evaluation.json, and how a bad value is shown in an error."""
from __future__ import annotations

import datetime as dt
import json

# the value tests of the training settings' schema, which run.json's config is checked against too
from ..training.settings import _finite, _integer, _optional  # noqa: F401  (re-exported to the store's schemas)


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
