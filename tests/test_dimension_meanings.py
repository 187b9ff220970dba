"""The response summary of capsule dimensions on a toy decoder whose dimension 0 is built to control
the width and dimension 1 the vertical position, and the per-run cache beside the weights."""
import numpy as np
import pytest
import torch

from capsviz import store
from capsviz.analysis import dimension_meanings as dm
from capsviz.model.capsnet import CapsNet


def toy_decode(vectors: np.ndarray, digit_class: int) -> np.ndarray:
    """An "0": the outline of a box 16 rows tall, 8 + 20 x v[0] px wide (centred), drawn with a 2 px
    stroke (a wider box is not a thicker stroke), moved down by 10 x v[1] px; the other dimensions
    draw nothing different."""
    images = np.zeros((len(vectors), 28, 28), np.float32)
    for image, vector in zip(images, vectors):
        width = int(round(8 + 20 * vector[0]))
        left = 14 - width // 2
        top = 6 + int(round(10 * vector[1]))
        image[top:top + 16, left:left + width] = 1.0
        image[top + 2:top + 14, left + 2:left + width - 2] = 0.0
    return images


@pytest.fixture(scope="module")
def toy_meanings() -> dm.DimensionMeanings:
    rng = np.random.default_rng(0)
    vectors = [rng.normal(0, 0.05, size=(30, 16)).astype(np.float32) for _ in range(3)]  # 3 classes, 30 digits
    return dm.measure_meanings(toy_decode, vectors, digest="toy")


def test_the_width_dimension_is_labelled_width_with_its_slope(toy_meanings):
    for digit_class in range(3):
        assert toy_meanings.label(digit_class, 0) == "width +"
        assert toy_meanings.label(digit_class, 1) == "centre_y +"
        assert set(toy_meanings.labels(digit_class)[2:]) == {dm.WEAK}, "dimensions that change nothing are weak"
    width = dm.image_properties.PROPERTIES.index("width")
    assert toy_meanings.slope[:, 0, width] == pytest.approx(20, rel=0.1), "20 px per unit, as built"
    assert toy_meanings.consistency[:, 0, width] == pytest.approx(1.0)
    assert toy_meanings.shift[:, 0, width] == pytest.approx(20 * 0.5 * 0.5, rel=0.1), "edges move 2.5 px each way"
    assert toy_meanings.classes_with("width") == [0, 1, 2]
    assert toy_meanings.interpretable() == 6


def test_a_dimension_moving_two_properties_alike_is_mixed():
    def grows(vectors, digit_class):  # dimension 0 scales a square outline: width and height alike
        images = np.zeros((len(vectors), 28, 28), np.float32)
        for image, vector in zip(images, vectors):
            size = int(round(12 + 20 * vector[0]))
            start = 14 - size // 2
            image[start:start + size, start:start + size] = 1.0
            image[start + 2:start + size - 2, start + 2:start + size - 2] = 0.0
        return images

    meanings = dm.measure_meanings(grows, [np.random.default_rng(1).normal(0, 0.05, (20, 16))])
    assert meanings.label(0, 0) == dm.MIXED


def test_the_cache_round_trips_and_a_stale_one_is_ignored(toy_meanings, tmp_path):
    assert store.read_dimensions(tmp_path, "toy") is None, "no cache: an older run loads without one"
    store.write_dimensions(tmp_path, toy_meanings.to_arrays())
    loaded = dm.DimensionMeanings.from_arrays(store.read_dimensions(tmp_path, "toy"))
    assert loaded.labels(0) == toy_meanings.labels(0) and loaded.properties == toy_meanings.properties
    assert np.array_equal(loaded.shift, toy_meanings.shift)
    assert store.read_dimensions(tmp_path, "other weights") is None, "measured from other weights: stale"
    (tmp_path / store.DIMENSIONS).write_bytes(b"not a zip")
    with pytest.raises(store.RunError, match="dimensions.npz: unreadable"):
        store.read_dimensions(tmp_path, "toy")


def test_the_digest_follows_the_weights():
    torch.manual_seed(0)
    model = CapsNet()
    before = dm.model_digest(model)
    assert dm.model_digest(model) == before and len(before) == 16
    with torch.no_grad():
        model.decoder[0].weight[0, 0] += 1e-3
    assert dm.model_digest(model) != before


def test_the_heatmap_rows_are_the_labelled_dimensions_and_its_columns_the_nameable_properties(toy_meanings):
    from capsviz.dashboard.dimension_views import meanings_heatmap, shared_zmax

    zmax = shared_zmax(toy_meanings, None, digit_class=0)
    assert zmax == pytest.approx(toy_meanings.shift[0].max())
    figure = meanings_heatmap(toy_meanings, 0, title="toy", zmax=zmax)
    heatmap = figure.data[0]
    assert list(heatmap.y[:3]) == ["1 · width +", "2 · centre_y +", "3 · weak"]
    assert "ink" not in heatmap.x and "width" in heatmap.x, "ink is measured but names no dimension"
    assert heatmap.zmax == zmax and np.asarray(heatmap.z).shape == (16, len(heatmap.x))


def test_the_decoder_goes_to_the_browser_as_float16_only_when_that_is_exact():
    import base64

    from capsviz.dashboard.live_decoder import weights_payload

    torch.manual_seed(0)
    model = CapsNet()
    payload = weights_payload(model)  # fresh float32 weights: float16 would round them
    assert payload["dtype"] == "float32"
    first = payload["layers"][0]
    assert (first["rows"], first["cols"]) == (512, 160)
    weight = np.frombuffer(base64.b64decode(first["weight"]), "<f4").reshape(512, 160)
    assert np.array_equal(weight, model.decoder[0].weight.detach().numpy())
    with torch.no_grad():
        for parameter in model.decoder.parameters():
            parameter.copy_(parameter.half().float())  # as a run's float16 model.pt loads
    assert weights_payload(model)["dtype"] == "float16"


def test_the_measure_script_says_in_one_line_what_is_wrong(tmp_path, capsys):
    from scripts.measure_dimensions import main

    assert main([str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nowhere'}: no such run directory"
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--digits", "1"])
    assert exit_info.value.code == 2 and "--digits must be at least 2, got 1" in capsys.readouterr().err
