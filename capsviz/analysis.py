"""What the dashboard computes, as plain functions with no Streamlit in them: run records and the
run table, smoothing and combined histories for the curves page, and the paper's Figure 3
(reconstructions) and Figure 4 (capsule dimension perturbations) for the model pages."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .capsnet import CapsNet
from .runs import HISTORY_COLUMNS, STALE, effective_status, load_run

# ---- the paper's reference numbers -------------------------------------------------------------


@dataclass(frozen=True)
class PaperResult:
    setup: str
    routings: int | None
    reconstruction: bool | None
    mnist_error: float  # percent, mean of 3 trials
    mnist_std: float | None
    multimnist_error: float | None


# Table 1 of Sabour et al. (2017): test error in percent.
PAPER_TABLE1 = (
    PaperResult("Baseline CNN", None, None, 0.39, None, 8.1),
    PaperResult("CapsNet, routing 1", 1, False, 0.34, 0.032, None),
    PaperResult("CapsNet, routing 1 + reconstruction", 1, True, 0.29, 0.011, 7.5),
    PaperResult("CapsNet, routing 3", 3, False, 0.35, 0.036, None),
    PaperResult("CapsNet, routing 3 + reconstruction", 3, True, 0.25, 0.005, 5.2),
)


def paper_table1() -> pd.DataFrame:
    """Table 1 as a table to show: MNIST as mean ± std of 3 trials, MultiMNIST where reported."""
    return pd.DataFrame([{
        "Setup": result.setup,
        "MNIST (%)": f"{result.mnist_error:.2f}" + (f" ± {result.mnist_std:.3f}" if result.mnist_std is not None else ""),
        "MultiMNIST (%)": f"{result.multimnist_error:.1f}" if result.multimnist_error is not None else "-",
    } for result in PAPER_TABLE1])


def paper_error(*, routings: int | None, reconstruction: bool | None) -> float | None:
    """The paper's MNIST test error (%) for a CapsNet with this setup, or None (e.g. routing 2)."""
    for result in PAPER_TABLE1:
        if result.routings is not None and result.routings == routings and result.reconstruction == reconstruction:
            return result.mnist_error
    return None


# ---- run records ------------------------------------------------------------------------------

SOURCE_PYTORCH, SOURCE_KERAS = "pytorch", "keras"


@dataclass(frozen=True)
class RunRecord:
    """One run as the dashboard shows it: a run directory read back, or a history imported from
    Keras (then `path` is None and `info` holds only what the import knows). Picklable, so that
    Streamlit's cache_data can keep it."""

    name: str
    info: dict = field(repr=False)
    history: pd.DataFrame = field(repr=False)
    path: str | None = None
    has_weights: bool = False
    source: str = SOURCE_PYTORCH

    @property
    def status(self) -> str:
        """run.json's status, or "stale" for a run marked running whose trainer is gone. A property,
        not a field: it must follow the trainer's process while the record sits in Streamlit's cache."""
        return effective_status(self.info)

    @property
    def config(self) -> dict:
        return self.info.get("config") or {}

    @property
    def routings(self) -> int | None:
        return self.config.get("routings")

    @property
    def reconstruction(self) -> bool | None:
        return self.config.get("recon")

    @property
    def is_running(self) -> bool:
        """Training now: marked running, with its trainer still there."""
        return self.status == "running"

    @property
    def is_stale(self) -> bool:
        return self.status == STALE


def keras_record(name: str, history: pd.DataFrame) -> RunRecord:
    """An imported Keras history as a run of the curves page (no weights, no run.json)."""
    return RunRecord(name=f"keras: {name}", info={"status": "imported"}, history=history, source=SOURCE_KERAS)


