"""Train a grid of runs, seed by seed, under one group folder: ordinary run directories made by
`python -m trainer.run`, one after another (or a few at once with --jobs).

    python -m trainer.sweep --grid table1 --seeds 0,1,2 --epochs 30            # checkpoints/table1/<run>-seed<S>
    python -m trainer.sweep --grid table1 --seeds 0,1,2 --epochs 30 --dry-run  # what it would do
    python -m trainer.sweep --grid table1 --seeds 0,1,2 --epochs 50            # later: the same runs, longer
    python -m trainer.sweep --grid table1 --seeds 0,1,2 --epochs 5 --only capsnet-r3-norecon,baseline
    python -m trainer.sweep --grid my-grid.toml --seeds 0 --epochs 2 --subset 2000 --out /tmp/try
    python -m trainer.sweep --grid table1 --seeds 0 --budget 1h                 # each run: 1 hour
    python -m trainer.sweep --grid table1 --seeds 0,1,2 --grid-budget 10h --jobs 2  # the whole grid: 10 hours

A grid is data: a TOML file (trainer/grids/NAME.toml, or any path) with optional [defaults] and a
[[runs]] list, each a `name` plus TrainConfig settings (model, routings, recon, lr_decay, ...). The
sweep trains every seed of a grid's first run, then every seed of the next: list what matters most
first. Run it again after an interruption (Ctrl-C, kill, a closed session) and it skips the runs
that are done, resumes the interrupted one from its last complete epoch and goes on. Asking for
more --epochs than before extends finished runs. A run that failed (a non-finite loss) is reported
and left alone. A grid changed since its runs were trained (routings 1 -> 5) is refused, naming the runs
that differ: they are not what the grid now asks for.

Time budgets (the trainer's --budget: it times its first epoch and plans the rest to end in time,
evaluation included; --epochs beside a budget caps the plan):
  --budget T       each run trains for T. A run resumed after an interruption gets what is left of its T
                   (T less the training time run.json records).
  --grid-budget T  the whole sweep ends within T from its start. When a run starts it gets as its --budget
                   the time left x --jobs / (runs not yet started, itself included, + runs training now),
                   never more than the time left: with --jobs 1, the time left shared equally among the
                   runs still to train; with --jobs N, N runs share it side by side, and a run that ends
                   early leaves its time to the runs after it. A run whose turn comes with no time left is
                   not started (run the sweep again to train it). Every run trains at least one epoch.
Under a budget a finished run is done whatever its number of epochs (lengthen one with
`python -m trainer.run --resume --budget T --out RUN`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from capsviz import store
from capsviz.analysis.results import best_test_error, last_value
from capsviz.atomic import atomic_write_text
from capsviz.data.datasets import get_dataset
from capsviz.data.mnist import DataError
from capsviz.training.schedules import format_duration, parse_duration

from . import paths
from .loop import TrainConfig
from .run import CliError, check_subsets, differences, given_settings, positive_int
from .run import parser as trainer_parser
from .run import plan as plan_trainer_run

GRIDS_DIR = Path(__file__).resolve().parent / "grids"
SWEEP_JSON = "sweep.json"  # the group folder's record of the sweep's arguments
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Settings that belong to the machine or the command line, not to a grid: the sweep passes them
# to every run (seed and epochs are the sweep's own).
COMMAND_LINE_ONLY = ("seed", "epochs", "device", "data_dir", "precision", "fast", "subset", "test_subset")
GRID_SETTINGS = tuple(f.name for f in fields(TrainConfig) if f.name not in COMMAND_LINE_ONLY + ("model_options",))
# status of a planned run
NEW, RESUME, DONE, FAILED = "new", "resume", "done", "failed"
BUSY = "busy"  # at its turn, another process was training it: skipped
NO_TIME = "no-time"  # at its turn, the grid's budget was spent: not started
SIGINT_GRACE_SECONDS = 30.0  # after Ctrl-C, how long the trainers get to stop on their own


class SweepError(Exception):
    """A bad grid or command line: one line for the user."""


@dataclass(frozen=True)
class GridPoint:
    name: str
    settings: dict  # TrainConfig field -> value, defaults merged in


@dataclass(frozen=True)
class Grid:
    name: str
    description: str
    points: tuple[GridPoint, ...]


def available_grids() -> list[str]:
    return sorted(path.stem for path in GRIDS_DIR.glob("*.toml"))


def duration(text: str) -> float:
    """An argparse type: seconds in a duration such as 90m, 1h, 1h30m (capsviz.training.schedules.parse_duration)."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def seconds_argument(seconds: float) -> str:
    """A budget in seconds as the trainer's --budget reads it (whole seconds, at least one)."""
    return f"{max(1, int(seconds))}s"


