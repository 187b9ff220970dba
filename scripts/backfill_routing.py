"""Give runs trained before the trainer recorded routing (capsviz.model.routing_probe) a routing.csv with the
one epoch their weights allow: the last. Earlier epochs cannot be recomputed (their weights are gone).

    python scripts/backfill_routing.py checkpoints/mnist-r1 checkpoints/mnist-r3

Refuses a run that already has routing.csv, has no weights, or is not a CapsNet. One line per run.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from capsviz import store
from capsviz.data.datasets import get_dataset
from capsviz.model.capsnet import CapsNet
from capsviz.model.routing_probe import PROBE_DIGITS, routing_probe


def backfill(run_dir, *, data_dir=None) -> str:
    run = store.load_run(run_dir)
    if (run.path / store.ROUTING_CSV).exists():
        return f"{run.path}: has {store.ROUTING_CSV} already; left alone"
    if not run.has_weights:
        return f"{run.path}: no weights ({store.WEIGHTS}); nothing to recompute"
    model = run.model
    if not isinstance(model, CapsNet):
        return f"{run.path}: not a CapsNet ({run.model_name}); no routing"
    # the probe set as the trainer takes it (Trainer.probe_images): the dataset's first test inputs
    dataset = get_dataset(run.dataset_name)
    images, labels = (torch.tensor(array) for array in dataset.load("test", data_dir))  # copies: memory-mapped files are read-only
    inputs, _ = dataset.test_batch(images, labels, torch.arange(min(PROBE_DIGITS, len(images))))
    started = time.perf_counter()
    rows = routing_probe(model, inputs.mul(255.0).round_().to(torch.uint8))
    epoch = int(run.info["epochs_done"])
    store.write_routing(run.path, [{"epoch": epoch, **row} for row in rows])
    changes = ", ".join(f"{row['mean_abs_logit_change']:.3g}" for row in rows)
    return (f"{run.path}: epoch {epoch} of {epoch} written (mean |delta b| by iteration: {changes}; "
            f"{time.perf_counter() - started:.1f} s); epochs 1-{epoch - 1} are missing")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories")
    parser.add_argument("--data-dir", default=None, help="where the MNIST files are (default: data/mnist)")
    args = parser.parse_args(argv)
    failed = 0
    for run_dir in args.runs:
        try:
            print(backfill(run_dir, data_dir=args.data_dir))
        except store.RunError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
