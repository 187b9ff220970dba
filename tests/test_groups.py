"""Run groups: seeds of one setting found from their configs, averaged, and set beside Table 1."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capsviz import store
from capsviz.analysis.curves import PANELS
from capsviz.analysis.groups import band_limits, group_curve, group_runs, group_summary_table, table1_measured
from capsviz.dashboard.figures import curves_figure
from capsviz.store import Run

from dashboard_fixtures import open_app, synthetic_rows

CONFIG = {"dataset": "mnist", "model": "capsnet", "routings": 3, "epochs": 10, "batch_size": 100, "lr": 0.001,
          "lr_decay": 0.99, "recon_weight": 0.0005, "recon": True, "shift": 2, "seed": 0, "subset": None,
          "test_subset": None, "fast": True, "precision": "auto", "inner_routing_grad": False, "data_dir": None,
          "device": "auto", "model_options": {}}


def history(errors) -> pd.DataFrame:
    return pd.DataFrame({"epoch": np.arange(1, len(errors) + 1), "test_error": errors})


def run(name, errors, **config) -> Run:
    return Run(path=Path(name), info={"status": "finished", "config": {**CONFIG, **config}}, history=history(errors),
               name=name)


def test_seeds_of_one_setting_form_a_group_whatever_their_epochs_and_machine():
    seeds = [run(f"table1/capsnet-r3-recon-seed{seed}", [1.0, 0.5], seed=seed, epochs=10 + seed,
                 precision=("bf16", "fp32", "auto")[seed]) for seed in (2, 0, 1)]
    other_decay = run("decay0.9", [1.0], lr_decay=0.9)
    one_routing = run("table1/capsnet-r1-recon-seed0", [1.0], routings=1)
    groups = group_runs([*seeds, other_decay, one_routing])
    assert [group.name for group in groups] == ["table1/capsnet-r3-recon", "decay0.9", "table1/capsnet-r1-recon-seed0"]
    assert groups[0].seeds == [0, 1, 2] and groups[0].is_group and not groups[1].is_group
    imported = Run.imported("a.csv", history([1.0]))
    assert len(group_runs([imported, Run.imported("b.csv", history([1.0]))])) == 2, "imports are never grouped"


def test_a_group_with_unrelated_names_is_named_by_its_first_run():
    groups = group_runs([run("first", [1.0], seed=0), run("second", [1.0], seed=1)])
    assert [group.name for group in groups] == ["first +1"]


def test_a_second_run_with_the_same_seed_stands_alone_rather_than_counting_as_another_seed():
    groups = group_runs([run("a-seed0", [1.0], seed=0), run("copy-of-a", [1.0], seed=0), run("a-seed1", [1.0], seed=1)])
    assert [(group.name, group.seeds) for group in groups] == [("a", [0, 1]), ("copy-of-a", [0])]


def test_a_repeat_that_comes_first_does_not_take_a_sweep_seeds_place():
    """The seeds of one sweep stay together whatever order the runs come in: a shipped copy of seed 0
    (mnist-r3) or a short budget trial of the same setting listed before the sweep stands alone."""
    groups = group_runs([run("mnist-r3", [0.3], seed=0), run("schedules/budget-seed0", [0.5], seed=0),
                         run("table1/r3-seed0", [0.3], seed=0), run("table1/r3-seed1", [0.34], seed=1),
                         run("other-seed2", [0.4], seed=2)])
    assert [(group.name, group.seeds) for group in groups] == [
        ("table1/r3-seed0 +2", [0, 1, 2]), ("mnist-r3", [0]), ("schedules/budget-seed0", [0])]


def test_group_curve_is_the_mean_and_spread_of_the_seeds_that_reached_each_epoch():
    curve = group_curve([history([1.0, 2.0]), history([3.0, 4.0]), history([5.0])], "test_error")
    assert curve["epoch"].tolist() == [1, 2]
    assert curve["mean"].tolist() == [3.0, 3.0] and curve["n"].tolist() == [3, 2]
    assert curve["std"].tolist() == pytest.approx([2.0, np.sqrt(2.0)])
    assert (curve["min"].tolist(), curve["max"].tolist()) == ([1.0, 2.0], [5.0, 4.0])
    lower, upper = band_limits(curve, "±1 std")
    assert lower.tolist() == pytest.approx([1.0, 3 - np.sqrt(2)]) and upper.iloc[0] == pytest.approx(5.0)
    assert band_limits(curve, "min-max")[0].tolist() == [1.0, 2.0]
    assert group_curve([history([1.0])], "train_loss").empty, "a column no seed has gives no epochs"


def test_table1_measured_gives_final_epoch_mean_and_std_and_best_selected_on_test():
    seeds = [run(f"t/capsnet-r3-recon-seed{seed}", errors, seed=seed)
             for seed, errors in enumerate(([0.5, 0.3, 0.4], [0.6, 0.5], [0.5, 0.4, 0.35]))]
    quick = run("quick", [5.0], routings=1, subset=1000)  # not comparable: trained on part of MNIST
    table = table1_measured([*seeds, quick]).set_index("Setup")
    row = table.loc["CapsNet, routing 3 + reconstruction"]
    assert row["Runs"] == "t/capsnet-r3-recon" and row["n"] == 3 and row["Epochs"] == "2-3"
    assert row["Final test error (%)"] == pytest.approx(np.mean([0.4, 0.5, 0.35]))
    assert row["Final std"] == pytest.approx(np.std([0.4, 0.5, 0.35], ddof=1))
    assert row["Best test error (%)"] == pytest.approx(np.mean([0.3, 0.5, 0.35]))
    assert row["Paper (%)"] == "0.25 ± 0.005"
    assert table.loc["CapsNet, routing 1 + reconstruction", "n"] == 0, "the quick run is left out"
    assert len(table) == 5, "every row of the paper's table, measured or not"
    summary = group_summary_table(group_runs(seeds)).iloc[0]
    assert summary["Final test error (%)"] == f"{np.mean([0.4, 0.5, 0.35]):.2f} ± {np.std([0.4, 0.5, 0.35], ddof=1):.2f} (n=3)"


def test_table1_measured_at_one_epoch_compares_rows_trained_for_different_lengths():
    long = [run(f"t/capsnet-r3-recon-seed{seed}", errors, seed=seed)
            for seed, errors in enumerate(([0.9, 0.3, 0.4, 0.2], [0.8, 0.5, 0.6]))]
    short = [run(f"t/capsnet-r1-recon-seed{seed}", errors, seed=seed, routings=1)
             for seed, errors in enumerate(([0.7, 0.45], [0.6, 0.55]))]
    table = table1_measured([*long, *short], at_epoch=2).set_index("Setup")
    three, one = table.loc["CapsNet, routing 3 + reconstruction"], table.loc["CapsNet, routing 1 + reconstruction"]
    assert three["n"] == 2 and three["Epochs"] == "2" and three["Final test error (%)"] == pytest.approx(0.4)
    assert three["Best test error (%)"] == pytest.approx(0.4), "the best of the first 2 epochs only"
    assert one["Final test error (%)"] == pytest.approx(0.5)
    at_three = table1_measured([*long, *short], at_epoch=3).set_index("Setup")
    assert at_three.loc["CapsNet, routing 1 + reconstruction", "n"] == 0, "seeds that have not reached it are left out"
    assert at_three.loc["CapsNet, routing 1 + reconstruction", "Epochs"] == "-"
    assert at_three.loc["CapsNet, routing 3 + reconstruction", "Final test error (%)"] == pytest.approx(0.5)
    final = table1_measured([*long, *short]).set_index("Setup")
    assert final.loc["CapsNet, routing 3 + reconstruction", "Epochs"] == "3-4"


def test_a_group_is_drawn_as_a_band_and_a_mean_and_its_seeds_only_when_asked():
    histories = {"g-seed0": history([1.0, 0.5]), "g-seed1": history([2.0, 0.7]), "alone": history([1.5, 1.0])}
    groups = {"g": ["g-seed0", "g-seed1"]}
    figure = curves_figure(histories, panel=PANELS["Test error"], groups=groups, band="min-max",
                           colors={"g": "#1f77b4", "alone": "#ff7f0e"})
    filled = [trace for trace in figure.data if trace.fill == "tonexty"]
    assert len(filled) == 1 and list(filled[0].y) == [1.0, 0.5], "the band's lower edge is the seeds' min"
    means = [trace for trace in figure.data if trace.name == "g"]
    assert len(means) == 1 and list(means[0].y) == [1.5, 0.6]
    assert not [trace for trace in figure.data if trace.name in ("g-seed0", "g-seed1")], "seeds hidden by default"
    assert [trace for trace in figure.data if trace.name == "alone"], "a run outside groups is drawn as before"
    with_seeds = curves_figure(histories, panel=PANELS["Test error"], groups=groups, show_seeds=True)
    assert len([trace for trace in with_seeds.data if trace.name in ("g-seed0", "g-seed1")]) == 2
    on_wall_time = curves_figure({name: h.assign(wall_seconds=h["epoch"] * 60.0) for name, h in histories.items()},
                                 panel=PANELS["Test error"], x_axis="wall time", groups=groups)
    assert not [trace for trace in on_wall_time.data if trace.fill == "tonexty"], "no groups on a wall-time axis"


@pytest.fixture(scope="module")
def seeds_root(tiny_run, tmp_path_factory) -> Path:
    """Three full-MNIST-looking seeds of one setting under table1/, beside the tiny real run."""
    root = tmp_path_factory.mktemp("groups")
    template = json.loads((tiny_run / store.RUN_JSON).read_text())
    for seed in range(3):
        run_dir = root / "table1" / f"capsnet-r3-recon-seed{seed}"
        run_dir.mkdir(parents=True)
        rows = synthetic_rows(4 + seed, routings=3)
        info = {**template, "name": run_dir.name, "status": "finished", **store.summarize(rows),
                "config": {**template["config"], "routings": 3, "seed": seed, "subset": None, "test_subset": None}}
        info.pop("format", None)
        store.write_history(run_dir, rows)
        store.write_run_json(run_dir, info)
    return root


def test_home_shows_table1_measured_over_seeds(seeds_root, monkeypatch):
    measured = open_app(seeds_root, monkeypatch).dataframe[1].value.set_index("Setup")
    row = measured.loc["CapsNet, routing 3 + reconstruction"]
    assert row["Runs"] == "table1/capsnet-r3-recon" and row["n"] == 3 and row["Epochs"] == "4-6"
    app = open_app(seeds_root, monkeypatch)
    app.select_slider[0].set_value(4).run()
    row = app.dataframe[1].value.set_index("Setup").loc["CapsNet, routing 3 + reconstruction"]
    assert row["n"] == 3 and row["Epochs"] == "4", "every seed as it stood after epoch 4"


def test_curves_page_draws_seeds_as_a_group_and_can_show_them_alone(seeds_root, monkeypatch):
    app = open_app(seeds_root, monkeypatch, "pages/curves.py")
    groups_table = app.dataframe[1].value
    assert groups_table["Group"].tolist() == ["table1/capsnet-r3-recon"] and groups_table["n"].tolist() == [3]
    assert "tonexty" in app.get_by_key("curve_Test error").proto.spec
    app.selectbox(key="curve_band").set_value("±1 std")
    app.toggle(key="curve_show_seeds").set_value(True).run()
    assert not app.exception
    app.toggle(key="curve_groups").set_value(False).run()
    assert not app.exception and len(app.dataframe) == 1, "no group table when seeds are shown alone"
    assert "tonexty" not in app.get_by_key("curve_Test error").proto.spec


def test_a_port_bug_trained_on_purpose_is_no_measurement_of_a_table1_row():
    from types import SimpleNamespace

    from capsviz.analysis.groups import comparable_to_table1
    config = {"dataset": "mnist", "subset": None, "test_subset": None}
    correct = SimpleNamespace(dataset_name="mnist", config={**config, "variant": "none"})
    older = SimpleNamespace(dataset_name="mnist", config=config)  # runs from before variants existed
    bug = SimpleNamespace(dataset_name="mnist", config={**config, "variant": "softmax-over-inputs"})
    assert comparable_to_table1(correct) and comparable_to_table1(older) and not comparable_to_table1(bug)