def grid_path(spec: str) -> Path:
    """A grid's file: a name in trainer/grids/, or a path to a .toml file."""
    if spec in available_grids():
        return GRIDS_DIR / f"{spec}.toml"
    path = Path(spec)
    if path.suffix == ".toml":
        if not path.is_file():
            raise SweepError(f"--grid {spec}: no such file")
        return path
    raise SweepError(f"--grid {spec}: not a grid; choose one of {', '.join(available_grids())} or a .toml file")


def load_grid(spec: str) -> Grid:
    path = grid_path(spec)
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SweepError(f"{path}: not valid TOML ({error})") from None
    defaults = data.get("defaults", {})
    points = data.get("runs")
    if not isinstance(defaults, dict):
        raise SweepError(f"{path}: [defaults] must be a table of settings")
    if not isinstance(points, list) or not points or not all(isinstance(point, dict) for point in points):
        raise SweepError(f"{path}: needs a [[runs]] list, each with a name and settings")
    seen = set()
    grid_points = []
    for position, point in enumerate(points, start=1):
        name = point.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise SweepError(f"{path}: run {position} needs a name of letters, digits, '.', '_' or '-', got {name!r}")
        if name in seen:
            raise SweepError(f"{path}: two runs are named {name!r}")
        seen.add(name)
        settings = {**defaults, **{key: value for key, value in point.items() if key != "name"}}
        for key in settings:
            if key in COMMAND_LINE_ONLY:
                raise SweepError(f"{path}: run {name!r} sets {key}, which the sweep's command line decides")
            if key not in GRID_SETTINGS:
                raise SweepError(f"{path}: run {name!r}: unknown setting {key!r} (known: {', '.join(GRID_SETTINGS)})")
        grid_points.append(GridPoint(name, settings))
    return Grid(path.stem, str(data.get("description", "")), tuple(grid_points))


def select_points(grid: Grid, names: Sequence[str] | None) -> Grid:
    """The grid narrowed to the named runs (--only), in the grid's order; None keeps them all."""
    if not names:
        return grid
    known = [point.name for point in grid.points]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SweepError(f"--only {','.join(names)}: grid {grid.name} has no run named "
                         f"{', '.join(map(repr, unknown))} (its runs: {', '.join(known)})")
    return replace(grid, points=tuple(point for point in grid.points if point.name in names))


def trainer_arguments(settings: dict) -> list[str]:
    """`python -m trainer.run` flags for TrainConfig settings."""
    switches = {"recon": (False, "--no-recon"), "fast": (False, "--no-fast"),
                "inner_routing_grad": (True, "--inner-routing-grad")}
    arguments = []
    for key, value in settings.items():
        if key in switches:
            if not isinstance(value, bool):
                raise SweepError(f"{key} = {value!r}: must be true or false")
            when, flag = switches[key]
            if value == when:
                arguments.append(flag)
        elif value is not None:
            arguments += [f"--{key.replace('_', '-')}", str(value)]
    return arguments


