"""What each dimension of a digit capsule encodes, measured (the paper's section 5.1, which reads
it off the Figure 4 grid by eye).

For each class and each of the 16 dimensions: take that class's capsule of `digits_per_class` test
digits of the class, ADD each of OFFSETS (the Figure 4 range, -0.25..0.25) to that dimension alone,
decode, and measure the images' properties (capsviz.analysis.image_properties). Per digit, a property's
response is the least-squares slope of the property against the offset (property units per unit
of offset); per class and dimension we keep

    slope        the mean of the digits' slopes
    consistency  the fraction of digits whose slope has the mean's sign (1: every digit moves the
                 same way; 0.5: a coin toss)
    shift        how far the change moves the ink's edges over the whole range (0.5), in pixels,
                 times the consistency: a width change of w moves the left and right edges by w/2
                 each, likewise height and stroke thickness; a centroid change moves everything by
                 it; a slant change of s moves the top and bottom by s x half the class's mean
                 height. One scale for every property, so that they can be compared. Ink mass is
                 measured and kept but not labelled: it follows width, height and thickness.

and label the dimension with the property of the largest shift, when that is at least WEAK_SHIFT
pixels (else "weak": nothing we measure moves much) and at least DOMINANCE times the runner-up's
(else "mixed": several properties move together, e.g. width and height when the digit grows).

Only the encoder's poses and the decoder are needed; the result is keyed by a digest of the
weights (model_digest), so a cache measured on other weights is recognised as stale.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from . import image_properties
from .digits import encode_digits

LIMIT = 0.25  # Figure 4's range: -0.25..0.25
OFFSETS = np.linspace(-LIMIT, LIMIT, 5)  # 5 points are enough for a slope; Figure 4 draws 11
DIGITS_PER_CLASS = 200  # the first 200 test digits of each class
WEAK_SHIFT = 1.0  # pixels: below this over the whole range, the dimension is "weak"
DOMINANCE = 1.5  # the best property's shift must be this many times the runner-up's
# How far the ink's edges move per unit change of each property (slant: per unit, times the class's mean height)
EDGE_SHIFT = {"width": 0.5, "height": 0.5, "ink": 0.0, "thickness": 0.5, "slant": 0.5, "centre_x": 1.0,
              "centre_y": 1.0}
WEAK, MIXED = "weak", "mixed"

Decode = Callable[[np.ndarray, int], np.ndarray]  # (M, D) capsule vectors of one class -> (M, H, W) images


def model_digest(model: torch.nn.Module) -> str:
    """A digest of every weight as float32 (what the model computes with): 16 hex digits."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def model_decoder(model, *, batch_size: int = 4000) -> Decode:
    """model.decode as a Decode: the vectors are put in their class's slot, the other capsules are
    masked to zero by the decoder anyway."""
    classes, dimensions = model.config.num_classes, model.config.digit_dim

    @torch.no_grad()
    def decode(vectors: np.ndarray, digit_class: int) -> np.ndarray:
        images = []
        for start in range(0, len(vectors), batch_size):
            chunk = torch.as_tensor(vectors[start:start + batch_size], dtype=torch.float32)
            poses = torch.zeros(len(chunk), classes, dimensions)  # (M, 10, 16)
            poses[:, digit_class] = chunk
            images.append(model.decode(poses, digit_class)[:, 0].numpy())  # (M, H, W)
        return np.concatenate(images)

    return decode


@dataclass(frozen=True)
class DimensionMeanings:
    """The measured responses of one run: arrays indexed (class, dimension, property)."""

    slope: np.ndarray  # (C, D, P) mean slope, property units per unit of offset
    consistency: np.ndarray  # (C, D, P) fraction of digits moving with the mean's sign
    shift: np.ndarray  # (C, D, P) pixels the ink's edges move over the range, times the consistency
    typical: np.ndarray  # (C, P) the property's mean among the class's unedited reconstructions
    spread: np.ndarray  # (C, P) its standard deviation there
    digits: np.ndarray  # (C,) digits measured per class
    offsets: np.ndarray  # (K,) the offsets added
    properties: tuple[str, ...]
    digest: str  # model_digest of the weights measured

    def label(self, digit_class: int, dimension: int) -> str:
        """'width +' (the property, and + when it grows with the dimension), 'mixed' or 'weak'."""
        scores = self.shift[digit_class, dimension]
        order = np.argsort(scores)[::-1]
        best, second = scores[order[0]], scores[order[1]]
        if not best >= WEAK_SHIFT:
            return WEAK
        if best < DOMINANCE * second:
            return MIXED
        sign = "+" if self.slope[digit_class, dimension, order[0]] > 0 else "−"
        return f"{self.properties[order[0]]} {sign}"

    def labels(self, digit_class: int) -> list[str]:
        return [self.label(digit_class, dimension) for dimension in range(self.slope.shape[1])]

    def property_of(self, digit_class: int, dimension: int) -> str | None:
        """The property a dimension is labelled with, None for 'mixed' or 'weak'."""
        label = self.label(digit_class, dimension)
        return None if label in (WEAK, MIXED) else label.rsplit(" ", 1)[0]

    def classes_with(self, prop: str) -> list[int]:
        """Classes where some dimension is labelled `prop`: the paper's "one of the 16 almost always
        represents the width" checked, for prop='width'."""
        classes, dimensions = self.slope.shape[:2]
        return [c for c in range(classes) if any(self.property_of(c, d) == prop for d in range(dimensions))]

    def interpretable(self) -> int:
        """How many (class, dimension) pairs carry a single-property label."""
        classes, dimensions = self.slope.shape[:2]
        return sum(self.property_of(c, d) is not None for c in range(classes) for d in range(dimensions))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"slope": self.slope, "consistency": self.consistency, "shift": self.shift,
                "typical": self.typical, "spread": self.spread,
                "digits": self.digits, "offsets": self.offsets, "properties": np.array(self.properties),
                "digest": np.array(self.digest)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "DimensionMeanings":
        return cls(slope=arrays["slope"], consistency=arrays["consistency"], shift=arrays["shift"],
                   typical=arrays["typical"], spread=arrays["spread"], digits=arrays["digits"], offsets=arrays["offsets"],
                   properties=tuple(str(name) for name in arrays["properties"]), digest=str(arrays["digest"]))


