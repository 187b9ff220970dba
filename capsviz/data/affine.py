"""Affine transforms of digits (paper section 5.2): an affNIST-like test set made offline, and a reader for
the real affNIST files.

The real affNIST (Tieleman, 2013) cannot be downloaded here. Its transform ranges are not on the dataset's
page; we use a widely used "approximately equivalent" recipe (TensorFlow Federated's), per image:

    rotation     uniform in [-20, 20] degrees (positive: counter-clockwise on screen)
    shear        uniform in [-0.2, 0.2], adding that fraction of x to y (about the canvas centre)
    scale        per axis, log-uniform in [0.8, 1.25]
    translation  uniform in [-5, 5] pixels per axis (positive: right, down)

applied to an MNIST test digit first centred on a 40x40 black canvas, in the order scale, shear, rotation,
translation, with bilinear resampling (torch's affine_grid / grid_sample, zero outside). Each digit gets
`versions` transformed copies (affNIST has 32). It is NOT the real affNIST: the real set's transforms are
drawn from ranges of its own, which this recipe only approximates.

Coordinates are pixels, x to the right and y down, measured from the canvas centre, so that one set of
parameters means the same picture at 28x28 (the explorer on MNIST runs) and at 40x40.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .mnist import DataError

AFFNIST_CANVAS = 40
PARAMETERS = ("rotation", "shear", "scale_x", "scale_y", "translate_x", "translate_y")


@dataclass(frozen=True, kw_only=True)
class AffineRecipe:
    """The ranges the affNIST-like transforms are drawn from (module docstring)."""

    rotation_degrees: float = 20.0  # uniform in [-r, r]
    shear: float = 0.2  # uniform in [-s, s]
    scale_min: float = 0.8  # per axis, log-uniform in [scale_min, scale_max]
    scale_max: float = 1.25
    translation_pixels: float = 5.0  # per axis, uniform in [-t, t]
    canvas: int = AFFNIST_CANVAS

    def __post_init__(self):
        assert self.rotation_degrees >= 0 and self.shear >= 0 and self.translation_pixels >= 0, "ranges are >= 0"
        assert 0 < self.scale_min <= 1 <= self.scale_max, f"scale range must hold 1, got [{self.scale_min}, {self.scale_max}]"
        assert self.canvas >= 28, f"the canvas must hold a 28x28 digit, got {self.canvas}"

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"rotation U[-{self.rotation_degrees:g}, {self.rotation_degrees:g}] degrees, shear "
                f"U[-{self.shear:g}, {self.shear:g}], scale per axis log-uniform [{self.scale_min:g}, "
                f"{self.scale_max:g}], translation U[-{self.translation_pixels:g}, {self.translation_pixels:g}] "
                f"pixels per axis; each MNIST test digit centred on {self.canvas}x{self.canvas} first; bilinear "
                f"(torch affine_grid / grid_sample)")


def identity_parameters(n: int = 1) -> dict[str, torch.Tensor]:
    """Parameters that leave images as they are: no rotation, shear or translation, scale 1."""
    zeros, ones = torch.zeros(n), torch.ones(n)
    return {"rotation": zeros, "shear": zeros, "scale_x": ones, "scale_y": ones,
            "translate_x": zeros.clone(), "translate_y": zeros.clone()}


def sample_parameters(n: int, recipe: AffineRecipe, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """n draws of each transform parameter (float64 (n,) tensors), per the recipe. Image k's six numbers
    are the generator's k-th six: the first m of n draws are the m draws, so a subset is a prefix."""
    unit = torch.rand(n, len(PARAMETERS), generator=generator, dtype=torch.float64)  # (n, 6) in [0, 1)
    log_low, log_high = math.log(recipe.scale_min), math.log(recipe.scale_max)
    r, s, t = recipe.rotation_degrees, recipe.shear, recipe.translation_pixels
    low = torch.tensor([-r, -s, log_low, log_low, -t, -t], dtype=torch.float64)
    high = torch.tensor([r, s, log_high, log_high, t, t], dtype=torch.float64)
    drawn = low + (high - low) * unit
    drawn[:, 2:4] = drawn[:, 2:4].exp()  # log-uniform scales
    return {name: drawn[:, k].contiguous() for k, name in enumerate(PARAMETERS)}


