"""Training: `train_one_epoch()`, `validate()` and `fit()`, which writes the run directory.

The trainer knows a model only through its task (capsviz.model.tasks: loss parts and correct answers) and a
dataset only through its spec (capsviz.data.datasets: arrays and augmentation); both are looked up by the
names in TrainConfig. Under torchrun it trains data-parallel (trainer.distributed)."""
from __future__ import annotations

import contextlib
import copy
import datetime as dt
import functools
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from capsviz import store
from capsviz.data.datasets import DATASETS, DatasetSpec, get_dataset
from capsviz.machine import describe_machine
from capsviz.model import variants
from capsviz.model.fast import optimizer_options, precision_context, prepare_images, prepare_model
from capsviz.model.fast.precision import TRIAL_MIN_IMAGES, PrecisionChoice, choose_precision, kept_on_resume, time_steps
from capsviz.model.registry import build_model, get_model_entry
from capsviz.model.tasks import StepResult, Task
from capsviz.training import recipes
from capsviz.training.schedules import EXP_EPOCH, StepSchedule, epochs_that_fit, format_duration
from capsviz.training.settings import RESUMABLE_CHANGES, settings_dataclass  # noqa: F401 (RESUMABLE_CHANGES: trainer.run's)

from .distributed import SINGLE, Distributed

EVAL_BATCH_SIZE = 500  # test images per forward pass at 28x28; larger inputs take fewer (eval_batch_size)


@settings_dataclass
class TrainConfig:
    """Everything that decides a run, one field per training setting: their names, types, defaults, rules and
    help are declared once, in capsviz.training.settings.SETTINGS. Saved as run.json's "config"."""

    def __post_init__(self):
        if self.shift is None and self.dataset in DATASETS:  # the dataset's own augmentation unless asked otherwise
            self.shift = DATASETS[self.dataset].shift

    def build_model(self) -> nn.Module:
        # the recipe's model options first, so that an explicit model option overrides its part
        overrides = {**recipes.model_options(self.recipe), **self.model_options}
        # routings and inner_routing_grad reach a model whose registry entry routes; the others ignore them
        model = build_model(self.model, get_dataset(self.dataset), routings=self.routings,
                            inner_routing_grad=self.inner_routing_grad, overrides=overrides)
        return variants.apply_to_model(self.variant, model)  # kept apart from the reference, as the fast path is

    def task(self) -> Task:
        task = get_model_entry(self.model).task(reconstruct=self.recon, recon_weight=self.recon_weight,
                                                labels_per_image=get_dataset(self.dataset).labels_per_image,
                                                **recipes.task_options(self.recipe))
        return variants.apply_to_task(self.variant, task)

    def to_dict(self) -> dict:
        return asdict(self)


# The budget of a resume given --epochs without --budget: a fixed plan, the run's own deadline dropped. Empty,
# so that every "if self.budget" reads it as no budget; only the resume's "is None" tells it from None.
NO_BUDGET: dict = {}
# A budget's first epoch is trained before the plan exists: its per-step schedule is planned this many epochs
# long meanwhile, so that the learning rate stays near lr (cosine: within 0.0003%) until the plan is made.
PROVISIONAL_EPOCHS = 1000


def deadline_text(budget: dict) -> str:
    """A budget's deadline (time.time()) as run.json writes it: ISO 8601 in UTC, to the second."""
    return dt.datetime.fromtimestamp(budget["deadline"], dt.timezone.utc).isoformat(timespec="seconds")


class TrainingDiverged(ArithmeticError):
    """A NaN or infinite loss or weight: training cannot go on. The message is one line naming the
    epoch, the batch and the loss part (margin, reconstruction or total)."""


def non_finite_loss(result: StepResult, *, where: str) -> str | None:
    """The first non-finite part of a task's loss (parts it lacks skipped), as "WHERE: the PART loss is
    VALUE", or None when every part is finite."""
    parts = {name: part for name, part in (("margin", result.margin), ("reconstruction", result.reconstruction),
                                           ("total", result.total)) if part is not None}
    values = torch.stack([part.detach().float() for part in parts.values()])
    if bool(torch.isfinite(values).all()):
        return None
    name, value = next((name, value) for name, value in zip(parts, values.tolist()) if not math.isfinite(value))
    return f"{where}: the {name} loss is {value}"


