"""Time to accuracy from training histories (capsviz.analysis.time_to_accuracy)."""
import math

import pandas as pd
import pytest

from capsviz.analysis.time_to_accuracy import at_time, scaled_history, time_to_error

from dashboard_fixtures import new_app

HISTORY = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "test_error": [0.9, 0.55, 0.48, 0.52, 0.39],
                        "wall_seconds": [100.0, 210.0, 330.0, 440.0, 560.0], "epoch_seconds": [90.0] * 5,
                        "images_per_second": [600.0] * 5})


def test_the_first_epoch_at_or_below_the_threshold_and_its_time():
    crossing = time_to_error(HISTORY, 0.5)
    assert (crossing.epoch, crossing.seconds, crossing.error) == (3, 330.0, 0.48)
    assert time_to_error(HISTORY, 0.4).epoch == 5
    assert time_to_error(HISTORY, 0.3) is None
    assert time_to_error(HISTORY, 0.55).epoch == 2  # "at or below"


def test_an_idle_machine_clock_counts_epochs_times_one_epoch_time():
    assert time_to_error(HISTORY, 0.5, seconds_per_epoch=200.0).seconds == 600.0
    with pytest.raises(ValueError):
        time_to_error(HISTORY, 0.5, seconds_per_epoch=0.0)


def test_the_error_reached_by_a_time_is_the_last_ended_epochs():
    assert at_time(HISTORY, 50.0) is None
    assert at_time(HISTORY, 330.0) == 0.48 and at_time(HISTORY, 439.0) == 0.48 and at_time(HISTORY, 1e9) == 0.39


def test_a_slower_recipe_is_the_same_epochs_at_a_scaled_time():
    slow = scaled_history(HISTORY, 3.85)
    assert slow["wall_seconds"].tolist() == pytest.approx([385.0, 808.5, 1270.5, 1694.0, 2156.0])
    assert slow["images_per_second"].iloc[0] == pytest.approx(600 / 3.85)
    assert time_to_error(slow, 0.5).seconds == pytest.approx(3.85 * 330.0)
    assert math.isclose(at_time(slow, 1000.0), 0.55)
    with pytest.raises(ValueError):
        scaled_history(HISTORY, float("nan"))


def test_the_table_gives_hours_to_each_threshold_and_the_reference_error_by_then():
    from capsviz.analysis.time_to_accuracy import Contender, idle_epoch_seconds, time_to_accuracy_table
    port = Contender("port", HISTORY, seconds_per_epoch=400.0)  # 0.9 at 400 s, 0.55 at 800 s, 0.48 at 1200 s
    table = time_to_accuracy_table([Contender("ours", HISTORY, seconds_per_epoch=100.0)], reference=port)
    row = table.iloc[0]
    assert row["Hours to 0.5%"] == pytest.approx(300 / 3600) and row["Hours to 0.4%"] == pytest.approx(500 / 3600)
    assert math.isnan(row["Reference then, 0.5% (%)"])  # the port had ended no epoch after 300 s
    assert row["Reference then, 0.4% (%)"] == 0.9
    never = time_to_accuracy_table([Contender("slow", HISTORY.assign(test_error=1.0))], reference=port)
    assert never.dtypes["Hours to 0.5%"].kind == "f" and math.isnan(never.iloc[0]["Hours to 0.5%"])
    bench = {"throughput": [{"routings": 3, "train_fast": 300.0, "eval_fast": 1000.0, "train_plain": 75.0, "eval_plain": 200.0}]}
    assert idle_epoch_seconds(bench) == {"fast": 210.0, "plain": 850.0}
    with pytest.raises(ValueError):
        idle_epoch_seconds(bench, routings=1)


def test_the_chart_marks_where_each_run_first_reaches_a_threshold():
    from capsviz.analysis.time_to_accuracy import Contender
    from capsviz.dashboard.time_figures import time_to_accuracy_figure
    figure = time_to_accuracy_figure([Contender("ours", HISTORY, seconds_per_epoch=3600.0),
                                      Contender("never", HISTORY.assign(test_error=1.0), seconds_per_epoch=3600.0)])
    lines = [trace for trace in figure.data if trace.mode == "lines+markers"]
    marks = [trace for trace in figure.data if trace.mode == "markers"]
    assert [trace.name for trace in lines] == ["ours", "never"]
    assert list(lines[0].x) == [1, 2, 3, 4, 5]  # hours: epochs x one hour each
    assert sorted((mark.x[0], mark.y[0]) for mark in marks) == [(3, 0.48), (5, 0.39)]  # 0.5% and 0.4%, "never" none


def test_the_showcase_clocks_the_shipped_runs_at_the_benchmarks_idle_speed():
    import json

    from capsviz import store
    from capsviz.analysis.time_to_accuracy import SHOWCASE, SHOWCASE_BENCH, SHOWCASE_REFERENCE, idle_epoch_seconds, showcase
    root = store.PROJECT_ROOT / "checkpoints"
    missing = [name for _, name, _ in (*SHOWCASE, SHOWCASE_REFERENCE) if not (root / name / "run.json").exists()]
    assert not missing, f"the showcase names runs that do not ship: {missing}"
    histories = {name: store.load_run(root / name, root=root).history for _, name, _ in (*SHOWCASE, SHOWCASE_REFERENCE)}
    bench = json.loads((store.PROJECT_ROOT / SHOWCASE_BENCH).read_text())
    clock = idle_epoch_seconds(bench)
    assert clock["plain"] > 3 * clock["fast"]  # the fast path's speed-up on the benchmark's machine
    contenders, reference = showcase(histories, bench)
    assert [c.label for c in contenders] == [label for label, name, _ in SHOWCASE if name in histories]
    assert reference.seconds_per_epoch == clock["plain"]
    ours = next(c for c in contenders if c.history is reference.history)  # the same x0.9 epochs, on two clocks
    assert time_to_error(reference.history, 0.5, seconds_per_epoch=reference.seconds_per_epoch).seconds == (
        pytest.approx(time_to_error(ours.history, 0.5, seconds_per_epoch=ours.seconds_per_epoch).seconds
                      * clock["plain"] / clock["fast"]))
    assert showcase({}, bench) == ([], None)


def test_the_home_page_shows_the_time_to_accuracy_of_the_shipped_runs(monkeypatch):
    from capsviz import store
    monkeypatch.setenv(store.RUNS_ROOT_ENV, str(store.PROJECT_ROOT / "checkpoints"))
    app = new_app(timeout=180).run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert "Time to accuracy" in [header.value for header in app.subheader]
    table = next(frame.value for frame in app.dataframe if "Hours to 0.5%" in frame.value.columns)
    assert table["Run"].iloc[-1].startswith("public ports' recipe") and table["Hours to 0.5%"].dtype.kind == "f"
    seeds = table[table["Run"].str.startswith("x0.99 per epoch")]
    assert len(seeds) == 3 and (seeds["Hours to 0.5%"] < table["Hours to 0.5%"].iloc[-1]).all()
    assert any("idle Intel(R) Xeon(R) Processor" in caption.value for caption in app.caption)
