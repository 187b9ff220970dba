"""Training: `train_one_epoch()`, `validate()` and `fit()`, which writes the run directory."""
from __future__ import annotations

import contextlib
import datetime as dt
import math
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from capsviz import runs
from capsviz.data import random_shift
from capsviz.losses import RECON_WEIGHT, capsule_loss
from capsviz.model import CapsNet, CapsNetConfig
from capsviz.speed import optimizer_options, precision_context, prepare_images, prepare_model

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
    fast: bool = True  # bf16 autocast + channels_last + allocator tuning; see capsviz.speed
    inner_routing_grad: bool = False  # see capsviz.routing.dynamic_routing
    data_dir: str | None = None
    device: str = "auto"
    model: dict = field(default_factory=dict)  # CapsNetConfig overrides, e.g. input_size

    def model_config(self) -> CapsNetConfig:
        return CapsNetConfig(routings=self.routings, detach_inner_routing=not self.inner_routing_grad, **self.model)

    def to_dict(self) -> dict:
        return asdict(self)


# Settings that may change when a run is resumed; anything else must match the saved run. lr is one
# so that a run stopped by a non-finite loss can go on from its last good epoch with a lower rate.
RESUMABLE_CHANGES = ("epochs", "device", "fast", "data_dir", "lr")


class TrainingDiverged(ArithmeticError):
    """A NaN or infinite loss or weight: training cannot go on. The message is one line naming the
    epoch, the batch and the loss part (margin, reconstruction or total)."""


def check_finite_loss(margin: torch.Tensor, reconstruction: torch.Tensor, total: torch.Tensor, *, where: str) -> None:
    """Raise TrainingDiverged naming the first non-finite part of the loss (scalars)."""
    values = torch.stack([margin.detach().float(), reconstruction.detach().float(), total.detach().float()])
    if bool(torch.isfinite(values).all()):
        return
    for part, value in zip(("margin", "reconstruction", "total"), values.tolist()):
        if not math.isfinite(value):
            raise TrainingDiverged(f"{where}: the {part} loss is {value}")


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
                    generator: torch.Generator, device: torch.device, *, progress_label: str = "", epoch: int = 1,
                    on_batch: Callable[[], None] | None = None) -> EpochStats:
    """One pass over (images uint8 (N, 1, H, W), labels (N,)) held on `device`, shuffled and shifted
    with `generator` (CPU), so that the same generator state gives the same epoch on any device.
    Raises TrainingDiverged at the first batch whose loss is not finite, before it changes the
    weights. `on_batch` is called after each batch (the trainer's heartbeat)."""
    model.train()
    count = len(images)
    batch_count = math.ceil(count / config.batch_size)
    order = torch.randperm(count, generator=generator).to(device)
    recon_weight = config.recon_weight if config.recon else 0.0
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss, margin, recon, correct (x batch)
    start = time.perf_counter()
    bar = tqdm(total=count, desc=progress_label, unit="img", leave=False, disable=None, dynamic_ncols=True)
    for step, index in enumerate(batches(count, config.batch_size, order)):
        inputs = to_inputs(images[index], config.fast, shift=config.shift, generator=generator)
        targets = labels[index]
        with precision_context(device, config.fast):
            output = model(inputs, targets, reconstruct=config.recon)
            parts = capsule_loss(output, inputs, targets, recon_weight=recon_weight)
        # One device sync per batch (free on a CPU): a NaN must stop the run where it appears.
        check_finite_loss(parts.margin, parts.reconstruction, parts.total,
                          where=f"epoch {epoch}, batch {step + 1} of {batch_count}")
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
        if on_batch is not None:
            on_batch()
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return EpochStats.from_totals(totals, count=count, seconds=seconds, recon=config.recon)