def check_finite_loss(result: StepResult, *, where: str) -> None:
    """Raise TrainingDiverged naming the first non-finite part of a task's loss."""
    problem = non_finite_loss(result, where=where)
    if problem:
        raise TrainingDiverged(problem)


def stop_if_any_rank_diverged(problem: str | None, processes: Distributed, device: torch.device, *, where: str) -> None:
    """Raise TrainingDiverged on every rank when any rank found a non-finite loss: under torchrun a rank
    that stopped alone would leave the others waiting in DDP's all-reduce."""
    if processes.all_ranks(problem is None, device):
        return
    raise TrainingDiverged(problem or f"{where}: a loss is not finite on another process")


@dataclass
class EpochStats:
    loss: float
    margin_loss: float
    recon_loss: float
    acc: float
    images: int
    seconds: float

    @classmethod
    def from_totals(cls, totals: torch.Tensor, *, count: int, seconds: float) -> "EpochStats":
        """totals: the batch_totals() summed over an epoch's batches (and ranks). A loss part the model
        does not have stays NaN, and its history column empty."""
        loss, margin, recon_loss, correct = (totals / count).tolist()
        return cls(loss=loss, margin_loss=margin, recon_loss=recon_loss, acc=correct, images=count, seconds=seconds)


def batch_totals(result, size: int) -> torch.Tensor:
    """(loss, margin, recon) x batch size and the correct count, from a task's StepResult: summed over
    batches, divided by the count. Parts the model does not have are NaN."""
    missing = result.total.new_tensor(math.nan)

    def scaled(part):
        return missing if part is None else part.detach().float() * size

    return torch.stack([scaled(result.total), scaled(result.margin), scaled(result.reconstruction),
                        result.correct.sum().float()]).double()


def batches(count: int, batch_size: int, order: torch.Tensor | None = None):
    indices = order if order is not None else torch.arange(count)
    for start in range(0, count, batch_size):
        yield indices[start:start + batch_size]


def train_one_epoch(model: nn.Module, optimizer, task: Task, dataset: DatasetSpec, images: torch.Tensor,
                    labels: torch.Tensor, config: TrainConfig, generator: torch.Generator, device: torch.device, *,
                    precision: str = "fp32", processes: Distributed = SINGLE, progress_label: str = "",
                    epoch: int = 1, on_batch: Callable[[], None] | None = None,
                    after_step: Callable[[], None] | None = None) -> EpochStats:
    """One pass over (images uint8 (N, C, H, W), labels (N,)) held on `device`, shuffled and augmented
    with `generator` (CPU), so that the same generator state gives the same epoch on any device and any
    number of processes: every rank draws the whole global batch's shuffle and shifts, then trains on its
    own shard (trainer.distributed). `precision` is the resolved arithmetic (capsviz.model.fast.precision).
    Raises TrainingDiverged at the first batch whose loss is not finite, before it changes the weights.
    `after_step` is called after each optimizer step (a per-step schedule), `on_batch` after each batch (the
    trainer's heartbeat)."""
    model.train()
    count = len(images)
    batch_count = math.ceil(count / config.batch_size)
    order = torch.randperm(count, generator=generator).to(device)
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss, margin, recon, correct (x batch)
    start = time.perf_counter()
    bar = tqdm(total=count, desc=progress_label, unit="img", leave=False, dynamic_ncols=True,
               disable=None if processes.is_main else True)
    for step, index in enumerate(batches(count, config.batch_size, order)):
        if len(index) < processes.world_size:
            continue  # a last batch smaller than the number of processes would leave a rank without data
        # the dataset makes the batch: augmented digits (MultiMNIST: fresh pairs) and the task's targets
        batch, batch_targets = dataset.train_batch(images, labels, index, shift=config.shift, generator=generator)
        mine = processes.part(len(index))  # this rank's slice of the global batch
        inputs, targets = prepare_images(batch[mine], config.fast), batch_targets[mine]
        size = len(targets)
        with precision_context(device, precision):
            result = task.step(model, inputs, targets)
        # One device sync per batch (free on a CPU): a NaN must stop the run where it appears.
        where = f"epoch {epoch}, batch {step + 1} of {batch_count}"
        stop_if_any_rank_diverged(non_finite_loss(result, where=where), processes, device, where=where)
        optimizer.zero_grad(set_to_none=True)
        (result.total * processes.loss_scale(size, len(index))).backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        with torch.no_grad():
            totals += batch_totals(result, size)
        bar.update(len(index))
        if step % 10 == 0 and not bar.disable:
            bar.set_postfix(loss=f"{totals[0].item() / max(1, bar.n // processes.world_size):.4f}")
        if on_batch is not None:
            on_batch()
    bar.close()
    processes.sum(totals)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return EpochStats.from_totals(totals, count=count, seconds=seconds)


