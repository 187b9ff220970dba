"""Hostile input to the trainer's commands (issue 26, items 2, 5, 13, 14 and 15): one trainer per run, a
sweep that refuses a grid changed under its runs, empty and over-long paths, damaged affNIST files,
unbounded sizes, and a robustness run stopped by `kill`. Every refusal is one line, naming the thing and
the problem, and leaves what was written as it was."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.io

from capsviz import store
from capsviz.data.mnist import DataError
from trainer import sweep
from trainer.run import CliError, main, plan

from conftest import ROOT

LONG_NAME = "n" * 300  # one component over the system's 255 bytes
LONG_PATH = "/tmp/" + "/".join(["deep-folder"] * 400)  # 4,800 bytes, over the system's 4,095


def copy_run(source, destination, **changes):
    shutil.copytree(source, destination)
    if changes:
        info = json.loads((destination / store.RUN_JSON).read_text())
        info.update(changes)
        store.write_run_json(destination, info)
    return destination


def snapshot(folder):
    return {path.relative_to(folder): (path.stat().st_mtime_ns, path.read_bytes() if path.is_file() else None)
            for path in sorted(folder.rglob("*"))}


def one_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in text
    return lines[0]


# ---- item 2: one trainer per run -----------------------------------------------------------------

@pytest.mark.slow
def test_a_run_being_trained_is_neither_resumed_nor_started_again(tiny_run, tmp_path, capsys):
    """run.json says running with the pid of a live process (another one: this process resuming a run it was
    training itself, stopped by an exception, is allowed): --resume, and a new run with the same --out, are
    refused naming the run and the pid, and nothing in it changes."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live = copy_run(tiny_run, tmp_path / "live", status="running", **{**store.trainer_identity(), "pid": other.pid})
        before = snapshot(live)
        for argv in (["--resume", "--epochs", "2", "--out", str(live)],
                     ["--routings", "1", "--subset", "200", "--test-subset", "100", "--epochs", "1", "--out", str(live)]):
            assert main(argv) == 2
            line = one_error_line(capsys.readouterr().err)
            assert f"{live} is being trained now by pid {other.pid}" in line, line
        assert snapshot(live) == before, "nothing touched"
    finally:
        other.kill()
        other.wait()
    # its trainer gone (a pid that has exited): the run is stale and resumes
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = copy_run(tiny_run, tmp_path / "dead", status="running", pid=int(finished.stdout), host=store.trainer_identity()["host"])
    assert plan(["--resume", "--epochs", "2", "--out", str(dead)])[2] == "resume"


# ---- items 13 and 14: empty and over-long paths ----------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--out", ""], "--out '': empty (an unset shell variable?)"),
    (["--data-dir", "", "--out", "{tmp}/run"], "--data-dir '': empty"),
    (["--out", "   "], "--out '   ': empty"),
    (["--out", "{tmp}/" + LONG_NAME], "has a component of 300 bytes; the system allows at most 255"),
    (["--out", LONG_PATH], "bytes long; the system allows paths of at most 4,095"),
    (["--data-dir", "{tmp}/" + LONG_NAME, "--out", "{tmp}/run"], "--data-dir '"),
])
def test_the_trainer_refuses_empty_and_over_long_paths_in_one_line(tmp_path, capsys, argv, message):
    argv = [argument.replace("{tmp}", str(tmp_path)) for argument in argv]
    with pytest.raises(CliError, match=re.escape(message)):
        plan(argv)  # today: `--out ""` planned a run in the current directory, the repository root
    assert main([*argv, "--subset", "10", "--test-subset", "10", "--epochs", "1"]) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == [] and not (ROOT / store.RUN_JSON).exists()


