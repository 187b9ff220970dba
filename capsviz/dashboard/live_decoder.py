"""The live decoder (Streamlit components v2, no iframe): 16 capsule-dimension sliders beside the
reconstruction, decoded in the browser by live_decoder.js on every input event while a slider is
dragged, with no server round trip. The decoder's weights go to the browser once per run and
session (float16, base64: about 3.8 MB for the 160-512-1024-784 MLP), cached there by the digest of
the run's weights; the slider values come back to Python on release (for the Figure 4 grid, the
capsule's bar chart and the tests). model.decode stays the reference: the browser test compares
the canvas's pixels with it."""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import streamlit as st
from torch import nn

JS = (Path(__file__).with_name("live_decoder.js")).read_text(encoding="utf-8")
CSS = """
.cv-root { display: flex; gap: 1.5rem; align-items: flex-start; font-family: var(--st-font, sans-serif);
           color: var(--st-text-color, inherit); }
.cv-picture { flex: 0 0 300px; display: flex; flex-direction: column; gap: 0.4rem; }
.cv-title { font-weight: 600; }
.cv-canvas { width: 280px; height: 280px; image-rendering: pixelated; border-radius: 4px; background: #000; }
.cv-caption { font-size: 0.8rem; opacity: 0.7; min-height: 2.2em; }
.cv-reset { width: 280px; padding: 0.35rem; border-radius: 0.5rem; cursor: pointer;
            border: 1px solid var(--st-border-color, #ccc); background: transparent; color: inherit; }
.cv-sliders { flex: 1; display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 0.4rem 1.2rem; }
.cv-slider { display: grid; grid-template-columns: 1fr auto; font-size: 0.85rem; }
.cv-slider input { grid-column: 1 / 3; width: 100%; accent-color: var(--st-primary-color, #ff4b4b); }
.cv-value { font-variant-numeric: tabular-nums; opacity: 0.75; }
"""
_component = st.components.v2.component("capsviz.live_decoder", js=JS, css=CSS)
SENT_KEY = "live_decoder_sent"  # session state: the digests whose weights this session's browser has


def decoder_layers(model: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """The decoder's three Linear layers as float32 (weight (out, in), bias (out,))."""
    layers = [module for module in model.decoder if isinstance(module, nn.Linear)]
    assert len(layers) == 3, f"expected the paper's 3-layer decoder, got {len(layers)} Linear layers"
    return [(layer.weight.detach().float().numpy(), layer.bias.detach().float().numpy()) for layer in layers]


def weights_payload(model: nn.Module) -> dict:
    """What live_decoder.js needs to decode: each layer's shape and float16 weights, base64."""
    def encoded(array: np.ndarray) -> str:
        return base64.b64encode(np.ascontiguousarray(array, dtype="<f2").tobytes()).decode("ascii")

    return {"layers": [{"rows": int(weight.shape[0]), "cols": int(weight.shape[1]), "weight": encoded(weight),
                        "bias": encoded(bias)} for weight, bias in decoder_layers(model)]}


def live_decoder(*, key: str, digest: str, payload: dict, capsule: np.ndarray, digit_class: int,
                 labels: list[str], hints: list[str], limit: float, step: float, values: np.ndarray, token: str,
                 size: int, title: str) -> np.ndarray:
    """Mount the sliders and the live reconstruction; returns the offsets last sent back (the
    `values` given when the browser has sent none). `payload` (weights_payload) is sent only when
    this session's browser lacks the weights of `digest`; `token` changes when `values` must be
    imposed on the sliders (a new digit, capsule, run or range)."""
    sent = st.session_state.setdefault(SENT_KEY, set())
    state_key = f"{key}_need"  # the trigger's value survives in session state only for the run it caused
    result = _component(
        key=key,
        data={"digest": digest, "weights": None if digest in sent and not st.session_state.get(state_key) else payload,
              "capsule": [float(value) for value in capsule], "digit_class": int(digit_class), "labels": labels,
              "hints": hints, "limit": float(limit), "step": float(step), "values": [float(v) for v in values],
              "token": token, "size": int(size), "title": title},
        default={"offsets": [float(v) for v in values]},
        on_offsets_change=lambda: None, on_need_weights_change=lambda: None)
    sent.add(digest)
    if result.need_weights == digest and not st.session_state.get(state_key):
        # The browser lost them (a remount after its cache was cleared): send them on the next run.
        st.session_state[state_key] = True
        st.rerun(scope="fragment")
    st.session_state[state_key] = False
    offsets = np.asarray(result.offsets if result.offsets is not None else values, dtype=np.float32)
    return np.clip(offsets, -limit, limit) if offsets.shape == (len(capsule),) else np.asarray(values, np.float32)
