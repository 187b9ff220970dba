"""Training: `train_one_epoch()`, `validate()` and `fit()`, which writes the run directory."""
from __future__ import annotations

import copy
import datetime as dt
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from capsviz import runs
from capsviz.data import random_shift
from capsviz.losses import RECON_WEIGHT, capsule_loss
from capsviz.machine import describe_machine
from capsviz.capsnet import CapsNet, CapsNetConfig
from capsviz.fast.precision import PrecisionChoice, choose_precision, time_steps
from capsviz.fast import optimizer_options, precision_context, prepare_images, prepare_model

EVAL_BATCH_SIZE = 500


@dataclass
class TrainConfig:
    """Everything that decides a run. Saved as run.json's "config"."""

    routings: int = 3
    epochs: int = 20
    batch_size: int = 100
    lr: float = 1e-3
    # Per-epoch exponential decay. The paper gives no rate; the official code's is about 0.99 per
    # epoch, common ports use 0.9. We take 0.9: it converges within the short runs a CPU affords.
    lr_decay: float = 0.9
    recon_weight: float = RECON_WEIGHT
    recon: bool = True
    shift: int = 2
    seed: int = 0
    subset: int | None = None  # first N training images
    test_subset: int | None = None  # first N test images (quick runs only: errors are then not MNIST's)
    fast: bool = True  # DFT PrimaryCaps, fused backward and Adam, channels_last, allocator; see capsviz.speed
    precision: str = "auto"  # the fast path's arithmetic: auto, bf16 or fp32; see capsviz.precision
    inner_routing_grad: bool = False  # see capsviz.routing.dynamic_routing
    data_dir: str | None = None
    device: str = "auto"
    model: dict = field(default_factory=dict)  # CapsNetConfig overrides, e.g. input_size

    def model_config(self) -> CapsNetConfig:
        return CapsNetConfig(routings=self.routings, detach_inner_routing=not self.inner_routing_grad, **self.model)

    def to_dict(self) -> dict:
        return asdict(self)


# Settings that may change when a run is resumed; anything else must match the saved run.
RESUMABLE_CHANGES = ("epochs", "device", "fast", "precision", "data_dir")


@dataclass
class EpochStats:
    loss: float
    margin_loss: float
    recon_loss: float
    acc: float
    images: int
    seconds: float

    @classmethod
    def from_totals(cls, totals: torch.Tensor, *, count: int, seconds: float, recon: bool) -> "EpochStats":
        """totals: the batch_totals() summed over an epoch's batches."""
        loss, margin, recon_loss, correct = (totals / count).tolist()
        return cls(loss=loss, margin_loss=margin, recon_loss=recon_loss if recon else math.nan, acc=correct,
                   images=count, seconds=seconds)


def batch_totals(parts, correct: torch.Tensor, size: int) -> torch.Tensor:
    """(loss, margin, recon) x batch size and the correct count: summed over batches, divided by the count."""
    return torch.stack([parts.total.detach() * size, parts.margin.detach() * size,
                        parts.reconstruction.detach() * size, correct.double()])


def batches(count: int, batch_size: int, order: torch.Tensor | None = None):
    indices = order if order is not None else torch.arange(count)
    for start in range(0, count, batch_size):
        yield indices[start:start + batch_size]


def to_inputs(images_u8: torch.Tensor, fast: bool, *, shift: int = 0, generator: torch.Generator | None = None):
    """uint8 (B, 1, H, W) -> float in [0, 1], shifted at random when `shift` > 0, in the fast layout."""
    return prepare_images(random_shift(images_u8.float().div_(255.0), shift, generator), fast)


def train_one_epoch(model: CapsNet, optimizer, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                    generator: torch.Generator, device: torch.device, *, precision: str = "fp32",
                    progress_label: str = "") -> EpochStats:
    """One pass over (images uint8 (N, 1, H, W), labels (N,)) held on `device`, shuffled and shifted
    with `generator` (CPU), so that the same generator state gives the same epoch on any device.
    `precision` is the resolved arithmetic ("bf16" autocasts, "fp32" does not; capsviz.precision)."""
    model.train()
    count = len(images)
    order = torch.randperm(count, generator=generator).to(device)
    recon_weight = config.recon_weight if config.recon else 0.0
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss, margin, recon, correct (x batch)
    start = time.perf_counter()
    bar = tqdm(total=count, desc=progress_label, unit="img", leave=False, disable=None, dynamic_ncols=True)
    for step, index in enumerate(batches(count, config.batch_size, order)):
        inputs = to_inputs(images[index], config.fast, shift=config.shift, generator=generator)
        targets = labels[index]
        with precision_context(device, precision):
            output = model(inputs, targets, reconstruct=config.recon)
            parts = capsule_loss(output, inputs, targets, recon_weight=recon_weight)
        optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        optimizer.step()
        size = len(index)
        with torch.no_grad():
            correct = (output.lengths.argmax(1) == targets).sum()
            totals += batch_totals(parts, correct, size)
        bar.update(size)
        if step % 10 == 0 and not bar.disable:
            bar.set_postfix(loss=f"{totals[0].item() / bar.n:.4f}")
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return EpochStats.from_totals(totals, count=count, seconds=seconds, recon=config.recon)