def forward_matrices(parameters: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The transform as pixel maps p' = A p + b about the canvas centre: A (N, 2, 2), b (N, 2).
    A = rotation @ shear @ scale: scale first, then shear, then rotation; translation last."""
    p = {name: torch.as_tensor(parameters[name], dtype=torch.float64).reshape(-1) for name in PARAMETERS}
    n = p["rotation"].shape[0]
    angle = torch.deg2rad(p["rotation"])
    cos, sin = angle.cos(), angle.sin()
    # y points down on screen, so counter-clockwise on screen is [[cos, sin], [-sin, cos]] in (x, y)
    rotation = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # (N, 2, 2)
    shear = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
    shear[:, 1, 0] = p["shear"]  # y' = y + k x
    scale = torch.diag_embed(torch.stack([p["scale_x"], p["scale_y"]], -1))
    return rotation @ shear @ scale, torch.stack([p["translate_x"], p["translate_y"]], -1)


def transform_images(images: torch.Tensor, parameters: dict[str, torch.Tensor]) -> torch.Tensor:
    """float (N, C, H, W) square images, each under its own transform (parameters: (N,) or scalars,
    broadcast), bilinear, zero outside. Parameters of identity_parameters return the images unchanged."""
    assert images.dim() == 4 and images.shape[-1] == images.shape[-2], f"expected square (N, C, H, W), got {tuple(images.shape)}"
    n, size = images.shape[0], images.shape[-1]
    parameters = {name: torch.as_tensor(parameters[name], dtype=torch.float64).reshape(-1).expand(n)
                  for name in PARAMETERS}
    forward, shift = forward_matrices(parameters)  # (N, 2, 2), (N, 2) in pixels
    # affine_grid maps each output location to where it samples the input: the inverse map. With
    # align_corners=False a square canvas's normalised coordinates are pixels from the centre times 2/size,
    # so the linear part is the same in both units and only the shift is rescaled.
    inverse = torch.linalg.inv(forward)
    theta = torch.cat([inverse, (-inverse @ (shift * 2.0 / size).unsqueeze(-1))], dim=-1)  # (N, 2, 3)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # the identity samples each pixel at its own centre, but float rounding of the grid can blur the last
    # bit: images under the identity are returned exactly as given (the explorer's sliders at 0)
    unchanged = (forward == torch.eye(2, dtype=forward.dtype)).all(dim=(1, 2)) & (shift == 0).all(dim=1)
    return torch.where(unchanged.view(n, 1, 1, 1), images, moved)


def centre_on_canvas(images: torch.Tensor, canvas: int) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, canvas, canvas), each image centred on a black canvas."""
    border = (canvas - images.shape[-1]) // 2
    assert border >= 0 and 2 * border + images.shape[-1] == canvas, f"cannot centre {images.shape[-1]} in {canvas}"
    return F.pad(images, (border, border, border, border))


@dataclass(frozen=True)
class AffineSet:
    """Transformed digits: images uint8 (N, 1, S, S), labels int64 (N,), the source digit of each
    (index into the images given), and each image's parameters (numpy float64 (N,) per name)."""

    images: np.ndarray
    labels: np.ndarray
    source: np.ndarray
    parameters: dict[str, np.ndarray]
    recipe: AffineRecipe
    seed: int


def affnist_like(images_u8: np.ndarray, labels: np.ndarray, *, versions: int = 1, seed: int = 0,
                 recipe: AffineRecipe | None = None, batch_size: int = 2000) -> AffineSet:
    """The affNIST-like set of some MNIST digits (uint8 (N, 28, 28) or (N, 1, 28, 28)): `versions`
    transformed copies of each, deterministic from `seed` (CPU generator, the same on every machine).
    Copies are ordered digit-major: image i * versions + k is version k of digit i, so that the set of
    the first m digits is a prefix of the set of all of them."""
    recipe = recipe or AffineRecipe()
    images = np.asarray(images_u8)
    images = images[:, None] if images.ndim == 3 else images
    assert images.ndim == 4 and images.shape[1] == 1 and images.dtype == np.uint8, (
        f"expected uint8 (N, 28, 28) digits, got {images.dtype} {images.shape}")
    assert len(images) == len(labels) and versions >= 1, "one label per digit, at least one version"
    generator = torch.Generator().manual_seed(seed)
    parameters = sample_parameters(versions * len(images), recipe, generator)
    source = np.repeat(np.arange(len(images)), versions)
    out = np.empty((len(source), 1, recipe.canvas, recipe.canvas), dtype=np.uint8)
    for start in range(0, len(source), batch_size):
        stop = min(start + batch_size, len(source))
        digits = torch.from_numpy(images[source[start:stop]]).float() / 255.0
        placed = centre_on_canvas(digits, recipe.canvas)  # (B, 1, 40, 40)
        moved = transform_images(placed, {name: value[start:stop] for name, value in parameters.items()})
        out[start:stop] = (moved * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
    return AffineSet(images=out, labels=np.asarray(labels, dtype=np.int64)[source], source=source,
                     parameters={name: value.numpy() for name, value in parameters.items()},
                     recipe=recipe, seed=seed)


# ---- the real affNIST ------------------------------------------------------------------------------
# affNIST's MATLAB files (scipy.io.loadmat) hold a struct affNISTdata with `image` (1600 x N uint8, one
# column per image), `label_int` (N,) and `label_one_of_n` (10 x N). Each column is a 40x40 image laid out
# row by row (x fastest), the reading every published loader uses (image.T reshaped to (N, 40, 40)); the
# tests check it on a file written in that layout from a digit whose orientation is known. The test set
# comes as one test.mat or as numbered batches (test_batches/1.mat ... 32.mat).

AFFNIST_FILES = ("test.mat", "affNIST_test.mat")


def read_affnist_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One affNIST .mat file -> uint8 images (N, 1, 40, 40), int64 labels (N,). Raises DataError (one
    line naming the file and the problem) for a file that is missing, not MATLAB, or not affNIST."""
    import scipy.io  # only for the real files: the rest of CapsViz does not need scipy

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing")
    try:
        content = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError ... for a damaged file
        raise DataError(f"{path}: not a readable MATLAB file ({type(error).__name__})") from None
    data = content.get("affNISTdata")
    if data is None or not hasattr(data, "image") or not hasattr(data, "label_int"):
        raise DataError(f"{path}: no affNISTdata struct with image and label_int; not an affNIST file")
    image = np.asarray(data.image)
    image = image[:, None] if image.ndim == 1 else image  # squeeze_me made one image's column a vector
    labels = np.atleast_1d(np.asarray(data.label_int)).reshape(-1)
    if labels.dtype == object or not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise DataError(f"{path}: affNISTdata.label_int holds {labels.dtype} values, not integers 0-9")
    if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
        raise DataError(f"{path}: affNISTdata.label_int holds values that are not whole numbers")
    labels = labels.astype(np.int64)
    if image.ndim != 2 or image.shape[0] != AFFNIST_CANVAS ** 2:
        raise DataError(f"{path}: affNISTdata.image has shape {image.shape}, expected 1600 x N")
    if len(labels) != image.shape[1]:
        raise DataError(f"{path}: {image.shape[1]} images but {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels outside 0-9")
    if image.dtype != np.uint8:
        if image.dtype == object or not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
            raise DataError(f"{path}: affNISTdata.image holds {image.dtype} values, not pixels 0-255")
        if not np.isfinite(image).all():
            raise DataError(f"{path}: affNISTdata.image holds {int((~np.isfinite(image)).sum()):,} NaN or "
                            f"infinite values; pixels must be 0-255")
        if image.size and (image.min() < 0 or image.max() > 255):
            raise DataError(f"{path}: image values outside 0-255")
        image = image.astype(np.uint8)
    images = np.ascontiguousarray(image.T).reshape(-1, 1, AFFNIST_CANVAS, AFFNIST_CANVAS)  # (N, 1, 40, 40)
    return images, labels


def find_affnist_files(folder: str | Path) -> list[Path]:
    """The affNIST test files in `folder`: test.mat, or the numbered batches (in `folder` or its
    test_batches/ subfolder) in numeric order. Raises DataError when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such affNIST folder")
    for name in AFFNIST_FILES:
        if (folder / name).is_file():
            return [folder / name]
    for place in (folder / "test_batches", folder):
        batches = sorted((p for p in place.glob("*.mat") if p.stem.isdigit()), key=lambda p: int(p.stem))
        if batches:
            return batches
    raise DataError(f"{folder}: no affNIST test file (test.mat, or test_batches/1.mat ...)")


def read_affnist(folder: str | Path, *, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The real affNIST test set in `folder` (find_affnist_files), at most `limit` images."""
    images, labels, count = [], [], 0
    for path in find_affnist_files(folder):
        part_images, part_labels = read_affnist_file(path)
        images.append(part_images)
        labels.append(part_labels)
        count += len(part_labels)
        if limit is not None and count >= limit:
            break
    images, labels = np.concatenate(images), np.concatenate(labels)
    return (images, labels) if limit is None else (images[:limit], labels[:limit])
