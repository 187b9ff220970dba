"""Figure 3 of the paper: test digits beside what the decoder draws from one digit capsule, the
others masked, decoded from the capsule of the true label or of the prediction; with each digit's
label, prediction, target and reconstruction error in a table.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..model.capsnet import CapsNet
from .digits import DigitCodes, decode_poses

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
