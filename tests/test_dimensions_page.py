"""The Capsule dimensions page with a run whose dimensions were measured (scripts/measure_dimensions.py
on a few digits per class): each slider is named by its measured meaning, the heatmap and the
paper's width claim are shown, and another run is shown beside it."""
import json
import shutil
from pathlib import Path

import pytest

from capsviz.analysis.dimension_meanings import DimensionMeanings, model_digest
from capsviz.store import STATE, load_weights, read_dimensions
from scripts.measure_dimensions import measure_run

from dashboard_fixtures import open_app

DIGITS = 8  # per class: enough to exercise the measurement, fast enough for a test


@pytest.fixture(scope="module")
def measured_root(tiny_run, tmp_path_factory) -> Path:
    """tiny-r1 measured, and a copy of it not measured (as an older run would be)."""
    root = tmp_path_factory.mktemp("measured-runs")
    shutil.copytree(tiny_run, root / "tiny-r1", ignore=shutil.ignore_patterns(STATE))
    shutil.copytree(tiny_run, root / "unmeasured", ignore=shutil.ignore_patterns(STATE))
    measure_run(root / "tiny-r1", digits=DIGITS)
    return root


def test_sliders_are_named_by_what_they_were_measured_to_do(measured_root, monkeypatch):
    app = open_app(measured_root, monkeypatch, "pages/dimensions.py")
    app.selectbox(key="dimensions_run").set_value("tiny-r1").run()
    assert not app.exception, [exception.value for exception in app.exception]
    model = load_weights(measured_root / "tiny-r1" / "model.pt")
    meanings = DimensionMeanings.from_arrays(read_dimensions(measured_root / "tiny-r1", model_digest(model)))
    [editor] = app.get("bidi_component")
    data = json.loads(editor.proto.json or editor.proto.mixed.json)
    capsule = data["digit_class"]
    assert data["labels"] == [f"dim {d + 1} · {label}" for d, label in enumerate(meanings.labels(capsule))]
    assert all(hint for hint in data["hints"])
    assert "tiny-r1" in app.get_by_key("meanings_heatmap").proto.spec
    summary = app.dataframe[-1].value.set_index("Run")  # the runs compared
    assert summary.loc["tiny-r1", "Classes with a width dimension"] == f"{len(meanings.classes_with('width'))} / 10"
    assert summary.loc["unmeasured"].isna().all(), "a run without dimensions.npz loads, unmeasured"
    assert any("section 5.1" in caption.value and f"{DIGITS} test digits per class" in caption.value
               for caption in app.caption)
    assert any("unmeasured has not been measured yet" in info.value for info in app.info)
