"""The affine-robustness experiment (paper section 5.2) in one command: train a CapsNet (3 routings) and a
pooled CNN on expanded MNIST (mnist-40) until each reaches a test accuracy target (the paper's matched
99.23% / 99.22%) or a number of epochs, then test both on the affNIST-like set (capsviz.data.affine) and on the
real affNIST where given. Each run's results go into its evaluation.json (capsviz.store).

    python -m trainer.robustness                               # train (or resume) both, then evaluate
    python -m trainer.robustness --max-epochs 6 --digits 2000  # shorter, on 2,000 test digits
    python -m trainer.robustness --evaluate-only --out DIR     # evaluate the runs already in DIR
    python -m trainer.robustness --affnist-dir ~/affnist       # also the real affNIST (test.mat or test_batches/)

The runs are ordinary run directories (DIR/capsnet-r3, DIR/baseline-pool; DIR defaults to robustness/
under the runs root) made by the ordinary trainer, one epoch at a time: run the command again after an
interruption and each run resumes from its last complete epoch (a run that has met the target or the
epoch limit is left as it is). The target is checked on the test set after each epoch, as the paper's
protocol does: the stopping epoch is selected on the test set, and the record says so.

The CNN: the paper calls the CNN of this experiment a conventional one with max-pooling and dropout.
Ours is the MNIST baseline (capsviz.model.baseline) with 2x2 max-pooling after each of its three 5x5
convolutions of 256 channels each, fully connected layers of 1,536 and 192 units, dropout 0.5 before the
output: 13,412,938 parameters, near the 40x40 CapsNet's 13,475,648. Without pooling its first fully
connected layer alone would hold about 70M weights at 40x40.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import torch

from capsviz import store
from capsviz.analysis.robustness import affine_evaluation, plain_evaluation, predict
from capsviz.data.affine import AffineRecipe, affnist_like, read_affnist
from capsviz.data.datasets import get_dataset
from capsviz.data.mnist import DataError, load_mnist
from capsviz.machine import describe_machine, resolve_device
from capsviz.model.fast import prepare_model

from . import paths
from .loop import TrainConfig, Trainer, eval_batch_size, select
from .run import differences, interruptible, positive_int

DATASET = "mnist-40"
POOLED_BASELINE = {"pool": True, "conv_channels": [256, 256, 256], "hidden": [1536, 192]}
RUNS = {  # run directory name -> its TrainConfig settings
    "capsnet-r3": {"dataset": DATASET, "model": "capsnet", "routings": 3},
    "baseline-pool": {"dataset": DATASET, "model": "baseline", "model_options": POOLED_BASELINE},
}
FIRST_PREDICTIONS = 100  # kept in evaluation.json: a later check regenerates these images and compares
# The affNIST-like set is held in memory, 1,600 bytes an image (uint8 40x40), and its predictions beside it:
# at most twice the real affNIST test set's 320,000 images (10,000 digits x 32), about 1 GB.
MAX_AFFINE_IMAGES = 640_000


class RobustnessError(Exception):
    """A bad command line or run directory: one line for the user."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer.robustness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--out", type=Path, help="the experiment's folder (default robustness/ under the runs root)")
    add("--target", type=float, default=99.2, help="expanded-MNIST test accuracy, in percent, at which a run stops (default 99.2)")
    add("--max-epochs", type=positive_int, default=30, help="stop a run here if it has not met the target (default 30)")
    add("--digits", type=positive_int, help="affNIST-like set from the first N MNIST test digits (default all 10,000)")
    add("--versions", type=positive_int, default=1, help="transformed versions of each digit (default 1; affNIST has 32)")
    add("--seed", type=int, default=0, help="seed of the affNIST-like transforms (default 0)")
    add("--affnist-dir", type=Path, help="folder of the real affNIST test set (test.mat or test_batches/N.mat)")
    add("--affnist-limit", type=positive_int, help="use only the first N real affNIST images")
    add("--evaluate-only", action="store_true", help="do not train; evaluate the runs already in --out")
    add("--subset", type=positive_int, help="train on the first N training images only (quick runs)")
    add("--test-subset", type=positive_int, help="test on the first N expanded-MNIST test images only (quick runs)")
    add("--batch-size", type=positive_int, help="training batch size (default the trainer's, 100)")
    add("--precision", default="auto", help="training arithmetic: auto, bf16 or fp32 (evaluation is always fp32)")
    add("--data-dir", help="directory of the MNIST IDX files (default data/mnist)")
    return p


