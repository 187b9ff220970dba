"""Robustness to affine transforms (paper section 5.2): a model's accuracy on transformed digits, overall
and by how much each transform moved them. The numbers go into a run's evaluation.json (capsviz.store).

The paper trained a CapsNet and a CNN on expanded MNIST (digits shifted on 40x40) to the same test
accuracy (99.23% and 99.22%) and tested both on affNIST: 79% and 66%.
"""
from __future__ import annotations

import base64
import math

import numpy as np
import torch
from scipy.stats import binom
from torch import nn

from ..data.affine import AffineSet

PAPER = {  # section 5.2: expanded-MNIST test accuracy, affNIST test accuracy, in percent
    "capsnet": {"expanded_mnist": 99.23, "affnist": 79.0},
    "baseline": {"expanded_mnist": 99.22, "affnist": 66.0},
}

# Magnitude bins of each transform: (what is binned, its bin edges). Rotation and shear are signed (a
# model may treat left and right differently); scale is the geometric mean of the two axes' factors;
# translation is the distance moved, in pixels.
BINS: dict[str, tuple[str, list[float]]] = {
    "rotation": ("rotation (degrees)", [-20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0]),
    "shear": ("shear", [-0.2, -0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15, 0.2]),
    "scale": ("scale (geometric mean of x and y)", [0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.25]),
    "translation": ("translation distance (pixels)", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, round(5 * math.sqrt(2), 3)]),
}


def magnitudes(parameters: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The binned quantity of each transform (BINS), per image."""
    return {
        "rotation": np.asarray(parameters["rotation"], dtype=np.float64),
        "shear": np.asarray(parameters["shear"], dtype=np.float64),
        "scale": np.sqrt(np.asarray(parameters["scale_x"]) * np.asarray(parameters["scale_y"])),
        "translation": np.hypot(parameters["translate_x"], parameters["translate_y"]),
    }


def accuracy_by_bins(correct: np.ndarray, values: np.ndarray, edges: list[float]) -> dict:
    """{"edges", "count", "accuracy" (percent, None for an empty bin)}: values outside the edges fall in
    the first or last bin (the edges are the recipe's range, so none should)."""
    correct, values = np.asarray(correct, dtype=bool), np.asarray(values, dtype=np.float64)
    assert correct.shape == values.shape, f"one value per prediction, got {values.shape} and {correct.shape}"
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    count = np.bincount(index, minlength=len(edges) - 1)
    hits = np.bincount(index, weights=correct.astype(np.float64), minlength=len(edges) - 1)
    accuracy = [round(100.0 * h / c, 3) if c else None for h, c in zip(hits, count)]
    return {"edges": list(edges), "count": count.tolist(), "accuracy": accuracy}


def class_scores(output) -> torch.Tensor:
    """(B, classes): capsule lengths for a CapsNet, softmax probabilities for a CNN."""
    return output.lengths if hasattr(output, "lengths") else output.probabilities


@torch.inference_mode()
def predict(model: nn.Module, images_u8: np.ndarray, *, batch_size: int = 100) -> np.ndarray:
    """Class scores (N, classes) float32 of uint8 (N, 1, S, S) images (in [0, 255]), in eval mode."""
    model.eval()
    scores = []
    for start in range(0, len(images_u8), batch_size):
        inputs = torch.from_numpy(np.ascontiguousarray(images_u8[start:start + batch_size])).float().div_(255.0)
        scores.append(class_scores(model(inputs, reconstruct=False)).float().cpu())  # no decoder: not needed here
    return torch.cat(scores).numpy() if scores else np.zeros((0, 10), dtype=np.float32)


def pack_correct(correct: np.ndarray) -> str:
    """Which images a model got right, as base64 of one bit per image (10,000 images: 1,668 characters),
    so that two models can be compared image by image (paired_comparison) from their records alone."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode("ascii")


def unpack_correct(text: str, count: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    assert len(bits) >= count, f"{len(bits)} bits recorded, {count} images expected"
    return bits[:count].astype(bool)


def paired_comparison(a: np.ndarray, b: np.ndarray) -> dict:
    """Two models on the same images: how many each alone got right, and the exact two-sided McNemar
    p-value (a binomial test on those discordant images): the chance of a split at least this uneven if
    the two were equally accurate."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    assert a.shape == b.shape, f"the same images for both, got {a.shape} and {b.shape}"
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    discordant = only_a + only_b
    # the binomial tail P(X <= min) of Binomial(discordant, 1/2), doubled; scipy's regularised incomplete
    # beta is exact to float precision and takes microseconds where a sum of binomial coefficients took
    # 27 s at 320,000 images
    p_value = min(1.0, 2.0 * float(binom.cdf(min(only_a, only_b), discordant, 0.5))) if discordant else 1.0
    return {"images": int(a.size), "both": int((a & b).sum()), "only_a": only_a, "only_b": only_b,
            "neither": int((~a & ~b).sum()), "p_value": p_value}


def affine_evaluation(predictions: np.ndarray, dataset: AffineSet) -> dict:
    """The record of one model on an affNIST-like set: recipe, size, accuracy overall and by bins."""
    correct = np.asarray(predictions) == dataset.labels
    values = magnitudes(dataset.parameters)
    digits = len(np.unique(dataset.source))
    return {
        "name": "affnist-like",
        "description": (f"affNIST-like set generated offline from MNIST test digits; NOT the real affNIST. "
                        f"{dataset.recipe.describe()}"),
        "recipe": dataset.recipe.to_dict(), "seed": dataset.seed,
        "digits": digits, "versions": len(dataset.labels) // max(digits, 1), "images": int(len(correct)),
        "accuracy": round(100.0 * float(correct.mean()), 3), "correct": pack_correct(correct),
        "by_transform": {name: {"label": label, **accuracy_by_bins(correct, values[name], edges)}
                         for name, (label, edges) in BINS.items()},
    }


def plain_evaluation(predictions: np.ndarray, labels: np.ndarray, *, name: str, description: str) -> dict:
    """The record of one model on a set without transform parameters (the real affNIST, expanded MNIST)."""
    correct = np.asarray(predictions) == np.asarray(labels)
    return {"name": name, "description": description, "images": int(len(correct)),
            "accuracy": round(100.0 * float(correct.mean()), 3)}
