"""MultiMNIST (paper section 6): two overlapping digits of different classes on a 36x36 canvas.

Each digit is centred on the canvas, shifted by up to 4 pixels each way (zero fill) and the two are
overlaid by a pixel-wise sum clipped at 1 (the official code: min(a + b, 255)). Each example keeps
both labels and both shifted digits apart: they are the targets of its two reconstructions.

    training   MNIST's 60,000 training digits are the pool. Every batch pairs each of its digits with a
               partner of another class drawn from the whole pool, and shifts both afresh, on the
               training device, from the trainer's seeded generator: an epoch's pairs follow from the
               seed and the epoch, and no two epochs see the same pairs. (The paper drew 1,000 pairs
               per digit, 60M images; drawing them as they are needed keeps nothing on disk.)
    test       10,000 pairs, fixed: MNIST test digit i with a partner and two shifts drawn from a
               generator seeded with TEST_SEED, the same in every run and on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .mnist import load_mnist, random_shift

CANVAS, SHIFT = 36, 4  # 28 + 2 x 4: a digit shifted by 4 pixels still lies wholly on the canvas
TEST_SEED = 36  # the fixed pairs and shifts of the test set
TEST_PAIRS = 10_000  # one pair per MNIST test digit, as its first digit


def centre(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) MNIST digits -> (N, 1, 36, 36), each centred on a black canvas."""
    border = (CANVAS - images.shape[-1]) // 2
    return np.pad(images[:, None], ((0, 0), (0, 0), (border, border), (border, border)))


def overlay(layers: torch.Tensor) -> torch.Tensor:
    """float (B, 2, H, W) separate digits in [0, 1] -> (B, 1, H, W) their sum clipped at 1."""
    assert layers.dim() == 4 and layers.shape[1] == 2, f"expected (B, 2, H, W) digit layers, got {tuple(layers.shape)}"
    return layers.sum(dim=1, keepdim=True).clamp_(max=1.0)


_class_blocks_cache: list = []  # [(labels, (order, starts, counts))]: the pool last asked about


def class_blocks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(order, starts, counts) of a label pool (N,): its indices grouped by class, where each class's
    block begins in `order`, and its size. Computed once per pool (the training set stays the same
    tensor for the whole run), not on every batch: it sorts the whole pool and, on a GPU, syncs. The
    cache holds the pool tensor itself and compares identity, so another pool never gets its blocks."""
    if not (_class_blocks_cache and _class_blocks_cache[0][0] is labels):
        counts = torch.bincount(labels, minlength=int(labels.max()) + 1)  # (K,)
        assert int((counts > 0).sum()) >= 2, "MultiMNIST pairs need digits of at least two classes"
        order = torch.argsort(labels, stable=True)
        _class_blocks_cache[:] = [(labels, (order, torch.cumsum(counts, 0) - counts, counts))]
    return _class_blocks_cache[0][1]


def partners(labels: torch.Tensor, first: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """For each pool index in `first` (B,), a partner index drawn uniformly among the pool digits
    (labels (N,), on any device) of another class. Random numbers come from `generator` (CPU)."""
    order, starts, counts = class_blocks(labels)
    own = labels[first]  # (B,)
    others = len(labels) - counts[own]  # (B,) digits of other classes
    draw = torch.rand(len(first), generator=generator, dtype=torch.float64).to(labels.device)
    rank = torch.clamp((draw * others).long(), max=others - 1)  # (B,) uniform in [0, others)
    position = torch.where(rank < starts[own], rank, rank + counts[own])  # skip the digit's own class block
    return order[position]


@dataclass
class PairTargets:
    """What a MultiMNIST batch is trained against: both labels and both separate (shifted) digits."""

    labels: torch.Tensor  # (B, 2) int64
    digits: torch.Tensor  # (B, 2, H, W) float in [0, 1], in the order of the labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key) -> "PairTargets":
        return PairTargets(self.labels[key], self.digits[key])

    def to(self, device) -> "PairTargets":
        return PairTargets(self.labels.to(device), self.digits.to(device))


def make_pairs(pool: torch.Tensor, labels: torch.Tensor, first: torch.Tensor, *, shift: int,
               generator: torch.Generator | None) -> tuple[torch.Tensor, PairTargets]:
    """Pairs from a pool of centred digits (uint8 (N, 1, S, S), labels (N,), on the device): digit
    `first` (B,) with a partner of another class, each shifted by up to `shift` pixels. Returns the
    overlaid inputs float (B, 1, S, S) and the targets."""
    second = partners(labels, first, generator)  # (B,)
    digits = [random_shift(pool[index].float().div_(255.0), shift, generator) for index in (first, second)]
    layers = torch.cat(digits, dim=1)  # (B, 2, S, S)
    return overlay(layers), PairTargets(torch.stack([labels[first], labels[second]], dim=1), layers)


@lru_cache(maxsize=2)
def _test_pairs(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist("test", data_dir)
    pool, pool_labels = torch.from_numpy(centre(images)), torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(TEST_SEED)
    first = torch.arange(min(TEST_PAIRS, len(pool)))
    _, targets = make_pairs(pool, pool_labels, first, shift=SHIFT, generator=generator)
    layers = targets.digits.mul(255.0).round_().to(torch.uint8)  # exact: shifts only move whole pixels
    return layers.numpy(), targets.labels.numpy()


def test_pairs(data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The fixed test set: uint8 (10000, 2, 36, 36) separate shifted digits and int64 (10000, 2) labels."""
    layers, labels = _test_pairs(None if data_dir is None else str(data_dir))
    return layers.copy(), labels.copy()


def overlay_u8(layers: np.ndarray) -> np.ndarray:
    """uint8 (N, 2, H, W) -> (N, H, W): min(a + b, 255), the official code's overlay."""
    return np.minimum(layers.astype(np.int32).sum(axis=1), 255).astype(np.uint8)


def read_split(split: str, data_dir) -> tuple[np.ndarray, np.ndarray]:
    """The stored arrays of a split: "train" the pool of centred digits, uint8 (60000, 1, 36, 36) and
    labels (60000,); "test" the pairs' separate digits, (10000, 2, 36, 36) and labels (10000, 2)."""
    if split == "train":
        images, labels = load_mnist("train", data_dir)
        return centre(images), labels
    return test_pairs(data_dir)
