"""Train a model on a dataset and write a run directory.

    python -m trainer.run --routings 3                     # CapsNet on MNIST: checkpoints/mnist-capsnet-r3
    python -m trainer.run --routings 3 --resume            # continue it
    python -m trainer.run --model baseline                 # the paper's CNN: checkpoints/mnist-baseline
    python -m trainer.run --dataset mnist-40 --routings 3  # expanded MNIST (40x40)
    python -m trainer.run --routings 1 --epochs 2 --subset 2000 --out checkpoints/quick
    torchrun --nproc_per_node 2 -m trainer.run --routings 3   # data-parallel, 2 processes
"""
from __future__ import annotations

import signal
import sys

if __name__ == "__main__":
    # Ctrl-C or `kill` while Python loads torch (seconds): one line, not a traceback through the
    # imports. main() installs its own handlers once it runs.
    def stopped_while_loading(signum, frame):
        print("interrupted during start-up; nothing was written", file=sys.stderr)
        sys.exit(130)

    signal.signal(signal.SIGINT, stopped_while_loading)
    signal.signal(signal.SIGTERM, stopped_while_loading)

import argparse  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import fields  # noqa: E402
from pathlib import Path  # noqa: E402

from capsviz import store  # noqa: E402
from capsviz.atomic import nearest_existing  # noqa: E402
from capsviz.data.datasets import get_dataset  # noqa: E402
from capsviz.data.mnist import DataError  # noqa: E402
from capsviz.machine import resolve_device  # noqa: E402
from capsviz.model import variants  # noqa: E402
from capsviz.model.registry import get_model_entry  # noqa: E402
from capsviz.training import settings  # noqa: E402
from capsviz.training.schedules import EXP_EPOCH, parse_duration  # noqa: E402
from capsviz.training.settings import RESUMABLE_CHANGES, positive_int  # noqa: E402, F401 (positive_int: for trainer.sweep)

from . import distributed, paths  # noqa: E402
from .loop import NO_BUDGET, TrainConfig, Trainer, TrainingDiverged, resume_hint, select  # noqa: E402


