"""Hostile input to the trainer's commands (issue 26, items 2, 5, 13, 14 and 15): one trainer per run, a
sweep that refuses a grid changed under its runs, empty and over-long paths, damaged affNIST files,
unbounded sizes, and a robustness run stopped by `kill`. Every refusal is one line, naming the thing and
the problem, and leaves what was written as it was."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from capsviz import runs
from trainer.run import CliError, main, plan

from conftest import ROOT

LONG_NAME = "n" * 300  # one component over the system's 255 bytes
LONG_PATH = "/tmp/" + "/".join(["deep-folder"] * 400)  # 4,800 bytes, over the system's 4,095


def copy_run(source, destination, **changes):
    shutil.copytree(source, destination)
    if changes:
        info = json.loads((destination / runs.RUN_JSON).read_text())
        info.update(changes)
        runs.write_run_json(destination, info)
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

def test_a_run_being_trained_is_neither_resumed_nor_started_again(tiny_run, tmp_path, capsys):
    """run.json says running with the pid of a live process (this one): --resume, and a new run with
    the same --out, are refused naming the run and the pid, and nothing in it changes."""
    live = copy_run(tiny_run, tmp_path / "live", status="running", **runs.trainer_identity())
    before = snapshot(live)
    for argv in (["--resume", "--epochs", "2", "--out", str(live)],
                 ["--routings", "1", "--subset", "200", "--test-subset", "100", "--epochs", "1", "--out", str(live)]):
        assert main(argv) == 2
        line = one_error_line(capsys.readouterr().err)
        assert f"{live} is being trained now by pid {os.getpid()}" in line, line
    assert snapshot(live) == before, "nothing touched"
    # its trainer gone (a pid that has exited): the run is stale and resumes
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = copy_run(tiny_run, tmp_path / "dead", status="running", pid=int(finished.stdout), host=runs.trainer_identity()["host"])
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
    assert list(tmp_path.iterdir()) == [] and not (ROOT / runs.RUN_JSON).exists()


def test_a_resume_error_names_history_csv_not_a_temporary_file(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "run")
    (run / runs.HISTORY_CSV).unlink()
    (run / runs.HISTORY_CSV).mkdir()  # history.csv cannot be rewritten
    assert main(["--resume", "--epochs", "2", "--out", str(run)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == f"error: {run / runs.HISTORY_CSV}: Is a directory", line
    assert not [path for path in run.iterdir() if path.name.endswith(".tmp")], "no temporary file left"

