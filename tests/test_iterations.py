"""How many routing iterations (capsviz.analysis.iterations and the Routing page's section): runs that differ only
in their routings are found as one family, whatever their folders; their final errors, seconds per epoch and
last-epoch |delta b_ij| per iteration come from their own files; the page draws and tabulates them."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from capsviz import store
from capsviz.analysis.iterations import iterations_table, last_epoch_logit_change, routing_families
from capsviz.store import list_runs, load_run, read_routing

from conftest import ROOT
from dashboard_fixtures import open_app, write_synthetic_run

ROUTINGS = (1, 3, 5)


def logit_rows(routings: int, epochs: int) -> list[dict]:
    """routing.csv rows: each iteration's update halves the last's, and shrinks epoch by epoch."""
    rows = []
    for epoch in range(1, epochs + 1):
        total = 0.0
        for iteration in range(1, routings + 1):
            change = 0.01 / epoch * 0.5 ** (iteration - 1)
            total += change
            rows.append({"epoch": epoch, "iteration": iteration, "mean_abs_logit_change": change,
                         "mean_abs_logit": total, "probe_digits": 300})
    return rows


@pytest.fixture(scope="module")
def iterations_root(tiny_run, tmp_path_factory):
    """routings/r{1,3,5}-seed0 (same settings, 4 epochs, routing.csv), a seed 1 of r3 in another folder,
    one with another learning rate (its own experiment), and one of another length."""
    root = tmp_path_factory.mktemp("iterations-runs")
    for routings in ROUTINGS:
        run_dir = write_synthetic_run(root / "routings" / f"r{routings}-seed0", tiny_run, epochs=4, routings=routings,
                                      status="finished", weights=routings == 3)
        store.write_routing(run_dir, logit_rows(routings, 4))
    seeded = write_synthetic_run(root / "elsewhere" / "r3-seed1", tiny_run, epochs=4, routings=3, status="finished",
                                 weights=False)
    edit_config(seeded, seed=1)
    edit_config(write_synthetic_run(root / "other-lr-r7", tiny_run, epochs=4, routings=7, status="finished",
                                    weights=False), lr=0.01)
    write_synthetic_run(root / "longer-r7", tiny_run, epochs=6, routings=7, status="finished", weights=False)
    return root


def edit_config(run_dir, **changes) -> None:
    info = json.loads((run_dir / store.RUN_JSON).read_text())
    info["config"].update(changes)
    store.write_run_json(run_dir, info)


def load_all(root):
    return [load_run(path, root=root) for path in list_runs(root)]


def test_runs_that_differ_only_in_their_routings_are_one_family(iterations_root):
    families = routing_families(load_all(iterations_root))
    assert len(families) == 1, [family.name for family in families]
    family = families[0]
    assert [run.name for run in family.runs] == ["routings/r1-seed0", "elsewhere/r3-seed1", "routings/r3-seed0",
                                                 "routings/r5-seed0"], "sorted by routings; another seed joins"
    assert family.routings == [1, 3, 5]
    assert family.name == "routings/r1-seed0 +3", "no folder in common: the first run and how many more"
    only_routings = routing_families([run for run in family.runs if run.name.startswith("routings/")])
    assert only_routings[0].name == "routings", "the folder they share names them"


def test_a_copied_run_is_one_member_and_a_rerun_that_trained_differently_is_two(iterations_root, tmp_path):
    """routings/ copied whole, plus r3-seed0 copied to the top level (as mnist-r3 ships a copy of a Table 1
    seed) and a rerun of r1-seed0 whose last epoch came out otherwise."""
    shutil.copytree(iterations_root / "routings", tmp_path / "routings")
    shutil.copytree(iterations_root / "routings" / "r3-seed0", tmp_path / "shipped-r3")
    rerun = shutil.copytree(iterations_root / "routings" / "r1-seed0", tmp_path / "rerun-r1")
    history = pd.read_csv(rerun / store.HISTORY_CSV)
    history.loc[history.index[-1], "test_error"] += 0.01
    history.to_csv(rerun / store.HISTORY_CSV, index=False)
    [family] = routing_families(load_all(tmp_path))
    assert [run.name for run in family.runs] == ["rerun-r1", "routings/r1-seed0", "routings/r3-seed0",
                                                 "routings/r5-seed0"], "the copy in the larger folder stays"
    assert routing_families([run for run in load_all(tmp_path) if run.name != "rerun-r1"])[0].name == "routings"


def test_a_single_routing_count_is_no_family(iterations_root):
    alone = [run for run in load_all(iterations_root) if run.routings == 3]
    assert routing_families(alone) == []


def test_the_table_reads_each_runs_history_and_routing_csv(iterations_root):
    family = routing_families(load_all(iterations_root))[0]
    routing = {run.name: read_routing(run.path, root=iterations_root) for run in family.runs}
    table = iterations_table(family.runs, routing).set_index("Run")
    for run in family.runs:
        row = table.loc[run.name]
        assert row["Routings"] == run.routings
        assert row["Epochs"] == 4
        assert row["Final test error (%)"] == pytest.approx(float(run.history["test_error"].iloc[-1]))
        assert row["Seconds / epoch"] == pytest.approx(float(run.history["epoch_seconds"].mean()))
    # the last epoch (4): iteration 1 moves b by 0.01/4, iteration t by that times 0.5^(t-1)
    assert table.loc["routings/r5-seed0", "Δb, first iteration"] == pytest.approx(0.0025)
    assert table.loc["routings/r5-seed0", "Δb, last iteration"] == pytest.approx(0.0025 * 0.5 ** 4)
    assert table.loc["routings/r1-seed0", "Δb, last iteration"] == pytest.approx(0.0025), "1 iteration: its own update"
    # a run without routing.csv: empty cells in numeric columns
    assert math.isnan(table.loc["elsewhere/r3-seed1", "Δb, first iteration"])
    assert table["Δb, last iteration"].dtype == np.float64


def test_last_epoch_logit_change_takes_the_last_probed_epoch():
    frame = pd.DataFrame(logit_rows(3, 2))
    change = last_epoch_logit_change(frame)
    assert list(change.index) == [1, 2, 3]
    assert change.to_numpy() == pytest.approx([0.005, 0.0025, 0.00125])
    assert last_epoch_logit_change(frame.iloc[:0]).empty


def test_the_routing_page_compares_a_family(iterations_root, monkeypatch):
    app = open_app(iterations_root, monkeypatch, "pages/routing.py")
    assert app.selectbox(key="routing_family").value == 0
    assert "1, 3, 5 iterations" in app.selectbox(key="routing_family").options[0]
    figure = json.loads(app.get_by_key("routing_iterations").proto.spec)
    titles = [annotation["text"] for annotation in figure["layout"]["annotations"]]
    assert titles == ["final test error (%)", "training seconds / epoch", "last epoch: mean |Δb_ij| by iteration"]
    lines = [trace for trace in figure["data"] if trace.get("mode") == "lines+markers"]
    assert len(lines) == 3, "a |Δb| line per run with routing.csv (r3-seed1 has none)"
    tables = [table.value for table in app.dataframe if "Δb, last iteration" in table.value.columns]
    assert len(tables) == 1 and list(tables[0]["Routings"]) == [1, 3, 3, 5]


def test_the_routing_page_says_how_to_train_a_family_when_there_is_none(runs_root, monkeypatch):
    app = open_app(runs_root, monkeypatch, "pages/routing.py")
    assert any("differ only in their routings" in info.value for info in app.info)


def test_the_shipped_routings_runs_are_one_family_of_six():
    """checkpoints/routings/: 1, 2, 3, 5, 7 and 10 iterations, seed 0, 3 epochs each, with routing.csv: the
    family the Routing page opens its comparison on."""
    root = ROOT / "checkpoints"
    shipped = [run for run in load_all(root) if run.name.startswith("routings/")]
    [family] = routing_families(shipped)
    assert family.name == "routings" and family.routings == [1, 2, 3, 5, 7, 10]
    assert routing_families(load_all(root))[0].name == "routings", "the largest family comes first"
    table = iterations_table(family.runs, {run.name: read_routing(run.path, root=root) for run in family.runs})
    assert list(table["Epochs"]) == [3] * 6 and table["Δb, last iteration"].notna().all()
    assert (table["Final test error (%)"] < 1.0).all()
