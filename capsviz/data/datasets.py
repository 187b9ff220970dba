"""Datasets as specs: what the trainer and the dashboard need to know of each, in one registry.

A spec says its image size, channels, classes and labels per image, how its train and test arrays are
made or read (uint8 (N, C, H, W) images, int64 labels), and its training augmentation, applied on the
training device to each batch. The trainer and the dashboard look a dataset up by name
(`--dataset NAME`, run.json's config) and never branch on which one it is.

    mnist      MNIST as it is: 28x28, shifts of up to 2 pixels with zero fill for training (the paper's).
    mnist-40   the paper's "expanded MNIST" (section 5.2): each 28x28 digit on a 40x40 black canvas.
               Training: centred, then shifted by up to 6 pixels each way, fresh every epoch (so a digit
               can sit anywhere on the canvas). Test: every digit at a fixed random offset drawn from a
               seeded generator, the same for every run.
    multimnist the paper's MultiMNIST (section 6): two digits of different classes, each shifted by up
               to 4 pixels on a 36x36 canvas, overlaid (capsviz.data.multimnist). Training pairs are drawn
               afresh for every batch; the test set is a fixed seeded set of pairs.

A dataset whose examples are made of several digits (MultiMNIST) overrides `train_batch` and
`test_batch`, which turn stored arrays into the float inputs and the targets the task trains on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import multimnist
from .mnist import DataError, load_mnist, random_shift

SPLITS = ("train", "test")


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    name: str
    description: str
    image_size: int
    channels: int = 1
    classes: int = 10
    labels_per_image: int = 1
    # Training augmentation: random shift of up to this many pixels (zero fill), the default of --shift.
    shift: int
    # (split, data_dir) -> (uint8 images (N, C, H, W), int64 labels (N,) or (N, labels_per_image))
    read: Callable[[str, str | Path | None], tuple[np.ndarray, np.ndarray]]

    def load(self, split: str, data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        if split not in SPLITS:
            raise DataError(f"{self.name}: unknown split {split!r} (use 'train' or 'test')")
        images, labels = self.read(split, data_dir)
        expected = (self.channels * self.stored_layers(split), self.image_size, self.image_size)
        if images.dtype != np.uint8 or images.shape[1:] != expected:  # files on disk: checked in every mode
            raise DataError(f"{self.name} {split}: expected uint8 images (N, {expected}), got {images.dtype} {images.shape}")
        return images, labels

    def augment(self, images: torch.Tensor, *, shift: int, generator: torch.Generator | None) -> torch.Tensor:
        """A training batch, float (B, C, H, W) on the training device -> the same, augmented. Random
        numbers come from `generator` (CPU), so the same generator state gives the same batch on any device."""
        return random_shift(images, shift, generator)

    # The images stored per example are this many layers of `channels` each (MultiMNIST's test set keeps
    # its two digits apart, 2; test_batch overlays them).
    def stored_layers(self, split: str) -> int:
        return 1

    def train_batch(self, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, *, shift: int,
                    generator: torch.Generator | None):
        """A training batch from the stored arrays (on the training device) at `index`: float inputs
        (B, C, H, W) in [0, 1], augmented, and the targets the task takes (here the labels (B,))."""
        return self.augment(images[index].float().div_(255.0), shift=shift, generator=generator), labels[index]

    def test_batch(self, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor):
        """A test batch as it is: float inputs (B, C, H, W) in [0, 1] and the task's targets."""
        return images[index].float().div_(255.0), labels[index]

    def example_batch(self, batch: int, generator: torch.Generator):
        """Random inputs and targets of the right kinds (the precision trial times a step on them)."""
        size = self.image_size
        inputs = torch.rand(batch, self.channels, size, size, generator=generator)
        return inputs, torch.randint(0, self.classes, (batch,), generator=generator)

    def to_dict(self) -> dict:
        return {"name": self.name, "image_size": self.image_size, "channels": self.channels,
                "classes": self.classes, "labels_per_image": self.labels_per_image}


# ---- the specs -------------------------------------------------------------------------------------

def _mnist(split: str, data_dir) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist(split, data_dir)
    return images[:, None], labels  # (N, 1, 28, 28)


EXPANDED_CANVAS, EXPANDED_SHIFT = 40, 6
EXPANDED_TEST_SEED = 40  # the fixed offsets of mnist-40's test digits


def expand_to_canvas(images: np.ndarray, *, canvas: int = EXPANDED_CANVAS) -> np.ndarray:
    """uint8 (N, 1, 28, 28) -> (N, 1, canvas, canvas), each digit centred on a black canvas."""
    border = (canvas - images.shape[-1]) // 2
    assert border >= 0 and 2 * border + images.shape[-1] == canvas, f"cannot centre {images.shape[-1]} in {canvas}"
    return np.pad(images, ((0, 0), (0, 0), (border, border), (border, border)))


def _mnist_40(split: str, data_dir) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _mnist(split, data_dir)
    centred = expand_to_canvas(images)  # (N, 1, 40, 40)
    if split == "train":
        return centred, labels  # shifted afresh every epoch by augment()
    # The test set: one fixed offset per digit, the same in every run and on every machine (CPU generator).
    generator = torch.Generator().manual_seed(EXPANDED_TEST_SEED)
    placed = random_shift(torch.from_numpy(centred), EXPANDED_SHIFT, generator)
    return placed.numpy(), labels


@dataclass(frozen=True, kw_only=True)
class MultiMNISTSpec(DatasetSpec):
    """MultiMNIST through the hooks (capsviz.data.multimnist): the train split is the pool of single digits,
    paired afresh in train_batch; the test split the fixed pairs' separate digits, overlaid in test_batch."""

    def stored_layers(self, split: str) -> int:
        return 2 if split == "test" else 1

    def train_batch(self, images, labels, index, *, shift, generator):
        return multimnist.make_pairs(images, labels, index, shift=shift, generator=generator)

    def test_batch(self, images, labels, index):
        layers = images[index].float().div_(255.0)  # (B, 2, 36, 36)
        return multimnist.overlay(layers), multimnist.PairTargets(labels[index], layers)

    def example_batch(self, batch: int, generator: torch.Generator):
        layers = torch.rand(batch, 2, self.image_size, self.image_size, generator=generator)
        first = torch.randint(0, self.classes, (batch,), generator=generator)
        second = (first + torch.randint(1, self.classes, (batch,), generator=generator)) % self.classes
        return multimnist.overlay(layers), multimnist.PairTargets(torch.stack([first, second], dim=1), layers)


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec(name="mnist", description="MNIST, 28x28", image_size=28, shift=2, read=_mnist),
    DatasetSpec(name="mnist-40", description="expanded MNIST: digits placed at random on a 40x40 canvas "
                                             "(paper section 5.2)",
                image_size=EXPANDED_CANVAS, shift=EXPANDED_SHIFT, read=_mnist_40),
    MultiMNISTSpec(name="multimnist", description="MultiMNIST: two overlapping digits of different classes on "
                                                  "a 36x36 canvas (paper section 6)",
                   image_size=multimnist.CANVAS, labels_per_image=2, shift=multimnist.SHIFT,
                   read=multimnist.read_split),
)}


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"--dataset {name}: unknown dataset (use {', '.join(DATASETS)})") from None