def eval_batch_size(image_size: int) -> int:
    """Test images per forward pass for images of `image_size` pixels a side. A CapsNet's routing
    tensors grow with its PrimaryCaps grid, about the square of the image's area: 500 images at 28x28
    make a (500, 1152, 10, 16) float tensor of 369 MB, and the same batch at 40x40 one of 1.5 GB,
    several alive at once, and the fast path's allocator keeps its peak. So the batch shrinks by the
    area ratio squared (182 at 36x36, 120 at 40x40), keeping each tensor near 28x28's size."""
    return max(50, int(EVAL_BATCH_SIZE * (28 / max(image_size, 28)) ** 4))


@torch.no_grad()
def validate(model: nn.Module, task: Task, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
             device: torch.device, *, precision: str = "fp32", processes: Distributed = SINGLE,
             epoch: int = 1) -> EpochStats:
    """Loss and accuracy on the test images as they are (no augmentation), each rank on its own shard.
    CapsNet's reconstruction loss masks with the true label, so test_loss is the training objective on
    the test set; predictions are the task's (the longest capsule, the largest logit). Raises
    TrainingDiverged when a loss is not finite."""
    model.eval()
    count = len(images)
    mine = processes.part(count)
    images, labels = images[mine], labels[mine]
    totals = torch.zeros(4, dtype=torch.float64, device=device)
    start = time.perf_counter()
    where, problem = f"epoch {epoch}, evaluation on the test images", None
    dataset = get_dataset(config.dataset)
    for index in batches(len(images), eval_batch_size(images.shape[-1])):
        batch, targets = dataset.test_batch(images, labels, index)  # MultiMNIST: overlays its stored pairs
        inputs = prepare_images(batch, config.fast)
        with precision_context(device, precision):
            result = task.step(model, inputs, targets)
        problem = problem or non_finite_loss(result, where=where)
        totals += batch_totals(result, len(index))
    # once after the loop: ranks' shards may differ by a batch, so a per-batch collective could not pair up
    stop_if_any_rank_diverged(problem, processes, device, where=where)
    processes.sum(totals)
    seconds = time.perf_counter() - start
    return EpochStats.from_totals(totals, count=count, seconds=seconds)


def environment(device: torch.device, precision: PrecisionChoice) -> dict:
    """The machine (capsviz.machine) and the precision chosen for it, with the reason."""
    return {**describe_machine(device), "precision": precision.precision, "precision_reason": precision.reason}


def trial_timings(model: nn.Module, device: torch.device, config: TrainConfig, *, batch: int = 16) -> dict[str, float]:
    """Milliseconds per training step (forward, loss, backward) of a copy of `model` on a random batch, in
    bf16 and in fp32: what --precision auto measures before it keeps bf16. Uses its own generator, so
    the run's seeded initialisation and shuffles are untouched."""
    generator = torch.Generator().manual_seed(0)
    inputs, targets = get_dataset(config.dataset).example_batch(batch, generator)
    inputs, targets = inputs.to(device), targets.to(device)
    task = config.task()
    images = prepare_images(inputs, True)

    def training_step(precision: str):
        candidate = prepare_model(copy.deepcopy(model), device, True, precision=precision)

        def step():
            with precision_context(device, precision):
                result = task.step(candidate, images, targets)
            result.total.backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
        return step

    return time_steps({precision: training_step(precision) for precision in ("bf16", "fp32")})


