"""The affNIST-like generator and the real affNIST reader (capsviz.data.affine)."""
import math

import numpy as np
import pytest
import scipy.io
import torch

from capsviz.data.affine import (
    AffineRecipe,
    affnist_like,
    identity_parameters,
    read_affnist,
    read_affnist_file,
    sample_parameters,
    transform_images,
)
from capsviz.data.mnist import DataError


def blob_digit() -> np.ndarray:
    """A round blob at the centre of a 28x28 canvas: under any transform about the centre it stays
    centred, so its centroid shows the translation alone."""
    y, x = np.mgrid[0:28, 0:28] - 13.5
    return (255 * np.exp(-(x ** 2 + y ** 2) / 8)).astype(np.uint8)


def centroid(image: np.ndarray) -> tuple[float, float]:
    y, x = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    weight = image.astype(np.float64)
    return (weight * x).sum() / weight.sum(), (weight * y).sum() / weight.sum()


def test_generator_is_deterministic_from_its_seed_and_draws_within_the_recipe():
    digits = np.stack([blob_digit()] * 20)
    labels = np.arange(20) % 10
    first, again = affnist_like(digits, labels, versions=3, seed=5), affnist_like(digits, labels, versions=3, seed=5)
    other = affnist_like(digits, labels, versions=3, seed=6)
    assert first.images.shape == (60, 1, 40, 40) and first.images.dtype == np.uint8
    assert np.array_equal(first.images, again.images) and not np.array_equal(first.images, other.images)
    assert np.array_equal(first.labels, np.repeat(labels, 3)) and np.array_equal(first.source, np.repeat(np.arange(20), 3))
    prefix = affnist_like(digits[:4], labels[:4], versions=3, seed=5)  # the first digits' set is a prefix
    assert np.array_equal(prefix.images, first.images[:12])
    assert all(np.array_equal(prefix.parameters[k], first.parameters[k][:12]) for k in prefix.parameters)
    params = sample_parameters(5000, AffineRecipe(), torch.Generator().manual_seed(0))
    assert params["rotation"].abs().max() <= 20 and params["rotation"].abs().max() > 19.9
    assert params["shear"].abs().max() <= 0.2 and params["shear"].abs().max() > 0.199
    for axis in ("scale_x", "scale_y"):  # log-uniform: as many draws below 1 as above
        scale = params[axis]
        assert scale.min() >= 0.8 and scale.max() <= 1.25 and abs((scale < 1).double().mean() - 0.5) < 0.03
        assert abs(scale.log().mean()) < 0.01
    for axis in ("translate_x", "translate_y"):
        assert params[axis].abs().max() <= 5 and params[axis].abs().max() > 4.99
    # recovered from the pictures: the blob's centroid moved by the sampled translation
    for k in range(0, 60, 7):
        x, y = centroid(first.images[k, 0])
        assert x - 19.5 == pytest.approx(first.parameters["translate_x"][k], abs=0.15)
        assert y - 19.5 == pytest.approx(first.parameters["translate_y"][k], abs=0.15)


def test_rotation_shear_and_scale_act_as_documented():
    bar = torch.zeros(1, 1, 40, 40)
    bar[0, 0, 10:30, 19:21] = 1.0  # vertical, 20 pixels long

    def moved(**changes):
        params = identity_parameters(1)
        params.update({name: torch.tensor([float(value)]) for name, value in changes.items()})
        image = transform_images(bar, params)[0, 0].numpy()
        ys, xs = np.nonzero(image > 0.5)
        return image, ys, xs

    _, ys, xs = moved(rotation=20)  # counter-clockwise on screen: the top leans left
    assert np.polyfit(ys, xs, 1)[0] == pytest.approx(math.tan(math.radians(20)), abs=0.03)
    _, ys, _ = moved(scale_y=1.25)
    assert ys.max() - ys.min() + 1 == pytest.approx(25, abs=1)
    horizontal = bar.transpose(-1, -2)
    params = identity_parameters(1)
    params["shear"] = torch.tensor([0.2])  # y' = y + 0.2 x: a horizontal bar tilts down to the right
    ys, xs = np.nonzero(transform_images(horizontal, params)[0, 0].numpy() > 0.5)
    assert np.polyfit(xs, ys, 1)[0] == pytest.approx(0.2, abs=0.02)


