"""Import a history written by Keras' CSVLogger, so Keras runs can be overlaid on ours.

Column mapping (Keras -> history.csv), for the two-output CapsNet (classifier + decoder) the seed
project trained, the XifengGuo/CapsNet-Keras naming, and plain single-output models:

    epoch (from 0)                                   -> epoch (from 1): epoch + 1
    encoder_acc | capsnet_acc | acc | accuracy       -> train_acc
    val_encoder_acc | val_capsnet_acc | val_acc | val_accuracy
                                                     -> test_acc, and test_error = 100 x (1 - test_acc)
    loss                                             -> train_loss
    val_loss                                         -> test_loss
    encoder_loss | capsnet_loss                      -> train_margin_loss
    val_encoder_loss | val_capsnet_loss              -> test_margin_loss
    decoder_loss                                     -> train_recon_loss
    val_decoder_loss                                 -> test_recon_loss
    lr | learning_rate                               -> lr

"val" is whatever the Keras run validated on; the seed project used the MNIST test set, which is
what our test_* columns hold. The decoder losses are copied as Keras logged them: they are on
Keras' scale (the seed project logs about 3e-5), not ours (the sum of squared pixel errors per
image), so compare their shapes, not their values. decoder_acc has no counterpart and is dropped.
CSVLogger writes no timings: epoch_seconds and wall_seconds are empty unless `seconds_per_epoch`
is given (the seed project reports 285 s for routing 2 and 448 s for routing 3 on a Colab GPU).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from .format import HISTORY_COLUMNS

# Each target column takes the first Keras column of its list that the file has.
COLUMN_SOURCES: dict[str, tuple[str, ...]] = {
    "train_acc": ("encoder_acc", "capsnet_acc", "acc", "accuracy"),
    "test_acc": ("val_encoder_acc", "val_capsnet_acc", "val_acc", "val_accuracy"),
    "train_loss": ("loss",),
    "test_loss": ("val_loss",),
    "train_margin_loss": ("encoder_loss", "capsnet_loss"),
    "test_margin_loss": ("val_encoder_loss", "val_capsnet_loss"),
    "train_recon_loss": ("decoder_loss",),
    "test_recon_loss": ("val_decoder_loss",),
    "lr": ("lr", "learning_rate"),
}


class KerasCsvError(ValueError):
    """An unusable Keras CSV; the message is one line naming the file and the problem."""


def read_keras_history(source: str | Path | bytes | io.IOBase, *, name: str | None = None,
                       seconds_per_epoch: float | None = None) -> pd.DataFrame:
    """Read a Keras CSVLogger file (a path, its bytes, or a file object such as Streamlit's upload)
    into a DataFrame with our HISTORY_COLUMNS. `name` is what error messages call the file.
    Raises KerasCsvError for anything that is not a usable Keras history."""
    label = name or (str(source) if isinstance(source, (str, Path)) else "uploaded file")
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        keras = pd.read_csv(source, skipinitialspace=True)
    except FileNotFoundError:
        raise KerasCsvError(f"{label}: no such file") from None
    except pd.errors.EmptyDataError:
        raise KerasCsvError(f"{label}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise KerasCsvError(f"{label}: not a readable CSV ({str(error).splitlines()[0]})") from None
    keras.columns = [str(column).strip() for column in keras.columns]
    if "epoch" not in keras.columns:
        raise KerasCsvError(f"{label}: no 'epoch' column; not a Keras CSVLogger history "
                            f"(columns: {', '.join(keras.columns[:6])}{'...' if len(keras.columns) > 6 else ''})")
    found = {target: next((column for column in sources if column in keras.columns), None)
             for target, sources in COLUMN_SOURCES.items()}
    if found["test_acc"] is None:
        raise KerasCsvError(f"{label}: no validation accuracy column "
                            f"(one of {', '.join(COLUMN_SOURCES['test_acc'])}) to compute the test error from")
    if keras.empty:
        raise KerasCsvError(f"{label}: no epochs (a header and no rows)")
    used = ["epoch", *(column for column in found.values() if column is not None)]
    numbers = keras[used].apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna() & keras[used].notna()
    if bad.any().any():
        row, column = np.argwhere(bad.to_numpy())[0]
        raise KerasCsvError(f"{label}: row {row + 2}, column {used[column]}: "
                            f"{keras[used].iat[row, column]!r} is not a number")
    epochs = numbers["epoch"]
    if epochs.isna().any() or (epochs % 1 != 0).any():
        raise KerasCsvError(f"{label}: row {int(np.flatnonzero(epochs.isna() | (epochs % 1 != 0))[0]) + 2}: "
                            f"epoch missing or not a whole number (truncated file?)")
    if not epochs.is_monotonic_increasing or epochs.duplicated().any():
        raise KerasCsvError(f"{label}: epochs are not strictly increasing")
    if numbers[found["test_acc"]].isna().any():
        row = int(np.flatnonzero(numbers[found["test_acc"]].isna())[0]) + 2
        raise KerasCsvError(f"{label}: row {row}: {found['test_acc']} is empty (truncated file?)")

    history = pd.DataFrame(index=keras.index, columns=HISTORY_COLUMNS, dtype="float64")
    history["epoch"] = epochs.astype("int64") + 1  # CSVLogger counts from 0, our trainer from 1
    for target, column in found.items():
        if column is not None:
            history[target] = numbers[column]
    history["test_error"] = 100.0 * (1.0 - history["test_acc"])
    if seconds_per_epoch:
        if not seconds_per_epoch > 0:
            raise ValueError(f"seconds_per_epoch must be positive, got {seconds_per_epoch}")
        history["epoch_seconds"] = float(seconds_per_epoch)
        history["wall_seconds"] = history["epoch_seconds"].cumsum()
    history["timestamp"] = None
    return history