class CliError(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    # a flag per training setting (capsviz.training.settings), each defaulting to None so that --resume can tell what
    # was given from what was not; then the flags that are not settings of the run
    settings.add_arguments(p)
    add = p.add_argument
    add("--budget", help="wall-time budget, e.g. 90m, 1h, 1h30m: the number of epochs is planned after the first one "
                         "is timed, so that the run, evaluation included, ends within it (--epochs then caps the plan); "
                         "a --resume keeps the run's deadline unless given a new --budget or --epochs")
    add("--out", type=Path, help="run directory (default {dataset}-{model}[-r{routings}] under $CAPSVIZ_RUNS's first "
                                 "root, else checkpoints/)")
    add("--resume", action="store_true", help="continue the run in --out from its last complete epoch "
        f"(one that completed none starts again); {settings.resumable_flags()} may change")
    return p


def given_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the user set on the command line."""
    return settings.given_settings(args)


def validate_config(config: TrainConfig) -> None:
    """Refuse settings out of range, NaN and inf included (the rules are run.json's: capsviz.store)."""
    for name, value, rule in settings.config_problems(config.to_dict()):
        raise CliError(f"--{name.replace('_', '-')} {value}: {rule}")
    if not config.fast and config.precision == "bf16":
        raise CliError("--precision bf16: the plain path (--no-fast) is fp32 only")
    if config.schedule != EXP_EPOCH and config.lr_floor > config.lr:
        raise CliError(f"--lr-floor {config.lr_floor:g}: above the learning rate --lr {config.lr:g}")


def default_run_dir(config: TrainConfig) -> Path:
    """Where a run goes without --out: under the dashboard's own runs root, named by what it is."""
    routes = get_model_entry(config.model).routes
    name = f"{config.dataset}-{config.model}" + (f"-r{config.routings}" if routes else "")
    return store.default_runs_root() / name


def check_subsets(config: TrainConfig, train_count: int, test_count: int) -> None:
    for flag, asked, available, what in (("--subset", config.subset, train_count, "training"),
                                         ("--test-subset", config.test_subset, test_count, "test")):
        if asked is not None and asked > available:
            raise CliError(f"{flag} {asked}: more than the {available:,} {what} images available")


def check_writable(run_dir: Path) -> None:
    """Refuse a run directory that cannot be written, before anything is: --out naming a file or a
    path under one, or a folder without write permission (or on a read-only file system). Probed by
    creating and removing a temporary file, the only way that also holds for root."""
    try:
        existing, problem = nearest_existing(run_dir)
    except OSError as error:  # a loop of symbolic links, a folder that cannot be searched
        raise CliError(f"--out {run_dir}: {error.strerror}") from None
    if problem:
        raise CliError(f"--out {run_dir}: {problem}, not a directory")
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".capsviz-write-probe.", suffix=".tmp")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise CliError(f"--out {run_dir}: cannot write in {existing} ({error.strerror})") from None


def differences(saved: dict, config: TrainConfig) -> list[str]:
    # a setting older runs lack: the value they were trained with
    saved, current = settings.with_legacy_settings(saved), config.to_dict()
    return [f"{key}: run has {saved.get(key)!r}, asked for {current[key]!r}"
            for key in current if key not in RESUMABLE_CHANGES and saved.get(key) != current[key]]


NEW, RESUME, RESTART = "new", "resume", "restart"


def budget_from(args: argparse.Namespace, given: dict) -> dict | None:
    """--budget as the trainer's budget (deadline from now); --epochs given beside it caps the plan. Without
    --budget: None, which lets a resumed budget run keep its deadline, or NO_BUDGET when --epochs was given,
    a fixed plan (the run's deadline dropped, as --help promises, even when N equals the old plan)."""
    if args.budget is None:
        return NO_BUDGET if "epochs" in given else None
    try:
        seconds = parse_duration(args.budget)
    except ValueError as error:
        raise CliError(f"--budget {error}") from None
    return {"seconds": seconds, "deadline": time.time() + seconds, "max_epochs": given.get("epochs")}


def plan(argv) -> tuple[TrainConfig, Path, str]:
    """Parse and check everything; writes no file (check_writable creates and removes a probe).
    Returns (config, run directory, NEW, RESUME or RESTART). RESTART: a --resume of a run that never
    committed an epoch (no state.pt, no history rows), started again in its directory with its settings."""
    args = paths.guard(parser(), "--out", "--data-dir").parse_args(argv)
    if paths.refusal(args):  # an empty path (an unset shell variable), or one the system cannot name
        raise CliError(paths.refusal(args))
    try:
        return plan_from(args)
    except OSError as error:  # whatever the path checks did not foresee: one line, not a traceback
        raise CliError(f"{error.filename or '--out'}: {error.strerror or error}") from None


def plan_from(args: argparse.Namespace) -> tuple[TrainConfig, Path, str, dict | None]:
    given = given_settings(args)
    # names first: the default run directory is made of them
    for name, value, rule in settings.config_problems({k: given[k] for k in ("dataset", "model", "precision") if k in given}):
        raise CliError(f"--{name} {value}: {rule}")
    problem = settings.flag_problem(given)  # --routings for a model whose registry entry does not route
    if problem:
        raise CliError(problem)
    try:
        TrainConfig(**given).task()  # a model that cannot train on the dataset (the baseline on MultiMNIST)
    except ValueError as error:
        raise CliError(str(error)) from None
    run_dir = args.out or default_run_dir(TrainConfig(**given))
    check_writable(run_dir)
    saved = None
    if (run_dir / store.RUN_JSON).exists():
        try:
            saved = store.read_run_json(run_dir)  # checked field by field: a bad value names this file
        except store.RunError as error:
            raise CliError(f"{error}; refusing to touch {run_dir}") from None
        refuse_if_training(run_dir, saved)
    mode = RESUME if args.resume else NEW
    if args.resume:
        if saved is None:
            raise CliError(f"--resume: {run_dir} holds no run to resume (no {store.RUN_JSON})")
        known = {f.name for f in fields(TrainConfig)}
        saved_settings = settings.with_legacy_settings(saved["config"])
        config = TrainConfig(**{**{k: v for k, v in saved_settings.items() if k in known}, **given})
        mismatch = differences(saved["config"], config)
        if mismatch:
            raise CliError(f"--resume: {run_dir} was trained with other settings ({'; '.join(mismatch)})")
        if not (run_dir / store.STATE).exists():
            epochs = max(saved.get("epochs_done") or 0, len(read_history_or_refuse(run_dir)))
            if epochs:
                raise CliError(f"--resume: {run_dir / store.STATE} is missing (the resume state was not kept), "
                               f"so the {epochs} epoch(s) of {run_dir} cannot be continued")
            mode = RESTART
    else:
        config = TrainConfig(**given)
        if saved is not None:
            mismatch = differences(saved["config"], config)
            what = f"a run with a different config ({'; '.join(mismatch)})" if mismatch else "a run already"
            raise CliError(f"--out {run_dir} holds {what}; pass --resume to continue it, or choose another --out")
        leftovers = [name for name in (store.HISTORY_CSV, store.WEIGHTS, store.STATE) if (run_dir / name).exists()]
        if leftovers:
            raise CliError(f"--out {run_dir} holds {', '.join(leftovers)} but no {store.RUN_JSON}; "
                           f"choose another --out (nothing there is overwritten)")
    validate_config(config)
    try:
        resolve_device(config.device)
    except ValueError as error:
        raise CliError(str(error)) from None
    return config, run_dir, mode, budget_from(args, given)


def refuse_if_training(run_dir: Path, saved: dict) -> None:
    """Two trainers in one run directory would each commit epochs over the other's: a run whose run.json
    says running, with its trainer alive (capsviz.store.effective_status), is not touched."""
    ours = saved.get("pid") == os.getpid() and saved.get("host") == socket.gethostname()
    # this very process (a trainer stopped by an exception, resumed from the same Python session) is not another
    if store.effective_status(saved) == "running" and not ours:
        where = f" on {saved['host']}" if saved.get("host") else ""
        raise CliError(f"{run_dir} is being trained now by pid {saved.get('pid')}{where}; "
                       f"wait for it to finish or stop it first (nothing was touched)")


def read_history_or_refuse(run_dir: Path):
    try:
        return store.read_history(run_dir)
    except store.RunError as error:
        raise CliError(f"{error}; refusing to touch {run_dir}") from None


def stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def interruptible(command, argv=None) -> int:
    """`command(argv)` with Ctrl-C and `kill` (SIGTERM) both raising KeyboardInterrupt, from start-up on, so
    that a run stops the same way for either (marked interrupted, its last complete epoch kept); the
    caller's handlers come back afterwards."""
    handlers = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: stop_on_sigterm}
    previous = {number: signal.signal(number, handler) for number, handler in handlers.items()}
    try:
        return command(argv)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def main(argv=None) -> int:
    return interruptible(train_from_command_line, argv)


