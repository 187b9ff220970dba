"""capsviz.dashboard.figures: the dashboard's Plotly figures, built from plain data and checked as data."""
import base64
import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from capsviz.analysis.curves import PANELS, X_WALL, ema
from capsviz.analysis.reconstructions import TARGET_LABEL, TARGET_PREDICTION, Reconstructions
from capsviz.dashboard.figures import (
    PALETTE,
    capsule_lengths_figure,
    capsule_vector_figure,
    class_bars_figure,
    curves_figure,
    digit_figure,
    perturbation_figure,
    png_data_uri,
    reconstruction_grid_figure,
    run_colors,
    tile_mosaic,
)

from dashboard_fixtures import synthetic_rows


@pytest.fixture()
def histories() -> dict[str, pd.DataFrame]:
    fast = pd.DataFrame(synthetic_rows(6, routings=1))
    slow = pd.DataFrame(synthetic_rows(4, routings=3))
    slow.loc[1, "test_error"] = 0.1  # its best is epoch 2
    return {"r1": fast, "r3": slow}


def traces_named(figure, suffix):
    return [trace for trace in figure.data if (trace.name or "").endswith(suffix)]


def test_best_error_marker_at_the_argmin_epoch(histories):
    figure = curves_figure(histories, panel=PANELS["Test error"])
    stars = {trace.name: trace for trace in traces_named(figure, " best")}
    assert set(stars) == {"r1 best", "r3 best"}
    for name, history in histories.items():
        best = history["test_error"].idxmin()
        assert stars[f"{name} best"].x[0] == history["epoch"][best]
        assert stars[f"{name} best"].y[0] == pytest.approx(history["test_error"][best])
        assert stars[f"{name} best"].marker.symbol == "star"
    assert stars["r3 best"].x[0] == 2


def test_curves_overlay_runs_train_dashed_test_solid(histories):
    figure = curves_figure(histories, panel=PANELS["Loss"], colors=run_colors(["r1", "r3"]))
    lines = {trace.name: trace for trace in figure.data}
    assert set(lines) == {"r1 · train", "r1 · test", "r3 · train", "r3 · test"}
    assert lines["r1 · train"].line.dash == "dash" and lines["r1 · test"].line.dash == "solid"
    assert lines["r1 · train"].line.color == lines["r1 · test"].line.color != lines["r3 · test"].line.color
    np.testing.assert_allclose(lines["r3 · test"].y, histories["r3"]["test_loss"])
    assert not traces_named(figure, " best"), "stars belong to the test error panel only"


def test_smoothing_draws_the_ema_over_faint_raw_values(histories):
    figure = curves_figure(histories, panel=PANELS["Test error"], smoothing=0.6)
    smoothed = next(trace for trace in figure.data if trace.name == "r1")
    np.testing.assert_allclose(smoothed.y, ema(histories["r1"]["test_error"], weight=0.6))
    raw = [trace for trace in figure.data if trace.opacity == 0.25]
    assert len(raw) == 2
    star = traces_named(figure, "r1 best")[0]
    assert star.y[0] == pytest.approx(histories["r1"]["test_error"].min()), "the star marks the raw best"


def test_log_scale_and_wall_time_axis(histories):
    figure = curves_figure(histories, panel=PANELS["Test error"], x_axis=X_WALL, log_y=True)
    assert figure.layout.yaxis.type == "log"
    assert figure.layout.xaxis.title.text == "wall time (min)"  # the longest synthetic run takes 12.5 minutes
    line = next(trace for trace in figure.data if trace.name == "r3")
    np.testing.assert_allclose(line.x, histories["r3"]["wall_seconds"] / 60)


def test_wall_time_axis_skips_a_run_without_timings(histories):
    keras = histories["r1"].assign(wall_seconds=np.nan)
    figure = curves_figure({"keras": keras, "r3": histories["r3"]}, panel=PANELS["Test error"], x_axis=X_WALL)
    assert {trace.name for trace in figure.data} == {"r3", "r3 best"}
    assert "no wall times: keras" in figure.layout.title.subtitle.text


def test_empty_metric_is_left_out(histories):
    no_recon = {name: history.assign(train_recon_loss=np.nan, test_recon_loss=np.nan) for name, history in histories.items()}
    assert len(curves_figure(no_recon, panel=PANELS["Reconstruction loss"]).data) == 0


def test_capsule_lengths_figure_highlights_the_prediction():
    lengths = np.array([0.05, 0.1, 0.92, 0.1, 0.0, 0.2, 0.1, 0.3, 0.1, 0.05])
    figure = capsule_lengths_figure(lengths, label=7)
    bars = figure.data[0]
    assert list(bars.x) == [str(k) for k in range(10)]
    np.testing.assert_allclose(bars.y, lengths)
    colors = list(bars.marker.color)
    assert colors.count(colors[2]) == 1, "only the prediction (class 2) is filled"
    assert list(bars.marker.line.width) == [3 if k == 7 else 0 for k in range(10)], "the label is outlined"
    assert "prediction 2" in figure.layout.title.subtitle.text


