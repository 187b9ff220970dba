"""Segmenting overlapping digits (paper section 6, Figure 5): what the MultiMNIST page computes.

A CapsNet trained on MultiMNIST names the two digits of a pair by its two longest capsules, and the
decoder redraws each digit from its own capsule, the others masked. Drawn in two colours over the
input, the two reconstructions show how the network split the pixels between the digits; decoding a
capsule whose digit is absent shows what that capsule would add. Plain numpy and torch, no Streamlit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.multimnist import overlay_u8, test_pairs
from ..model.capsnet import CapsNet
from ..model.tasks import pair_correct, two_longest
from .digits import DigitCodes, decode_poses


@dataclass(frozen=True)
class PairSet:
    """MultiMNIST test pairs: inputs uint8 (N, H, W), labels (N, 2), and the separate digits (N, 2, H, W)."""

    images: np.ndarray
    labels: np.ndarray
    digits: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def load_pair_set(data_dir=None) -> PairSet:
    """The fixed MultiMNIST test set (capsviz.data.multimnist), with its inputs overlaid."""
    digits, labels = test_pairs(data_dir)
    return PairSet(images=overlay_u8(digits), labels=labels, digits=digits)


def predicted_pairs(lengths: np.ndarray) -> np.ndarray:
    """(N, 10) capsule lengths -> (N, 2) the classes of the two longest capsules, longest first."""
    return two_longest(torch.as_tensor(np.asarray(lengths))).numpy()  # the trainer's own rule


def pairs_right(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) bool: both digits named, in either order (Table 1's rule for MultiMNIST)."""
    labels = np.asarray(labels)[: len(predicted)]
    return pair_correct(torch.as_tensor(np.asarray(predicted)), torch.as_tensor(labels)).numpy()  # the trainer's rule


def pair_failures(labels: np.ndarray, codes: DigitCodes) -> np.ndarray:
    """Positions (into the first len(codes) pairs) where either digit is wrong."""
    return np.flatnonzero(~pairs_right(predicted_pairs(codes.lengths), labels))


def decode_from(model: CapsNet, poses: np.ndarray, classes) -> np.ndarray:
    """One pair's capsules (10, 16) decoded from each capsule in `classes` alone (the others masked):
    (len(classes), H, W) images in [0, 1]. Any class may be asked for, present in the pair or not."""
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    repeated = np.repeat(np.asarray(poses, dtype=np.float32)[None], len(classes), axis=0)  # (K, 10, 16)
    return decode_poses(model, repeated, classes)


def with_capsule(poses: np.ndarray, digit_class: int, values: np.ndarray) -> np.ndarray:
    """A copy of poses (10, 16) whose capsule `digit_class` is replaced by `values` (16,); every other
    capsule, the other digit's included, stays as it was."""
    edited = np.array(poses, dtype=np.float32, copy=True)
    values = np.asarray(values, dtype=np.float32)
    assert values.shape == edited[digit_class].shape, f"expected {edited[digit_class].shape} values, got {values.shape}"
    edited[digit_class] = values
    return edited


def two_colour_overlay(first: np.ndarray, second: np.ndarray, *, background: np.ndarray | None = None,
                       background_weight: float = 0.35) -> np.ndarray:
    """Figure 5's picture: the first reconstruction in red, the second in green (yellow where both
    draw), over the input in faint grey when given. Images (H, W) in [0, 1] -> RGB uint8 (H, W, 3)."""
    first, second = np.clip(np.asarray(first, float), 0, 1), np.clip(np.asarray(second, float), 0, 1)
    assert first.shape == second.shape and first.ndim == 2, f"expected two (H, W) images, got {first.shape}, {second.shape}"
    grey = np.zeros_like(first) if background is None else background_weight * np.clip(np.asarray(background, float), 0, 1)
    red = np.maximum(first, grey)
    green = np.maximum(second, grey)
    blue = grey * (1.0 - np.maximum(first, second))  # the input stays grey only where neither digit is drawn
    rgb = np.stack([red, green, blue], axis=-1)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def image_u8(image: np.ndarray) -> np.ndarray:
    """An image in [0, 1] (or uint8) as uint8."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image.astype(float) * 255), 0, 255).astype(np.uint8)