@pytest.mark.slow
def test_a_resume_error_names_history_csv_not_a_temporary_file(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "run")
    (run / store.HISTORY_CSV).unlink()
    (run / store.HISTORY_CSV).mkdir()  # history.csv cannot be rewritten
    assert main(["--resume", "--epochs", "2", "--out", str(run)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == f"error: {run / store.HISTORY_CSV}: Is a directory", line
    assert not [path for path in run.iterdir() if path.name.endswith(".tmp")], "no temporary file left"


# ---- item 5 and the sweep's paths and data ---------------------------------------------------------

def write_grid(folder, text: str, name: str = "grid.toml"):
    path = folder / name
    path.write_text(text)
    return str(path)


TINY = ["--subset", "200", "--test-subset", "100"]  # tiny_run's


@pytest.mark.slow
def test_a_finished_sweep_whose_grid_changed_is_refused_naming_the_runs(tiny_run, tmp_path, capsys):
    """The runs were trained with 1 routing; the grid file now says 5: not "done", and sweep.json keeps
    saying what the runs are."""
    group = tmp_path / "group"
    for seed in (0, 1):
        copy_run(tiny_run, group / f"a-seed{seed}", config={**store.read_run_json(tiny_run)["config"], "seed": seed})
    grid = write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 1\n')
    assert sweep.main(["--grid", grid, "--seeds", "0,1", "--epochs", "1", *TINY, "--out", str(group)]) == 0
    assert capsys.readouterr().out.count("done (1 epochs)") == 2
    record = (group / sweep.SWEEP_JSON).read_bytes()
    before = snapshot(group)
    write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 5\n')
    for extra in ([], ["--dry-run"]):
        assert sweep.main(["--grid", grid, "--seeds", "0,1", "--epochs", "1", *TINY, "--out", str(group), *extra]) == 2
        captured = capsys.readouterr()
        line = one_error_line(captured.err)
        assert "2 run(s)" in line and "a-seed0 (routings: run has 1, asked for 5)" in line, line
        assert "a-seed1 (routings: run has 1, asked for 5)" in line and "done" not in captured.out
    assert (group / sweep.SWEEP_JSON).read_bytes() == record and snapshot(group) == before


def test_the_sweep_refuses_an_empty_out_and_a_grid_name_that_is_no_folder_name(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CAPSVIZ_RUNS", str(tmp_path / "root"))
    dotted = write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 1\n', name="...toml")  # its stem is ".."
    assert sweep.main(["--grid", dotted, "--seeds", "0", "--epochs", "1", "--dry-run"]) == 2
    assert "the grid's name '..' is not a plain folder name" in one_error_line(capsys.readouterr().err)
    grid = write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 1\n')
    for out, message in (("", "--out '': empty"), (str(tmp_path / LONG_NAME), "component of 300 bytes"),
                         (LONG_PATH, "paths of at most 4,095")):
        assert sweep.main(["--grid", grid, "--seeds", "0", "--epochs", "1", "--out", out]) == 2
        assert message in one_error_line(capsys.readouterr().err)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["...toml", "grid.toml"], "nothing written"


@pytest.mark.parametrize("extra, message", [
    (["--subset", "9999999"], "mnist: --subset 9999999: more than the 60,000 training images available"),
    (["--test-subset", "20000"], "--test-subset 20000: more than the 10,000 test images"),
    (["--data-dir", "/nonexistent"], "mnist: /nonexistent: no such directory"),
    (["--data-dir", ""], "--data-dir '': empty"),
    (["--data-dir", "/tmp/" + LONG_NAME], "--data-dir '/tmp/nnnn"),
])
def test_the_sweep_checks_its_data_and_subsets_before_it_plans_a_run(tmp_path, capsys, extra, message):
    grid = write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 1\n')
    for dry in (["--dry-run"], []):
        assert sweep.main(["--grid", grid, "--seeds", "0", "--epochs", "1", "--out", str(tmp_path / "g"),
                           *extra, *dry]) == 2
        assert message in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "g").exists()


# ---- the sweep's time budgets ----------------------------------------------------------------------

def test_the_sweep_needs_a_length_and_one_kind_of_budget(tmp_path, capsys):
    grid = write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 1\n')
    base = ["--grid", grid, "--seeds", "0", "--out", str(tmp_path / "g"), "--dry-run"]
    assert sweep.main(base) == 2
    assert "--epochs, --budget or --grid-budget is needed" in one_error_line(capsys.readouterr().err)
    assert sweep.main([*base, "--budget", "1h", "--grid-budget", "2h"]) == 2
    assert "give one" in one_error_line(capsys.readouterr().err)
    with pytest.raises(SystemExit):
        sweep.main([*base, "--budget", "soon"])
    assert "--budget: 'soon' is not a duration" in capsys.readouterr().err
    assert sweep.main([*base, "--budget", "1h30m", "--epochs", "40"]) == 0
    out = capsys.readouterr().out
    assert "a budget of 1h30m (at most 40 epochs)" in out and "--epochs 40 --budget 5400s" in out, out


def test_a_grid_budget_is_shared_among_the_runs_still_to_train(monkeypatch):
    """The rule of the module's docstring: time left x jobs / (runs not started, itself included, + runs
    training), never more than the time left."""
    clock = [1000.0]
    monkeypatch.setattr(sweep.time, "monotonic", lambda: clock[0])
    budgets = sweep.Budgets(grid_seconds=4 * 3600)
    budgets.start()
    run = sweep.PlannedRun("a-seed0", None, 0, None, (), sweep.NEW, 0)
    assert budgets.for_run(run, to_start=4, running=0, jobs=1) == 3600  # 4 runs one after another: 1 h each
    assert budgets.for_run(run, to_start=4, running=0, jobs=2) == 7200  # 2 side by side: 2 h each
    assert budgets.for_run(run, to_start=3, running=1, jobs=2) == 7200
    clock[0] += 2 * 3600  # both ended on time: the last two share what is left
    assert budgets.for_run(run, to_start=2, running=0, jobs=2) == 7200
    assert budgets.for_run(run, to_start=1, running=0, jobs=4) == 7200, "never more than the time left"
    clock[0] += 2 * 3600
    assert budgets.for_run(run, to_start=1, running=0, jobs=1) <= 0
    assert sweep.with_budget(("--epochs", "3", "--budget", "14400s", "--out", "x"), 3599.7) == (
        "--epochs", "3", "--out", "x", "--budget", "3599s")


def test_a_resumed_run_gets_what_is_left_of_its_budget(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "a-seed0", status="interrupted", wall_seconds=600.0)
    planned = sweep.PlannedRun("a-seed0", None, 0, run, (), sweep.RESUME, 1)
    assert sweep.Budgets(run_seconds=3600).for_run(planned, to_start=1, running=0, jobs=1) == 3000
    assert sweep.Budgets(run_seconds=300).for_run(planned, to_start=1, running=0, jobs=1) == 1, "spent: ends at once"
    assert sweep.Budgets(run_seconds=3600).for_run(sweep.PlannedRun("b", None, 0, run, (), sweep.NEW, 0),
                                                   to_start=1, running=0, jobs=1) == 3600


@pytest.mark.slow
def test_a_sweep_under_a_grid_budget_trains_each_run_within_its_share(tmp_path):
    """Two runs, one after another, in a grid budget of 2 hours: the first gets half, the second what is
    left; --epochs caps each plan at 1 epoch. Each run.json records the budget it was given."""
    grid = write_grid(tmp_path, '[[runs]]\nname = "a"\nroutings = 1\nbatch_size = 50\n')
    group = tmp_path / "group"
    command = [sys.executable, "-m", "trainer.sweep", "--grid", grid, "--seeds", "0,1", "--grid-budget", "2h",
               "--epochs", "1", "--subset", "100", "--test-subset", "50", "--precision", "fp32", "--out", str(group)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    first, second = (store.read_run_json(group / f"a-seed{seed}") for seed in (0, 1))
    assert 3500 <= first["budget"]["seconds"] <= 3600, first["budget"]
    assert 7200 - first["wall_seconds"] - 120 <= second["budget"]["seconds"] <= 7200 - first["wall_seconds"]
    assert first["epochs_done"] == second["epochs_done"] == 1 and first["budget"]["max_epochs"] == 1
    assert "[1/2] a-seed0: new, budget 1h00m, at most 1 epochs" in result.stdout, result.stdout
    record = json.loads((group / sweep.SWEEP_JSON).read_text())
    assert record["grid_budget_seconds"] == 7200 and record["epochs"] == 1
    again = subprocess.run([*command, "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count("done (1 epochs)") == 2, again.stdout


# ---- item 15: affNIST, the robustness command, the benchmark --------------------------------------------

def test_damaged_affnist_values_are_refused_naming_the_file(tmp_path):
    from capsviz.data.affine import read_affnist_file

    labels = np.array([7, 3])
    cases = {
        "string-labels.mat": {"image": np.zeros((1600, 2), np.uint8), "label_int": np.array(["7", "3"])},
        "fraction-labels.mat": {"image": np.zeros((1600, 2), np.uint8), "label_int": np.array([7.5, 3.0])},
        "nan-images.mat": {"image": np.full((1600, 2), np.nan), "label_int": labels},
        "inf-images.mat": {"image": np.full((1600, 2), np.inf), "label_int": labels},
    }
    messages = {"string-labels.mat": "label_int holds", "fraction-labels.mat": "not whole numbers",
                "nan-images.mat": "3,200 NaN or infinite values", "inf-images.mat": "NaN or infinite"}
    for name, data in cases.items():
        scipy.io.savemat(tmp_path / name, {"affNISTdata": data})
        with pytest.raises(DataError, match=messages[name]) as caught:
            read_affnist_file(tmp_path / name)
        assert str(caught.value).startswith(str(tmp_path / name)) and "\n" not in str(caught.value)


def test_robustness_bounds_the_affine_set_and_refuses_bad_paths(tmp_path, capsys):
    from trainer.robustness import main as robustness

    assert robustness(["--evaluate-only", "--out", str(tmp_path / "r"), "--digits", "10", "--versions", str(10 ** 12)]) == 2
    assert "--versions 1000000000000: 10 digits x 1,000,000,000,000 versions is more than the 640,000" in \
        one_error_line(capsys.readouterr().err)
    for argv, message in ((["--out", ""], "--out '': empty"), (["--out", LONG_PATH], "paths of at most 4,095"),
                          (["--data-dir", str(tmp_path / LONG_NAME)], "component of 300 bytes"),
                          (["--affnist-dir", ""], "--affnist-dir '': empty")):
        assert robustness(["--evaluate-only", *argv]) == 2
        assert message in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_killing_robustness_marks_its_run_interrupted(tmp_path):
    """`kill` (SIGTERM) during training: the run keeps its last complete epoch and says interrupted, as
    trainer.run does (it stayed "running" before)."""
    out = tmp_path / "robustness"
    process = subprocess.Popen([sys.executable, "-m", "trainer.robustness", "--out", str(out), "--max-epochs", "50",
                                "--subset", "100", "--test-subset", "50", "--batch-size", "50", "--digits", "10",
                                "--precision", "fp32"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    run_json = out / "capsnet-r3" / store.RUN_JSON
    deadline = time.monotonic() + 300
    while not run_json.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert run_json.exists(), "training started"
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted; each run keeps its last complete epoch" in stderr and "Traceback" not in stderr
    info = store.read_run_json(out / "capsnet-r3")
    assert info["status"] == "interrupted" and store.process_alive(info["pid"]) is False


def test_bench_refuses_a_results_dir_it_cannot_write_before_measuring(tmp_path, capsys):
    from trainer.bench import main as bench

    (tmp_path / "a-file").write_text("x")
    started = time.monotonic()
    for folder, message in ((tmp_path / "a-file", "is a file, not a folder"),
                            (tmp_path / "a-file" / "sub", "is under"), (tmp_path / LONG_NAME, "component of 300")):
        assert bench(["--results-dir", str(folder), "--routings", "1", "--steps", "1", "--repeats", "1"]) == 2
        assert message in one_error_line(capsys.readouterr().err)
    assert time.monotonic() - started < 30, "refused before the benchmark ran"


@pytest.mark.slow
@pytest.mark.parametrize("edit", [{"model_options": {"primary_types": 16}}, {"dataset": "mnist-40"}])
def test_a_resume_after_run_json_was_edited_is_one_line_naming_state_pt(tiny_run, tmp_path, capsys, edit):
    from trainer.run import main as train
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    info = json.loads((run / "run.json").read_text())
    info["config"].update(edit)
    (run / "run.json").write_text(json.dumps(info))
    before = {name: (run / name).read_bytes() for name in ("state.pt", "history.csv", "model.pt")}
    assert train(["--resume", "--epochs", "2", "--precision", "fp32", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "state.pt: its weights do not fit the model run.json describes" in err
    assert {name: (run / name).read_bytes() for name in before} == before, "nothing written is lost or changed"