def read_run_record(path: str | Path, *, root: str | Path | None = None) -> RunRecord:
    """Read a run directory into a RunRecord, named by its path relative to `root` (so that runs in
    nested folders keep distinct names). Raises capsviz.RunError for a broken run.json or history."""
    path = Path(path)
    run = load_run(path)
    name = run.name
    if root is not None:
        try:
            relative = path.resolve().relative_to(Path(root).resolve())
            name = relative.as_posix() if relative.parts else run.name  # the root itself is a run: its name
        except ValueError:  # not under root: the directory name is the best we have
            pass
    return RunRecord(name=name, info=run.info, history=run.history, path=str(path), has_weights=run.has_weights)


def numeric_column(history: pd.DataFrame, column: str) -> pd.Series:
    """A history column as floats (empty cells NaN); all NaN when the history lacks the column
    (an imported Keras history has no timings)."""
    if column not in history:
        return pd.Series(np.nan, index=history.index, dtype="float64")
    return pd.to_numeric(history[column], errors="coerce")


def best_test_error(history: pd.DataFrame) -> tuple[int, float] | None:
    """(epoch, test error in %) of the lowest test error (the first, if several epochs tie), or None
    for a history without test errors."""
    errors = numeric_column(history, "test_error")
    if errors.isna().all():
        return None
    position = int(np.nanargmin(errors.to_numpy()))
    return int(history["epoch"].iloc[position]), float(errors.iloc[position])


def mean_epoch_seconds(history: pd.DataFrame) -> float | None:
    seconds = numeric_column(history, "epoch_seconds")
    return None if seconds.isna().all() else float(seconds.mean())


def last_value(history: pd.DataFrame, column: str) -> float | None:
    """The column's value at the last epoch, None when there is none."""
    values = numeric_column(history, column)
    return _number_or_none(float(values.iloc[-1])) if len(values) else None