_precision_choices: dict[tuple, PrecisionChoice] = {}


def decide_precision(model: nn.Module, device: torch.device, config: TrainConfig, *, training_images: int | None = None,
                     log=print) -> PrecisionChoice:
    """The precision for this process, decided once per (request, device, input size, short run or not) and
    printed once. training_images: what the run trains on in all (None where a budget plans the epochs)."""
    short = training_images is not None and training_images < TRIAL_MIN_IMAGES
    key = (config.precision, config.fast, str(device), config.model, get_dataset(config.dataset).image_size, short)
    if key not in _precision_choices:
        choice = choose_precision(config.precision, device, fast=config.fast,
                                  trial=lambda: trial_timings(model, device, config), training_images=training_images)
        _precision_choices[key] = choice
        if config.fast:
            log(f"precision {choice.precision} ({choice.requested}): {choice.reason}")
    return _precision_choices[key]


def kept_at_last_start(state: dict, machine: dict, requested: str) -> PrecisionChoice | None:
    """kept_on_resume against the run's last start in state.pt: its last resume, else its first start."""
    return kept_on_resume((state.get("resumes") or [state.get("environment") or {}])[-1], machine, requested)


def log_to_stdout(message: str) -> None:
    print(message, flush=True)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def resume_hint(run_dir: Path, epochs: int) -> str:
    """What is on disk after a stop, and the command that works from there."""
    if epochs:
        return f"{run_dir} keeps {epochs} complete epoch(s) on disk; continue with --resume --out {run_dir}"
    return f"no epoch was completed; start again with --resume --out {run_dir}"


