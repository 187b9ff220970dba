"""The sweep: grids as data, a plan that says what each run needs, and a real resumable sweep."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from capsviz import store
from capsviz.analysis.results import PAPER_TABLE1
from trainer import sweep
from trainer.sweep import DONE, FAILED, NEW, RESUME, SweepError, load_grid, plan_sweep, trainer_arguments

from conftest import ROOT


def write_grid(tmp_path, text: str):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return str(path)


def test_table1_grid_is_the_papers_five_rows_most_important_first():
    grid = load_grid("table1")
    rows = [(point.settings.get("model"), point.settings.get("routings"), point.settings.get("recon"))
            for point in grid.points]
    assert rows[0] == ("capsnet", 3, True) and rows[1] == ("capsnet", 1, True), "the issue's priority order"
    paper = {(r.model, r.routings, r.reconstruction) for r in PAPER_TABLE1}
    assert set(rows) == paper
    assert all(point.settings["dataset"] == "mnist" for point in grid.points)


@pytest.mark.parametrize("text, message", [
    ('[[runs]]\nname = "a"\nroutings = 3\n[[runs]]\nname = "a"\n', "two runs are named 'a'"),
    ('[[runs]]\nname = "a b"\n', "needs a name"),
    ('[[runs]]\nname = "a"\nseed = 3\n', "sets seed, which the sweep's command line decides"),
    ('[[runs]]\nname = "a"\nlearning_rate = 3\n', "unknown setting 'learning_rate'"),
    ('description = "no runs"\n', "needs a [[runs]] list"),
    ('[[runs]\nname = "a"\n', "not valid TOML"),
])
def test_bad_grids_are_refused_in_one_line(tmp_path, text, message):
    with pytest.raises(SweepError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_grid(write_grid(tmp_path, text))


def test_unknown_grid_names_the_grids_there_are():
    with pytest.raises(SweepError, match="choose one of .*table1"):
        load_grid("tabel1")


def test_settings_become_the_trainers_flags():
    assert trainer_arguments({"model": "capsnet", "routings": 3, "recon": False, "lr_decay": 0.99,
                              "inner_routing_grad": True}) == [
        "--model", "capsnet", "--routings", "3", "--no-recon", "--lr-decay", "0.99", "--inner-routing-grad"]
    assert trainer_arguments({"recon": True}) == []
    with pytest.raises(SweepError, match="must be true or false"):
        trainer_arguments({"recon": "no"})


def test_a_value_the_trainer_refuses_is_refused_before_anything_is_written(tmp_path):
    grid = load_grid(write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 11\n'))
    with pytest.raises(SweepError, match="a-seed0: --routings 11"):
        plan_sweep(grid, seeds=[0], epochs=1, out=tmp_path / "group")
    assert not (tmp_path / "group").exists()


def test_cli_refuses_bad_seeds_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "trainer.sweep", "--grid", "table1", "--seeds", "0,x",
                             "--epochs", "1", "--out", str(tmp_path / "g")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "--seeds: must be comma-separated integers" in result.stderr
    assert not (tmp_path / "g").exists()


def copy_run(source, destination, **changes):
    shutil.copytree(source, destination)
    if changes:
        info = json.loads((destination / store.RUN_JSON).read_text())
        info.update(changes)
        store.write_run_json(destination, info)


def test_plan_says_what_each_run_needs(tiny_run, tmp_path):
    """tiny_run is 1 routing, seed 0, 1 epoch on 200 images tested on 100: the grid's point 'a'."""
    grid = load_grid(write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 1\n'))
    group = tmp_path / "group"
    passthrough = ["--subset", "200", "--test-subset", "100"]
    copy_run(tiny_run, group / "a-seed0")
    seed1 = {**store.read_run_json(tiny_run)["config"], "seed": 1}  # what a seed-1 run says (a changed grid is refused)
    copy_run(tiny_run, group / "a-seed1", status="failed", error="non-finite loss", config=seed1)
    planned = {run.name: run for run in plan_sweep(grid, seeds=[0, 1, 2], epochs=1, out=group, passthrough=passthrough)}
    assert [planned[name].status for name in ("a-seed0", "a-seed1", "a-seed2")] == [DONE, FAILED, NEW]
    assert planned["a-seed1"].note == "non-finite loss"
    longer = plan_sweep(grid, seeds=[0], epochs=3, out=group, passthrough=passthrough)[0]
    assert (longer.status, longer.epochs_done) == (RESUME, 1) and "--resume" in longer.arguments
    # the same directory asked for with other settings: the trainer's own check names the difference
    other = load_grid(write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 2\n'))
    with pytest.raises(SweepError, match=r"a-seed0: --resume: .* \(routings: run has 1, asked for 2\)"):
        plan_sweep(other, seeds=[0], epochs=3, out=group, passthrough=passthrough)


def test_a_run_being_trained_now_is_never_touched(tiny_run, tmp_path):
    grid = load_grid(write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 1\n'))
    copy_run(tiny_run, tmp_path / "group" / "a-seed0", status="running", **store.trainer_identity())  # this process: alive
    with pytest.raises(SweepError, match="is being trained now"):
        plan_sweep(grid, seeds=[0], epochs=2, out=tmp_path / "group", passthrough=["--subset", "200", "--test-subset", "100"])


def test_each_run_is_checked_again_at_its_turn_not_only_when_the_sweep_was_planned(tiny_run, tmp_path):
    """A sweep's plan can be hours old when a run's turn comes: one started by hand meanwhile is
    resumed (or skipped while its trainer lives), never started afresh into a run directory."""
    grid = load_grid(write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 1\n'))
    group = tmp_path / "group"
    [planned] = plan_sweep(grid, seeds=[0], epochs=2, out=group, passthrough=["--subset", "200", "--test-subset", "100"])
    assert planned.status == NEW and "--resume" not in planned.arguments
    copy_run(tiny_run, group / "a-seed0", status="interrupted")  # started by hand since
    resumed = sweep.recheck(planned, 2)
    assert (resumed.status, resumed.epochs_done) == (RESUME, 1) and resumed.arguments.count("--resume") == 1
    assert sweep.recheck(planned, 1).status == RESUME, "interrupted: not finished, whatever its epochs"
    shutil.rmtree(group / "a-seed0")
    copy_run(tiny_run, group / "a-seed0", status="running", **store.trainer_identity())  # its trainer alive
    busy = sweep.recheck(planned, 2)
    assert busy.status == sweep.BUSY and "being trained now" in sweep.describe(busy, 2)


@pytest.mark.slow
def test_a_sweep_skips_what_is_done_resumes_the_interrupted_run_and_trains_the_rest(tiny_run, tmp_path):
    """Seed 0 stopped after 1 of 2 epochs (interrupted), seed 1 has not started: one real sweep
    continues seed 0 to 2 epochs and trains seed 1; the next sweep has nothing to do."""
    grid = write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 1\n')
    group = tmp_path / "group"
    copy_run(tiny_run, group / "a-seed0", status="interrupted")
    command = [sys.executable, "-m", "trainer.sweep", "--grid", grid, "--seeds", "0,1", "--epochs", "2",
               "--subset", "200", "--test-subset", "100", "--precision", "fp32", "--out", str(group)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("a-seed0", "a-seed1"):
        run = store.load_run(group / name)
        assert run.status == "finished" and len(run.history) == 2, name
    original = store.read_history(tiny_run)
    resumed = store.read_history(group / "a-seed0")
    assert resumed["train_loss"].iloc[0] == original["train_loss"].iloc[0], "epoch 1 kept, not retrained"
    assert "[1/2] a-seed0: resume after epoch 1 of 2" in result.stdout
    assert "final test error" in result.stdout and "selected on the test set" in result.stdout
    record = json.loads((group / sweep.SWEEP_JSON).read_text())
    assert record["seeds"] == [0, 1] and record["epochs"] == 2 and record["runs"] == [{"name": "a", "routings": 1}]
    again = subprocess.run([*command, "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count("done (2 epochs)") == 2, again.stdout


@pytest.mark.slow
def test_killing_the_sweep_stops_its_trainer_cleanly_and_says_how_to_go_on(tmp_path):
    grid = write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 1\n')
    group = tmp_path / "group"
    process = subprocess.Popen([sys.executable, "-m", "trainer.sweep", "--grid", grid, "--seeds", "0", "--epochs", "3",
                                "--subset", "200", "--test-subset", "100", "--precision", "fp32", "--out", str(group)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_json = group / "a-seed0" / store.RUN_JSON
    deadline = time.monotonic() + 240
    while not run_json.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert run_json.exists(), "the trainer started"
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 130 and "run the same command again to resume it" in stderr
    info = store.read_run_json(group / "a-seed0")
    assert info["status"] == "interrupted", "the trainer was told, and said what it kept"
    assert store.process_alive(info["pid"]) is False, "no trainer left behind"


def test_a_dry_run_piped_into_a_reader_that_has_gone_ends_without_a_traceback(tmp_path):
    reading, writing = os.pipe()
    os.close(reading)  # like `| head -1` once head has exited: every write fails with EPIPE
    try:
        finished = subprocess.run([sys.executable, "-m", "trainer.sweep", "--grid", "table1", "--seeds", "0,1,2",
                                   "--epochs", "2", "--out", str(tmp_path / "t"), "--dry-run"],
                                  cwd=ROOT, stdout=writing, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(writing)
    assert finished.returncode == 0 and "Traceback" not in finished.stderr, finished.stderr


def test_only_narrows_the_grid_to_the_named_runs_in_the_grids_order(tmp_path, capsys):
    from trainer.sweep import main

    code = main(["--grid", "table1", "--seeds", "0,1", "--epochs", "2", "--out", str(tmp_path / "t"),
                 "--only", "baseline,capsnet-r3-norecon", "--dry-run"])
    planned = [line.split(":")[0].split("] ")[1] for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert code == 0 and planned == ["capsnet-r3-norecon-seed0", "capsnet-r3-norecon-seed1",
                                     "baseline-seed0", "baseline-seed1"]
    code = main(["--grid", "table1", "--epochs", "2", "--out", str(tmp_path / "t"), "--only", "capsnet-r2-recon"])
    error = capsys.readouterr().err
    assert code == 2 and "no run named 'capsnet-r2-recon' (its runs: capsnet-r3-recon," in error
    assert len(error.strip().splitlines()) == 1 and not (tmp_path / "t").exists()
