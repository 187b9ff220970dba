"""Routing by agreement made visible, for one digit or a probe set (the Routing page, Appendix A).

    trace_routing       the primary capsules and every routing iteration of a batch: coupling c_ij,
                        logits b_ij, the agreement u_hat_{j|i} . v_j and the digit capsules v_j
    DigitRouting        one digit's trace, as numpy
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
    """One digit's routing, as numpy. `types` x `grid` x `grid` primary capsules, ordered (type, row,
    column) as PrimaryCaps lays them out."""

    image: np.ndarray  # (H, W) in [0, 1]
    primary_lengths: np.ndarray  # (n_in,)
    coupling: np.ndarray  # (T, n_in, n_out)
    logits: np.ndarray  # (T, n_in, n_out)
    agreement: np.ndarray  # (T, n_in, n_out)
    digit_lengths: np.ndarray  # (T, n_out)
    types: int
    grid: int
    routings: int  # the model's own iteration count; T may go past it to show where routing would go next

    @property
    def iterations(self) -> int:
        return len(self.coupling)

    @property
    def lengths(self) -> np.ndarray:
        """The digit capsules' lengths the model outputs: those after its own last iteration."""
        return self.digit_lengths[min(self.routings, self.iterations) - 1]

    @property
    def prediction(self) -> int:
        return int(self.lengths.argmax())


def trace_digit(model: CapsNet, image: np.ndarray, *, iterations: int | None = None) -> DigitRouting:
    """One grayscale digit, uint8 (H, W) or float in [0, 1], through the model with its routing kept,
    for `iterations` (default: the model's routings; more show where routing would go next)."""
    image = np.asarray(image)
    pixels = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    size = model.config.input_size
    assert pixels.shape == (size, size), f"expected a {size}x{size} digit, got {pixels.shape}"
    record = trace_routing(model, torch.from_numpy(pixels)[None, None], iterations=iterations)
    first = lambda tensor: tensor[0].cpu().numpy()  # noqa: E731
    return DigitRouting(image=pixels, primary_lengths=first(record.primary_lengths), coupling=first(record.coupling),
                        logits=first(record.logits), agreement=first(record.agreement),
                        digit_lengths=first(record.digit_lengths), types=model.config.primary_types,
                        grid=model.config.primary_grid, routings=model.routings)


ALL_TYPES = "sum"  # coupling_maps: the 32 capsule types summed


def coupling_maps(routing: DigitRouting, iteration: int, *, capsule_type: int | str = ALL_TYPES,
                  from_uniform: bool = False) -> np.ndarray:
    """(n_out, grid, grid): for each class j, c_ij * |u_i| at each position of the PrimaryCaps grid,
    the capsule types summed or one of them picked. Weighted by |u_i| because a primary capsule that
    barely exists sends almost nothing, whatever its coupling: this is the part of s_j's input
    that each position routes to class j. Since c_i sums to 1 over the classes, the maps of all classes
    sum to the map of primary capsule lengths. `from_uniform`: (c_ij - c_ij of iteration 1) * |u_i| instead,
    what routing moved towards (or away from) each class compared with 1 iteration, whose coupling is
    uniform (1/n_out; 1/n_in under the softmax-over-inputs bug); under the paper's rule these sum to 0."""
    assert 0 <= iteration < routing.iterations, f"iteration must be in [0, {routing.iterations}), got {iteration}"
    coupling = routing.coupling[iteration]  # (n_in, n_out)
    if from_uniform:
        coupling = coupling - routing.coupling[0]
    weighted = coupling * routing.primary_lengths[:, None]  # (n_in, n_out)
    maps = weighted.reshape(routing.types, routing.grid, routing.grid, -1)  # (32, 6, 6, 10)
    if capsule_type == ALL_TYPES:
        maps = maps.sum(axis=0)
    else:
        assert 0 <= int(capsule_type) < routing.types, f"capsule type must be in [0, {routing.types}), got {capsule_type}"
        maps = maps[int(capsule_type)]
    return np.moveaxis(maps, -1, 0)  # (10, 6, 6)


def coupling_sums(routing: DigitRouting, iteration: int) -> tuple[float, float]:
    """(mean over primary capsules i of sum_j c_ij, mean over classes j of sum_i c_ij) in iteration
    `iteration`: (1, n_in / n_out) under eq. 3's softmax over the classes, (n_out / n_in, 1) when a port
    takes it over the inputs (the softmax-over-inputs bug), which the Routing page shows side by side."""
    coupling = routing.coupling[iteration]  # (n_in, n_out)
    return float(coupling.sum(axis=1).mean()), float(coupling.sum(axis=0).mean())


def coupling_entropy(coupling: np.ndarray) -> np.ndarray:
    """(T,) mean over primary capsules i of the entropy of c_i over the classes, in nats, per iteration.
    coupling: (T, n_in, n_out). Iteration 1's coupling is softmax(0), uniform: log(n_out), log 10 = 2.303."""
    safe = np.clip(coupling, 1e-12, 1.0)
    return -(coupling * np.log(safe)).sum(axis=-1).mean(axis=-1)


def agreement_split(routing: DigitRouting, iteration: int, *, winner: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The agreements u_hat_{j|i} . v_j of iteration `iteration`: (n_in,) for the winning class
    (default: the prediction) and (n_in * (n_out - 1),) for all the others."""
    winner = routing.prediction if winner is None else winner
    agreement = routing.agreement[iteration]  # (n_in, n_out)
    others = np.delete(agreement, winner, axis=1)
    return agreement[:, winner], others.ravel()


def logit_change_stats(record: RoutingRecord) -> tuple[torch.Tensor, torch.Tensor]:
    """Figure A.1's statistic, summed over a batch (divide by the count of entries for the mean):
    sum |delta b_ij| and sum |b_ij| after each iteration, both (T,), over examples, i and j."""
    return record.agreement.abs().sum(dim=(0, 2, 3)), record.logits.abs().sum(dim=(0, 2, 3))