@dataclass(frozen=True)
class PlannedRun:
    name: str  # "<grid point>-seed<S>", the folder's name in the group
    point: GridPoint
    seed: int
    run_dir: Path
    arguments: tuple[str, ...]  # for python -m trainer.run
    status: str  # NEW, RESUME, DONE, FAILED (or BUSY, found at its turn)
    epochs_done: int
    note: str = ""  # why a run is FAILED


def planned_status(run_dir: Path, epochs: int | None, *, budgeted: bool = False) -> tuple[str, int, str]:
    """(status, epochs done, note) of a run directory for a sweep asking for `epochs`; under a budget
    (`budgeted`) a finished run is done whatever its epochs."""
    if not (run_dir / store.RUN_JSON).exists():
        return NEW, 0, ""
    try:
        info = store.read_run_json(run_dir)
        done = len(store.read_history(run_dir))
    except store.RunError as error:
        raise SweepError(f"{error}; fix or move {run_dir} and run the sweep again") from None
    if store.effective_status(info) == "running":  # two trainers in one directory would corrupt it
        raise SweepError(f"{run_dir} is being trained now (pid {info.get('pid')}); wait for it or stop it first")
    if info["status"] == "failed":
        return FAILED, done, str(info.get("error") or "no error recorded")
    if info["status"] == "finished" and (budgeted or done >= epochs):
        return DONE, done, ""
    return RESUME, done, ""


def length_arguments(epochs: int | None, budget: float | None) -> list[str]:
    """--epochs (alone, or as the cap of a budget's plan) and --budget for the trainer."""
    return ([] if epochs is None else ["--epochs", str(epochs)]) + \
        ([] if budget is None else ["--budget", seconds_argument(budget)])


def settings_differences(run_dir: Path, arguments: Sequence[str]) -> list[str]:
    """How the run in run_dir differs from the one the trainer `arguments` ask for, by the trainer's
    rule (trainer.run.differences: what --resume would refuse)."""
    saved = store.read_run_json(run_dir)
    try:
        given = given_settings(trainer_parser().parse_args(list(arguments)))
    except SystemExit:  # argparse has printed what is wrong with the grid's value
        raise SweepError(f"{run_dir.name}: the trainer refused the grid's settings ({' '.join(arguments)})") from None
    known = {f.name for f in fields(TrainConfig)}
    settings = {k: v for k, v in store.with_legacy_settings(saved["config"]).items() if k in known}
    try:
        config = TrainConfig(**{**settings, **given})
    except (TypeError, ValueError) as error:
        raise SweepError(f"{run_dir.name}: {error}") from None
    return differences(saved["config"], config)


def plan_sweep(grid: Grid, *, seeds: Sequence[int], epochs: int | None, out: Path,
               passthrough: Sequence[str] = (), budget: float | None = None) -> list[PlannedRun]:
    """Every (grid point, seed) with its run directory, trainer arguments and status; each is
    checked by the trainer's own planning (no file written), so a bad value is refused before
    anything trains. A run already trained (done, or failed) with settings other than the grid's
    now refuses the whole sweep, naming every such run. `budget`: the seconds of a run's budget (the
    run's own, or the grid's whole, which the sweep shares out when each run starts); None: `epochs`."""
    planned, changed = [], []
    for point in grid.points:
        for seed in seeds:
            name = f"{point.name}-seed{seed}"
            run_dir = out / name
            status, done, note = planned_status(run_dir, epochs, budgeted=budget is not None)
            arguments = [*trainer_arguments(point.settings), "--seed", str(seed), *length_arguments(epochs, budget),
                         *passthrough, "--out", str(run_dir)]
            if status == RESUME:
                arguments.append("--resume")
            if status in (NEW, RESUME):
                try:
                    plan_trainer_run(arguments)
                except CliError as error:
                    raise SweepError(f"{name}: {error}") from None
                except SystemExit:  # argparse has printed what is wrong with the grid's value
                    raise SweepError(f"{name}: the trainer refused the grid's settings ({' '.join(arguments)})") from None
            else:
                mismatch = settings_differences(run_dir, arguments)
                if mismatch:
                    changed.append(f"{name} ({'; '.join(mismatch)})")
            planned.append(PlannedRun(name, point, seed, run_dir, tuple(arguments), status, done, note))
    if changed:
        raise SweepError(f"the grid asks for other settings than {len(changed)} run(s) in {out} were trained with: "
                         f"{', '.join(changed)}; restore the grid's settings, or give the changed grid another --out "
                         f"(nothing was touched)")
    return planned


