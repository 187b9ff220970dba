"""Procedure 1, step by step: one digit's routing by agreement with every intermediate number kept, and
one primary capsule's part in it (the Routing page's "Procedure 1, step by step").

    trace_procedure     one digit through the model's own modules (CapsNet.routing_trace: the trace its
                        forward's own routing records), kept as numpy
    DigitProcedure      u_i, u_hat_{j|i}, and per iteration c_ij, s_j, v_j, b_ij and the agreement
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
import torch

from ..model.capsnet import CapsNet


@dataclass(frozen=True)
class DigitProcedure:
    """One digit's routing, every iteration kept (numpy). T iterations, n_in primary capsules of D_in
    numbers, n_out digit capsules of D_out."""

    image: np.ndarray  # (H, W) in [0, 1], the model's input
    primary: np.ndarray  # (n_in, D_in) u_i, PrimaryCaps' output
    predictions: np.ndarray  # (n_out, n_in, D_out) u_hat_{j|i} = W_ij u_i (eq. 2)
    coupling: np.ndarray  # (T, n_out, n_in) c_ij used in iteration t (eq. 3)
    s: np.ndarray  # (T, n_out, D_out) s_j = sum_i c_ij u_hat_{j|i} (eq. 2)
    v: np.ndarray  # (T, n_out, D_out) v_j = squash(s_j) (eq. 1)
    logits: np.ndarray  # (T, n_out, n_in) b_ij after iteration t's update
    agreement: np.ndarray  # (T, n_out, n_in) u_hat_{j|i} . v_j of iteration t: what it adds to b_ij
    types: int
    grid: int
    routings: int  # the model's own iteration count; T may go past it to show where routing would go next

    @property
    def iterations(self) -> int:
        return len(self.coupling)

    @property
    def capsules(self) -> int:
        return self.primary.shape[0]

    @property
    def primary_lengths(self) -> np.ndarray:
        """(n_in,) |u_i|."""
        return np.linalg.norm(self.primary, axis=-1)

    @property
    def prediction_lengths(self) -> np.ndarray:
        """(n_out, n_in) |u_hat_{j|i}|."""
        return np.linalg.norm(self.predictions, axis=-1)

    def logits_before(self, iteration: int) -> np.ndarray:
        """(n_out, n_in) b_ij as iteration `iteration` (from 1) finds it: 0 for the first, "in all our experiments"."""
        self._check(iteration)
        return np.zeros_like(self.logits[0]) if iteration == 1 else self.logits[iteration - 2]

    @property
    def output_iteration(self) -> int:
        """The iteration whose v_j the model outputs: its own last one (from 1)."""
        return min(self.routings, self.iterations)

    @property
    def lengths(self) -> np.ndarray:
        """(n_out,) the digit capsules' lengths the model outputs."""
        return np.linalg.norm(self.v[self.output_iteration - 1], axis=-1)

    @property
    def prediction(self) -> int:
        return int(self.lengths.argmax())

    @property
    def strongest(self) -> int:
        """The primary capsule with the longest u_i: the one that sends the most."""
        return int(self.primary_lengths.argmax())

    def capsule_index(self, capsule_type: int, row: int, column: int) -> int:
        assert 0 <= capsule_type < self.types, f"capsule type must be in [0, {self.types}), got {capsule_type}"
        assert 0 <= row < self.grid and 0 <= column < self.grid, f"position must be in the {self.grid}x{self.grid} grid"
        return (capsule_type * self.grid + row) * self.grid + column

    def capsule_position(self, index: int) -> tuple[int, int, int]:
        """(type, row, column) of primary capsule `index`."""
        assert 0 <= index < self.capsules, f"capsule index must be in [0, {self.capsules}), got {index}"
        capsule_type, cell = divmod(index, self.grid * self.grid)
        return capsule_type, *divmod(cell, self.grid)

    def length_grid(self, capsule_type: int) -> np.ndarray:
        """(grid, grid) |u_i| of one capsule type over the PrimaryCaps grid."""
        return self.primary_lengths.reshape(self.types, self.grid, self.grid)[capsule_type]

    def _check(self, iteration: int) -> None:
        assert 1 <= iteration <= self.iterations, f"iteration must be in 1..{self.iterations}, got {iteration}"