@torch.no_grad()
def validate(model: CapsNet, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
             device: torch.device, *, epoch: int = 1) -> EpochStats:
    """Loss and accuracy on unshifted images. Predictions are the longest capsule; the reconstruction
    loss masks with the true label, so test_loss is the training objective on the test set.
    Raises TrainingDiverged when a loss is not finite."""
    model.eval()
    count = len(images)
    recon_weight = config.recon_weight if config.recon else 0.0
    totals = torch.zeros(4, dtype=torch.float64, device=device)
    start = time.perf_counter()
    for index in batches(count, EVAL_BATCH_SIZE):
        inputs, targets = to_inputs(images[index], config.fast), labels[index]
        with precision_context(device, config.fast):
            output = model(inputs, targets, reconstruct=config.recon)
            parts = capsule_loss(output, inputs, targets, recon_weight=recon_weight)
        size = len(index)
        correct = (output.lengths.argmax(1) == targets).sum()
        totals += batch_totals(parts, correct, size)
    check_finite_loss(totals[1], totals[2], totals[0], where=f"epoch {epoch}, evaluation on the test images")
    seconds = time.perf_counter() - start
    return EpochStats.from_totals(totals, count=count, seconds=seconds, recon=config.recon)


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return result.stdout.strip() + ("-dirty" if dirty else "")


