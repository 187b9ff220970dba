"""The capsule space: where a run's test digits lie when each is described by its digit capsules,
drawn in 2-D by PCA and by t-SNE (scikit-learn), and cached beside the run as capsule_space.npz.

What is projected: the concatenation of all ten digit capsules' 16-D poses (160 numbers per digit),
not the predicted class's pose alone. A capsule's length is its class's probability, so the ten
lengths dominate the 160-D vector: digits form one island per class, a digit the network hesitates
over (two capsules half long) sits between the two classes' islands, and within an island the
predicted capsule's direction (stroke, width, slant) spreads the digits out. The predicted class's
16-D pose alone would put a "1" and a "7" with similar instantiation parameters on top of each
other: different capsules' coordinates mean different things, so one map of them mixes classes.

    space = compute_capsule_space(model, images, labels, digits=None, progress=print_progress)
    write_capsule_space(run_dir, space)                  # scripts/map_capsule_space.py does this
    space = read_capsule_space(run_dir, model_digest(model))   # None when missing or other weights'

The cache holds what the map needs and nothing it can recompute cheaply: the weights' digest
(capsviz.analysis.dimension_meanings.model_digest), the test indices, true labels, predictions, the ten
capsule lengths (float16) and both projections' coordinates (float16: a map needs 3 digits, and
10,000 digits then take about 250 KB on disk).
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from .digits import DigitCodes, encode_digits

CAPSULE_SPACE = "capsule_space.npz"
FORMAT = 1  # bump when the file's arrays change meaning; older files then read as stale
PCA, TSNE = "pca", "tsne"
PROJECTIONS = {PCA: "PCA", TSNE: "t-SNE"}
PERPLEXITY = 30.0  # t-SNE's usual default: about 30 neighbours count as "near"
TSNE_INPUT_DIMS = 50  # t-SNE runs on the first 50 principal components, as its authors advise
ENCODE_CHUNK = 500  # digits encoded between two progress reports

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], what is being done)


class CapsuleSpaceError(ValueError):
    """A capsule_space.npz that cannot be read or does not hold what it should; one line."""


def capsule_features(poses: np.ndarray) -> np.ndarray:
    """(N, 10, 16) digit capsule poses -> (N, 160) float32: all ten capsules, one after another."""
    poses = np.asarray(poses, dtype=np.float32)
    assert poses.ndim == 3, f"expected poses (N, classes, dims), got {poses.shape}"
    return poses.reshape(len(poses), -1)


def principal_components(features: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The features on their first `count` principal axes, (N, count) float32, and the fraction of
    the variance each axis explains. Each axis's sign is fixed (its largest loading positive) so
    that the same features give the same picture on every machine, whatever the LAPACK."""
    features = np.asarray(features, dtype=np.float64)
    assert features.ndim == 2 and len(features) >= 2, f"need (N >= 2, D) features, got {features.shape}"
    centred = features - features.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    count = min(count, axes.shape[0])
    axes = axes[:count]
    signs = np.sign(axes[np.arange(count), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular ** 2
    explained = variance[:count] / variance.sum() if variance.sum() > 0 else np.zeros(count)
    return (centred @ axes.T).astype(np.float32), explained.astype(np.float32)


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) coordinates on the two principal axes and the variance fraction each explains."""
    coords, explained = principal_components(features, 2)
    if coords.shape[1] < 2:  # a single feature: the second axis is flat
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
        explained = np.pad(explained, (0, 2 - len(explained)))
    return coords, explained


def tsne_2d(features: np.ndarray, *, seed: int = 0, perplexity: float = PERPLEXITY) -> np.ndarray:
    """(N, 2) t-SNE coordinates (scikit-learn's Barnes-Hut), reproducible for a seed. Perplexity is
    capped below N/3, which t-SNE needs, so a small subset still maps."""
    from sklearn.manifold import TSNE  # imported here: the dashboard only needs it to compute a missing map
    from threadpoolctl import threadpool_limits

    count = len(features)
    assert count >= 4, f"t-SNE needs at least 4 digits, got {count}"
    reduced, _ = principal_components(features, TSNE_INPUT_DIMS)
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (count - 1) / 3.0), init="pca", learning_rate="auto",
                random_state=seed)
    # One OpenMP thread: on a machine whose cores are shared (a training run, the dashboard's own torch
    # threads), OpenMP's barriers wait for every thread to get a core, and 40 points took 85-210 s on 2
    # threads against 8 s on one (2 cores under a load average of 15).
    with threadpool_limits(limits=1, user_api="openmp"):
        return tsne.fit_transform(reduced).astype(np.float32)


@dataclass(frozen=True)
class CapsuleSpace:
    """A run's test digits in capsule space: everything the map draws, for len(indices) digits."""

    digest: str  # model_digest of the weights the digits were encoded with
    dataset: str  # the run's dataset (registry name): whose test set the indices point into
    indices: np.ndarray  # (N,) test-set indices, ascending
    labels: np.ndarray  # (N,) true classes
    predictions: np.ndarray  # (N,) the longest capsule, from the float32 lengths
    lengths: np.ndarray  # (N, 10) capsule lengths
    coords: dict[str, np.ndarray]  # projection name -> (N, 2)
    explained: np.ndarray  # (2,) variance fraction of PCA's two axes
    seed: int  # t-SNE's

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def correct(self) -> np.ndarray:
        return self.predictions == self.labels

    @property
    def predicted_lengths(self) -> np.ndarray:
        """(N,) the length of each digit's longest capsule: how sure the network is."""
        return self.lengths[np.arange(len(self)), self.predictions]

    def runner_up(self) -> tuple[np.ndarray, np.ndarray]:
        """Each digit's second-longest capsule and its length: where a hesitating digit leans."""
        order = np.argsort(-self.lengths.astype(np.float32), axis=1, kind="stable")
        second = np.where(order[:, 0] == self.predictions, order[:, 1], order[:, 0])
        return second, self.lengths[np.arange(len(self)), second]

    def position(self, index: int) -> int | None:
        """Where test digit `index` is in this map, or None when the map left it out."""
        at = int(np.searchsorted(self.indices, index))
        return at if at < len(self.indices) and int(self.indices[at]) == index else None

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "format": np.array(FORMAT), "digest": np.array(self.digest), "dataset": np.array(self.dataset),
            "indices": self.indices.astype(np.int32), "labels": self.labels.astype(np.uint8),
            "predictions": self.predictions.astype(np.uint8), "lengths": self.lengths.astype(np.float16),
            **{f"coords_{name}": self.coords[name].astype(np.float16) for name in PROJECTIONS},
            "explained": self.explained.astype(np.float32), "seed": np.array(self.seed),
        }

    @classmethod
    def from_arrays(cls, arrays) -> "CapsuleSpace":
        """From to_arrays()'s dict (or an open npz); CapsuleSpaceError when anything is missing or off."""
        needed = {"format", "digest", "dataset", "indices", "labels", "predictions", "lengths", "explained", "seed",
                  *(f"coords_{name}" for name in PROJECTIONS)}
        missing = sorted(needed - set(arrays.keys()))
        if missing:
            raise CapsuleSpaceError(f"missing arrays {missing}")
        if int(arrays["format"]) != FORMAT:
            raise CapsuleSpaceError(f"format {int(arrays['format'])}, this version reads {FORMAT}")
        indices = np.asarray(arrays["indices"], dtype=np.int64)
        count = len(indices)
        space = cls(digest=str(arrays["digest"]), dataset=str(arrays["dataset"]), indices=indices,
                    labels=np.asarray(arrays["labels"], dtype=np.int64),
                    predictions=np.asarray(arrays["predictions"], dtype=np.int64),
                    lengths=np.asarray(arrays["lengths"], dtype=np.float32),
                    coords={name: np.asarray(arrays[f"coords_{name}"], dtype=np.float32) for name in PROJECTIONS},
                    explained=np.asarray(arrays["explained"], dtype=np.float32), seed=int(arrays["seed"]))
        shapes_ok = (indices.ndim == 1 and space.labels.shape == (count,) and space.predictions.shape == (count,)
                     and space.lengths.ndim == 2 and len(space.lengths) == count
                     and all(coords.shape == (count, 2) for coords in space.coords.values()))
        if not shapes_ok:
            raise CapsuleSpaceError(f"arrays of inconsistent shapes for {count} digits")
        if count and (np.any(np.diff(indices) <= 0) or indices[0] < 0):
            raise CapsuleSpaceError("test indices not ascending")
        classes = space.lengths.shape[1]
        if count and (space.labels.max() >= classes or space.predictions.max() >= classes):
            raise CapsuleSpaceError(f"classes outside 0..{classes - 1}")
        if not all(np.isfinite(coords).all() for coords in space.coords.values()):
            raise CapsuleSpaceError("coordinates that are not finite")
        return space


def project_codes(codes: DigitCodes, labels: np.ndarray, indices: np.ndarray, *, digest: str, dataset: str,
                  seed: int = 0) -> CapsuleSpace:
    """The map of digits already encoded: `codes` and `labels` belong to test digits `indices`."""
    features = capsule_features(codes.poses)
    pca, explained = pca_2d(features)
    tsne = tsne_2d(features, seed=seed)
    return CapsuleSpace(digest=digest, dataset=dataset, indices=np.asarray(indices, dtype=np.int64),
                        labels=np.asarray(labels, dtype=np.int64), predictions=codes.predictions.astype(np.int64),
                        lengths=codes.lengths.astype(np.float32), coords={PCA: pca, TSNE: tsne}, explained=explained,
                        seed=seed)


def compute_capsule_space(model, images: np.ndarray, labels: np.ndarray, *, digest: str, dataset: str,
                          digits: int | None = None, seed: int = 0, progress: Progress | None = None) -> CapsuleSpace:
    """Encode the first `digits` test digits (all by default) with the model, in chunks, and map them.
    images: uint8 (N, H, W) test set; labels (N,). Encoding takes most of the time on a CPU (about
    2 min for 10,000 28x28 digits on 2 cores), t-SNE the rest (about 1 min for 10,000)."""
    report = progress or (lambda fraction, text: None)
    count = len(images) if digits is None else min(int(digits), len(images))
    parts = []
    for start in range(0, count, ENCODE_CHUNK):
        report(0.8 * start / count, f"encoding test digits: {start:,} / {count:,}")
        parts.append(encode_digits(model, images[start:min(start + ENCODE_CHUNK, count)]))
    codes = DigitCodes(np.concatenate([part.lengths for part in parts]), np.concatenate([part.poses for part in parts]))
    report(0.8, f"t-SNE of {count:,} digits")
    space = project_codes(codes, labels[:count], np.arange(count), digest=digest, dataset=dataset, seed=seed)
    report(1.0, "done")
    return space


def write_capsule_space(run_dir: Path, space: CapsuleSpace) -> Path:
    """Store the map beside the run's weights, atomically; returns the file's path."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **space.to_arrays())
    path = Path(run_dir) / CAPSULE_SPACE
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_capsule_space(run_dir: Path, digest: str) -> CapsuleSpace | None:
    """The cached map when it was computed from weights of this `digest`; None when there is no file
    or it belongs to other weights (or an older format). A damaged file raises CapsuleSpaceError."""
    path = Path(run_dir) / CAPSULE_SPACE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except Exception as error:  # a truncated zip, a non-npz file: all one line for the page
        raise CapsuleSpaceError(f"{path}: unreadable ({type(error).__name__})") from None
    if "digest" not in arrays:
        raise CapsuleSpaceError(f"{path}: no digest of the weights it was computed from")
    if str(arrays["digest"]) != digest or "format" not in arrays or int(arrays["format"]) != FORMAT:
        return None
    try:
        return CapsuleSpace.from_arrays(arrays)
    except CapsuleSpaceError as error:
        raise CapsuleSpaceError(f"{path}: {error}") from None
