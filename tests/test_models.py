"""The model registry (capsviz.model.registry) is the one place a model family is described: a third family added by
a `register` call alone trains, saves, loads and lists like CapsNet and the baseline, and what the trainer,
the run store and the tables know of a model they learn from its entry."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from capsviz import store
from capsviz.analysis import results
from capsviz.model import registry
from capsviz.model.registry import ModelEntry, get_model_entry, register
from capsviz.model.tasks import StepResult
from trainer.run import main

# ---- a toy model family, known to nothing but the registry ----------------------------------------


@dataclass
class ToyConfig:
    input_size: int = 28
    in_channels: int = 1
    num_classes: int = 10
    hidden: int = 16

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ToyConfig":
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown toy config keys: {sorted(unknown)}")
        return cls(**values)


class ToyMLP(nn.Module):
    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = c = config
        self.hidden = nn.Linear(c.in_channels * c.input_size ** 2, c.hidden)
        self.out = nn.Linear(c.hidden, c.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(images.reshape(len(images), -1))))  # (B, 10) logits

    def parameter_count(self, *, decoder: bool = True) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass(frozen=True, kw_only=True)
class ToyTask:
    def step(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> StepResult:
        logits = model(inputs)
        loss = F.cross_entropy(logits.float(), targets)
        return StepResult(total=loss, margin=None, reconstruction=None, correct=logits.argmax(dim=1) == targets)


def toy_config(dataset, *, overrides: dict) -> ToyConfig:
    return ToyConfig(input_size=dataset.image_size, in_channels=dataset.channels, num_classes=dataset.classes,
                     **overrides)


def toy_task(*, reconstruct: bool, recon_weight: float, labels_per_image: int = 1) -> ToyTask:
    if labels_per_image != 1:
        raise ValueError("--model toy: one label per image")
    return ToyTask()


@pytest.fixture
def toy():
    entry = register(ModelEntry(name="toy", display_name="Toy MLP", model_class=ToyMLP, config_class=ToyConfig,
                                description="a two-layer perceptron", configure=toy_config, task=toy_task))
    yield entry
    registry.MODELS.pop("toy")


@pytest.mark.slow
def test_a_third_model_family_trains_saves_loads_and_lists_through_the_registry_alone(toy, tmp_path, capsys):
    root = tmp_path / "runs"
    out = root / "toy-run"
    assert main(["--model", "toy", "--epochs", "1", "--subset", "100", "--test-subset", "50", "--batch-size", "50",
                 "--precision", "fp32", "--out", str(out)]) == 0, capsys.readouterr().err
    run = store.load_run(out)
    assert run.model_name == "toy" and len(run.history) == 1 and run.status == "finished"
    assert isinstance(run.model, ToyMLP) and run.model.config == ToyConfig(hidden=16)
    assert run.info["parameters"] == 784 * 16 + 16 + 16 * 10 + 10
    assert not run.has_capsules and run.routings is None and run.reconstruction is None
    assert not (out / store.ROUTING_CSV).exists(), "the toy's entry names no probe"
    assert store.list_runs(root) == [out]
    row = results.run_summary_table([run]).iloc[0]
    assert row["Model"] == "toy" and row["Routings"] == "-" and row["Epochs"] == "1 / 1"
    # and it resumes like any run: the settings a resume may change come from the schema
    assert main(["--resume", "--epochs", "2", "--out", str(out)]) == 0, capsys.readouterr().err
    assert len(store.load_run(out).history) == 2


def test_a_model_that_does_not_route_refuses_the_routing_flags_through_its_entry(toy, tmp_path, capsys):
    for flags, message in ((["--routings", "2"], "--routings 2: only CapsNet routes (--model toy)"),
                           (["--inner-routing-grad"], "--inner-routing-grad: only CapsNet routes (--model toy)")):
        assert main(["--model", "toy", *flags, "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_the_entries_say_what_each_model_can_do():
    capsnet, baseline = get_model_entry("capsnet"), get_model_entry("baseline")
    assert capsnet.has_capsules and capsnet.routing.low == 1 and capsnet.routing.high == 10
    assert capsnet.probe is not None and capsnet.probe.key == "routing"
    assert not baseline.has_capsules and baseline.routing is None and baseline.probe is None
    assert (capsnet.display_name, baseline.display_name) == ("CapsNet", "CNN")
    with pytest.raises(ValueError, match="registered already"):
        register(capsnet)
    with pytest.raises(ValueError, match="unknown model"):
        get_model_entry(["capsnet"])  # a damaged run.json's model: one clear error, not a TypeError


def test_every_probe_is_written_to_a_file_the_run_store_knows(tmp_path):
    """The registry names a probe's file; the run store, which the model's modules never import, writes it."""
    assert get_model_entry("capsnet").probe.file == store.ROUTING_CSV
    assert {entry.probe.file for entry in registry.MODELS.values() if entry.probe} <= set(store.PROBE_FILES)
    rows = [{"epoch": 1, "iteration": 1, "mean_abs_logit_change": 0.5, "mean_abs_logit": 0.5, "probe_digits": 3, "seconds": 0.1}]
    store.write_probe_rows(tmp_path, store.ROUTING_CSV, rows)
    assert store.read_routing(tmp_path).to_dict("records") == [{k: v for k, v in rows[0].items() if k != "seconds"}]
    with pytest.raises(ValueError, match="not a probe's file"):
        store.write_probe_rows(tmp_path, store.RUN_JSON, rows)
    assert not (tmp_path / store.RUN_JSON).exists()
def test_a_model_with_other_routing_bounds_is_checked_against_its_own(monkeypatch):
    from capsviz.training.settings import config_problems

    narrow = get_model_entry("capsnet").routing.__class__(low=1, high=4, default=2)
    monkeypatch.setitem(registry.MODELS, "capsnet", ModelEntry(**{**vars(get_model_entry("capsnet")), "routing": narrow}))
    assert config_problems({"model": "capsnet", "routings": 5}) == [("routings", 5, "must be between 1 and 4")]
    assert config_problems({"model": "baseline", "routings": 5}) == []  # never read by a model that does not route
