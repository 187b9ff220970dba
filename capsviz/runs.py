"""The run store's names where callers have always found them (`from capsviz import runs`,
`capsviz.runs.load_run`): the store itself is the package capsviz.store, whose docstring describes
the run directory."""
from .store import *  # noqa: F403
from .store import __all__  # noqa: F401