@torch.no_grad()
def trace_procedure(model: CapsNet, image: np.ndarray, *, iterations: int | None = None) -> DigitProcedure:
    """One grayscale digit, uint8 (H, W) or float in [0, 1], through the model's own capsule layers, for
    `iterations` of routing (default: the model's; more show where routing would go next). Routing runs
    in float32 with autocast off, as DigitCaps runs it."""
    image = np.asarray(image)
    pixels = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    size = model.config.input_size
    assert pixels.shape == (size, size), f"expected a {size}x{size} digit, got {pixels.shape}"
    iterations = iterations or model.routings
    inputs = torch.from_numpy(pixels)[None, None]  # (1, 1, H, W)
    # the model's own trace (CapsNet.routing_trace): its Conv1, PrimaryCaps and DigitCaps with whatever a recipe
    # or a variant puts in them, routing in float32; the last iteration's update changes no output, but says how
    # far routing was from settling
    routing = model.routing_trace(inputs, iterations=iterations)
    per_class = lambda tensor: tensor[0].transpose(1, 2).cpu().numpy()  # noqa: E731  (T, 1152, 10) -> (T, 10, 1152)
    return DigitProcedure(
        image=pixels,
        primary=routing.primary[0].float().cpu().numpy(),  # (1152, 8)
        predictions=routing.u_hat[0].cpu().numpy(),  # (10, 1152, 16)
        coupling=per_class(routing.coupling),
        s=routing.s[0].cpu().numpy(),  # (T, 10, 16)
        v=routing.v[0].cpu().numpy(),  # (T, 10, 16)
        logits=per_class(routing.logits),
        agreement=per_class(routing.agreement),  # (T, 10, 1152): u_hat_{j|i} . v_j
        types=model.config.primary_types,
        grid=model.config.primary_grid,
        routings=model.routings,
    )


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


def capsule_steps(procedure: DigitProcedure, index: int) -> CapsuleSteps:
    """Primary capsule `index`'s part in every iteration of the digit's routing."""
    capsule_type, row, column = procedure.capsule_position(index)
    predictions = procedure.predictions[:, index]  # (10, 16)
    prediction_lengths = np.linalg.norm(predictions, axis=-1)  # (10,)
    coupling = procedure.coupling[:, :, index]  # (T, 10)
    agreement = procedure.agreement[:, :, index]  # (T, 10)
    v_lengths = np.linalg.norm(procedure.v, axis=-1)  # (T, 10)
    denominator = prediction_lengths[None] * v_lengths
    cosine = np.divide(agreement, denominator, out=np.zeros_like(agreement), where=denominator > 0)
    logits_before = np.stack([procedure.logits_before(t)[:, index] for t in range(1, procedure.iterations + 1)])
    return CapsuleSteps(
        index=index, capsule_type=capsule_type, row=row, column=column,
        pose=procedure.primary[index], predictions=predictions, prediction_lengths=prediction_lengths,
        logits_before=logits_before, coupling=coupling, contribution=coupling[:, :, None] * predictions[None],
        agreement=agreement, cosine=cosine, logits_after=procedure.logits[:, :, index],
    )


@dataclass(frozen=True)
class Contributors:
    """The primary capsules that send the most into digit capsule j in one iteration."""

    indices: np.ndarray  # (k,) primary capsule indices, largest |c_ij u_hat_{j|i}| first
    magnitudes: np.ndarray  # (k,) |c_ij u_hat_{j|i}|
    shares: np.ndarray  # (k,) (c_ij u_hat_{j|i} . s_j) / |s_j|^2: the part of s_j along itself; all i sum to 1
    rank: int  # where capsule `of` ranks among all n_in (1 = the largest), when asked
    share: float  # capsule `of`'s share, when asked


def top_contributors(procedure: DigitProcedure, iteration: int, digit: int, *, count: int = 10,
                     of: int | None = None) -> Contributors:
    """The `count` primary capsules with the largest terms c_ij u_hat_{j|i} in s_j (j = `digit`) in
    iteration `iteration` (from 1), and where capsule `of` ranks among them all."""
    procedure._check(iteration)
    terms = procedure.coupling[iteration - 1, digit][:, None] * procedure.predictions[digit]  # (1152, 16)
    magnitudes = np.linalg.norm(terms, axis=-1)  # (1152,)
    s = procedure.s[iteration - 1, digit]  # (16,)
    shares = terms @ s / max(float(s @ s), 1e-30)  # (1152,)
    order = np.argsort(-magnitudes, kind="stable")
    rank = int(np.flatnonzero(order == of)[0]) + 1 if of is not None else 0
    return Contributors(indices=order[:count], magnitudes=magnitudes[order[:count]], shares=shares[order[:count]],
                        rank=rank, share=float(shares[of]) if of is not None else float("nan"))