@pytest.mark.parametrize("size", [28, 40])
def test_transform_by_zero_is_the_identity(size):
    images = torch.rand(3, 1, size, size)
    assert torch.equal(transform_images(images, identity_parameters(3)), images)
    assert torch.equal(transform_images(images, {**identity_parameters(1), "rotation": 0.0}), images)


def write_affnist(path, images: np.ndarray, labels: np.ndarray) -> None:
    """A file in the real affNIST layout: struct affNISTdata, image 1600 x N uint8 with one image per
    column laid out row by row, label_int, label_one_of_n 10 x N."""
    columns = images.reshape(len(images), 1600).T.astype(np.uint8)
    scipy.io.savemat(path, {"affNISTdata": {
        "image": columns, "label_int": labels.astype(np.uint8)[None],
        "label_one_of_n": np.eye(10, dtype=np.uint8)[labels].T}})


def seven() -> np.ndarray:
    """A 7 on 40x40: a bar along the top, a stroke down the right."""
    digit = np.zeros((40, 40), dtype=np.uint8)
    digit[8:11, 10:30] = 255
    digit[8:32, 27:30] = 200
    return digit


def test_affnist_reader_round_trips_a_real_format_file(tmp_path):
    images = np.stack([seven(), seven()[:, ::-1], np.full((40, 40), 7, np.uint8)])
    write_affnist(tmp_path / "test.mat", images, np.array([7, 3, 0]))
    read_images, read_labels = read_affnist(tmp_path)
    assert read_images.shape == (3, 1, 40, 40) and read_images.dtype == np.uint8
    assert np.array_equal(read_images[:, 0], images) and read_labels.tolist() == [7, 3, 0]
    top, right = read_images[0, 0, 8:11].sum(), read_images[0, 0, :, 27:30].sum()
    assert top > read_images[0, 0, 29:32].sum() and right > read_images[0, 0, :, 10:13].sum(), "upright, not transposed"
    batches = tmp_path / "batches" / "test_batches"
    batches.mkdir(parents=True)
    for number, k in ((2, 1), (1, 0), (10, 2)):
        write_affnist(batches / f"{number}.mat", images[k:k + 1], np.array([[7, 3, 0][k]]))
    assert read_affnist(tmp_path / "batches")[1].tolist() == [7, 3, 0], "batches in numeric order"
    assert read_affnist(tmp_path / "batches", limit=2)[1].tolist() == [7, 3]


def test_affnist_reader_rejects_bad_files_in_one_line(tmp_path):
    (tmp_path / "junk.mat").write_bytes(b"not a matlab file at all" * 10)
    scipy.io.savemat(tmp_path / "other.mat", {"something": np.zeros(3)})
    scipy.io.savemat(tmp_path / "shape.mat", {"affNISTdata": {"image": np.zeros((784, 2), np.uint8),
                                                              "label_int": np.zeros(2, np.uint8)}})
    cases = {"junk.mat": "not a readable MATLAB file", "other.mat": "no affNISTdata struct",
             "shape.mat": "expected 1600 x N", "gone.mat": "missing"}
    for name, message in cases.items():
        with pytest.raises(DataError, match=message) as caught:
            read_affnist_file(tmp_path / name)
        assert "\n" not in str(caught.value) and name in str(caught.value)
    with pytest.raises(DataError, match="no such affNIST folder"):
        read_affnist(tmp_path / "other.mat")  # a file, not a folder
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no affNIST test file"):
        read_affnist(tmp_path / "empty")