def train_from_command_line(argv) -> int:
    processes = distributed.from_environment()  # torchrun's, or one process
    run_dir = None
    try:
        config, run_dir, mode, budget = plan(argv)
        if processes.enabled and config.batch_size < processes.world_size:
            raise CliError(f"--batch-size {config.batch_size}: must be at least the number of processes "
                           f"({processes.world_size}); the batch is split across them")
        device = resolve_device(config.device)
        train_images, train_labels = load_dataset(config, "train")
        test_images, test_labels = load_dataset(config, "test")
        check_subsets(config, len(train_images), len(test_images))
        train = select(train_images, train_labels, config.subset)
        test = select(test_images, test_labels, config.test_subset)
        device = distributed.start(processes, device)
    except (CliError, DataError, store.RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted during start-up; {on_disk(run_dir)}", file=sys.stderr)
        return 130
    try:
        return train_run(config, run_dir, mode, device, train, test, processes, budget=budget)
    finally:
        distributed.stop(processes)


def load_dataset(config: TrainConfig, split: str):
    """(uint8 images, labels) of the run's dataset (capsviz.data.datasets)."""
    return get_dataset(config.dataset).load(split, config.data_dir)


def train_run(config: TrainConfig, run_dir: Path, mode: str, device, train, test,
              processes: distributed.Distributed, *, budget: dict | None = None) -> int:
    try:
        trainer = Trainer(config, run_dir, device, train, test, processes=processes, budget=budget, resume=mode == RESUME)
        trainer.start(resume=mode == RESUME)
    except (CliError, DataError, store.RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the probe passed, yet a write failed (a full disk, permissions changed since)
        print(f"error: {error.filename or run_dir}: {error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted during start-up; {on_disk(run_dir)}", file=sys.stderr)
        return 130
    if mode == RESUME:
        trainer.log(f"resuming {run_dir} after epoch {len(trainer.history)}")
    elif mode == RESTART:
        trainer.log(f"restarting {run_dir}: it had not completed an epoch")
    path = f"fast path in {trainer.precision.precision}" if config.fast else "plain fp32"
    routes = get_model_entry(config.model).routes
    what = f"{config.model} with {config.routings} routing(s)" if routes else config.model
    if config.variant != variants.NONE:  # a bug trained on purpose must not pass for the paper's model
        what += f", variant {config.variant} (a bug on purpose: docs/bugs.md)"
    ranks = f", {processes.world_size} processes" if processes.enabled else ""
    trainer.log(f"training {run_dir}: {what} on {config.dataset}, {len(train[0])} images, device {device.type}"
                f"{ranks}, {path}, {trainer.model.parameter_count():,} parameters")
    try:
        summary = trainer.fit()
    except KeyboardInterrupt:
        return 130  # fit() has said what is kept
    except TrainingDiverged as error:
        if processes.is_main:
            print(f"error: {error}; the run is marked failed. {resume_hint(run_dir, len(trainer.history))} "
                  f"--lr {config.lr / 10:g} (a lower learning rate)", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error.filename or run_dir}: {error.strerror or error}", file=sys.stderr)
        return 1
    trainer.log(f"finished {run_dir}: test error {summary['final_test_error']:.2f}% "
                f"(best {summary['best_test_error']:.2f}% at epoch {summary['best_epoch']})")
    return 0


def on_disk(run_dir: Path | None) -> str:
    """What an interruption before training leaves, read back from the run directory."""
    if run_dir is None or not (run_dir / store.RUN_JSON).exists():
        return "nothing was written"
    try:
        return resume_hint(run_dir, store.committed_epochs(run_dir))
    except store.RunError as error:
        return str(error)


if __name__ == "__main__":
    sys.exit(main())
