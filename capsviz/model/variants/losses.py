"""The recon-mean variant (capsviz.model.variants): the reconstruction error averaged over the pixels before it is
scaled by 0.0005, where section 4.1 scales the SUM of squared differences. On MNIST's 784 pixels the
reconstruction term is then 784 times weaker than the paper's: in effect, training without it."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..tasks import CapsulePairTask, CapsuleTask, StepResult


@dataclass(frozen=True)
class MeanReconstructionTask:
    """A capsule task (single digits or MultiMNIST pairs) whose reconstruction term is
    recon_weight x the MEAN squared pixel error instead of recon_weight x the SUM. The task's own step
    runs unchanged; only the term in the trained total is swapped, so whatever else the total holds stays
    as it is. `reconstruction` (history.csv's recon columns) is still the summed error per image, so
    that its curves compare with the correct run's."""

    task: CapsuleTask | CapsulePairTask

    @property
    def reconstruct(self) -> bool:
        return self.task.reconstruct

    @property
    def recon_weight(self) -> float:
        return self.task.recon_weight

    def step(self, model: nn.Module, inputs: torch.Tensor, targets) -> StepResult:
        result = self.task.step(model, inputs, targets)
        if result.reconstruction is None or self.recon_weight <= 0:
            return result
        pixels = inputs[0].numel()  # C x H x W: 784 for MNIST
        papers_term = self.recon_weight * result.reconstruction  # 0.0005 x sum over pixels (per image)
        bugs_term = self.recon_weight * result.reconstruction / pixels  # 0.0005 x mean over pixels
        return replace(result, total=result.total - papers_term + bugs_term)
