"""The training settings' rules: what each setting in run.json's config (and on the trainer's command
line) must be, the settings older runs predate, and the problems of a config. Read by run.json's
checks (capsviz.store.run_json) and by the trainer's CLI."""
from __future__ import annotations

from collections.abc import Mapping

from .. import variants
from ..datasets import DATASETS
from ..machine import PRECISIONS
from ..models import MODELS
from ..recipes import RecipeError, recipe_parts
from ..schedules import MAX_WARMUP_EPOCHS, SCHEDULES
from .checks import _finite, _integer, _optional

# Each training setting: (what it must be, its test). One table for run.json and the trainer's CLI,
# which formats the same problems with flag names (--lr inf: must be ...).
CONFIG_RULES: dict[str, tuple[str, object]] = {
    "routings": ("must be between 1 and 10", lambda v: _integer(v) and 1 <= v <= 10),
    "epochs": ("must be at least 1", lambda v: _integer(v) and v >= 1),
    "batch_size": ("must be at least 1", lambda v: _integer(v) and v >= 1),
    "lr": ("must be a finite number above 0", lambda v: _finite(v) and v > 0),
    "lr_decay": ("must be in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
    "recon_weight": ("must be a finite number, 0 or more", lambda v: _finite(v) and v >= 0),
    "recon": ("must be true or false", lambda v: isinstance(v, bool)),
    "shift": ("must be between 0 and 8 pixels", lambda v: _integer(v) and 0 <= v <= 8),
    "seed": ("must be an integer from 0 to 2**63 - 1", lambda v: _integer(v) and 0 <= v < 2 ** 63),
    "subset": ("must be a positive number of images", _optional(lambda v: _integer(v) and v >= 1)),
    "test_subset": ("must be a positive number of images", _optional(lambda v: _integer(v) and v >= 1)),
    "fast": ("must be true or false", lambda v: isinstance(v, bool)),
    "inner_routing_grad": ("must be true or false", lambda v: isinstance(v, bool)),
    "data_dir": ("must be a path or null", _optional(lambda v: isinstance(v, str))),
    "device": ("must be a device name", lambda v: isinstance(v, str)),
    "dataset": (f"unknown dataset (use {', '.join(DATASETS)})", lambda v: isinstance(v, str) and v in DATASETS),
    "model": (f"unknown model (use {', '.join(MODELS)})", lambda v: isinstance(v, str) and v in MODELS),
    "model_options": ("must be an object of model settings", lambda v: isinstance(v, dict)),
    "precision": (f"unknown precision (use {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]})",
                  lambda v: isinstance(v, str) and v in PRECISIONS),
    "schedule": (f"unknown schedule (use {', '.join(SCHEDULES)})", lambda v: isinstance(v, str) and v in SCHEDULES),
    "lr_floor": ("must be a finite number above 0", lambda v: _finite(v) and v > 0),
    "warmup": (f"must be between 0 and {MAX_WARMUP_EPOCHS} epochs", lambda v: _finite(v) and 0 <= v <= MAX_WARMUP_EPOCHS),
    "recipe": ("unknown recipe (see capsviz/recipes.py)", lambda v: isinstance(v, str) and _known_recipe(v)),
    "variant": (f"unknown variant (use {', '.join(variants.VARIANTS)})", lambda v: isinstance(v, str) and v in variants.VARIANTS),
}
def _known_recipe(value: str) -> bool:
    try:
        recipe_parts(value)
    except RecipeError:
        return False
    return True


# Settings that runs older than them lack, with the value those runs were trained with: a resume, a comparison
# of settings and the grouping of seeds read an old run.json through with_legacy_settings.
LEGACY_SETTINGS = {"schedule": "exp-epoch", "lr_floor": 1e-5, "warmup": 0.0, "recipe": "paper"}
LEGACY_SETTINGS["variant"] = "none"  # capsviz.variants.NONE: the paper's model


def with_legacy_settings(config: Mapping) -> dict:
    """A run's config with the settings it predates filled in (LEGACY_SETTINGS)."""
    return {**LEGACY_SETTINGS, **config}


def config_problems(config: Mapping) -> list[tuple[str, object, str]]:
    """(setting, value, what it must be) for each setting in `config` that breaks CONFIG_RULES.
    Settings the rules do not know (a newer trainer's) are left alone."""
    return [(name, config[name], rule) for name, (rule, ok) in CONFIG_RULES.items()
            if name in config and not ok(config[name])]