def _number_or_none(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def device_label(info: dict) -> str:
    environment = info.get("environment") or {}
    device = environment.get("device") or "?"
    name = environment.get("device_name")
    threads = environment.get("threads")
    if name:
        return f"{device} ({name})"
    if device == "cpu" and threads:
        return f"cpu ({threads} threads)"
    return device


STATUS_LABELS = {STALE: "stopped (trainer gone)"}  # how the tables show a status


def run_summary_row(record: RunRecord) -> dict:
    """One row of the home page's run table. Figures come from the history when it has rows (it is
    what the curves show), else from run.json (a run that has not finished an epoch yet)."""
    info, history = record.info, record.history
    best = best_test_error(history)
    epochs_total = record.config.get("epochs")
    epochs_done = int(history["epoch"].iloc[-1]) if len(history) else int(info.get("epochs_done") or 0)
    final_error = last_value(history, "test_error") if len(history) else _number_or_none(info.get("final_test_error"))
    reconstruction = record.reconstruction
    return {
        "Run": record.name,
        "Routings": record.routings,
        "Reconstruction": None if reconstruction is None else ("on" if reconstruction else "off"),
        "Epochs": f"{epochs_done} / {epochs_total}" if epochs_total else str(epochs_done),
        "Status": STATUS_LABELS.get(record.status, record.status),
        "Final test error (%)": final_error,
        "Best test error (%)": best[1] if best else _number_or_none(info.get("best_test_error")),
        "Best epoch": best[0] if best else info.get("best_epoch"),
        "Paper (%)": paper_error(routings=record.routings, reconstruction=reconstruction),
        "Parameters": info.get("parameters"),
        "Device": device_label(info) if record.source == SOURCE_PYTORCH else "keras import",
        "Seconds / epoch": mean_epoch_seconds(history),
        "Weights": record.has_weights,
    }


def run_summary_table(records: Sequence[RunRecord]) -> pd.DataFrame:
    return pd.DataFrame([run_summary_row(record) for record in records])


def curve_summary_table(records: Sequence[RunRecord]) -> pd.DataFrame:
    """The curves page's table: where each chosen run ended and where it was best."""
    rows = []
    for record in records:
        history = record.history
        best = best_test_error(history)
        wall = last_value(history, "wall_seconds")
        rows.append({
            "Run": record.name, "Status": STATUS_LABELS.get(record.status, record.status), "Routings": record.routings,
            "Epochs": len(history),
            "Final test error (%)": last_value(history, "test_error"),
            "Best test error (%)": best[1] if best else None, "Best epoch": best[0] if best else None,
            "Final train loss": last_value(history, "train_loss"), "Final test loss": last_value(history, "test_loss"),
            "Seconds / epoch": mean_epoch_seconds(history),
            "Wall time (min)": wall / 60 if wall is not None else None,
        })
    return pd.DataFrame(rows)


# ---- curves -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """One chart of the curves page: the history columns it overlays (train dashed, test solid)."""

    title: str
    columns: tuple[str, ...]
    y_title: str


PANELS: dict[str, Panel] = {panel.title: panel for panel in (
    Panel("Test error", ("test_error",), "test error (%)"),
    Panel("Loss", ("train_loss", "test_loss"), "total loss"),
    Panel("Margin loss", ("train_margin_loss", "test_margin_loss"), "margin loss"),
    Panel("Reconstruction loss", ("train_recon_loss", "test_recon_loss"), "squared error per image"),
    Panel("Accuracy", ("train_acc", "test_acc"), "accuracy"),
    Panel("Learning rate", ("lr",), "learning rate"),
    Panel("Epoch time", ("epoch_seconds",), "seconds per epoch"),
    Panel("Throughput", ("images_per_second",), "images per second"),
)}
DEFAULT_PANELS = ("Test error", "Loss", "Accuracy")
X_EPOCH, X_WALL = "epoch", "wall time"


def ema(values: Sequence[float] | np.ndarray | pd.Series, *, weight: float) -> np.ndarray:
    """TensorBoard-style exponential moving average, debiased so the curve starts at the first value:
    weight 0 returns the values, weight near 1 smooths hard. NaNs stay NaN (an epoch with no value)
    and do not reset the average."""
    assert 0.0 <= weight < 1.0, f"EMA weight must be in [0, 1), got {weight}"
    series = pd.Series(values, dtype="float64")
    # pandas' adjust=True average is the bias-corrected EMA: sum w^k x_{t-k} / sum w^k.
    smoothed = series.ewm(alpha=1.0 - weight, adjust=True, ignore_na=True).mean()
    return smoothed.where(series.notna()).to_numpy()


def wall_time_unit(max_seconds: float) -> tuple[float, str]:
    """(divisor, unit) that keeps a wall-time axis readable: seconds, minutes or hours."""
    if not math.isfinite(max_seconds) or max_seconds < 120:
        return 1.0, "s"
    if max_seconds < 2 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def combined_history(histories: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """All histories in one long table, a `run` column first, then the trainer's columns (columns a
    history lacks are empty), in the order given."""
    frames = [history.reindex(columns=HISTORY_COLUMNS).assign(run=name) for name, history in histories.items()]
    if not frames:
        return pd.DataFrame(columns=["run", *HISTORY_COLUMNS])
    combined = pd.concat(frames, ignore_index=True)
    return combined[["run", *HISTORY_COLUMNS]]


def combined_csv(histories: Mapping[str, pd.DataFrame]) -> str:
    return combined_history(histories).to_csv(index=False)


# ---- test digits -------------------------------------------------------------------------------

PICK_INDEX, PICK_CLASS, PICK_RANDOM = "index", "class", "random"


def pick_digit(labels: np.ndarray, *, mode: str, index: int = 0, digit_class: int = 0, occurrence: int = 0,
               seed: int = 0) -> int:
    """A test-set index: `index` itself ("index"), the `occurrence`-th digit of `digit_class`
    ("class", wrapping around), or one drawn from `seed` ("random", reproducible)."""
    count = len(labels)
    assert count > 0, "no digits to pick from"
    if mode == PICK_INDEX:
        assert 0 <= index < count, f"index must be in [0, {count}), got {index}"
        return int(index)
    if mode == PICK_CLASS:
        matches = np.flatnonzero(np.asarray(labels) == digit_class)
        assert len(matches) > 0, f"no digit of class {digit_class} in the set"
        return int(matches[occurrence % len(matches)])
    if mode == PICK_RANDOM:
        return int(np.random.default_rng(seed).integers(count))
    raise ValueError(f"unknown pick mode {mode!r}: use {PICK_INDEX!r}, {PICK_CLASS!r} or {PICK_RANDOM!r}")


def to_inputs(images_u8: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) in [0, 1], as the trainer feeds the network."""
    images = np.asarray(images_u8)
    assert images.ndim == 3 and images.dtype == np.uint8, f"expected uint8 (N, H, W), got {images.dtype} {images.shape}"
    return torch.from_numpy(images.copy()).float().div_(255.0).unsqueeze(1)


@dataclass(frozen=True)
class DigitCodes:
    """The digit capsules of some test images: lengths (N, 10) and poses (N, 10, 16), as numpy."""

    lengths: np.ndarray
    poses: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return self.lengths.argmax(axis=1)

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, positions: Sequence[int] | np.ndarray) -> "DigitCodes":
        positions = np.asarray(positions, dtype=np.int64)
        return DigitCodes(self.lengths[positions], self.poses[positions])


@torch.no_grad()
def encode_digits(model: CapsNet, images_u8: np.ndarray, *, batch_size: int = 100) -> DigitCodes:
    """Run the encoder (conv, primary capsules, routing) only; the decoder is left to callers that
    need a particular target class."""
    lengths, poses = [], []
    for start in range(0, len(images_u8), batch_size):
        output = model(to_inputs(images_u8[start:start + batch_size]), reconstruct=False)
        lengths.append(output.lengths.numpy())
        poses.append(output.poses.numpy())
    if not lengths:
        digits, dim = model.config.num_classes, model.config.digit_dim
        return DigitCodes(np.zeros((0, digits), np.float32), np.zeros((0, digits, dim), np.float32))
    return DigitCodes(np.concatenate(lengths), np.concatenate(poses))


@torch.no_grad()
def decode_poses(model: CapsNet, poses: np.ndarray, classes: np.ndarray | int) -> np.ndarray:
    """model.decode on numpy poses (N, 10, 16); returns (N, H, W) images in [0, 1]."""
    classes_tensor = torch.as_tensor(np.asarray(classes), dtype=torch.long)
    images = model.decode(torch.as_tensor(poses, dtype=torch.float32), classes_tensor)
    return images[:, 0].numpy()


def decode_with_offsets(model: CapsNet, poses: np.ndarray, digit_class: int, offsets: Sequence[float]) -> np.ndarray:
    """Figure 4 by hand: ADD `offsets` (one per dimension) to the `digit_class` capsule of one digit's
    poses (10, 16), mask the others, decode. Returns the (H, W) reconstruction."""
    poses = np.asarray(poses, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.float32)
    assert poses.ndim == 2 and offsets.shape == (poses.shape[1],), (
        f"expected poses (10, 16) and one offset per dimension, got {poses.shape} and {offsets.shape}")
    edited = poses.copy()
    edited[digit_class] += offsets
    return decode_poses(model, edited[None], digit_class)[0]


def perturbation_offsets(*, limit: float = 0.25, step: float = 0.05) -> np.ndarray:
    """The paper's Figure 4 offsets, -limit..limit by `step` (11 values by default), 0 in the middle."""
    assert limit > 0 and step > 0, f"limit and step must be positive, got {limit}, {step}"
    intervals = 2 * limit / step
    assert abs(intervals - round(intervals)) < 1e-6, f"2 x limit ({2 * limit}) must be a multiple of step ({step})"
    offsets = np.linspace(-limit, limit, int(round(intervals)) + 1)
    return np.round(offsets, 10)  # -0.25 + 5 x 0.05 must be exactly 0, so that the middle column is the digit


@torch.no_grad()
def perturbation_grid(model: CapsNet, poses: np.ndarray, digit_class: int, *, offsets: np.ndarray) -> np.ndarray:
    """Figure 4: for each dimension d of `digit_class`'s capsule and each offset, the reconstruction
    with that offset ADDED to dimension d alone. poses: one digit's (10, 16). One batched decode.
    Returns (dimensions, len(offsets), H, W)."""
    poses = np.asarray(poses, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.float32)
    dimensions = poses.shape[1]
    edited = np.repeat(poses[None, None], dimensions, axis=0).repeat(len(offsets), axis=1)  # (D, K, 10, 16)
    edited[np.arange(dimensions), :, digit_class, np.arange(dimensions)] += offsets[None, :]
    images = decode_poses(model, edited.reshape(-1, *poses.shape), digit_class)
    return images.reshape(dimensions, len(offsets), *images.shape[1:])


# ---- Figure 3: reconstructions ------------------------------------------------------------------

TARGET_LABEL, TARGET_PREDICTION = "label", "prediction"


@dataclass(frozen=True)
class Reconstructions:
    """Test digits reconstructed from one capsule each, in the style of Figure 3. `table` has one
    row per digit: index, label (l), prediction (p), target (r, the class decoded), correct, length
    of the predicted capsule, error (sum of squared pixel errors, the training loss's unweighted
    reconstruction term)."""

    table: pd.DataFrame
    images: np.ndarray  # (N, H, W) inputs in [0, 1]
    reconstructions: np.ndarray  # (N, H, W)
    target: str = TARGET_LABEL  # which capsule was decoded: the label's or the prediction's


def reconstruct_digits(model: CapsNet, images_u8: np.ndarray, labels: np.ndarray, codes: DigitCodes, *,
                       target: str = TARGET_LABEL, indices: Sequence[int] | None = None) -> Reconstructions:
    """Decode each digit (images_u8, labels and codes aligned row by row) from the capsule of its
    true label (`target="label"`) or of its prediction (`"prediction"`). `indices` are the digits'
    test-set indices for the table (default 0..N-1)."""
    assert target in (TARGET_LABEL, TARGET_PREDICTION), f"target must be 'label' or 'prediction', got {target!r}"
    count = len(images_u8)
    assert len(labels) == count and len(codes.lengths) == count, (
        f"images, labels and codes must be aligned: {count}, {len(labels)}, {len(codes.lengths)}")
    indices = np.arange(count) if indices is None else np.asarray(indices, dtype=np.int64)
    assert len(indices) == count, f"{len(indices)} indices for {count} digits"
    predictions = codes.predictions
    truth = np.asarray(labels, dtype=np.int64)
    targets = truth if target == TARGET_LABEL else predictions
    inputs = np.asarray(images_u8).astype(np.float32) / 255.0
    reconstructions = decode_poses(model, codes.poses, targets) if count else inputs.copy()
    errors = ((reconstructions - inputs) ** 2).reshape(count, -1).sum(axis=1)
    table = pd.DataFrame({
        "index": indices, "label": truth, "prediction": predictions, "target": targets,
        "correct": truth == predictions, "length": codes.lengths[np.arange(count), predictions], "error": errors,
    })
    return Reconstructions(table=table, images=inputs, reconstructions=reconstructions, target=target)


def reconstruction_table(sets: Sequence[Reconstructions]) -> pd.DataFrame:
    """The per-digit table of one or more reconstruction sets of the same digits: the digit's
    columns once, then each set's target and error, suffixed with which capsule was decoded."""
    assert sets, "no reconstructions"
    first = sets[0]
    table = first.table.drop(columns=["target", "error"])
    for entry in sets:
        assert entry.table["index"].tolist() == first.table["index"].tolist(), "sets must hold the same digits"
        table[f"target ({entry.target})"] = entry.table["target"].to_numpy()
        table[f"error ({entry.target})"] = entry.table["error"].to_numpy()
    return table


def misclassified(labels: np.ndarray, codes: DigitCodes) -> np.ndarray:
    """Positions (into the first len(codes) labels) where the longest capsule is not the label."""
    return np.flatnonzero(codes.predictions != np.asarray(labels)[: len(codes)])
