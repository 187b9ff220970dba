"""Models behind one interface: a registry from the name a run records (`--model`, run.json's
config.model_kind, model.pt's "model") to the class, its config and the task that trains it.

Every model takes float images (B, C, H, W) in [0, 1] and is built for a dataset's image size,
channels and classes; the trainer builds it with `build_model` and trains it through its task
(capsviz.tasks). `capsviz.load_run` rebuilds whichever model a run holds with `model_from_config`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .baseline import BaselineCNN, BaselineConfig
from .capsnet import CapsNet, CapsNetConfig
from .datasets import DatasetSpec
from .tasks import CapsulePairTask, CapsuleTask, ClassifierTask, Task


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model_class: type[nn.Module]
    config_class: type
    description: str
    # (dataset, routings, inner_routing_grad, overrides) -> the model's config
    configure: Callable[..., object]
    # (reconstruct, recon_weight, labels_per_image, recipe options) -> the task that trains it
    task: Callable[..., Task]


def _capsnet_config(dataset: DatasetSpec, *, routings: int, inner_routing_grad: bool, overrides: dict) -> CapsNetConfig:
    return CapsNetConfig(routings=routings, detach_inner_routing=not inner_routing_grad, input_size=dataset.image_size,
                         in_channels=dataset.channels, num_classes=dataset.classes, **overrides)


def _baseline_config(dataset: DatasetSpec, *, routings: int, inner_routing_grad: bool, overrides: dict) -> BaselineConfig:
    return BaselineConfig(input_size=dataset.image_size, in_channels=dataset.channels, num_classes=dataset.classes,
                          **overrides)


def _capsnet_task(*, reconstruct: bool, recon_weight: float, labels_per_image: int = 1,
                  margin_reduction: str = "sum") -> Task:
    if labels_per_image == 2:  # MultiMNIST (section 6)
        return CapsulePairTask(reconstruct=reconstruct, recon_weight=recon_weight, margin_reduction=margin_reduction)
    assert labels_per_image == 1, f"CapsNet trains on one or two labels per image, not {labels_per_image}"
    return CapsuleTask(reconstruct=reconstruct, recon_weight=recon_weight, margin_reduction=margin_reduction)


def _baseline_task(*, reconstruct: bool, recon_weight: float, labels_per_image: int = 1,
                   margin_reduction: str | None = None) -> Task:
    # capsviz.recipes.task_options names a margin reduction for every recipe but the paper's: the authors'
    # parts are CapsNet's (its loss and layers), and none of them has a counterpart in the baseline
    if margin_reduction is not None:
        raise ValueError("--model baseline: trains with the paper's recipe only (the authors' recipe "
                         "changes CapsNet's loss and layers)")
    if labels_per_image != 1:
        raise ValueError(f"--model baseline: trains on one label per image, not {labels_per_image} "
                         f"(the paper's MultiMNIST baseline is not described)")
    return ClassifierTask()


MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in (
    ModelEntry("capsnet", CapsNet, CapsNetConfig, "CapsNet with dynamic routing (section 4)", _capsnet_config,
               _capsnet_task),
    ModelEntry("baseline", BaselineCNN, BaselineConfig, "the paper's baseline CNN (section 5)", _baseline_config,
               _baseline_task),
)}


def get_model_entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"--model {name}: unknown model (use {', '.join(MODELS)})") from None


def model_kind(model: nn.Module) -> str:
    """The registry name of a model instance (unwrapping DistributedDataParallel and torch.compile)."""
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    for entry in MODELS.values():
        if isinstance(model, entry.model_class):
            return entry.name
    raise ValueError(f"{type(model).__name__} is not a registered model")


def build_model(name: str, dataset: DatasetSpec, *, routings: int = 3, inner_routing_grad: bool = False,
                overrides: dict | None = None) -> nn.Module:
    entry = get_model_entry(name)
    config = entry.configure(dataset, routings=routings, inner_routing_grad=inner_routing_grad,
                             overrides=dict(overrides or {}))
    return entry.model_class(config)


def model_from_config(name: str, values: dict) -> nn.Module:
    """Rebuild a model from its saved config (model.pt's model_config); raises AssertionError or
    TypeError when the values do not fit, ValueError for an unknown name."""
    entry = get_model_entry(name)
    return entry.model_class(entry.config_class.from_dict(values))
