"""capsviz.analysis.curves: EMA smoothing, wall-time units and the combined history of the curves page."""
import io

import numpy as np
import pandas as pd
import pytest

from capsviz.analysis.curves import combined_csv, combined_history, ema, wall_time_unit
from capsviz.store import HISTORY_COLUMNS

from dashboard_fixtures import new_app, synthetic_rows

# ---- EMA smoothing ------------------------------------------------------------------------------

def test_ema_of_a_constant_series_is_constant():
    np.testing.assert_allclose(ema(np.full(20, 0.37), weight=0.9), np.full(20, 0.37))


def test_ema_weight_zero_is_the_identity():
    values = np.array([3.0, -1.0, 7.5, 0.25, 2.0])
    np.testing.assert_array_equal(ema(values, weight=0.0), values)


def test_ema_is_debiased_and_lags_a_step():
    smoothed = ema([0.0, 0.0, 1.0, 1.0], weight=0.5)
    # debiased EMA: sum w^k x_{t-k} / sum w^k; at t=2: (1 + 0.5*0 + 0.25*0) / 1.75
    np.testing.assert_allclose(smoothed, [0.0, 0.0, 1 / 1.75, (1 + 0.5) / 1.875])
    assert smoothed[0] == 0.0, "the first value is kept, not pulled towards zero"


def test_ema_keeps_gaps_as_gaps():
    smoothed = ema([1.0, np.nan, 3.0], weight=0.5)
    assert np.isnan(smoothed[1]) and smoothed[0] == 1.0 and 1.0 < smoothed[2] < 3.0


def test_ema_rejects_weight_one():
    with pytest.raises(AssertionError, match="EMA weight"):
        ema([1.0, 2.0], weight=1.0)


# ---- wall time and the combined CSV ------------------------------------------------------------

def test_wall_time_unit():
    assert wall_time_unit(90) == (1.0, "s")
    assert wall_time_unit(3600) == (60.0, "min")
    assert wall_time_unit(5 * 3600) == (3600.0, "h")


def test_combined_history_and_csv():
    first = pd.DataFrame(synthetic_rows(3, routings=1))
    second = pd.DataFrame(synthetic_rows(2, routings=3)).drop(columns=["lr"])
    combined = combined_history({"a": first, "b": second})
    assert list(combined.columns) == ["run", *HISTORY_COLUMNS]
    assert combined["run"].tolist() == ["a", "a", "a", "b", "b"]
    assert combined.loc[combined["run"] == "b", "lr"].isna().all()
    back = pd.read_csv(io.StringIO(combined_csv({"a": first, "b": second})))
    assert len(back) == 5
    np.testing.assert_allclose(back["test_error"], combined["test_error"])
    assert list(combined_history({}).columns) == ["run", *HISTORY_COLUMNS]


def test_the_curves_page_compares_one_folder_of_runs(tmp_path, monkeypatch):
    """A folder of the runs root (bugs/: the port bugs beside the correct run) chosen at once."""
    import shutil

    from capsviz import store
    shipped = store.PROJECT_ROOT / "checkpoints"
    for name in ("schedules/decay0.9-seed0", "schedules/budget75m-cosine-seed0", "mnist-r3"):
        shutil.copytree(shipped / name, tmp_path / name)
    monkeypatch.setenv(store.RUNS_ROOT_ENV, str(tmp_path))
    app = new_app().run()
    app.switch_page("pages/curves.py").run()
    assert app.multiselect(key="curve_runs").value == ["mnist-r3", "schedules/budget75m-cosine-seed0",
                                                        "schedules/decay0.9-seed0"]
    app.selectbox(key="curve_folder").set_value("schedules").run()
    assert not app.exception
    assert app.multiselect(key="curve_runs_schedules").value == ["schedules/budget75m-cosine-seed0",
                                                                  "schedules/decay0.9-seed0"]
