"""The model pages' digit picker: a test digit by index, by class or at random, or one drawn by hand
on a canvas (streamlit-drawable-canvas; its toolbar has undo, redo and clear) and made into a digit
the way MNIST's were (capsviz.data.drawing).

    picked = pick_or_draw_digit(images, labels, key="routing", where=st.columns(4))
    if picked is None:   # drawing mode with nothing drawn yet: the canvas says what to do
        st.stop()
    picked.image, picked.label, picked.title, picked.subtitle
    codes = picked_codes(run, model, picked)   # its capsule lengths and poses, a test digit's cached

Every widget's key starts with `key`, so two pages (or two pickers) keep their own choices; key="digit"
gives the Capsule dimensions page's own keys (digit_mode, digit_index, digit_class, digit_occurrence,
digit_seed).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import streamlit as st

from ..analysis.digits import PICK_CLASS, PICK_INDEX, PICK_RANDOM, DigitCodes, encode_digits, pick_digit
from ..data.drawing import canvas_gray, to_mnist_digit
from ..store import Run
from .state import digit_codes

PICK_DRAWN = "drawn"
PICK_LABELS = {PICK_INDEX: "By index", PICK_CLASS: "By class", PICK_RANDOM: "At random", PICK_DRAWN: "Draw"}
CANVAS_PIXELS = 252  # 9 canvas pixels per MNIST pixel, about the size of a 20x20 box drawn with a mouse
STROKE_WIDTH = 18  # a pen about 2 MNIST pixels wide once the digit is fitted in its 20x20 box


@dataclass(frozen=True)
class PickedDigit:
    image: np.ndarray  # uint8 (H, W), the model's input size
    label: int | None  # the test set's label; None for a drawn digit
    index: int | None  # the test set's index; None for a drawn digit
    title: str
    subtitle: str


def _next_random(key: str) -> None:
    st.session_state[f"{key}_seed"] = st.session_state.get(f"{key}_seed", 0) + 1


def pick_or_draw_digit(images: np.ndarray, labels: np.ndarray, *, key: str, where: Sequence | None = None,
                       canvas_where=None) -> PickedDigit | None:
    """The digit chosen in the widgets placed in `where` (three containers: the mode, its first and its
    second control; default: three columns), the canvas in `canvas_where` (default: below them).
    images: uint8 (N, H, W) test set; labels (N,). None when drawing and nothing is drawn yet."""
    where = list(where) if where is not None else st.columns(3)
    assert len(where) >= 3, f"the picker needs three containers, got {len(where)}"
    mode = where[0].segmented_control("Digit", list(PICK_LABELS), format_func=PICK_LABELS.get, default=PICK_INDEX,
                                      key=f"{key}_mode") or PICK_INDEX
    if mode == PICK_DRAWN:
        return _drawn_digit(images.shape[-1], key=key, where=canvas_where or st.container())
    if mode == PICK_INDEX:
        index = where[1].number_input("Test index", 0, len(images) - 1, 0, key=f"{key}_index")
        index = pick_digit(labels, mode=PICK_INDEX, index=int(index))
    elif mode == PICK_CLASS:
        digit_class = where[1].selectbox("Class", range(10), key=f"{key}_class")
        occurrence = where[2].number_input("Example of that class", 1, 1200, 1, key=f"{key}_occurrence")
        index = pick_digit(labels, mode=PICK_CLASS, digit_class=digit_class, occurrence=int(occurrence) - 1)
    else:
        where[1].button("Another digit", on_click=_next_random, args=(key,), icon=":material/casino:",
                        key=f"{key}_another", width="stretch")
        index = pick_digit(labels, mode=PICK_RANDOM, seed=st.session_state.get(f"{key}_seed", 0))
    label = int(labels[index])
    return PickedDigit(image=images[index], label=label, index=index, title=f"Test digit #{index}", subtitle=f"label {label}")


def _drawn_digit(size: int, *, key: str, where) -> PickedDigit | None:
    from streamlit_drawable_canvas import st_canvas  # only when drawing: the component registers on import

    with where:
        st.caption("Draw one digit with the mouse, large and centred (undo, redo and clear are in the canvas's "
                   "toolbar). It is fitted in a 20x20 box and centred by its centre of mass in 28x28, as MNIST's were.")
        result = st_canvas(stroke_width=STROKE_WIDTH, stroke_color="#FFFFFF", background_color="#000000",
                           width=CANVAS_PIXELS, height=CANVAS_PIXELS, drawing_mode="freedraw",
                           return_image_data=True, key=f"{key}_canvas")
    pixels = result.image_data if result.json_data and result.json_data.get("objects") else None
    digit = to_mnist_digit(canvas_gray(pixels), size=size) if pixels is not None else None
    if digit is None:
        where.info("Nothing drawn yet: draw a digit on the canvas.", icon=":material/draw:")
        return None
    strokes = len(result.json_data["objects"])
    return PickedDigit(image=digit, label=None, index=None, title="Your digit",
                       subtitle=f"{strokes} stroke(s), made the MNIST way")


def picked_codes(run: Run, model, picked: PickedDigit) -> DigitCodes:
    """The picked digit's capsules under the run's model: a test digit's from the page cache
    (state.digit_codes), a drawn one's encoded now (one digit: milliseconds)."""
    if picked.index is not None:
        return digit_codes(run, picked.index, picked.index + 1)
    return encode_digits(model, picked.image[None])
