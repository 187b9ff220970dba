"""Rewrite runs' model.pt in compact int8 (capsviz.store.compact_weights), as the shipped runs are stored.

    python scripts/compact_weights.py checkpoints/mnist-r1 checkpoints/mnist-r3

Each file is replaced atomically; one already compact is left alone; a run whose model.pt is missing or
corrupt is named on stderr and skipped (exit 1 once the others are done). Check the result against the run's
reported test error (tests/test_shipped_runs.py does for the shipped runs).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from capsviz.store import WEIGHTS, RunError, compact_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="store runs' model.pt as int8 with per-channel scales")
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="DIR", help="run directories")
    args = parser.parse_args(argv)
    failed = 0
    for run_dir in args.run_dirs:  # a bad run is named and skipped: the others are still worth compacting
        try:
            before, after = compact_weights(run_dir)
        except RunError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        print(f"{run_dir / WEIGHTS}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
