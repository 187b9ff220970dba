"""Re-evaluate a run's saved weights on its dataset's test set with today's code, and print one line.

    python scripts/evaluate_run.py checkpoints/multimnist-r3            # model.pt, fp32 fast path
    python scripts/evaluate_run.py RUN --weights state.pt               # the fp32 weights of the last committed epoch
    python scripts/evaluate_run.py RUN --test-subset 500 --precision bf16

This is how checkpoints/multimnist-r3's `reevaluation` was measured (its history's test set was the lost
code's). About 2-3 minutes for 10,000 MultiMNIST pairs on the 2-core AMD EPYC.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from capsviz.data.datasets import get_dataset
from capsviz.data.mnist import DataError
from capsviz.model import variants
from capsviz.model.fast import prepare_model
from capsviz.model.registry import model_from_config
from capsviz.store import STATE, WEIGHTS, RunError, load_run, read_state
from trainer.loop import TrainConfig, select, validate


def load_model(run_dir: Path, weights: str) -> torch.nn.Module:
    run = load_run(run_dir)
    if weights == WEIGHTS:
        if not run.has_weights:
            raise RunError(f"{run_dir / WEIGHTS}: missing; nothing to evaluate")
        return run.model
    model = model_from_config(run.model_name, run.info["model"])
    variants.apply_to_model(run.config.get("variant", variants.NONE), model)  # a bug trained on purpose
    try:
        model.load_state_dict(read_state(run_dir, mmap=True)["model"])
    except (RuntimeError, KeyError) as error:  # another model's weights, or a state without them
        raise RunError(f"{run_dir / STATE}: its weights do not fit the run's model ({str(error).splitlines()[0]})") from None
    return model.eval()


def evaluate(run_dir: Path, *, weights: str = WEIGHTS, precision: str = "fp32", test_subset: int | None = None,
             data_dir=None) -> tuple[float, int, float]:
    """(test error in %, test examples, seconds) of the run's weights on its dataset's test set."""
    run = load_run(run_dir)
    config = TrainConfig(**{k: v for k, v in run.config.items() if k in TrainConfig.__dataclass_fields__})
    test = select(*get_dataset(run.dataset_name).load("test", data_dir), test_subset)
    cpu = torch.device("cpu")
    model = prepare_model(load_model(run_dir, weights), cpu, True, precision=precision)
    started = time.perf_counter()
    with torch.inference_mode():
        stats = validate(model, config.task(), *test, config, cpu, precision=precision)
    return 100.0 * (1.0 - stats.acc), len(test[0]), time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="re-evaluate a run's weights on its dataset's test set")
    parser.add_argument("run_dir", type=Path, metavar="DIR", help="run directory")
    parser.add_argument("--weights", choices=(WEIGHTS, STATE), default=WEIGHTS, help="which weights (default model.pt)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="arithmetic (default fp32)")
    parser.add_argument("--test-subset", type=int, help="the first N test examples only")
    parser.add_argument("--data-dir", help="directory of the MNIST IDX files")
    args = parser.parse_args(argv)
    try:
        error, count, seconds = evaluate(args.run_dir, weights=args.weights, precision=args.precision,
                                         test_subset=args.test_subset, data_dir=args.data_dir)
    except (RunError, DataError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    print(f"{args.run_dir} ({args.weights}, {args.precision}): test error {error:.2f}% on {count:,} test examples "
          f"({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