@torch.no_grad()
def validate(model: CapsNet, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
             device: torch.device, *, precision: str = "fp32") -> EpochStats:
    """Loss and accuracy on unshifted images. Predictions are the longest capsule; the reconstruction
    loss masks with the true label, so test_loss is the training objective on the test set."""
    model.eval()
    count = len(images)
    recon_weight = config.recon_weight if config.recon else 0.0
    totals = torch.zeros(4, dtype=torch.float64, device=device)
    start = time.perf_counter()
    for index in batches(count, EVAL_BATCH_SIZE):
        inputs, targets = to_inputs(images[index], config.fast), labels[index]
        with precision_context(device, precision):
            output = model(inputs, targets, reconstruct=config.recon)
            parts = capsule_loss(output, inputs, targets, recon_weight=recon_weight)
        size = len(index)
        correct = (output.lengths.argmax(1) == targets).sum()
        totals += batch_totals(parts, correct, size)
    seconds = time.perf_counter() - start
    return EpochStats.from_totals(totals, count=count, seconds=seconds, recon=config.recon)


def environment(device: torch.device, precision: PrecisionChoice) -> dict:
    """The machine (capsviz.machine) and the precision chosen for it, with the reason."""
    return {**describe_machine(device), "precision": precision.precision, "precision_reason": precision.reason}


def trial_timings(model: CapsNet, device: torch.device, config: TrainConfig, *, batch: int = 16) -> dict[str, float]:
    """Milliseconds per training step (forward, loss, backward) of a copy of `model` on a random batch, in
    bf16 and in fp32: what --precision auto measures before it keeps bf16. Uses its own generator, so
    the run's seeded initialisation and shuffles are untouched."""
    generator = torch.Generator().manual_seed(0)
    size = model.config.input_size
    inputs = torch.rand(batch, model.config.in_channels, size, size, generator=generator).to(device)
    targets = torch.randint(0, model.config.num_classes, (batch,), generator=generator).to(device)
    timings = {}
    for precision in ("bf16", "fp32"):
        candidate = prepare_model(copy.deepcopy(model), device, True, precision=precision)
        images = prepare_images(inputs, True)

        def step():
            with precision_context(device, precision):
                output = candidate(images, targets, reconstruct=config.recon)
                parts = capsule_loss(output, images, targets)
            parts.total.backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
        timings[precision] = time_steps(step)
    return timings


_precision_choices: dict[tuple, PrecisionChoice] = {}