def environment(device: torch.device) -> dict:
    env = {"torch": str(torch.__version__),  # TorchVersion would not load with weights_only
           "python": platform.python_version(), "platform": platform.platform(),
           "device": device.type, "threads": torch.get_num_threads(), "git_commit": git_commit(),
           "processor": platform.processor() or platform.machine()}
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
    return env


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
                 log=print, heartbeat_seconds: float = runs.HEARTBEAT_SECONDS):
        self.config, self.run_dir, self.device, self.log = config, Path(run_dir), device, log
        self.heartbeat_seconds = heartbeat_seconds  # run.json is rewritten at least this often while training
        self.last_heartbeat: float | None = None  # time.monotonic() of this trainer's last run.json write
        self.train_images, self.train_labels = (torch.as_tensor(a).to(device) for a in train_data)
        self.test_images, self.test_labels = (torch.as_tensor(a).to(device) for a in test_data)
        torch.manual_seed(config.seed)
        self.model = prepare_model(CapsNet(config.model_config()), device, config.fast)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr,
                                          **optimizer_options(device, config.fast))
        self.schedule = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=config.lr_decay)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[dict] = []
        self.wall_seconds = 0.0
        self.started_at = now()
        self.environment = environment(device)  # where and with which code version training started
        self.resumes: list[dict] = []  # the environment of each later --resume

    # -- persistence --
    def start(self, *, resume: bool) -> None:
        """Prepare the run directory for fit(): remove the temporary files a killed trainer left, then
        continue from state.pt (restore), or start afresh: a new run, or one that never committed an
        epoch (its partial history.csv and model.pt are discarded; state.pt must not exist)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        runs.remove_temporary_files(self.run_dir)
        if resume:
            self.restore()
            return
        if (self.run_dir / runs.STATE).exists():
            raise runs.RunError(f"{self.run_dir / runs.STATE}: the run has committed epochs; resume it instead")
        for name in (runs.HISTORY_CSV, runs.WEIGHTS):
            (self.run_dir / name).unlink(missing_ok=True)
        self.write_status("running")

    def load_committed(self, state: dict) -> None:
        """Take model, optimizer, schedule, RNG and history from a state.pt."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the saved groups carry the kernel choice of their run
            group.update(optimizer_options(self.device, self.config.fast))
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        self.history = list(state["history"])
        self.wall_seconds = float(state["wall_seconds"])
        self.started_at = state["started_at"]
        assert len(self.history) == state["epoch"], f"{self.run_dir / runs.STATE}: history and epoch disagree"

    def restore(self) -> None:
        """Continue from state.pt, the last committed epoch, and rewrite the files derived from it
        (model.pt, history.csv, run.json): a stop between the commit and their writes left them an
        epoch behind, and they must not stay so even when state.pt already holds every epoch."""
        state = runs.read_state(self.run_dir)
        self.load_committed(state)
        saved_config = state.get("config") or {}  # absent from the state.pt of older runs
        changes = {key: [saved_config[key], value] for key, value in self.config.to_dict().items()
                   if key in saved_config and saved_config[key] != value}
        if "lr" in changes:
            # --resume --lr: a new base rate, decayed as if the run had started with it
            decayed = self.config.lr * self.config.lr_decay ** len(self.history)
            self.schedule.base_lrs = [self.config.lr for _ in self.schedule.base_lrs]
            for group in self.optimizer.param_groups:
                group.update(initial_lr=self.config.lr, lr=decayed)
        resume = {**self.environment, "after_epoch": state["epoch"], "at": now()}
        self.resumes = [*state.get("resumes", []), {**resume, "changes": changes} if changes else resume]
        self.environment = state.get("environment", self.environment)
        self.write_derived_files("running")

    def settle(self, status: str, **extra) -> int:
        """After an interruption or a failure: bring model.pt, history.csv and run.json in line with
        state.pt (the epoch in memory may be half-trained, or committed in part) and mark the run
        `status`. Returns the number of committed epochs, read back from disk."""
        if (self.run_dir / runs.STATE).exists():
            self.load_committed(runs.read_state(self.run_dir))
            self.write_derived_files(status, **extra)
        else:  # no epoch committed: no weights or history belong to the run yet
            self.history, self.wall_seconds = [], 0.0
            for name in (runs.HISTORY_CSV, runs.WEIGHTS):
                (self.run_dir / name).unlink(missing_ok=True)
            self.write_status(status, **extra)
        return len(self.history)

    def run_info(self, status: str, **extra) -> dict:
        return {"name": self.run_dir.name, "status": status, "config": self.config.to_dict(),
                "model": self.model.config.to_dict(), "parameters": self.model.parameter_count(),
                "parameters_without_decoder": self.model.parameter_count(decoder=False),
                "environment": self.environment, "resumes": self.resumes, "started_at": self.started_at, "updated_at": now(),
                "wall_seconds": round(self.wall_seconds, 3), **runs.summarize(self.history),
                **runs.trainer_identity(), **extra}

    def write_status(self, status: str, **extra) -> None:
        runs.write_run_json(self.run_dir, self.run_info(status, **extra))
        self.last_heartbeat = time.monotonic()

    def heartbeat(self) -> None:
        """Called after each batch: rewrite run.json when it is older than heartbeat_seconds, so that
        the dashboard can tell a run still training from one whose trainer was killed."""
        # None: this trainer has not written run.json (trainer.bench runs epochs without a run directory)
        if self.last_heartbeat is not None and time.monotonic() - self.last_heartbeat >= self.heartbeat_seconds:
            self.write_status("running")

    def write_derived_files(self, status: str, **extra) -> None:
        """model.pt, history.csv and run.json from the model and history in memory."""
        runs.write_weights(self.run_dir, self.model)
        runs.write_history(self.run_dir, self.history)
        self.write_status(status, **extra)

    def save_epoch(self) -> None:
        # state.pt first: it is the commit point that --resume starts from
        runs.write_state(self.run_dir, {
            "epoch": len(self.history), "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(), "history": self.history, "wall_seconds": self.wall_seconds,
            "started_at": self.started_at, "environment": self.environment, "resumes": self.resumes,
            "config": self.config.to_dict(),
        })
        self.write_derived_files("running")

    # -- training --
    def fit(self) -> dict:
        """Train the remaining epochs. On Ctrl-C (KeyboardInterrupt) or an error the run directory is
        brought in line with its last committed epoch and marked interrupted or failed; the
        exception is raised again."""
        config = self.config
        try:
            if self.last_heartbeat is None:  # start() has not written run.json
                self.write_status("running")
            while len(self.history) < config.epochs:
                self.history.append(self.run_epoch(len(self.history) + 1))
                self.save_epoch()
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
        return runs.summarize(self.history)

    def run_epoch(self, epoch: int) -> dict:
        config = self.config
        lr = self.optimizer.param_groups[0]["lr"]
        train = train_one_epoch(self.model, self.optimizer, self.train_images, self.train_labels, config,
                                self.generator, self.device, progress_label=f"epoch {epoch}/{config.epochs}",
                                epoch=epoch, on_batch=self.heartbeat)
        broken = [name for name, parameter in self.model.named_parameters() if not torch.isfinite(parameter).all()]
        if broken:  # finite losses, yet an update overflowed: these weights must not be committed
            raise TrainingDiverged(f"epoch {epoch}: the weights are not finite after training ({broken[0]})")
        self.schedule.step()
        test = validate(self.model, self.test_images, self.test_labels, config, self.device, epoch=epoch)
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
