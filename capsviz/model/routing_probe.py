"""Figure A.1 over training (the paper's Appendix A): at the end of each epoch, how much routing still
changes its logits at each iteration, on a fixed probe set.

The probe set is the first PROBE_DIGITS digits of the run's test set, the same for every run of a
dataset, so runs can be compared epoch by epoch. For each routing iteration t it records the mean
|delta b_ij| (the agreement u_hat_{j|i} . v_j that iteration adds) and the mean |b_ij| after it, over
digits, primary capsules i and classes j. The rows travel inside the epoch's history row under
ROUTING_KEY (so state.pt commits them with the epoch and --resume keeps them); the trainer writes them to
routing.csv through the run store (capsviz.store), which the model's modules never import. Its cost: about 1%
of a training epoch (README, Routing internals).

The model registry (capsviz.model.registry) names this probe as CapsNet's: the trainer runs whatever probe a
model's entry names.
"""
from __future__ import annotations

import time

import torch

from .capsnet import CapsNet
from .routing_view import logit_change_stats, trace_routing

PROBE_DIGITS = 300  # the first 300 test digits: a few hundred, as Figure A.1 averages over many
PROBE_BATCH = 100  # digits per pass: (100, 10, 1152, 16) predictions are 74 MB at 28x28
ROUTING_KEY = "routing"  # the history row's key holding its epoch's probe rows (not a history.csv column)


@torch.no_grad()
def routing_probe(model: CapsNet, images_u8: torch.Tensor, *, fast: bool = False, batch_size: int = PROBE_BATCH) -> list[dict]:
    """images_u8: uint8 (N, C, H, W), the probe digits, on the model's device. Returns one row per
    routing iteration of the model: iteration (from 1), mean_abs_logit_change, mean_abs_logit,
    probe_digits, and seconds (the probe's time, for the log; not written)."""
    if len(images_u8) == 0:
        raise ValueError("the routing probe needs at least one digit")
    # imported here: the model registry imports this module, and `import capsviz` must pull in no speed code
    from .fast import prepare_images

    started = time.perf_counter()
    training = model.training
    model.eval()
    change_sum = logit_sum = None
    entries = 0
    try:
        for start in range(0, len(images_u8), batch_size):
            batch = images_u8[start:start + batch_size]
            record = trace_routing(model, prepare_images(batch.float().div_(255.0), fast))
            change, logit = logit_change_stats(record)
            change_sum = change if change_sum is None else change_sum + change
            logit_sum = logit if logit_sum is None else logit_sum + logit
            entries += record.agreement[:, 0].numel()  # digits x primary capsules x classes
    finally:
        model.train(training)
    seconds = time.perf_counter() - started
    return [{"iteration": iteration + 1, "mean_abs_logit_change": change / entries, "mean_abs_logit": logit / entries,
             "probe_digits": len(images_u8), "seconds": seconds}
            for iteration, (change, logit) in enumerate(zip(change_sum.tolist(), logit_sum.tolist()))]


def routing_rows(history: list[dict]) -> list[dict]:
    """The routing.csv rows of a run's history rows (epochs without a probe, none)."""
    return [{"epoch": row["epoch"], **probe} for row in history for probe in row.get(ROUTING_KEY) or ()]