def decide_precision(model: CapsNet, device: torch.device, config: TrainConfig, *, log=print) -> PrecisionChoice:
    """The precision for this process, decided once per (request, device, input size) and printed once."""
    key = (config.precision, config.fast, str(device), model.config.input_size)
    if key not in _precision_choices:
        choice = choose_precision(config.precision, device, fast=config.fast,
                                  trial=lambda: trial_timings(model, device, config))
        _precision_choices[key] = choice
        if config.fast:
            log(f"precision {choice.precision} ({choice.requested}): {choice.reason}")
    return _precision_choices[key]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Trainer:
    """Holds one run: the model, optimizer, schedule, RNG, history; writes the run directory."""

    def __init__(self, config: TrainConfig, run_dir: Path, device: torch.device, train_data, test_data, *,
                 log=print):
        self.config, self.run_dir, self.device, self.log = config, Path(run_dir), device, log
        self.train_images, self.train_labels = (torch.as_tensor(a).to(device) for a in train_data)
        self.test_images, self.test_labels = (torch.as_tensor(a).to(device) for a in test_data)
        torch.manual_seed(config.seed)
        model = CapsNet(config.model_config())
        self.precision = decide_precision(model, device, config, log=log)  # the arithmetic, on this machine
        self.model = prepare_model(model, device, config.fast, precision=self.precision.precision)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr,
                                          **optimizer_options(device, config.fast))
        self.schedule = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=config.lr_decay)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[dict] = []
        self.wall_seconds = 0.0
        self.started_at = now()
        self.environment = environment(device, self.precision)  # where and with which code training started
        self.resumes: list[dict] = []  # the environment of each later --resume

    # -- persistence --
    def restore(self) -> None:
        state = runs.read_state(self.run_dir)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the saved groups carry the kernel choice of their run
            group.update(optimizer_options(self.device, self.config.fast))
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        self.history = list(state["history"])
        self.wall_seconds = float(state["wall_seconds"])
        self.started_at = state["started_at"]
        self.resumes = [*state.get("resumes", []), {**self.environment, "after_epoch": state["epoch"], "at": now()}]
        self.environment = state.get("environment", self.environment)
        assert len(self.history) == state["epoch"], f"{self.run_dir / runs.STATE}: history and epoch disagree"

    def run_info(self, status: str, **extra) -> dict:
        return {"name": self.run_dir.name, "status": status, "config": self.config.to_dict(),
                "model": self.model.config.to_dict(), "parameters": self.model.parameter_count(),
                "parameters_without_decoder": self.model.parameter_count(decoder=False),
                "environment": self.environment, "resumes": self.resumes, "started_at": self.started_at, "updated_at": now(),
                "wall_seconds": round(self.wall_seconds, 3), **runs.summarize(self.history), **extra}

    def write_status(self, status: str, **extra) -> None:
        runs.write_run_json(self.run_dir, self.run_info(status, **extra))

    def save_epoch(self) -> None:
        # state.pt first: it is the commit point that --resume starts from
        runs.write_state(self.run_dir, {
            "epoch": len(self.history), "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(), "history": self.history, "wall_seconds": self.wall_seconds,
            "started_at": self.started_at, "environment": self.environment, "resumes": self.resumes,
        })
        runs.write_weights(self.run_dir, self.model)
        runs.write_history(self.run_dir, self.history)
        self.write_status("running")

    # -- training --
    def fit(self) -> dict:
        config = self.config
        self.write_status("running")
        try:
            while len(self.history) < config.epochs:
                self.history.append(self.run_epoch(len(self.history) + 1))
                self.save_epoch()
        except KeyboardInterrupt:
            self.write_status("interrupted")
            self.log(f"interrupted: {self.run_dir} keeps {len(self.history)} complete epoch(s); "
                     f"continue with --resume --out {self.run_dir}")
            raise
        except Exception as error:
            self.write_status("failed", error=f"{type(error).__name__}: {error}")
            raise
        self.write_status("finished")
        return runs.summarize(self.history)

    def run_epoch(self, epoch: int) -> dict:
        config = self.config
        lr = self.optimizer.param_groups[0]["lr"]
        train = train_one_epoch(self.model, self.optimizer, self.train_images, self.train_labels, config,
                                self.generator, self.device, precision=self.precision.precision,
                                progress_label=f"epoch {epoch}/{config.epochs}")
        self.schedule.step()
        test = validate(self.model, self.test_images, self.test_labels, config, self.device,
                        precision=self.precision.precision)
        self.wall_seconds += train.seconds + test.seconds
        row = {
            "epoch": epoch, "train_loss": train.loss, "train_margin_loss": train.margin_loss,
            "train_recon_loss": train.recon_loss, "train_acc": train.acc,
            "test_loss": test.loss, "test_margin_loss": test.margin_loss, "test_recon_loss": test.recon_loss,
            "test_acc": test.acc, "test_error": 100.0 * (1.0 - test.acc), "lr": lr,
            "epoch_seconds": train.seconds, "images_per_second": train.images / train.seconds,
            "eval_seconds": test.seconds, "wall_seconds": self.wall_seconds, "timestamp": now(),
        }
        row = {k: (round(v, 8) if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()}
        self.log(f"epoch {epoch:3d}/{config.epochs}  loss {train.loss:.4f}  train acc {100 * train.acc:.2f}%  "
                 f"test loss {test.loss:.4f}  test error {row['test_error']:.2f}%  "
                 f"{row['images_per_second']:.0f} img/s  {train.seconds:.1f}+{test.seconds:.1f} s")
        return row


def select(images: np.ndarray, labels: np.ndarray, limit: int | None):
    """First `limit` examples as (uint8 (N, 1, H, W), int64 (N,)) tensors."""
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return torch.tensor(images).unsqueeze(1), torch.tensor(labels)


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
