"""A digit drawn by hand turned into an MNIST digit, the way MNIST's were made (LeCun et al.): the
strokes' bounding box scaled, keeping its aspect ratio, to fit a 20x20 box (anti-aliased, so grey
levels appear at the edges), then placed in a 28x28 field so that its centre of mass is the field's
centre. Larger inputs (40x40 for mnist-40) get the same 28x28 digit centred on their canvas, as
capsviz.data.datasets pads MNIST digits."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MNIST_SIZE, MNIST_BOX = 28, 20
INK_THRESHOLD = 0.05  # a pixel darker than this (of 1) is background: stray anti-aliasing does not widen the box


def canvas_gray(rgba: np.ndarray) -> np.ndarray:
    """A canvas's RGBA pixels (H, W, 4), uint8, drawn in light strokes on a dark or transparent
    background -> float (H, W) ink in [0, 1]: brightness times opacity."""
    rgba = np.asarray(rgba)
    assert rgba.ndim == 3 and rgba.shape[-1] == 4, f"expected RGBA pixels (H, W, 4), got {rgba.shape}"
    pixels = rgba.astype(np.float32) / 255.0
    return pixels[..., :3].mean(axis=-1) * pixels[..., 3]


def center_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, column) of the ink's centre of mass."""
    total = image.sum()
    assert total > 0, "an empty image has no centre of mass"
    rows, columns = np.indices(image.shape)
    return float((rows * image).sum() / total), float((columns * image).sum() / total)


def to_mnist_digit(ink: np.ndarray, *, size: int = MNIST_SIZE) -> np.ndarray | None:
    """Float ink (H, W) in [0, 1], any size -> uint8 (size, size) MNIST-style digit, or None when
    nothing is drawn. The digit is fitted in a 20x20 box and centred by centre of mass in 28x28,
    which sits in the middle of a larger `size`."""
    assert size >= MNIST_SIZE, f"size must be at least {MNIST_SIZE}, got {size}"
    ink = np.asarray(ink, dtype=np.float32)
    rows, columns = np.nonzero(ink > INK_THRESHOLD)
    if len(rows) == 0:
        return None
    crop = ink[rows.min():rows.max() + 1, columns.min():columns.max() + 1]
    height, width = crop.shape
    scale = MNIST_BOX / max(height, width)
    new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
    # antialias: a big canvas shrunk by 10x keeps its strokes' weight as grey levels, as MNIST's did
    fitted = F.interpolate(torch.from_numpy(crop)[None, None], size=(new_height, new_width), mode="bilinear",
                           antialias=True, align_corners=False)[0, 0].clamp(0, 1).numpy()
    if fitted.max() > 0:  # a thin stroke shrunk a lot: full ink at its darkest pixel, as a pen stroke
        fitted = fitted / fitted.max()
    row_mass, column_mass = center_of_mass(fitted)
    centre = (MNIST_SIZE - 1) / 2  # 13.5: the middle of a 28-pixel field, between two pixels
    top = int(round(centre - row_mass)) + (size - MNIST_SIZE) // 2
    left = int(round(centre - column_mass)) + (size - MNIST_SIZE) // 2
    field = np.zeros((size, size), dtype=np.float32)
    # paste, clipped at the field's edges (a very lopsided stroke may reach past them)
    source_top, source_left = max(0, -top), max(0, -left)
    target_top, target_left = max(0, top), max(0, left)
    rows_kept = min(new_height - source_top, size - target_top)
    columns_kept = min(new_width - source_left, size - target_left)
    field[target_top:target_top + rows_kept, target_left:target_left + columns_kept] = \
        fitted[source_top:source_top + rows_kept, source_left:source_left + columns_kept]
    return np.round(field * 255).astype(np.uint8)
