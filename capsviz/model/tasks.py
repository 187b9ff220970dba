"""What the trainer needs of a model on a dataset, through one interface: run it on a batch, and hand
back the loss parts and which examples it got right.

The trainer calls `task.step(model, inputs, targets)` and knows nothing else of the model: which
forward arguments it takes, which loss it trains with, how a prediction is read off its output. Loss
parts a model does not have (the CNN has no margin or reconstruction loss) come back as None, and the
matching history.csv columns stay empty.

    capsule      CapsNet: margin loss plus the weighted reconstruction error (section 3 and 4.1);
                 the prediction is the longest digit capsule
    classifier   the baseline CNN: softmax cross-entropy; the prediction is the largest logit
    capsule pair CapsNet on MultiMNIST (section 6): margin loss with both classes present, and two
                 reconstructions, each from its own digit's capsule against its own digit; the
                 prediction is the two longest capsules, right only when both digits are
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .losses import MARGIN_REDUCTIONS, RECON_WEIGHT, capsule_loss, pair_margin_loss, reconstruction_loss


@dataclass
class StepResult:
    total: torch.Tensor  # () the loss that is trained on
    margin: torch.Tensor | None  # () or None where the model has no such part
    reconstruction: torch.Tensor | None  # () unweighted summed squared error per image, or None
    correct: torch.Tensor  # (B,) bool


def check_margin_reduction(reduction: str) -> None:
    if reduction not in MARGIN_REDUCTIONS:
        raise ValueError(f"margin reduction {reduction!r}: use one of {', '.join(MARGIN_REDUCTIONS)}")


@dataclass(frozen=True, kw_only=True)
class CapsuleTask:
    """CapsNet on single-label images. recon_weight 0 or reconstruct False trains without the decoder
    term (Table 1's rows without reconstruction)."""

    reconstruct: bool = True
    recon_weight: float = RECON_WEIGHT
    margin_reduction: str = "sum"  # the paper's; "half-mean" is the authors' code (capsviz.model.losses)

    def __post_init__(self):
        check_margin_reduction(self.margin_reduction)

    def step(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> StepResult:
        output = model(inputs, targets, reconstruct=self.reconstruct)  # decoder masked with the true label
        parts = capsule_loss(output, inputs, targets, recon_weight=self.recon_weight if self.reconstruct else 0.0,
                             margin_reduction=self.margin_reduction)
        return StepResult(total=parts.total, margin=parts.margin,
                          reconstruction=parts.reconstruction if self.reconstruct else None,
                          correct=output.lengths.argmax(dim=1) == targets)


@dataclass(frozen=True, kw_only=True)
class ClassifierTask:
    """A softmax classifier trained with cross-entropy (the paper's baseline CNN)."""

    def step(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> StepResult:
        output = model(inputs)
        loss = F.cross_entropy(output.logits.float(), targets)
        return StepResult(total=loss, margin=None, reconstruction=None, correct=output.logits.argmax(dim=1) == targets)


def two_longest(lengths: torch.Tensor) -> torch.Tensor:
    """(B, K) capsule lengths -> (B, 2) the classes of the two longest capsules, longest first."""
    return lengths.topk(2, dim=1).indices


def pair_correct(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, 2) predicted and true classes, in any order -> (B,) bool: both digits right (Table 1's rule)."""
    return (predicted.sort(dim=1).values == labels.sort(dim=1).values).all(dim=1)


@dataclass(frozen=True, kw_only=True)
class CapsulePairTask:
    """CapsNet on images of two digits, targets multimnist.PairTargets (labels (B, 2), digits (B, 2, H, W)).
    The reconstruction part is the sum of both digits' errors, each weighted like MNIST's single one."""

    reconstruct: bool = True
    recon_weight: float = RECON_WEIGHT
    margin_reduction: str = "sum"  # as CapsuleTask's

    def __post_init__(self):
        check_margin_reduction(self.margin_reduction)

    def step(self, model: nn.Module, inputs: torch.Tensor, targets) -> StepResult:
        labels, digits = targets.labels, targets.digits  # (B, 2), (B, 2, H, W)
        output = model(inputs, labels[:, 0], reconstruct=self.reconstruct)  # the first digit's reconstruction
        margin = pair_margin_loss(output.lengths, labels, reduction=self.margin_reduction)
        correct = pair_correct(two_longest(output.lengths), labels)
        if not self.reconstruct:
            return StepResult(total=margin, margin=margin, reconstruction=None, correct=correct)
        capsnet = getattr(model, "module", model)  # under DistributedDataParallel
        second = capsnet.decode(output.poses, labels[:, 1])  # (B, 1, H, W), the other capsules masked
        recon = (reconstruction_loss(output.reconstruction, digits[:, :1])
                 + reconstruction_loss(second, digits[:, 1:]))
        total = margin + self.recon_weight * recon if self.recon_weight > 0 else margin
        return StepResult(total=total, margin=margin, reconstruction=recon, correct=correct)


Task = CapsuleTask | ClassifierTask | CapsulePairTask
