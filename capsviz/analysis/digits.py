"""Test digits through a trained CapsNet: choosing a digit, encoding digits into capsules, and
decoding capsule poses back into images.

`load_test_set` loads a dataset's test set as grayscale (N, H, W) images, the form every helper here
and the dashboard's figures take; `encode_digits` runs the encoder only and keeps each digit's 10
capsule lengths and poses (DigitCodes); `decode_poses` draws the images the decoder makes of poses.
The paper's figures are built on these: Figure 3 in reconstructions.py, Figure 4 in perturbations.py.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.datasets import get_dataset
from ..model.capsnet import CapsNet


def load_test_set(dataset: str, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """A dataset's test set (capsviz.data.datasets) as uint8 (N, H, W) images and int64 labels. The
    datasets the dashboard shows are grayscale; their single channel is dropped."""
    images, labels = get_dataset(dataset).load("test", data_dir)
    assert images.shape[1] == 1, f"{dataset}: expected grayscale images, got {images.shape[1]} channels"
    return images[:, 0], labels


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


def misclassified(labels: np.ndarray, codes: DigitCodes) -> np.ndarray:
    """Positions (into the first len(codes) labels) where the longest capsule is not the label."""
    return np.flatnonzero(codes.predictions != np.asarray(labels)[: len(codes)])
