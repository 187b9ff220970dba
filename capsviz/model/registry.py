"""Models behind one interface: a registry from the name a run records (`--model`, run.json's
config.model_kind, model.pt's "model") to the class, its config and the task that trains it.

Every model takes float images (B, C, H, W) in [0, 1] and is built for a dataset's image size,
channels and classes; the trainer builds it with `build_model` and trains it through its task
(capsviz.model.tasks). `capsviz.load_run` rebuilds whichever model a run holds with `model_from_config`.

An entry also says what its model can do, so that the trainer, the run store, the results and the pages
ask the entry, never a class or a name: whether it has capsules (the capsule pages show it), whether it
routes (the `routings` setting and its bounds), what the trainer measures after each epoch (a probe),
and the name people read. A new model family is one `register` call (tests/test_models.py adds one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..data.datasets import DatasetSpec
from .baseline import BaselineCNN, BaselineConfig
from .capsnet import MAX_ROUTINGS, MIN_ROUTINGS, CapsNet, CapsNetConfig
from .routing_probe import PROBE_DIGITS, ROUTING_KEY, routing_probe
from .tasks import CapsulePairTask, CapsuleTask, ClassifierTask, Task


@dataclass(frozen=True, kw_only=True)
class Routing:
    """A model that routes: it takes the `routings` setting (TrainConfig.routings, run.json's config.routings),
    whole numbers from `low` to `high`, and `inner_routing_grad`."""

    low: int
    high: int
    default: int  # what a run gets without --routings

    def allows(self, value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high

    @property
    def rule(self) -> str:
        return f"must be between {self.low} and {self.high}"


@dataclass(frozen=True, kw_only=True)
class EpochProbe:
    """What the trainer measures after each epoch on the first `digits` test images (the same for every run of
    a dataset, so that runs compare epoch by epoch). Its rows travel in the epoch's history row under `key`, so
    that state.pt commits them with the epoch and --resume keeps them; the trainer writes every epoch's rows to
    the run directory's `file` through the run store, which knows its columns (the main process only)."""

    key: str
    digits: int
    # (model, images uint8 (N, C, H, W) on the model's device, *, fast) -> rows
    measure: Callable[..., list[dict]]
    # the run directory's CSV file of every epoch's rows, one the run store writes (capsviz.store.write_probe_rows)
    file: str

    def rows(self, history: list[dict]) -> list[dict]:
        """The probe's rows of a run's history rows, each with its epoch (epochs without a probe: none)."""
        return [{"epoch": row["epoch"], **probe} for row in history for probe in row.get(self.key) or ()]


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    """A model family. Its model takes float images (B, C, H, W) in [0, 1]; it keeps its config as `.config`
    (`config_class`, with to_dict and from_dict: model.pt's model_config) and counts its weights with
    `parameter_count(*, decoder=True)` (run.json's parameters, with and without a decoder)."""

    name: str  # what a run records (--model, config.model, model.pt's "model")
    display_name: str  # what people read: tables, captions
    model_class: type[nn.Module]
    config_class: type  # with from_dict and to_dict
    description: str
    # (dataset, *, overrides) -> the model's config; a routing model's also takes routings and inner_routing_grad
    configure: Callable[..., object]
    # (reconstruct, recon_weight, labels_per_image, recipe options) -> the task that trains it
    task: Callable[..., Task]
    has_capsules: bool = False  # capsule vectors and a decoder: the capsule pages show it
    routing: Routing | None = None  # None: the model does not route, and refuses --routings
    probe: EpochProbe | None = None  # measured after each epoch; None: nothing

    @property
    def routes(self) -> bool:
        return self.routing is not None


def _capsnet_config(dataset: DatasetSpec, *, routings: int, inner_routing_grad: bool, overrides: dict) -> CapsNetConfig:
    return CapsNetConfig(routings=routings, detach_inner_routing=not inner_routing_grad, input_size=dataset.image_size,
                         in_channels=dataset.channels, num_classes=dataset.classes, **overrides)


def _baseline_config(dataset: DatasetSpec, *, overrides: dict) -> BaselineConfig:
    return BaselineConfig(input_size=dataset.image_size, in_channels=dataset.channels, num_classes=dataset.classes,
                          **overrides)


def _capsnet_task(*, reconstruct: bool, recon_weight: float, labels_per_image: int = 1,
                  margin_reduction: str = "sum") -> Task:
    if labels_per_image == 2:  # MultiMNIST (section 6)
        return CapsulePairTask(reconstruct=reconstruct, recon_weight=recon_weight, margin_reduction=margin_reduction)
    if labels_per_image != 1:
        raise ValueError(f"--model capsnet: trains on one or two labels per image, not {labels_per_image}")
    return CapsuleTask(reconstruct=reconstruct, recon_weight=recon_weight, margin_reduction=margin_reduction)


def _baseline_task(*, reconstruct: bool, recon_weight: float, labels_per_image: int = 1,
                   margin_reduction: str | None = None) -> Task:
    # capsviz.training.recipes.task_options names a margin reduction for every recipe but the paper's: the authors'
    # parts are CapsNet's (its loss and layers), and none of them has a counterpart in the baseline
    if margin_reduction is not None:
        raise ValueError("--model baseline: trains with the paper's recipe only (the authors' recipe "
                         "changes CapsNet's loss and layers)")
    if labels_per_image != 1:
        raise ValueError(f"--model baseline: trains on one label per image, not {labels_per_image} "
                         f"(the paper's MultiMNIST baseline is not described)")
    return ClassifierTask()


# Figure A.1 over training: routing's logit changes on the probe digits, written to routing.csv
ROUTING_PROBE = EpochProbe(key=ROUTING_KEY, digits=PROBE_DIGITS, measure=routing_probe, file="routing.csv")

MODELS: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    """Add a model family: the trainer trains it (--model NAME), run directories record and reload it, and the
    tables list it. Returns the entry."""
    if entry.name in MODELS:
        raise ValueError(f"a model named {entry.name!r} is registered already")
    MODELS[entry.name] = entry
    return entry


register(ModelEntry(name="capsnet", display_name="CapsNet", model_class=CapsNet, config_class=CapsNetConfig,
                    description="CapsNet with dynamic routing (section 4)", configure=_capsnet_config,
                    task=_capsnet_task, has_capsules=True, routing=Routing(low=MIN_ROUTINGS, high=MAX_ROUTINGS, default=3),
                    probe=ROUTING_PROBE))
register(ModelEntry(name="baseline", display_name="CNN", model_class=BaselineCNN, config_class=BaselineConfig,
                    description="the paper's baseline CNN (section 5)", configure=_baseline_config,
                    task=_baseline_task))


def get_model_entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except (KeyError, TypeError):  # TypeError: not a name at all (a run.json's number or list)
        raise ValueError(f"--model {name}: unknown model (use {', '.join(MODELS)})") from None


def find_model_entry(name) -> ModelEntry | None:
    """The entry of `name`, or None for a name no entry has (or none: a Keras import names no model)."""
    return MODELS.get(name) if isinstance(name, str) else None


def routing_models() -> list[ModelEntry]:
    return [entry for entry in MODELS.values() if entry.routes]


def model_kind(model: nn.Module) -> str:
    """The registry name of a model instance (unwrapping DistributedDataParallel and torch.compile)."""
    return model_entry_of(model).name


def model_entry_of(model: nn.Module) -> ModelEntry:
    """The registry entry of a model instance (unwrapping DistributedDataParallel and torch.compile)."""
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    for entry in MODELS.values():
        if isinstance(model, entry.model_class):
            return entry
    raise ValueError(f"{type(model).__name__} is not a registered model")


def build_model(name: str, dataset: DatasetSpec, *, routings: int | None = None, inner_routing_grad: bool = False,
                overrides: dict | None = None) -> nn.Module:
    """A fresh model of family `name` for `dataset`. routings (default: the family's Routing.default) and
    inner_routing_grad reach only a model that routes; the others ignore them."""
    entry = get_model_entry(name)
    overrides = dict(overrides or {})
    if entry.routes:
        config = entry.configure(dataset, routings=entry.routing.default if routings is None else routings,
                                 inner_routing_grad=inner_routing_grad, overrides=overrides)
    else:
        config = entry.configure(dataset, overrides=overrides)
    return entry.model_class(config)


def model_from_config(name: str, values: dict) -> nn.Module:
    """Rebuild a model from its saved config (model.pt's model_config); raises TypeError or ValueError when
    the values do not fit, ValueError for an unknown name."""
    entry = get_model_entry(name)
    return entry.model_class(entry.config_class.from_dict(values))
