"""Figure 4 of the paper: what each dimension of a digit capsule encodes. Offsets are ADDED to one
dimension of one digit's capsule at a time (the paper's -0.25..0.25 in steps of 0.05), the other
capsules masked, and the decoder redraws the digit: one picture for a hand-made set of offsets
(the dimensions page's sliders), or the whole grid of dimensions by offsets in one batched decode.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..model.capsnet import CapsNet
from .digits import decode_poses


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
