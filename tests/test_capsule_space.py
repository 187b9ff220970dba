"""The capsule space (capsviz.analysis.capsule_space) without Streamlit: projections' shapes, PCA and t-SNE
separating two obvious clusters, the cache refusing a map of other weights, and the shipped maps."""
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from capsviz.analysis.capsule_space import (
    CAPSULE_SPACE,
    PCA,
    PROJECTIONS,
    TSNE,
    CapsuleSpace,
    CapsuleSpaceError,
    capsule_features,
    compute_capsule_space,
    pca_2d,
    read_capsule_space,
    tsne_2d,
    write_capsule_space,
)
from capsviz.analysis.digits import encode_digits, load_test_set
from capsviz.analysis.dimension_meanings import model_digest
from capsviz.model.capsnet import CapsNet, CapsNetConfig
from capsviz.store import default_runs_root, load_weights

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MAPS = ["mnist-r1", "mnist-r3"]
MAP_BUDGET = 400 * 1024  # bytes per shipped capsule_space.npz


def two_clusters(per_cluster: int = 20, dims: int = 160, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two tight clusters 10 apart along the first feature: the one structure a projection must show."""
    rng = np.random.default_rng(seed)
    which = np.repeat([0, 1], per_cluster)
    features = rng.normal(scale=0.1, size=(2 * per_cluster, dims)).astype(np.float32)
    features[:, 0] += np.where(which == 1, 5.0, -5.0)
    return features, which


def test_features_are_the_ten_capsules_one_after_another():
    poses = np.arange(3 * 10 * 16, dtype=np.float32).reshape(3, 10, 16)
    features = capsule_features(poses)
    assert features.shape == (3, 160) and features.dtype == np.float32
    np.testing.assert_array_equal(features[1, 16:32], poses[1, 1])


def test_pca_separates_two_obvious_clusters_the_same_way_every_time():
    features, which = two_clusters()
    coords, explained = pca_2d(features)
    assert coords.shape == (40, 2) and explained.shape == (2,)
    assert explained[0] > 0.9, "the clusters' offset is nearly all the variance"
    # the first axis alone splits them, and its sign is fixed: the largest loading (feature 0) positive
    assert (coords[which == 1, 0] > 0).all() and (coords[which == 0, 0] < 0).all()
    again, _ = pca_2d(features.copy())
    np.testing.assert_array_equal(coords, again)
    flipped, _ = pca_2d(-features)  # the same data mirrored: the same picture mirrored
    np.testing.assert_allclose(flipped[:, 0], -coords[:, 0], atol=1e-4)


def test_pca_of_one_feature_still_gives_two_coordinates():
    coords, explained = pca_2d(np.arange(6, dtype=np.float32)[:, None])
    assert coords.shape == (6, 2) and (coords[:, 1] == 0).all() and explained[1] == 0


def test_tsne_keeps_each_cluster_together_and_is_reproducible():
    features, which = two_clusters()
    coords = tsne_2d(features, seed=0)
    assert coords.shape == (40, 2) and np.isfinite(coords).all()
    distances = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert (which[distances.argmin(axis=1)] == which).all(), "each digit's nearest neighbour is in its cluster"
    np.testing.assert_array_equal(coords, tsne_2d(features, seed=0))


def small_space(count: int = 12, digest: str = "0123456789abcdef", seed: int = 0) -> CapsuleSpace:
    rng = np.random.default_rng(seed)
    lengths = rng.uniform(size=(count, 10)).astype(np.float32)
    return CapsuleSpace(digest=digest, dataset="mnist", indices=np.arange(count) * 3, labels=np.arange(count) % 10,
                        predictions=lengths.argmax(axis=1), lengths=lengths,
                        coords={name: rng.normal(size=(count, 2)).astype(np.float32) for name in PROJECTIONS},
                        explained=np.array([0.5, 0.2], np.float32), seed=0)


def test_the_cache_reads_back_for_its_weights_only(tmp_path):
    space = small_space()
    path = write_capsule_space(tmp_path, space)
    assert path == tmp_path / CAPSULE_SPACE
    read = read_capsule_space(tmp_path, space.digest)
    assert read is not None and len(read) == len(space)
    np.testing.assert_array_equal(read.indices, space.indices)
    np.testing.assert_array_equal(read.predictions, space.predictions)
    np.testing.assert_allclose(read.coords[TSNE], space.coords[TSNE], rtol=1e-3, atol=1e-3)  # float16 on disk
    assert read.position(9) == 3 and read.position(10) is None
    assert read_capsule_space(tmp_path, "fedcba9876543210") is None, "a map of other weights is not this run's"
    assert read_capsule_space(tmp_path / "elsewhere", space.digest) is None, "no file: nothing cached"


@pytest.mark.parametrize("damage", ["truncated", "no-digest", "shapes", "classes"])
def test_a_damaged_cache_is_one_line_of_error(tmp_path, damage):
    space = small_space()
    if damage == "truncated":
        path = write_capsule_space(tmp_path, space)
        path.write_bytes(path.read_bytes()[:200])
    else:
        arrays = space.to_arrays()
        if damage == "no-digest":
            del arrays["digest"]
        elif damage == "shapes":
            arrays["coords_pca"] = arrays["coords_pca"][:-1]
        else:
            arrays["labels"][0] = 12
        np.savez(tmp_path / CAPSULE_SPACE, **arrays)
    with pytest.raises(CapsuleSpaceError) as raised:
        read_capsule_space(tmp_path, space.digest)
    assert "\n" not in str(raised.value) and CAPSULE_SPACE in str(raised.value)


def test_runner_up_is_the_second_longest_capsule():
    space = small_space()
    runner, runner_length = space.runner_up()
    ordered = np.sort(space.lengths, axis=1)
    np.testing.assert_allclose(runner_length, ordered[:, -2])
    assert (runner != space.predictions).all()


def test_computing_a_map_encodes_the_first_digits_with_the_model(tmp_path):
    torch.manual_seed(0)
    model = CapsNet(CapsNetConfig()).eval()  # untrained: only shapes and bookkeeping are under test
    images, labels = load_test_set("mnist")
    reports = []
    space = compute_capsule_space(model, images, labels, digest=model_digest(model), dataset="mnist", digits=12,
                                  progress=lambda fraction, text: reports.append(fraction))
    assert len(space) == 12 and space.lengths.shape == (12, 10)
    np.testing.assert_array_equal(space.indices, np.arange(12))
    np.testing.assert_array_equal(space.labels, labels[:12])
    np.testing.assert_array_equal(space.predictions, encode_digits(model, images[:12]).predictions)
    assert {space.coords[name].shape for name in (PCA, TSNE)} == {(12, 2)}
    assert reports[0] == 0.0 and reports[-1] == 1.0 and reports == sorted(reports)
    write_capsule_space(tmp_path, space)
    assert read_capsule_space(tmp_path, model_digest(model)) is not None
    other = CapsNet(CapsNetConfig()).eval()
    assert read_capsule_space(tmp_path, model_digest(other)) is None, "other weights: the cache is refused"


def tracked(path: Path) -> bool:
    listed = subprocess.run(["git", "ls-files", "--error-unmatch", str(path)], cwd=ROOT, capture_output=True)
    return listed.returncode == 0


@pytest.mark.parametrize("name", SHIPPED_MAPS)
def test_shipped_maps_belong_to_the_shipped_weights_and_are_small(name):
    run_dir = default_runs_root() / name
    path = run_dir / CAPSULE_SPACE
    assert path.is_file(), f"{path} is not shipped: python scripts/map_capsule_space.py {run_dir}"
    assert path.stat().st_size <= MAP_BUDGET
    space = read_capsule_space(run_dir, model_digest(load_weights(run_dir / "model.pt")))
    assert space is not None, f"{path} was computed from other weights: rerun scripts/map_capsule_space.py"
    assert len(space) == 10_000 and space.dataset == "mnist"
    _, labels = load_test_set("mnist")
    np.testing.assert_array_equal(space.labels, labels)
    assert space.correct.mean() > 0.98, "the shipped runs classify MNIST well"