def recheck(planned: PlannedRun, epochs: int | None, *, budgeted: bool = False) -> PlannedRun:
    """The run as its directory is now, just before the sweep starts it: a long sweep's plan is hours
    old by then, and a run planned as new may have been started (or finished) by hand meanwhile."""
    try:
        status, done, note = planned_status(planned.run_dir, epochs, budgeted=budgeted)
    except SweepError as error:  # being trained by another process now, or unreadable: never touched
        return replace(planned, status=BUSY, note=str(error))
    arguments = [argument for argument in planned.arguments if argument != "--resume"]
    return replace(planned, status=status, epochs_done=done, note=note,
                               arguments=tuple(arguments + ["--resume"] if status == RESUME else arguments))


def describe(planned: PlannedRun, epochs: int | None, length: str | None = None) -> str:
    """What happens to a run; `length`: how long it trains, when not `epochs` ("budget 1h00m, ...")."""
    planned_length = length or f"{epochs} epoch(s)"
    what = {NEW: f"new, {planned_length}",
            RESUME: (f"resume after epoch {planned.epochs_done}, {length}" if length else
                     f"resume after epoch {planned.epochs_done} of {epochs}"),
            DONE: f"done ({planned.epochs_done} epochs)", FAILED: f"failed earlier, left alone: {planned.note}",
            BUSY: f"skipped: {planned.note}", NO_TIME: f"not started: {planned.note}"}
    return what[planned.status]


def result_line(run_dir: Path) -> str:
    """What a run reached, from its directory: the final epoch's test error first (the headline),
    the best epoch's labelled as chosen on the test set."""
    try:
        info = store.read_run_json(run_dir)
        history = store.read_history(run_dir)
    except store.RunError as error:
        return f"unreadable: {error}"
    status = store.effective_status(info)
    if not len(history):
        return f"{status}, no complete epoch"
    best = best_test_error(history)
    wall = last_value(history, "wall_seconds")
    text = (f"{status} after {len(history)}/{info['config'].get('epochs')} epochs: "
            f"final test error {last_value(history, 'test_error'):.2f}%")
    if best:
        text += f", best {best[1]:.2f}% at epoch {best[0]} (selected on the test set)"
    if wall is not None:
        text += f", {wall / 60:.1f} min"
    if status == "failed":
        text += f"; {info.get('error')}"
    return text


