"""Map a run's test digits in capsule space (capsviz.analysis.capsule_space: PCA and t-SNE of each digit's ten
digit capsules) and store the map beside the run's weights as capsule_space.npz, which the Capsule
space page reads. Rerun it whenever the weights change: the page ignores a map computed from other
weights (the file names their digest).

    python scripts/map_capsule_space.py checkpoints/mnist-r1 checkpoints/mnist-r3
    python scripts/map_capsule_space.py checkpoints/mnist40-capsnet-r3 --digits 2000

All 10,000 test digits by default, --digits N for the first N. On 2 busy cores: about 4 min per
28x28 run (encoding 10,000 digits takes 3 of them), 4x longer to encode at 40x40.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from capsviz.analysis.capsule_space import CapsuleSpaceError, compute_capsule_space, write_capsule_space
from capsviz.analysis.digits import load_test_set
from capsviz.analysis.dimension_meanings import model_digest
from capsviz.data.mnist import DataError
from capsviz.store import RunError, load_capsule_run


def map_run(run_dir: Path, *, digits: int | None = None, seed: int = 0, data_dir=None, verbose: bool = False) -> str:
    """Map one run and write its cache; returns a one-line summary."""
    run = load_capsule_run(run_dir, purpose="map")
    images, labels = load_test_set(run.dataset_name, data_dir)
    started = time.perf_counter()

    def progress(fraction: float, text: str) -> None:
        if verbose:
            print(f"  {run_dir.name}: {text} ({time.perf_counter() - started:.0f} s)", flush=True)

    space = compute_capsule_space(run.model, images, labels, digest=model_digest(run.model), dataset=run.dataset_name,
                                  digits=digits, seed=seed, progress=progress)
    path = write_capsule_space(run_dir, space)
    return (f"{run_dir}: {len(space):,} test digits, {int((~space.correct).sum())} misclassified; PCA explains "
            f"{space.explained.sum():.0%}; {time.perf_counter() - started:.0f} s -> {path} "
            f"({path.stat().st_size / 1024:.0f} KB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (with model.pt)")
    parser.add_argument("--digits", type=int, default=None, help="the first N test digits (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="t-SNE's random state (default 0)")
    parser.add_argument("--data-dir", type=Path, default=None, help="MNIST files (default: the project's data/)")
    parser.add_argument("--quiet", action="store_true", help="only the summary line per run")
    args = parser.parse_args(argv)
    if args.digits is not None and args.digits < 4:
        parser.error(f"--digits must be at least 4 (t-SNE needs them), got {args.digits}")
    failed = 0
    for run_dir in args.runs:
        try:
            print(map_run(run_dir, digits=args.digits, seed=args.seed, data_dir=args.data_dir,
                          verbose=not args.quiet), flush=True)
        except (RunError, DataError, CapsuleSpaceError) as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
