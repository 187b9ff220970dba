"""Routing by agreement made visible, for one digit or a probe set (the Routing page, Appendix A).

    trace_routing       the primary capsules and every routing iteration of a batch: coupling c_ij,
                        logits b_ij, the agreement u_hat_{j|i} . v_j and the digit capsules v_j
    DigitRouting        one digit's trace, as numpy: u_i, u_hat_{j|i}, and per iteration c_ij, s_j, v_j, b_ij and
                        the agreement (the Routing page's views and Procedure 1 step by step read it)
    trace_digit         one digit through the model's own trace
    coupling_maps       c_ij over the PrimaryCaps grid, one map per class, weighted by |u_i|
    coupling_sums       what c_ij sums to over the classes and over the inputs (which rule routed)
    coupling_entropy    mean entropy of c_i over the classes, per iteration (uniform: log 10)
    agreement_split     the agreements of the winning class against the others', per iteration
    logit_change_stats  Figure A.1's statistic over a batch: mean |delta b_ij| per iteration

The agreement of iteration t is the update routing adds to the logits after it (Procedure 1:
b_ij += u_hat_{j|i} . v_j). The last iteration's update changes no output; it is computed here
anyway, as the model's own trace does, because it says how far routing still was from settling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .capsnet import CapsNet


@dataclass
class RoutingRecord:
    """A batch through the capsule layers, every routing iteration kept (tensors, on the model's device)."""

    primary_lengths: torch.Tensor  # (B, n_in) length of each primary capsule u_i
    coupling: torch.Tensor  # (B, T, n_in, n_out) c_ij used in iteration t
    logits: torch.Tensor  # (B, T, n_in, n_out) b_ij after iteration t's update
    agreement: torch.Tensor  # (B, T, n_in, n_out) u_hat_{j|i} . v_j of iteration t: the update of b_ij
    digit_lengths: torch.Tensor  # (B, T, n_out) |v_j| after iteration t


@torch.no_grad()
def trace_routing(model: CapsNet, inputs: torch.Tensor, *, iterations: int | None = None) -> RoutingRecord:
    """inputs: float (B, C, H, W) in [0, 1]. The model's own trace (CapsNet.routing_trace: its Conv1,
    PrimaryCaps and DigitCaps, routing in float32 whatever the model's precision) for `iterations`
    (default: the model's), as the lengths and per-iteration tensors the views draw."""
    routing = model.routing_trace(inputs, iterations=iterations)
    return RoutingRecord(
        primary_lengths=routing.primary.norm(dim=-1),  # (B, 1152)
        coupling=routing.coupling, logits=routing.logits, agreement=routing.agreement,  # (B, T, 1152, 10)
        digit_lengths=routing.v.norm(dim=-1),  # (B, T, 10)
    )


@dataclass(frozen=True)
class DigitRouting:
    """One digit's routing with every intermediate number kept, as numpy: T iterations, n_in primary capsules of
    D_in numbers, n_out digit capsules of D_out. Laid out as the equations index them, digit capsule j before
    primary capsule i (u_hat_{j|i}); the model's batch trace has (n_in, n_out). Primary capsules are numbered
    as PrimaryCaps lays them out: i = (type * grid + row) * grid + column. Iterations count from 1 as in the
    paper; arrays are indexed from 0 (iteration t is [t - 1])."""

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
    def classes(self) -> int:
        return self.v.shape[1]

    @property
    def primary_lengths(self) -> np.ndarray:
        """(n_in,) |u_i|."""
        return np.linalg.norm(self.primary, axis=-1)

    @property
    def prediction_lengths(self) -> np.ndarray:
        """(n_out, n_in) |u_hat_{j|i}|."""
        return np.linalg.norm(self.predictions, axis=-1)

    @property
    def digit_lengths(self) -> np.ndarray:
        """(T, n_out) |v_j| after each iteration."""
        return np.linalg.norm(self.v, axis=-1)

    def logits_before(self, iteration: int) -> np.ndarray:
        """(n_out, n_in) b_ij as iteration `iteration` (from 1) finds it: 0 for the first, "in all our experiments"."""
        self.check_iteration(iteration)
        return np.zeros_like(self.logits[0]) if iteration == 1 else self.logits[iteration - 2]

    @property
    def output_iteration(self) -> int:
        """The iteration whose v_j the model outputs: its own last one (from 1)."""
        return min(self.routings, self.iterations)

    @property
    def lengths(self) -> np.ndarray:
        """(n_out,) the digit capsules' lengths the model outputs."""
        return self.digit_lengths[self.output_iteration - 1]

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

    def check_iteration(self, iteration: int) -> None:
        assert 1 <= iteration <= self.iterations, f"iteration must be in 1..{self.iterations}, got {iteration}"


@torch.no_grad()
def trace_digit(model: CapsNet, image: np.ndarray, *, iterations: int | None = None) -> DigitRouting:
    """One grayscale digit, uint8 (H, W) or float in [0, 1], through the model's own capsule layers
    (CapsNet.routing_trace: its Conv1, PrimaryCaps and DigitCaps with whatever a recipe or a variant puts in
    them), for `iterations` of routing (default: the model's; more show where routing would go next). Routing
    runs in float32 with autocast off, as DigitCaps runs it."""
    image = np.asarray(image)
    pixels = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    size = model.config.input_size
    assert pixels.shape == (size, size), f"expected a {size}x{size} digit, got {pixels.shape}"
    routing = model.routing_trace(torch.from_numpy(pixels)[None, None], iterations=iterations)  # (1, 1, H, W) in
    per_class = lambda tensor: tensor[0].transpose(1, 2).cpu().numpy()  # noqa: E731  (T, 1152, 10) -> (T, 10, 1152)
    return DigitRouting(
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


ALL_TYPES = "sum"  # coupling_maps: the 32 capsule types summed


def coupling_maps(routing: DigitRouting, iteration: int, *, capsule_type: int | str = ALL_TYPES,
                  from_uniform: bool = False) -> np.ndarray:
    """(n_out, grid, grid): for each class j, c_ij * |u_i| of iteration `iteration` (from 1) at each position
    of the PrimaryCaps grid, the capsule types summed or one of them picked. Weighted by |u_i| because a primary capsule that
    barely exists sends almost nothing, whatever its coupling: this is the part of s_j's input
    that each position routes to class j. Since c_i sums to 1 over the classes, the maps of all classes
    sum to the map of primary capsule lengths. `from_uniform`: (c_ij - c_ij of iteration 1) * |u_i| instead,
    what routing moved towards (or away from) each class compared with 1 iteration, whose coupling is
    uniform (1/n_out; 1/n_in under the softmax-over-inputs bug); under the paper's rule these sum to 0."""
    routing.check_iteration(iteration)
    coupling = routing.coupling[iteration - 1]  # (n_out, n_in)
    if from_uniform:
        coupling = coupling - routing.coupling[0]
    weighted = coupling * routing.primary_lengths[None, :]  # (n_out, n_in)
    maps = weighted.reshape(-1, routing.types, routing.grid, routing.grid)  # (10, 32, 6, 6)
    if capsule_type == ALL_TYPES:
        return maps.sum(axis=1)  # (10, 6, 6)
    assert 0 <= int(capsule_type) < routing.types, f"capsule type must be in [0, {routing.types}), got {capsule_type}"
    return maps[:, int(capsule_type)]  # (10, 6, 6)


def coupling_sums(routing: DigitRouting, iteration: int) -> tuple[float, float]:
    """(mean over primary capsules i of sum_j c_ij, mean over classes j of sum_i c_ij) in iteration
    `iteration` (from 1): (1, n_in / n_out) under eq. 3's softmax over the classes, (n_out / n_in, 1) when a
    port takes it over the inputs (the softmax-over-inputs bug), which the Routing page shows side by side."""
    routing.check_iteration(iteration)
    coupling = routing.coupling[iteration - 1]  # (n_out, n_in)
    return float(coupling.sum(axis=0).mean()), float(coupling.sum(axis=1).mean())


def coupling_entropy(coupling: np.ndarray) -> np.ndarray:
    """(T,) mean over primary capsules i of the entropy of c_i over the classes, in nats, per iteration.
    coupling: (T, n_out, n_in), DigitRouting's. Iteration 1's coupling is softmax(0), uniform: log(n_out),
    log 10 = 2.303."""
    safe = np.clip(coupling, 1e-12, 1.0)
    return -(coupling * np.log(safe)).sum(axis=1).mean(axis=-1)


def agreement_split(routing: DigitRouting, iteration: int, *, winner: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The agreements u_hat_{j|i} . v_j of iteration `iteration` (from 1): (n_in,) for the winning class
    (default: the prediction) and (n_in * (n_out - 1),) for all the others."""
    routing.check_iteration(iteration)
    winner = routing.prediction if winner is None else winner
    agreement = routing.agreement[iteration - 1]  # (n_out, n_in)
    others = np.delete(agreement, winner, axis=0)
    return agreement[winner], others.ravel()


def logit_change_stats(record: RoutingRecord) -> tuple[torch.Tensor, torch.Tensor]:
    """Figure A.1's statistic, summed over a batch (divide by the count of entries for the mean):
    sum |delta b_ij| and sum |b_ij| after each iteration, both (T,), over examples, i and j."""
    return record.agreement.abs().sum(dim=(0, 2, 3)), record.logits.abs().sum(dim=(0, 2, 3))