def test_digit_figure_is_the_image_upright():
    image = np.random.default_rng(0).random((28, 28))
    figure = digit_figure(image, title="x")
    np.testing.assert_allclose(np.array(figure.data[0].z), image)
    assert figure.layout.yaxis.autorange == "reversed", "row 0 at the top, as images are drawn"
    with pytest.raises(AssertionError, match="one \\(H, W\\) image"):
        digit_figure(np.zeros((1, 28, 28)))


def decode_uri(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.array(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def test_tile_mosaic_places_tiles_with_transparent_gaps():
    tiles = np.zeros((2, 3, 4, 5))
    tiles[1, 2] = 1.0
    mosaic = tile_mosaic(tiles, gap=2)
    assert mosaic.shape == (2 * 4 + 2, 3 * 5 + 2 * 2, 4)
    assert (mosaic[6:10, 14:19, :3] == 255).all() and (mosaic[:4, :5, :3] == 0).all()
    assert (mosaic[4:6, :, 3] == 0).all(), "gaps are transparent"
    np.testing.assert_array_equal(decode_uri(png_data_uri(mosaic)), mosaic)


def test_perturbation_figure_axes_are_offsets_and_dimensions():
    grid = np.random.default_rng(1).random((16, 11, 28, 28))
    offsets = np.round(np.arange(-5, 6) * 0.05, 10)
    figure = perturbation_figure(grid, offsets=offsets, digit_class=4)
    assert len(figure.data) == 1 and figure.data[0].type == "image"
    assert list(figure.layout.xaxis.ticktext) == [f"{offset:+.2f}" for offset in offsets]
    assert list(figure.layout.yaxis.ticktext) == [f"dim {d}" for d in range(1, 17)]
    assert len(figure.layout.shapes) == 1, "the offset-0 column is outlined"
    pixels = decode_uri(figure.data[0].source)
    assert pixels.shape[:2] == (16 * 28 + 15 * 2, 11 * 28 + 10 * 2)
    np.testing.assert_array_equal(pixels[:28, 30:58, 0], np.clip(np.rint(grid[0, 1] * 255), 0, 255))


def make_reconstructions(target: str, predictions) -> Reconstructions:
    count = len(predictions)
    labels = np.array([1, 2, 3, 4][:count])
    targets = labels if target == TARGET_LABEL else np.array(predictions)
    table = pd.DataFrame({"index": np.arange(10, 10 + count), "label": labels, "prediction": predictions,
                          "target": targets, "correct": labels == np.array(predictions),
                          "length": np.full(count, 0.9), "error": np.arange(count) + 0.5})
    return Reconstructions(table=table, images=np.zeros((count, 28, 28)), reconstructions=np.ones((count, 28, 28)),
                           target=target)


def test_reconstruction_grid_captions_and_marks_misclassified_digits():
    predictions = [1, 7, 3, 9]  # digits #11 and #13 are wrong
    sets = [make_reconstructions(TARGET_LABEL, predictions), make_reconstructions(TARGET_PREDICTION, predictions)]
    figure = reconstruction_grid_figure(sets, columns=2)
    captions = [annotation.text for annotation in figure.layout.annotations]
    assert captions[1] == "#11 (2, 7, 2/7) err 1.5/1.5"
    assert captions[0].startswith("#10 (1, 1, 1/1)")
    assert len(figure.layout.shapes) == 2, "a red frame per misclassified digit"
    assert "label's capsule" in figure.layout.title.subtitle.text and "prediction's capsule" in figure.layout.title.subtitle.text
    pixels = decode_uri(figure.data[0].source)
    assert pixels.shape[1] == 2 * (3 * 28 + 2) + 8, "two digits per row, each beside two reconstructions"
    json.loads(figure.to_json())


def test_reconstruction_grid_of_nothing():
    figure = reconstruction_grid_figure([make_reconstructions(TARGET_LABEL, [])])
    assert figure.layout.annotations[0].text == "no digits to show"


def test_capsule_vector_figure_shows_encoded_and_edited_values():
    poses = np.linspace(-0.2, 0.2, 16)
    offsets = np.zeros(16)
    offsets[3] = 0.25
    figure = capsule_vector_figure(poses, offsets, digit_class=5)
    encoded, edited = figure.data
    np.testing.assert_allclose(encoded.y, poses)
    np.testing.assert_allclose(np.array(edited.y) - np.array(encoded.y), offsets)


def test_class_bars_fill_the_predictions_and_frame_the_labels():
    # one bar chart for capsule lengths, a MultiMNIST pair's two predictions and a CNN's softmax
    bars = class_bars_figure(np.linspace(0, 1, 10), filled=[9, 3], outlined=[3], value_name="softmax").data[0]
    assert [k for k, color in enumerate(bars.marker.color) if color == PALETTE[0]] == [3, 9]
    assert [k for k, width in enumerate(bars.marker.line.width) if width] == [3]
    assert "softmax" in bars.hovertemplate and bars.text[9] == "1.00"
