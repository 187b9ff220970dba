"""Procedure 1, step by step: one primary capsule's part in one digit's routing by agreement (the Routing
page's "Procedure 1, step by step"), from the digit's trace with every intermediate number kept
(capsviz.model.routing_view.trace_digit, a DigitRouting).

    capsule_steps       one primary capsule i across the iterations: its pose, its ten predictions,
                        b_ij, c_ij, the agreement u_hat_{j|i} . v_j and its cosine, its part of each s_j
    top_contributors    the primary capsules with the largest |c_ij u_hat_{j|i}| into one digit capsule

Nothing is recomputed by hand: the predictions, couplings, s_j, v_j and logits are the very tensors
the model's routing produces. The agreement and its cosine are dot products of those tensors, shown
beside the logits they update (tests check that the logits are the running sum of the agreements).

Iterations are counted from 1 as in the paper; arrays are indexed from 0 (iteration t is [t - 1]).
Primary capsules are numbered as PrimaryCaps lays them out: i = (type * grid + row) * grid + column.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.routing_view import DigitRouting


@dataclass(frozen=True)
class CapsuleSteps:
    """One primary capsule i across the routing iterations (numpy): everything Procedure 1 does with it."""

    index: int
    capsule_type: int
    row: int
    column: int
    pose: np.ndarray  # (D_in,) u_i
    predictions: np.ndarray  # (n_out, D_out) u_hat_{j|i}, one per digit capsule j
    prediction_lengths: np.ndarray  # (n_out,) |u_hat_{j|i}|
    logits_before: np.ndarray  # (T, n_out) b_ij as iteration t finds it
    coupling: np.ndarray  # (T, n_out) c_ij = softmax_j(b_ij), used in iteration t
    contribution: np.ndarray  # (T, n_out, D_out) c_ij u_hat_{j|i}: capsule i's term of s_j
    agreement: np.ndarray  # (T, n_out) u_hat_{j|i} . v_j of iteration t
    cosine: np.ndarray  # (T, n_out) the agreement over |u_hat_{j|i}| |v_j|: direction alone
    logits_after: np.ndarray  # (T, n_out) b_ij after iteration t's update

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.pose))


def capsule_steps(routing: DigitRouting, index: int) -> CapsuleSteps:
    """Primary capsule `index`'s part in every iteration of the digit's routing."""
    capsule_type, row, column = routing.capsule_position(index)
    predictions = routing.predictions[:, index]  # (10, 16)
    prediction_lengths = np.linalg.norm(predictions, axis=-1)  # (10,)
    coupling = routing.coupling[:, :, index]  # (T, 10)
    agreement = routing.agreement[:, :, index]  # (T, 10)
    v_lengths = routing.digit_lengths  # (T, 10)
    denominator = prediction_lengths[None] * v_lengths
    cosine = np.divide(agreement, denominator, out=np.zeros_like(agreement), where=denominator > 0)
    logits_before = np.stack([routing.logits_before(t)[:, index] for t in range(1, routing.iterations + 1)])
    return CapsuleSteps(
        index=index, capsule_type=capsule_type, row=row, column=column,
        pose=routing.primary[index], predictions=predictions, prediction_lengths=prediction_lengths,
        logits_before=logits_before, coupling=coupling, contribution=coupling[:, :, None] * predictions[None],
        agreement=agreement, cosine=cosine, logits_after=routing.logits[:, :, index],
    )


@dataclass(frozen=True)
class Contributors:
    """The primary capsules that send the most into digit capsule j in one iteration."""

    indices: np.ndarray  # (k,) primary capsule indices, largest |c_ij u_hat_{j|i}| first
    magnitudes: np.ndarray  # (k,) |c_ij u_hat_{j|i}|
    shares: np.ndarray  # (k,) (c_ij u_hat_{j|i} . s_j) / |s_j|^2: the part of s_j along itself; all i sum to 1
    rank: int  # where capsule `of` ranks among all n_in (1 = the largest), when asked
    share: float  # capsule `of`'s share, when asked


def top_contributors(routing: DigitRouting, iteration: int, digit: int, *, count: int = 10,
                     of: int | None = None) -> Contributors:
    """The `count` primary capsules with the largest terms c_ij u_hat_{j|i} in s_j (j = `digit`) in
    iteration `iteration` (from 1), and where capsule `of` ranks among them all."""
    routing.check_iteration(iteration)
    terms = routing.coupling[iteration - 1, digit][:, None] * routing.predictions[digit]  # (1152, 16)
    magnitudes = np.linalg.norm(terms, axis=-1)  # (1152,)
    s = routing.s[iteration - 1, digit]  # (16,)
    shares = terms @ s / max(float(s @ s), 1e-30)  # (1152,)
    order = np.argsort(-magnitudes, kind="stable")
    rank = int(np.flatnonzero(order == of)[0]) + 1 if of is not None else 0
    return Contributors(indices=order[:count], magnitudes=magnitudes[order[:count]], shares=shares[order[:count]],
                        rank=rank, share=float(shares[of]) if of is not None else float("nan"))
