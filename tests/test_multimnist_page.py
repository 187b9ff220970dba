"""The MultiMNIST page (Figure 5 made interactive) through Streamlit's AppTest, on a real tiny
MultiMNIST run (conftest's multimnist_run), and its helpers as plain functions."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from capsviz import store
from capsviz.analysis.digits import DigitCodes
from capsviz.analysis.segmentation import (
    decode_from,
    pair_failures,
    predicted_pairs,
    two_colour_overlay,
    with_capsule,
)
from capsviz.model.capsnet import CapsNet

from dashboard_fixtures import open_app


@pytest.fixture(scope="module")
def pair_root(multimnist_run, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dashboard-pairs")
    shutil.copytree(multimnist_run, root / multimnist_run.name, ignore=shutil.ignore_patterns(store.STATE))
    return root


def spec(app, key: str) -> str:
    return app.get_by_key(key).proto.spec


@pytest.mark.slow
def test_multimnist_page_names_both_digits_decodes_any_capsule_filters_failures_and_edits_one(pair_root, monkeypatch):
    app = open_app(pair_root, monkeypatch, "pages/multimnist.py")
    assert app.selectbox(key="multimnist_run").options == ["multimnist-tiny"]
    heading = app.subheader[0].value
    assert heading.startswith("Test pair #0: L1 = 7, L2 = 9 · predicted"), heading  # MNIST test digit 0 is a 7
    red, green = app.selectbox(key="pair_red_0"), app.selectbox(key="pair_green_0")
    assert (red.value, green.value) == (7, 9), "each digit decoded from its own label's capsule by default"
    for key in ("pair_input", "pair_overlay", "pair_red", "pair_green", "pair_lengths"):
        assert spec(app, key)
    before_red, before_green = spec(app, "pair_red"), spec(app, "pair_green")
    red.set_value(3).run()  # a capsule whose digit is not in the pair
    assert not app.exception
    assert spec(app, "pair_red") != before_red and spec(app, "pair_green") == before_green
    assert "3 (absent)" in spec(app, "pair_red")

    # the 16 sliders edit the red capsule; the green digit, decoded from its own capsule, stays
    assert sorted(slider.key for slider in app.slider) == sorted(f"pair_dim_{d}" for d in range(16))
    edited_red, edited_green = spec(app, "pair_edited_red"), spec(app, "pair_edited_green")
    app.slider(key="pair_dim_4").set_value(0.25).run()
    assert not app.exception
    assert spec(app, "pair_edited_red") != edited_red, "moving a slider redraws the edited digit"
    assert spec(app, "pair_edited_green") == edited_green, "the other digit is held fixed"
    app.button(key="pair_reset").click().run()
    assert app.slider(key="pair_dim_4").value == 0.0 and spec(app, "pair_edited_red") == edited_red

    app.segmented_control(key="pair_show").set_value("Failures").run()
    assert not app.exception
    caption = next(c.value for c in app.caption if "have a digit wrong" in c.value)
    assert caption.startswith(tuple(f"{n} of the first 200" for n in range(1, 201))), caption
    assert "(wrong)" in app.subheader[0].value, "the failure filter shows pairs with a digit wrong"


@pytest.mark.slow
def test_single_digit_pages_leave_multimnist_runs_to_their_page(pair_root, monkeypatch):
    app = open_app(pair_root, monkeypatch, "pages/dimensions.py")
    assert not app.main.selectbox and not app.error
    assert any("MultiMNIST page" in info.value for info in app.info)


# ---- the helpers as plain functions ----------------------------------------------------------------

def test_predictions_failures_and_capsule_edits():
    lengths = np.array([[0.1, 0.9, 0.8, 0.0], [0.95, 0.2, 0.85, 0.3]])
    assert predicted_pairs(lengths).tolist() == [[1, 2], [0, 2]]
    codes = DigitCodes(lengths, np.zeros((2, 4, 16), np.float32))
    assert pair_failures(np.array([[2, 1], [0, 3]]), codes).tolist() == [1], "order does not matter; both must be right"
    poses = np.arange(4 * 16, dtype=np.float32).reshape(4, 16)
    edited = with_capsule(poses, 2, np.ones(16))
    assert (edited[2] == 1).all() and np.array_equal(np.delete(edited, 2, 0), np.delete(poses, 2, 0))
    assert poses[2, 0] == 32, "the input is not changed"


def test_decoding_one_capsule_ignores_the_others():
    torch.manual_seed(0)
    model = CapsNet(input_size=36, conv_channels=8, primary_types=2, decoder_hidden=(16, 32)).eval()
    poses = np.random.default_rng(0).normal(size=(10, 16)).astype(np.float32)
    first = decode_from(model, poses, [4, 6])
    changed = with_capsule(poses, 4, np.zeros(16))  # another digit's capsule edited
    again = decode_from(model, changed, [6])
    assert first.shape == (2, 36, 36) and np.allclose(again[0], first[1])
    assert not np.allclose(decode_from(model, changed, [4])[0], first[0])


def test_figure_5_colours():
    first, second = np.zeros((2, 2)), np.zeros((2, 2))
    first[0, 0], second[0, 1], first[1, 1], second[1, 1] = 1.0, 1.0, 1.0, 1.0
    rgb = two_colour_overlay(first, second)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[0, 1].tolist() == [0, 255, 0], "red and green"
    assert rgb[1, 1].tolist() == [255, 255, 0], "yellow where both draw"
    background = np.full((2, 2), 1.0)
    assert two_colour_overlay(np.zeros((2, 2)), np.zeros((2, 2)), background=background)[1, 0].tolist() == [89, 89, 89]


@pytest.mark.slow
def test_multimnist_page_without_runs_says_how_to_train_and_a_corrupt_model_is_one_line(pair_root, tmp_path,
                                                                                        monkeypatch):
    empty = tmp_path / "no-runs"
    empty.mkdir()
    app = open_app(empty, monkeypatch, "pages/multimnist.py")
    assert any("--dataset multimnist" in info.value for info in app.info) and not app.error
    broken = tmp_path / "broken"
    shutil.copytree(pair_root, broken)
    weights = broken / "multimnist-tiny" / store.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])
    app = open_app(broken, monkeypatch, "pages/multimnist.py")
    assert [error.value.split(":")[0] for error in app.error] == ["Cannot load this run's model"]