@contextlib.contextmanager
def interrupts_ignored():
    """Ctrl-C and SIGTERM ignored while the run directory is put in order after a stop: a second
    Ctrl-C would cut that short with a traceback (harmless to the files: --resume redoes it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


class Trainer:
    """Holds one run: the model, optimizer, schedule, RNG, history; writes the run directory."""

    def __init__(self, config: TrainConfig, run_dir: Path, device: torch.device, train_data, test_data, *,
                 log=log_to_stdout, heartbeat_seconds: float = store.HEARTBEAT_SECONDS,
                 processes: Distributed = SINGLE, budget: dict | None = None, resume: bool = False):
        self.config, self.run_dir, self.device, self.processes = config, Path(run_dir), device, processes
        self.log = log if processes.is_main else (lambda message: None)  # rank 0 speaks for all
        self.heartbeat_seconds = heartbeat_seconds  # run.json is rewritten at least this often while training
        self.last_heartbeat: float | None = None  # time.monotonic() of this trainer's last run.json write
        self.train_images, self.train_labels = (torch.as_tensor(a).to(device) for a in train_data)
        self.test_images, self.test_labels = (torch.as_tensor(a).to(device) for a in test_data)
        self.dataset, self.task = get_dataset(config.dataset), config.task()
        self.probe = get_model_entry(config.model).probe  # measured after each epoch, or None
        torch.manual_seed(config.seed)
        model = config.build_model()
        # the arithmetic, on this machine; a budget plans its epochs later, so its length is unknown here
        training_images = None if budget else len(self.train_images) * config.epochs
        # a resume on the kind of CPU the run last trained on keeps its precision: a trial would be thrown away
        kept = self.precision_kept_on_resume(device) if resume else None
        if kept is not None and config.fast:
            self.log(f"precision {kept.precision} ({kept.requested}): {kept.reason}")
        self.precision = kept or decide_precision(model, device, config, training_images=training_images, log=self.log)
        self.precision = processes.broadcast(self.precision)  # every rank computes as rank 0 decided
        self.model = prepare_model(model, device, config.fast, precision=self.precision.precision)
        # what the training step calls: the model itself, or its DistributedDataParallel wrapper
        self.network = DistributedDataParallel(self.model) if processes.enabled else self.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr,
                                          **optimizer_options(device, config.fast))
        self.steps_per_epoch = steps_per_epoch(len(self.train_images), config.batch_size, processes.world_size)
        self.schedule = self.make_schedule()
        # {"seconds", "deadline" (time.time()), "max_epochs"}: plan the epochs to end by the deadline (plan_budget);
        # None: none, or a resumed run's own; NO_BUDGET: none, not even a resumed run's (a fixed plan)
        self.budget = budget
        self.epoch_seconds: list[float] = []  # wall time of each epoch this process trained, saving included
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[dict] = []
        self.wall_seconds = 0.0
        self.started_at = now()
        self.environment = environment(device, self.precision)  # where and with which code training started
        self.resumes: list[dict] = []  # the environment of each later --resume

    def make_schedule(self):
        config = self.config
        if config.schedule == EXP_EPOCH:
            return torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=config.lr_decay)
        return StepSchedule(self.optimizer, shape=config.schedule, lr=config.lr, floor=config.lr_floor,
                            total_steps=config.epochs * self.steps_per_epoch,
                            warmup_steps=round(config.warmup * self.steps_per_epoch))

    @property
    def per_step(self) -> bool:
        return isinstance(self.schedule, StepSchedule)

    def plan_epochs(self, epochs: int) -> None:
        """Make `epochs` the run's planned length: a per-step schedule then reaches its floor at its end."""
        self.config.epochs = epochs
        if self.per_step:
            self.schedule.replan(epochs * self.steps_per_epoch)

    def plan_budget(self) -> None:
        """Plan the number of epochs that end by the budget's deadline, from the epochs timed so far (the mean
        of the last two, so that a drift in speed re-plans within an epoch or two). Before the first epoch
        is timed, one epoch is planned, its schedule held near lr (PROVISIONAL_EPOCHS). Rank 0 decides."""
        done, budget = len(self.history), self.budget
        if not self.epoch_seconds:
            self.config.epochs = done + 1
            if self.per_step:
                self.schedule.replan((done + PROVISIONAL_EPOCHS) * self.steps_per_epoch)
            return
        per_epoch = sum(self.epoch_seconds[-2:]) / len(self.epoch_seconds[-2:])
        left = budget["deadline"] - time.time()
        planned = epochs_that_fit(done=done, seconds_left=left, seconds_per_epoch=per_epoch)
        if budget.get("max_epochs"):
            planned = min(planned, budget["max_epochs"])
        planned = self.processes.broadcast(planned)
        first = len(self.epoch_seconds) == 1
        if planned != self.config.epochs or first:
            ends = dt.datetime.fromtimestamp(time.time() + (planned - done) * per_epoch).strftime("%H:%M")
            self.log(f"budget: {'planned' if first else 're-planned'} {planned} epoch(s) "
                     f"({per_epoch:.0f} s an epoch measured, {format_duration(left)} left), ending about {ends}"
                     + (" with the learning rate at its floor" if self.per_step else ""))
        self.plan_epochs(planned)

    def budget_record(self) -> dict | None:
        """run.json's "budget": the budget, its deadline and the plan."""
        if not self.budget:
            return None
        return {"seconds": self.budget["seconds"], "deadline": deadline_text(self.budget), "max_epochs": self.budget.get("max_epochs"),
                "planned_epochs": self.config.epochs}

    # -- persistence --
    def start(self, *, resume: bool) -> None:
        """Prepare the run directory for fit(): remove the temporary files a killed trainer left, then
        continue from state.pt (restore), or start afresh: a new run, or one that never committed an
        epoch (its partial history.csv and model.pt are discarded; state.pt must not exist). Under
        torchrun rank 0 alone touches the directory; every rank restores from state.pt."""
        if self.processes.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            store.remove_temporary_files(self.run_dir)
        self.processes.barrier()
        if resume:
            self.restore()
            return
        if (self.run_dir / store.STATE).exists():
            raise store.RunError(f"{self.run_dir / store.STATE}: the run has committed epochs; resume it instead")
        if self.processes.is_main:
            for name in (store.HISTORY_CSV, store.WEIGHTS, store.ROUTING_CSV):
                (self.run_dir / name).unlink(missing_ok=True)
        self.write_status("running")

    def load_committed(self, state: dict) -> None:
        """Take model, optimizer, schedule, RNG and history from a state.pt."""
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as error:  # run.json edited since (dataset, model, model options): one line, not a traceback
            problem = str(error).splitlines()[-1].strip()
            raise store.RunError(f"{self.run_dir / store.STATE}: its weights do not fit the model {store.RUN_JSON} describes "
                                 f"({problem}); was {store.RUN_JSON} edited?") from None
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the saved groups carry the kernel choice of their run
            group.update(optimizer_options(self.device, self.config.fast))
        saved_schedule = state["schedule"]
        if (saved_schedule.get("kind") == "steps") != self.per_step:
            raise store.RunError(f"{self.run_dir / store.STATE}: its schedule is not {self.config.schedule}")
        self.schedule.load_state_dict(saved_schedule)
        self.generator.set_state(state["generator"])
        self.history = list(state["history"])
        self.wall_seconds = float(state["wall_seconds"])
        self.epoch_seconds = list(state.get("epoch_seconds") or [])
        self.started_at = state["started_at"]
        if len(self.history) != state["epoch"]:
            raise store.RunError(f"{self.run_dir / store.STATE}: history and epoch disagree")

    def restore(self) -> None:
        """Continue from state.pt, the last committed epoch, and rewrite the files derived from it
        (model.pt, history.csv, run.json): a stop between the commit and their writes left them an
        epoch behind, and they must not stay so even when state.pt already holds every epoch."""
        state = store.read_state(self.run_dir)
        self.load_committed(state)
        self.keep_precision_on_the_same_cpu(state)
        saved_config = state.get("config") or {}  # absent from the state.pt of older runs
        changes = {key: [saved_config[key], value] for key, value in self.config.to_dict().items()
                   if key in saved_config and saved_config[key] != value}
        if "lr" in changes and self.per_step:
            self.schedule.rescale(self.config.lr / changes["lr"][0])  # --resume --lr: the plan, scaled
        elif "lr" in changes:
            # --resume --lr: a new base rate, decayed as if the run had started with it
            decayed = self.config.lr * self.config.lr_decay ** len(self.history)
            self.schedule.base_lrs = [self.config.lr for _ in self.schedule.base_lrs]
            for group in self.optimizer.param_groups:
                group.update(initial_lr=self.config.lr, lr=decayed)
        if self.per_step and "epochs" in changes:  # --resume --epochs N: lengthened or shortened from where it stands
            how = self.schedule.extend(self.config.epochs * self.steps_per_epoch, lr=self.config.lr)
            self.log(f"schedule {self.config.schedule} re-planned for {self.config.epochs} epochs: {how}")
        # a budget: the one given now, else the run's own deadline (unless --epochs was given: a fixed plan)
        if self.budget is None and state.get("budget") and "epochs" not in changes:
            self.budget = state["budget"]
        elif state.get("budget") and not self.budget:  # a fixed plan from here: resumes[] keeps what planned it so far
            dropped = state["budget"]
            changes["budget"] = [{"seconds": dropped["seconds"], "deadline": deadline_text(dropped)}, None]
        resume = {**self.environment, "after_epoch": state["epoch"], "at": now()}
        self.resumes = [*state.get("resumes", []), {**resume, "changes": changes} if changes else resume]
        self.environment = state.get("environment", self.environment)
        self.write_derived_files("running")

    def precision_kept_on_resume(self, device: torch.device) -> PrecisionChoice | None:
        """The precision state.pt's last start used, where `--precision auto` resumes on the same kind of CPU
        (kept_on_resume); None otherwise, or where state.pt cannot be read (restore() names the problem)."""
        try:
            state = store.read_state(self.run_dir, mmap=True)
        except store.RunError:
            return None
        return kept_at_last_start(state, describe_machine(device), self.config.precision)

    def keep_precision_on_the_same_cpu(self, state: dict) -> None:
        """With --precision auto on the kind of CPU the run last trained on, go on in the precision it
        used (a resumed run then continues exactly as it would have); another CPU decides afresh."""
        kept = kept_at_last_start(state, self.environment, self.config.precision)
        if kept is None:
            return
        if kept.precision != self.precision.precision:
            self.model = prepare_model(self.model, self.device, self.config.fast, precision=kept.precision)
            self.log(f"precision {kept.precision}: {kept.reason}")
        self.precision = kept
        self.environment = {**self.environment, "precision": kept.precision, "precision_reason": kept.reason}

    def settle(self, status: str, **extra) -> int:
        """After an interruption or a failure: bring model.pt, history.csv and run.json in line with
        state.pt (the epoch in memory may be half-trained, or committed in part) and mark the run
        `status`. Returns the number of committed epochs, read back from disk."""
        if (self.run_dir / store.STATE).exists():
            self.load_committed(store.read_state(self.run_dir))
            self.write_derived_files(status, **extra)
        else:  # no epoch committed: no weights or history belong to the run yet
            self.history, self.wall_seconds = [], 0.0
            for name in (store.HISTORY_CSV, store.WEIGHTS, store.ROUTING_CSV) if self.processes.is_main else ():
                (self.run_dir / name).unlink(missing_ok=True)
            self.write_status(status, **extra)
        return len(self.history)

    def run_info(self, status: str, **extra) -> dict:
        return {"name": self.run_dir.name, "status": status, "config": self.config.to_dict(),
                "dataset": self.dataset.to_dict(), "model": self.model.config.to_dict(),
                "parameters": self.model.parameter_count(),
                "parameters_without_decoder": self.model.parameter_count(decoder=False),
                "processes": self.processes.world_size,
                "environment": self.environment, "resumes": self.resumes, "started_at": self.started_at, "updated_at": now(),
                "wall_seconds": round(self.wall_seconds, 3), **store.summarize(self.history),
                **({"budget": self.budget_record()} if self.budget else {}),
                **store.trainer_identity(), **extra}

    def write_status(self, status: str, **extra) -> None:
        if self.processes.is_main:  # one writer; the other ranks hold the same state
            store.write_run_json(self.run_dir, self.run_info(status, **extra))
        self.last_heartbeat = time.monotonic()

    def heartbeat(self) -> None:
        """Called after each batch: rewrite run.json when it is older than heartbeat_seconds, so that
        the dashboard can tell a run still training from one whose trainer was killed."""
        # None: this trainer has not written run.json (trainer.bench runs epochs without a run directory)
        if self.last_heartbeat is not None and time.monotonic() - self.last_heartbeat >= self.heartbeat_seconds:
            self.write_status("running")

    def write_derived_files(self, status: str, **extra) -> None:
        """model.pt, history.csv and run.json from the model and history in memory."""
        if self.processes.is_main:
            store.write_weights(self.run_dir, self.model)
            store.write_history(self.run_dir, self.history)
            if self.probe is not None:  # its file, from the history rows (CapsNet: Figure A.1 over training)
                store.write_probe_rows(self.run_dir, self.probe.file, self.probe.rows(self.history))
        self.write_status(status, **extra)

    def save_epoch(self) -> None:
        if not self.processes.is_main:
            return
        # state.pt first: it is the commit point that --resume starts from
        store.write_state(self.run_dir, {
            "epoch": len(self.history), "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(), "history": self.history, "wall_seconds": self.wall_seconds,
            "started_at": self.started_at, "environment": self.environment, "resumes": self.resumes,
            "config": self.config.to_dict(), "budget": self.budget, "epoch_seconds": self.epoch_seconds,
        })
        self.write_derived_files("running")

    # -- training --
    def fit(self) -> dict:
        """Train the remaining epochs. On Ctrl-C (KeyboardInterrupt) or an error the run directory is
        brought in line with its last committed epoch and marked interrupted or failed; the
        exception is raised again."""
        config = self.config
        try:
            if self.budget:
                self.plan_budget()
            if self.last_heartbeat is None:  # start() has not written run.json
                self.write_status("running")
            while len(self.history) < config.epochs:
                started = time.monotonic()
                self.history.append(self.run_epoch(len(self.history) + 1))
                self.save_epoch()
                self.epoch_seconds.append(time.monotonic() - started)
                if self.budget:
                    self.plan_budget()
                    self.write_status("running")  # the plan, in run.json's config and budget
            self.write_status("finished")
        except KeyboardInterrupt:
            with interrupts_ignored():
                kept = self.settle("interrupted")
            self.log(f"interrupted: {resume_hint(self.run_dir, kept)}")
            raise
        except Exception as error:
            message = str(error) if isinstance(error, TrainingDiverged) else f"{type(error).__name__}: {error}"
            # the error being raised is the one to report, not a second one while settling (a full disk)
            with interrupts_ignored(), contextlib.suppress(Exception):
                self.settle("failed", error=message)
            raise
        return store.summarize(self.history)

    @functools.cached_property
    def probe_images(self) -> torch.Tensor:
        """The after-epoch probe's digits, uint8 (N, C, H, W) as the model sees them (MultiMNIST: overlaid pairs);
        made once, the test set does not change."""
        count = min(self.probe.digits, len(self.test_images))
        inputs, _ = self.dataset.test_batch(self.test_images, self.test_labels, torch.arange(count, device=self.device))
        return inputs.mul(255.0).round_().to(torch.uint8)

    def run_epoch(self, epoch: int) -> dict:
        config = self.config
        lr = self.optimizer.param_groups[0]["lr"]
        train = train_one_epoch(self.network, self.optimizer, self.task, self.dataset, self.train_images,
                                self.train_labels, config, self.generator, self.device,
                                precision=self.precision.precision, processes=self.processes,
                                progress_label=f"epoch {epoch}/{config.epochs}", epoch=epoch, on_batch=self.heartbeat,
                                after_step=self.schedule.step if self.per_step else None)
        broken = [name for name, parameter in self.model.named_parameters() if not torch.isfinite(parameter).all()]
        if broken:  # finite losses, yet an update overflowed: these weights must not be committed
            raise TrainingDiverged(f"epoch {epoch}: the weights are not finite after training ({broken[0]})")
        if not self.per_step:
            self.schedule.step()
        test = validate(self.network, self.task, self.test_images, self.test_labels, config, self.device,
                        precision=self.precision.precision, processes=self.processes, epoch=epoch)
        self.wall_seconds += train.seconds + test.seconds
        row = {
            "epoch": epoch, "train_loss": train.loss, "train_margin_loss": train.margin_loss,
            "train_recon_loss": train.recon_loss, "train_acc": train.acc,
            "test_loss": test.loss, "test_margin_loss": test.margin_loss, "test_recon_loss": test.recon_loss,
            "test_acc": test.acc, "test_error": 100.0 * (1.0 - test.acc), "lr": lr,
            "epoch_seconds": train.seconds, "images_per_second": train.images / train.seconds,
            "eval_seconds": test.seconds, "wall_seconds": self.wall_seconds, "timestamp": now(),
        }
        # parts the model does not have (NaN totals) are left empty in history.csv
        row = {k: (round(v, 8) if math.isfinite(v) else None) if isinstance(v, float) else v for k, v in row.items()}
        if self.probe is not None and self.processes.is_main:  # only the main rank writes the probe's file
            # what the model's registry entry measures after an epoch (CapsNet: Figure A.1's routing probe)
            row[self.probe.key] = self.probe.measure(self.model, self.probe_images, fast=config.fast)
        self.log(f"epoch {epoch:3d}/{config.epochs}  loss {train.loss:.4f}  train acc {100 * train.acc:.2f}%  "
                 f"test loss {test.loss:.4f}  test error {row['test_error']:.2f}%  "
                 f"{row['images_per_second']:.0f} img/s  {train.seconds:.1f}+{test.seconds:.1f} s")
        return row


def steps_per_epoch(count: int, batch_size: int, world_size: int = 1) -> int:
    """Optimizer steps in an epoch of `count` images: train_one_epoch skips a last batch smaller than the
    number of processes."""
    full, rest = divmod(count, batch_size)
    return full + (1 if rest >= world_size else 0)


def select(images: np.ndarray, labels: np.ndarray, limit: int | None):
    """First `limit` examples as (uint8 (N, C, H, W), int64 (N,)) tensors; (N, H, W) gains C = 1."""
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    images = torch.tensor(images)
    return images.unsqueeze(1) if images.dim() == 3 else images, torch.tensor(labels)


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