def slopes_against(offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Least-squares slope of values (..., K) against offsets (K,): (...)."""
    centred = offsets - offsets.mean()
    return (values - values.mean(axis=-1, keepdims=True)) @ centred / (centred @ centred)


def class_responses(decode: Decode, vectors: np.ndarray, digit_class: int, *, offsets: np.ndarray = OFFSETS):
    """One class: vectors (N, D) of N digits. Returns slope, consistency, shift (D, P), typical and spread (P,)."""
    count, dimensions = vectors.shape
    assert count >= 2, f"class {digit_class}: need at least 2 digits to measure a response, got {count}"
    edited = np.repeat(vectors[None, None], dimensions, axis=0).repeat(len(offsets), axis=1)  # (D, K, N, D)
    edited[np.arange(dimensions), :, :, np.arange(dimensions)] += offsets[None, :, None]
    images = decode(edited.reshape(-1, dimensions), digit_class)  # (D*K*N, H, W)
    measured = image_properties.measure(images)
    values = np.stack([measured[name] for name in image_properties.PROPERTIES])  # (P, D*K*N)
    values = values.reshape(len(measured), dimensions, len(offsets), count).transpose(1, 0, 3, 2)  # (D, P, N, K)
    per_digit = slopes_against(offsets, values)  # (D, P, N)
    slope = per_digit.mean(axis=-1)  # (D, P)
    consistency = (np.sign(per_digit) == np.sign(slope)[..., None]).mean(axis=-1) * (slope != 0)
    unedited = values[0, :, :, np.abs(offsets).argmin()]  # (P, N): the same reconstructions for every d
    typical, spread = unedited.mean(axis=-1), unedited.std(axis=-1)
    edge = np.array([EDGE_SHIFT[name] for name in image_properties.PROPERTIES])
    edge[image_properties.PROPERTIES.index("slant")] *= typical[image_properties.PROPERTIES.index("height")]
    shift = np.abs(slope) * (offsets.max() - offsets.min()) * edge * consistency  # (D, P)
    return slope, consistency, shift, typical, spread


def measure_meanings(decode: Decode, vectors_by_class: list[np.ndarray], *, offsets: np.ndarray = OFFSETS,
                     digest: str = "", progress: Callable[[int], None] | None = None) -> DimensionMeanings:
    """Every class: vectors_by_class[c] is (N_c, D), the class-c capsules of N_c digits of class c."""
    parts = []
    for digit_class, vectors in enumerate(vectors_by_class):
        parts.append(class_responses(decode, np.asarray(vectors, np.float32), digit_class, offsets=offsets))
        if progress:
            progress(digit_class)
    slope, consistency, shift, typical, spread = (np.stack(arrays).astype(np.float32) for arrays in zip(*parts))
    return DimensionMeanings(slope=slope, consistency=consistency, shift=shift, typical=typical, spread=spread,
                             digits=np.array([len(v) for v in vectors_by_class]), offsets=np.asarray(offsets),
                             properties=image_properties.PROPERTIES, digest=digest)


def class_capsules(model, images_u8: np.ndarray, labels: np.ndarray, *,
                   digits_per_class: int = DIGITS_PER_CLASS) -> list[np.ndarray]:
    """The label's capsule (as in Figure 4) of the first `digits_per_class` test digits of each class."""
    vectors = []
    for digit_class in range(model.config.num_classes):
        chosen = np.flatnonzero(np.asarray(labels) == digit_class)[:digits_per_class]
        codes = encode_digits(model, images_u8[chosen])
        vectors.append(codes.poses[:, digit_class])  # (N, 16)
    return vectors


def measure_model(model, images_u8: np.ndarray, labels: np.ndarray, *, digits_per_class: int = DIGITS_PER_CLASS,
                  progress: Callable[[int], None] | None = None) -> DimensionMeanings:
    """The whole measurement for a CapsNet and its test set (uint8 (N, H, W), labels)."""
    vectors = class_capsules(model, images_u8, labels, digits_per_class=digits_per_class)
    return measure_meanings(model_decoder(model), vectors, digest=model_digest(model), progress=progress)
