"""Soak test of interruptions (not in CI): kill a real small training run at random moments, resume
it, and compare it with an uninterrupted run.

    .venv/bin/python scripts/kill_soak.py                 # 20 kills, 3 epochs of 200 images, 1 routing
    .venv/bin/python scripts/kill_soak.py --kills 50 --seed 7

Each trial starts `python -m trainer.run` in a fresh directory, sends it SIGKILL, SIGTERM or SIGINT
(chosen at random) at a moment drawn uniformly from the uninterrupted run's duration (start-up
included), then runs the command that the trainer's own message names (`--resume --out DIR`; the
first command again when a kill came before run.json existed) until the run finishes. The result
is "identical" when history.csv (timing columns aside) and model.pt's weights equal the reference
run's, run.json says finished with every epoch, and no temporary file is left. For SIGTERM and
SIGINT it also checks that what the trainer said it kept is what state.pt holds, and counts
tracebacks (a signal in Python's own start-up, before any project code runs, still gives one).
Prints one line per trial and the tally; exits 1 unless every trial was identical.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import torch

from capsviz import store

ROOT = Path(__file__).resolve().parent.parent

TIMING = ["epoch_seconds", "images_per_second", "eval_seconds", "wall_seconds", "timestamp"]
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}


def trainer_command(settings: list[str], out: Path, *, resume: bool) -> list[str]:
    return [sys.executable, "-m", "trainer.run", *(["--resume"] if resume else settings), "--out", str(out)]


def run_to_end(settings: list[str], out: Path) -> subprocess.CompletedProcess:
    """Continue (or, with no run.json yet, start again) the run in `out` without interruption."""
    resume = (out / store.RUN_JSON).exists()
    return subprocess.run(trainer_command(settings, out, resume=resume), cwd=ROOT, capture_output=True, text=True)


def differences(reference: Path, run: Path, epochs: int) -> list[str]:
    """What makes `run` differ from the reference run; empty when identical."""
    problems = []
    info = json.loads((run / store.RUN_JSON).read_text())
    if info.get("status") != "finished" or info.get("epochs_done") != epochs:
        problems.append(f"run.json says {info.get('status')} after {info.get('epochs_done')} epochs")
    expected = pd.read_csv(reference / store.HISTORY_CSV).drop(columns=TIMING)
    got = pd.read_csv(run / store.HISTORY_CSV).drop(columns=TIMING)
    if not expected.equals(got):
        problems.append(f"history differs ({len(got)} rows, {len(expected)} expected)")
    weights_a = torch.load(reference / store.WEIGHTS, weights_only=True)["state_dict"]
    weights_b = torch.load(run / store.WEIGHTS, weights_only=True)["state_dict"]
    if weights_a.keys() != weights_b.keys() or not all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a):
        gap = max((weights_a[k].float() - weights_b[k].float()).abs().max().item() for k in weights_a)
        problems.append(f"weights differ (max |diff| {gap:.4g})")
    leftovers = [path.name for path in run.iterdir() if path.name.endswith(".tmp")]
    if leftovers:
        problems.append(f"temporary files left: {leftovers}")
    return problems


def said_kept(output: str) -> int | None:
    """The epochs the trainer said it kept when stopped by SIGTERM or SIGINT."""
    if "no epoch was completed" in output:
        return 0
    match = re.search(r"keeps (\d+) complete epoch", output)
    return int(match.group(1)) if match else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"unknown CPU, {os.cpu_count()} cores"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/kill_soak.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="number of trials, one kill each (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments and signals (default 0)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--subset", type=int, default=200, help="training images (default 200)")
    parser.add_argument("--test-subset", type=int, default=100, help="test images (default 100)")
    parser.add_argument("--routings", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--workdir", type=Path, help="where the runs go (default a temporary folder, removed)")
    args = parser.parse_args(argv)
    if args.kills < 1:
        print(f"error: --kills {args.kills}: must be at least 1", file=sys.stderr)
        return 2
    settings = ["--routings", str(args.routings), "--epochs", str(args.epochs), "--subset", str(args.subset),
                "--test-subset", str(args.test_subset), "--batch-size", str(args.batch_size)]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="capsviz-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    generator = random.Random(args.seed)
    print(f"kill soak: {args.kills} trials of `python -m trainer.run {' '.join(settings)}` on {cpu_model()}")

    reference = workdir / "reference"
    started = time.monotonic()
    result = subprocess.run(trainer_command(settings, reference, resume=False), cwd=ROOT, capture_output=True, text=True)
    duration = time.monotonic() - started
    if result.returncode != 0:
        print(f"error: the reference run failed: {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return 2
    print(f"reference run: {duration:.1f} s; kills land uniformly in [0, {duration:.1f}] s")

    tally, where, honest, tracebacks = Counter(), Counter(), Counter(), 0
    for trial in range(1, args.kills + 1):
        out = workdir / f"trial-{trial:03d}"
        name = generator.choice(list(SIGNALS))
        moment = generator.uniform(0, duration)
        process = subprocess.Popen(trainer_command(settings, out, resume=False), cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        try:
            process.wait(timeout=moment)
            landed = "after the end"  # it finished before the signal
        except subprocess.TimeoutExpired:
            process.send_signal(SIGNALS[name])
            landed = None
        output, _ = process.communicate()
        kept = store.committed_epochs(out) if (out / store.STATE).exists() else 0
        if landed is None:
            landed = ("before run.json" if not (out / store.RUN_JSON).exists()
                      else f"with {kept} epoch(s) committed")
        where[landed] += 1
        note = ""
        if name != "SIGKILL" and landed != "after the end":
            said = said_kept(output)
            honest["said what is on disk" if said == kept or (said is None and landed == "before run.json")
                   else "said something else"] += 1
            note = f", said {said if said is not None else '-'} kept"
            if "Traceback" in output:
                tracebacks += 1
                note += ", TRACEBACK"
        resumed = run_to_end(settings, out)
        problems = (differences(reference, out, args.epochs) if resumed.returncode == 0
                    else [f"resume exited {resumed.returncode}: {resumed.stderr.strip().splitlines()[-1:]}"])
        verdict = "identical" if not problems else "DIFFERENT: " + "; ".join(problems)
        tally["identical" if not problems else "different"] += 1
        print(f"trial {trial:3d}: {name:7s} at {moment:5.1f} s, {landed}{note} -> {verdict}", flush=True)

    different = f", {tally['different']} different" if tally["different"] else ""
    late = f" ({where['after the end']} signal(s) came after the run had ended)" if where["after the end"] else ""
    print(f"tally: {tally['identical']} of {args.kills} identical to the uninterrupted run{different}{late}")
    print("kills landed: " + ", ".join(f"{count} {place}" for place, count in sorted(where.items())))
    if honest:
        print("SIGTERM/SIGINT messages: " + ", ".join(f"{count} {what}" for what, count in sorted(honest.items()))
              + f"; {tracebacks} traceback(s)")
    print(f"total {time.monotonic() - started:.0f} s")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if tally["identical"] == args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
