"""The run directory's vocabulary: file names, statuses, columns, the error every reader raises, and
the size limit of every file kind (one place, so that the README and the reader say the same)."""
from __future__ import annotations

FORMAT_VERSION = 1
RUN_JSON, HISTORY_CSV, WEIGHTS, STATE = "run.json", "history.csv", "model.pt", "state.pt"
ROUTING_CSV = "routing.csv"  # Figure A.1 over training (capsviz.store.histories)
EVALUATION = "evaluation.json"  # tests beyond the training set's (capsviz.store.evaluation)
DIMENSIONS = "dimensions.npz"  # capsule dimensions' measured meanings (capsviz.store.dimensions)
STATUSES = ("running", "finished", "interrupted", "failed")
STALE = "stale"  # not written by the trainer: what a run marked running reads back as once its trainer is gone
IMPORTED = "imported"  # the status of a history imported from elsewhere (Keras): nothing trains it here
# atomic.py's temporary names
TEMPORARY_PATTERNS = tuple(f".{name}.*.tmp" for name in (RUN_JSON, HISTORY_CSV, WEIGHTS, STATE, ROUTING_CSV))
# test_acc is a fraction in [0, 1]; test_error is in percent, as the paper reports it.
HISTORY_COLUMNS = [
    "epoch", "train_loss", "train_margin_loss", "train_recon_loss", "train_acc",
    "test_loss", "test_margin_loss", "test_recon_loss", "test_acc", "test_error",
    "lr", "epoch_seconds", "images_per_second", "eval_seconds", "wall_seconds", "timestamp",
]
# One row per (epoch, routing iteration), measured at the end of the epoch on the probe set (the first
# probe_digits test digits): the mean |delta b_ij| that iteration added to the routing logits, and the mean
# |b_ij| after it (the last iteration's: the final logits). Runs of CapsNet only; older runs lack the file.
ROUTING_COLUMNS = ["epoch", "iteration", "mean_abs_logit_change", "mean_abs_logit", "probe_digits"]

MB = 1_000_000
# The most bytes read of each file kind: a file over its limit is one RunError, never read. Generous
# for real runs (in brackets, the largest we have made), small enough that a page stays responsive and
# the process small whatever a runs root holds.
SIZE_LIMITS = {
    RUN_JSON: 1 * MB,  # (8 KB: the robustness runs', with their environment)
    HISTORY_CSV: 20 * MB,  # (5 KB for 30 epochs; 20 MB is about 100,000 epochs)
    ROUTING_CSV: 20 * MB,  # (a few KB)
    EVALUATION: 16 * MB,  # (7 KB; 320,000 images' per-image correctness is 53 KB of base64 per set)
    DIMENSIONS: 16 * MB,  # (12 KB)
    WEIGHTS: 200 * MB,  # (14 MB compact, about 30 MB in float16 for mnist-40's CapsNet)
}


class RunError(Exception):
    """A broken or missing run directory; the message is one line naming the file and the problem."""


def size_text(size: int) -> str:
    """Bytes as people read them: 1.2 MB, 2.0 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