def reached(history: list[dict] | None, target: float) -> bool:
    return bool(history) and 100.0 * float(history[-1]["test_acc"]) >= target


def history_rows(run_dir: Path) -> list[dict]:
    return store.read_history(run_dir).to_dict("records")


def training_config(name: str, args: argparse.Namespace, epochs: int) -> TrainConfig:
    extra = {key: value for key, value in (("batch_size", args.batch_size),) if value is not None}
    return TrainConfig(**RUNS[name], **extra, epochs=max(epochs, 1), subset=args.subset, test_subset=args.test_subset,
                       precision=args.precision, data_dir=args.data_dir)


def check_existing(run_dir: Path, config: TrainConfig) -> tuple[int, bool]:
    """(epochs the run directory holds, whether they can be continued), after refusing a directory that
    must not be touched: another trainer's, or one trained with other settings."""
    if not (run_dir / store.RUN_JSON).exists():
        leftovers = [n for n in (store.HISTORY_CSV, store.WEIGHTS, store.STATE) if (run_dir / n).exists()]
        if leftovers:
            raise RobustnessError(f"{run_dir} holds {', '.join(leftovers)} but no {store.RUN_JSON}; not touched")
        return 0, True
    saved = store.read_run_json(run_dir)
    if store.effective_status(saved) == "running":
        raise RobustnessError(f"{run_dir}: being trained now (pid {saved.get('pid')}); not touched")
    mismatch = differences(saved["config"], config)
    if mismatch:
        raise RobustnessError(f"{run_dir} was trained with other settings ({'; '.join(mismatch)})")
    committed, done = store.committed_epochs(run_dir), int(saved.get("epochs_done") or 0)
    return max(committed, done), committed >= done  # without state.pt (shipped runs) it can only be evaluated


def train_to_target(name: str, run_dir: Path, args: argparse.Namespace, train, test, device, log) -> None:
    """Train one run epoch by epoch through the ordinary trainer until its test accuracy meets the
    target or it has max_epochs; resumes what is there."""
    done, resumable = check_existing(run_dir, training_config(name, args, 1))
    if done:
        history = history_rows(run_dir)
        if reached(history, args.target) or done >= args.max_epochs:
            log(f"{name}: {done} epoch(s), test accuracy {100 * history[-1]['test_acc']:.2f}%: nothing to train")
            return
        if not resumable:
            raise RobustnessError(f"{run_dir / store.STATE} is missing, so {name}'s {done} epoch(s) cannot be "
                                  f"continued to the target; pass --evaluate-only to evaluate it as it is")
    trainer = Trainer(training_config(name, args, done), run_dir, device, train, test, log=log)
    trainer.start(resume=done > 0)
    while not reached(trainer.history, args.target) and len(trainer.history) < args.max_epochs:
        trainer.config.epochs = len(trainer.history) + 1  # one more epoch; run.json says how many were asked
        trainer.fit()
    last = trainer.history[-1]
    verdict = "met" if reached(trainer.history, args.target) else "not met"
    log(f"{name}: stopped after {len(trainer.history)} epoch(s), test accuracy {100 * last['test_acc']:.2f}% "
        f"(target {args.target:g}% {verdict})")


def expanded_test_set(args: argparse.Namespace):
    images, labels = get_dataset(DATASET).load("test", args.data_dir)
    return images[:args.test_subset], labels[:args.test_subset]