def write_sweep_record(out: Path, grid: Grid, seeds: Sequence[int], epochs: int | None, argv: Sequence[str],
                       budgets: Budgets | None = None) -> None:
    """The sweep's arguments beside its runs (each run keeps its own in run.json)."""
    budgets = budgets or Budgets()
    record = {"grid": grid.name, "description": grid.description, "seeds": list(seeds), "epochs": epochs,
              **({"budget_seconds": budgets.run_seconds} if budgets.run_seconds is not None else {}),
              **({"grid_budget_seconds": budgets.grid_seconds} if budgets.grid_seconds is not None else {}),
              "runs": [{"name": point.name, **point.settings} for point in grid.points],
              "command": "python -m trainer.sweep " + " ".join(argv),
              "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SWEEP_JSON, json.dumps(record, indent=2) + "\n")


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers such as 0,1,2, got {text!r}") from None
    if not seeds or any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"must be distinct non-negative integers such as 0,1,2, got {text!r}")
    return seeds


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--grid", required=True, help=f"a grid in trainer/grids ({', '.join(available_grids())}) or a .toml file")
    add("--seeds", type=parse_seeds, default=[0, 1, 2], help="comma-separated seeds (default 0,1,2)")
    add("--epochs", type=positive_int, help="epochs per run (a later sweep with more extends them); beside --budget "
                                            "or --grid-budget, the most a run's plan may have")
    add("--budget", type=duration, help="wall time for each run, e.g. 90m, 1h, 1h30m (the trainer's --budget)")
    add("--grid-budget", type=duration, help="wall time for the whole grid, shared out as each run starts "
                                             "(see the rule above)")
    add("--only", type=lambda text: [name for name in text.split(",") if name],
        help="comma-separated run names of the grid to train, e.g. capsnet-r3-norecon,baseline (default: all)")
    add("--out", type=Path, help="group folder (default: the grid's name under $CAPSVIZ_RUNS's first root, else checkpoints/)")
    add("--jobs", type=positive_int, default=1,
        help="runs trained at once (default 1; on a GPU several small runs share it well; on a CPU each gets "
             "its share of the cores)")
    add("--dry-run", action="store_true", help="list the runs and what would happen to each, then stop")
    passed = p.add_argument_group("passed to every run (see python -m trainer.run --help)")
    passed.add_argument("--device")
    passed.add_argument("--precision")
    passed.add_argument("--data-dir")
    passed.add_argument("--subset", type=positive_int)
    passed.add_argument("--test-subset", type=positive_int)
    passed.add_argument("--no-fast", action="store_true")
    return p


def check_data(planned: Sequence[PlannedRun], args: argparse.Namespace) -> None:
    """What every run would find when it loads its data, checked once for each dataset before the sweep
    starts (or says, under --dry-run, what it would do): the data directory, and --subset and
    --test-subset against the images there."""
    datasets = sorted({run.point.settings.get("dataset") or TrainConfig().dataset
                       for run in planned if run.status in (NEW, RESUME)})
    config = TrainConfig(subset=args.subset, test_subset=args.test_subset)
    for name in datasets:
        try:
            spec = get_dataset(name)
            counts = [len(spec.load(split, args.data_dir)[1]) for split in ("train", "test")]
            check_subsets(config, *counts)
        except (DataError, CliError) as error:
            raise SweepError(f"{name}: {error}") from None
        except OSError as error:
            raise SweepError(f"{name}: {error.filename or args.data_dir}: {error.strerror or error}") from None


def group_folder(grid: Grid, out: Path | None, spec: str = "") -> Path:
    """--out, or the grid's name under the runs root: a plain folder name (a grid file named ...toml
    would otherwise name the runs root's parent)."""
    if out is not None:
        return out
    if not NAME_PATTERN.fullmatch(grid.name) or grid.name in (".", ".."):
        raise SweepError(f"--grid {spec or grid.name}: the grid's name {grid.name!r} is not a plain folder name for its group "
                         f"(letters, digits, '.', '_' or '-', not starting with '.'); rename the file or pass --out")
    return store.default_runs_root() / grid.name


def lengths(args: argparse.Namespace) -> Budgets:
    """--epochs, --budget and --grid-budget checked together."""
    if args.budget is not None and args.grid_budget is not None:
        raise SweepError("--budget and --grid-budget: give one (a budget for each run, or one for the whole grid)")
    budgets = Budgets(run_seconds=args.budget, grid_seconds=args.grid_budget)
    if args.epochs is None and not budgets.active:
        raise SweepError("--epochs, --budget or --grid-budget is needed: how long each run trains")
    return budgets


def passthrough_arguments(args: argparse.Namespace) -> list[str]:
    arguments = []
    for key in ("device", "precision", "data_dir", "subset", "test_subset"):
        if getattr(args, key) is not None:
            arguments += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if args.no_fast:
        arguments.append("--no-fast")
    return arguments


class Stop(Exception):
    """SIGTERM to the sweep: stop its runs the way Ctrl-C does."""


def raise_stop(signum, frame):
    raise Stop


