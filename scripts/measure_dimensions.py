"""Measure what each capsule dimension of a run encodes (capsviz.analysis.dimension_meanings) and store it
beside the run's weights as dimensions.npz, which the Capsule dimensions page reads. One command
per run; rerun it whenever the weights change (the page ignores a cache measured on other weights).

    python scripts/measure_dimensions.py checkpoints/mnist-r3
    python scripts/measure_dimensions.py checkpoints/mnist-r1 checkpoints/mnist-r3 --digits 200

About 40 s per run on 2 idle cores at 200 digits per class (encoding 2000 test digits takes half); 60-85 s
when other work shares the machine.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from capsviz.analysis.digits import load_test_set
from capsviz.analysis.dimension_meanings import DIGITS_PER_CLASS, measure_model
from capsviz.data.mnist import DataError
from capsviz.store import RunError, load_capsule_run, write_dimensions


def measure_run(run_dir: Path, *, digits: int, data_dir=None) -> str:
    """Measure one run and write its cache; returns a one-line summary."""
    run = load_capsule_run(run_dir, purpose="measure")
    images, labels = load_test_set(run.dataset_name, data_dir)
    started = time.perf_counter()
    meanings = measure_model(run.model, images, labels, digits_per_class=digits)
    write_dimensions(run_dir, meanings.to_arrays())
    classes = meanings.classes_with("width")
    return (f"{run_dir}: {meanings.interpretable()} of {meanings.slope.shape[0] * meanings.slope.shape[1]} "
            f"(class, dimension) pairs carry one property; a width dimension in {len(classes)} of "
            f"{meanings.slope.shape[0]} classes; {time.perf_counter() - started:.0f} s -> {run_dir / 'dimensions.npz'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (with model.pt)")
    parser.add_argument("--digits", type=int, default=DIGITS_PER_CLASS,
                        help=f"test digits per class (the first of each class; default {DIGITS_PER_CLASS})")
    parser.add_argument("--data-dir", type=Path, default=None, help="MNIST files (default: the project's data/)")
    args = parser.parse_args(argv)
    if args.digits < 2:
        parser.error(f"--digits must be at least 2, got {args.digits}")
    failed = 0
    for run_dir in args.runs:
        try:
            print(measure_run(run_dir, digits=args.digits, data_dir=args.data_dir), flush=True)
        except (RunError, DataError) as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