def evaluate_run(run_dir: Path, affine_set, affnist, expanded, args: argparse.Namespace, log) -> dict:
    """Every test set through the run's saved weights (model.pt, fp32 arithmetic); writes evaluation.json."""
    run = store.load_run(run_dir)
    if not run.has_weights:
        raise RobustnessError(f"{run_dir / store.WEIGHTS}: missing; nothing to evaluate")
    model = run.model
    size = run.info.get("dataset", {}).get("image_size", 28)
    if size != 40:
        raise RobustnessError(f"{run_dir}: trained on {size}x{size} images; the affNIST sets are 40x40")
    cpu = torch.device("cpu")
    model = prepare_model(model, cpu, True, precision="fp32")
    batch = eval_batch_size(40)
    sets = {}
    scores = predict(model, affine_set.images, batch_size=batch)
    sets["affnist-like"] = affine_evaluation(scores.argmax(1), affine_set)
    sets["affnist-like"]["first_predictions"] = scores[:FIRST_PREDICTIONS].argmax(1).tolist()
    sets["expanded-mnist"] = plain_evaluation(
        predict(model, expanded[0], batch_size=batch).argmax(1), expanded[1], name="expanded-mnist",
        description=f"mnist-40's test set ({len(expanded[1]):,} digits at fixed offsets), measured with these weights")
    if affnist is not None:
        sets["affnist"] = plain_evaluation(predict(model, affnist[0], batch_size=batch).argmax(1), affnist[1],
                                           name="affnist", description=f"the real affNIST test set ({args.affnist_dir})")
    history = run.history
    weights = torch.load(run_dir / store.WEIGHTS, map_location="cpu", weights_only=True, mmap=True)
    record = {
        "evaluated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": describe_machine(cpu),
        "weights": {"file": store.WEIGHTS, "dtype": weights.get("dtype"), "compact": bool(weights.get("compact"))},
        "training": {
            "dataset": run.dataset_name, "model": run.model_name, "epochs": int(run.info.get("epochs_done") or 0),
            "final_test_error": run.info.get("final_test_error"),
            "target_accuracy": args.target,
            "reached_target": bool(len(history)) and 100.0 - float(history["test_error"].iloc[-1]) >= args.target,
            "note": "the stopping epoch is chosen on the test set (the paper's matched-accuracy protocol)",
        },
        "sets": sets,
    }
    store.write_evaluation(run_dir, record)
    summary = ", ".join(f"{name} {value['accuracy']:.2f}%" for name, value in sets.items())
    log(f"{run_dir.name}: {summary}")
    return record


def main(argv=None) -> int:
    """Ctrl-C and `kill` (SIGTERM) stop it as they stop trainer.run (trainer.run.interruptible)."""
    return interruptible(run_experiment, argv)


def run_experiment(argv=None) -> int:
    args = paths.guard(parser(), "--out", "--data-dir", "--affnist-dir").parse_args(argv)
    if paths.refusal(args):  # an empty path (an unset shell variable), or one the system cannot name
        print(f"error: {paths.refusal(args)}", file=sys.stderr)
        return 2
    out = args.out or store.default_runs_root() / "robustness"

    def log(message: str) -> None:
        print(message, flush=True)

    try:
        if not 0 < args.target <= 100:
            raise RobustnessError(f"--target {args.target}: must be a percentage in (0, 100]")
        if args.affnist_limit and not args.affnist_dir:
            raise RobustnessError("--affnist-limit: needs --affnist-dir")
        digit_count = min(args.digits or 10_000, 10_000)  # MNIST's test set has 10,000
        if args.versions * digit_count > MAX_AFFINE_IMAGES:
            raise RobustnessError(f"--versions {args.versions}: {digit_count:,} digits x {args.versions:,} versions is "
                                  f"more than the {MAX_AFFINE_IMAGES:,} images the affNIST-like set may hold "
                                  f"(affNIST has 32 versions); lower --versions or --digits")
        affnist = read_affnist(args.affnist_dir, limit=args.affnist_limit) if args.affnist_dir else None
        if not args.evaluate_only:
            device = resolve_device("auto")
            train_images, train_labels = get_dataset(DATASET).load("train", args.data_dir)
            train = select(train_images, train_labels, args.subset)
            test = select(*expanded_test_set(args), None)
            for name in RUNS:
                train_to_target(name, out / name, args, train, test, device, log)
        digits, labels = load_mnist("test", args.data_dir)
        digits, labels = digits[:args.digits], labels[:args.digits]
        affine_set = affnist_like(digits, labels, versions=args.versions, seed=args.seed, recipe=AffineRecipe())
        log(f"affNIST-like set: {len(affine_set.labels):,} images ({len(labels):,} digits x {args.versions}), seed {args.seed}")
        expanded = expanded_test_set(args)
        records = {name: evaluate_run(out / name, affine_set, affnist, expanded, args, log)
                   for name in RUNS if (out / name / store.RUN_JSON).exists()}
        if not records:
            raise RobustnessError(f"{out}: none of {', '.join(RUNS)} is there to evaluate")
    except (RobustnessError, DataError, store.RunError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a path the checks did not foresee (too long, unreadable): one line
        print(f"error: {error.filename or out}: {error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; each run keeps its last complete epoch (run the command again to go on)", file=sys.stderr)
        return 130
    for name, record in records.items():
        training = record["training"]
        log(f"{name}: {training['epochs']} epoch(s), expanded MNIST {record['sets']['expanded-mnist']['accuracy']:.2f}%"
            f" (target {args.target:g}% {'met' if training['reached_target'] else 'NOT met'}), affNIST-like "
            f"{record['sets']['affnist-like']['accuracy']:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
