"""What the trainer needs of a model on a dataset, through one interface: run it on a batch, and hand
back the loss parts and which examples it got right.

The trainer calls `task.step(model, inputs, targets)` and knows nothing else of the model: which
forward arguments it takes, which loss it trains with, how a prediction is read off its output. Loss
parts a model does not have (the CNN has no margin or reconstruction loss) come back as None, and the
matching history.csv columns stay empty.

    capsule      CapsNet: margin loss plus the weighted reconstruction error (section 3 and 4.1);
                 the prediction is the longest digit capsule
    classifier   the baseline CNN: softmax cross-entropy; the prediction is the largest logit
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .losses import RECON_WEIGHT, capsule_loss


@dataclass
class StepResult:
    total: torch.Tensor  # () the loss that is trained on
    margin: torch.Tensor | None  # () or None where the model has no such part
    reconstruction: torch.Tensor | None  # () unweighted summed squared error per image, or None
    correct: torch.Tensor  # (B,) bool


@dataclass(frozen=True, kw_only=True)
class CapsuleTask:
    """CapsNet on single-label images. recon_weight 0 or reconstruct False trains without the decoder
    term (Table 1's rows without reconstruction)."""

    reconstruct: bool = True
    recon_weight: float = RECON_WEIGHT

    def step(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> StepResult:
        output = model(inputs, targets, reconstruct=self.reconstruct)  # decoder masked with the true label
        parts = capsule_loss(output, inputs, targets, recon_weight=self.recon_weight if self.reconstruct else 0.0)
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


Task = CapsuleTask | ClassifierTask