def child_environment(jobs: int) -> dict:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if jobs > 1 and "OMP_NUM_THREADS" not in environment:  # share the cores instead of oversubscribing them
        environment["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return environment


def start_run(planned: PlannedRun, *, jobs: int, log_dir: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "trainer.run", *planned.arguments]
    if jobs == 1:  # the trainer's own progress bar and lines, as if run by hand
        return subprocess.Popen(command, env=child_environment(jobs))
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{planned.name}.log", "a") as log:
        return subprocess.Popen(command, env=child_environment(jobs), stdout=log, stderr=subprocess.STDOUT)


@dataclass
class Budgets:
    """How long the sweep's runs train when timed: --budget for each run, or --grid-budget shared out as
    each run starts (the rule is in the module's docstring)."""
    run_seconds: float | None = None
    grid_seconds: float | None = None
    deadline: float | None = None  # time.monotonic() at which the grid's budget ends, once started

    @property
    def active(self) -> bool:
        return self.run_seconds is not None or self.grid_seconds is not None

    def start(self) -> None:
        if self.grid_seconds is not None:
            self.deadline = time.monotonic() + self.grid_seconds

    def for_run(self, run: PlannedRun, *, to_start: int, running: int, jobs: int) -> float | None:
        """Seconds of budget for `run`, starting now with `to_start` runs not yet started (itself
        included) and `running` runs training; None without a budget, 0 or less when none is left."""
        if self.run_seconds is not None:
            spent = 0.0
            if run.status == RESUME:  # what it has trained already counts against its budget
                try:
                    spent = float(store.read_run_json(run.run_dir).get("wall_seconds") or 0.0)
                except store.RunError:
                    spent = 0.0
            return max(1.0, self.run_seconds - spent)  # spent: the trainer ends it at its committed epochs
        if self.grid_seconds is None:
            return None
        if self.deadline is None:
            self.start()
        left = self.deadline - time.monotonic()
        return min(left, left * jobs / max(1, to_start + running))


def with_budget(arguments: Sequence[str], seconds: float | None) -> tuple[str, ...]:
    """The trainer's arguments with --budget set to `seconds` (None: as planned)."""
    if seconds is None:
        return tuple(arguments)
    kept, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--budget":
            skip = True
        else:
            kept.append(argument)
    return (*kept, "--budget", seconds_argument(seconds))


def run_sweep(planned: list[PlannedRun], *, epochs: int | None, jobs: int, log_dir: Path,
              budgets: Budgets | None = None) -> int:
    """Train the NEW and RESUME runs, at most `jobs` at a time, in order. 0 when every run is done,
    1 when one failed, 130 when interrupted (the runs keep their complete epochs)."""
    budgets = budgets or Budgets()
    budgets.start()
    total = len(planned)
    position = {run.name: index for index, run in enumerate(planned, start=1)}
    queue = [run for run in planned if run.status in (NEW, RESUME)]
    for run in planned:
        if run.status not in (NEW, RESUME):
            print(f"[{position[run.name]}/{total}] {run.name}: {describe(run, epochs)}", flush=True)
    running: dict[str, tuple[PlannedRun, subprocess.Popen]] = {}
    failures = skipped = 0
    previous = signal.signal(signal.SIGTERM, raise_stop)
    try:
        while queue or running:
            while queue and len(running) < jobs:
                run = recheck(queue.pop(0), epochs, budgeted=budgets.active)
                seconds = None
                if run.status in (NEW, RESUME):
                    seconds = budgets.for_run(run, to_start=len(queue) + 1, running=len(running), jobs=jobs)
                    if seconds is not None and seconds < 1:
                        run = replace(run, status=NO_TIME, note="the grid's budget is spent (run the sweep again "
                                                                "to train it)")
                if run.status not in (NEW, RESUME):  # done, failed or taken meanwhile: nothing to start
                    print(f"[{position[run.name]}/{total}] {run.name}: {describe(run, epochs)}", flush=True)
                    skipped += run.status in (BUSY, FAILED, NO_TIME)
                    continue
                length = None
                if seconds is not None:
                    run = replace(run, arguments=with_budget(run.arguments, seconds))
                    length = f"budget {format_duration(seconds)}" + (f", at most {epochs} epochs" if epochs else "")
                print(f"[{position[run.name]}/{total}] {run.name}: {describe(run, epochs, length)}"
                      + (f" (log: {log_dir / (run.name + '.log')})" if jobs > 1 else ""), flush=True)
                running[run.name] = (run, start_run(run, jobs=jobs, log_dir=log_dir))
            time.sleep(0.2)
            for name, (run, process) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                del running[name]
                print(f"[{position[name]}/{total}] {name}: {result_line(run.run_dir)}", flush=True)
                if code == 130:  # the run was interrupted on its own (its trainer got the signal)
                    raise KeyboardInterrupt
                failures += code != 0
    except (KeyboardInterrupt, Stop) as stop:
        # Ctrl-C in a terminal reaches the trainers too (one process group): give them time to save
        # and say what they kept before signalling them; `kill` of the sweep alone is passed on at once.
        grace = time.monotonic() + (SIGINT_GRACE_SECONDS if isinstance(stop, KeyboardInterrupt) else 0)
        while time.monotonic() < grace and any(process.poll() is None for _run, process in running.values()):
            time.sleep(0.2)
        for _run, process in running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # the trainer keeps its complete epochs and says so
        for run, process in running.values():
            process.wait()
            print(f"[{position[run.name]}/{total}] {run.name}: {result_line(run.run_dir)}", flush=True)
        print("sweep interrupted: run the same command again to resume it", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 1 if failures or skipped or any(run.status == FAILED for run in planned) else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = paths.guard(parser(), "--out", "--data-dir").parse_args(argv)
    try:
        if paths.refusal(args):  # an empty path (an unset shell variable), or one the system cannot name
            raise SweepError(paths.refusal(args))
        budgets = lengths(args)
        grid = select_points(load_grid(args.grid), args.only)
        out = group_folder(grid, args.out, args.grid)
        planned = plan_sweep(grid, seeds=args.seeds, epochs=args.epochs, out=out,
                             passthrough=passthrough_arguments(args), budget=budgets.run_seconds or budgets.grid_seconds)
        check_data(planned, args)
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a path the checks above did not foresee: one line, not a traceback
        print(f"error: {error.filename or args.out}: {error.strerror or error}", file=sys.stderr)
        return 2
    if budgets.run_seconds is not None:
        length = f"a budget of {format_duration(budgets.run_seconds)}"
    elif budgets.grid_seconds is not None:
        length = f"a share of the grid's budget of {format_duration(budgets.grid_seconds)}"
    else:
        length = f"{args.epochs} epoch(s)"
    if budgets.active and args.epochs:
        length += f" (at most {args.epochs} epochs)"
    print(f"sweep {grid.name}: {len(grid.points)} setting(s) x {len(args.seeds)} seed(s), {length} each, in {out}"
          + (f" ({args.jobs} at a time)" if args.jobs > 1 else ""))
    if args.dry_run:
        run_length = length if budgets.active else None
        for index, run in enumerate(planned, start=1):
            print(f"[{index}/{len(planned)}] {run.name}: {describe(run, args.epochs, run_length)}")
            if run.status in (NEW, RESUME):
                print(f"    python -m trainer.run {' '.join(run.arguments)}")
        return 0
    try:
        write_sweep_record(out, grid, args.seeds, args.epochs, argv, budgets)
    except OSError as error:
        print(f"error: {out / SWEEP_JSON}: {error.strerror or error}", file=sys.stderr)
        return 2
    code = run_sweep(planned, epochs=args.epochs, jobs=args.jobs, log_dir=out / "logs", budgets=budgets)
    if code == 0:
        print(f"sweep {grid.name}: all {len(planned)} run(s) done")
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `--dry-run | head`: the reader has what it wanted; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
