"""The paper's losses (section 3 and 4.1): margin loss plus a down-weighted reconstruction loss.

The margin loss is summed over classes and averaged over the batch, as eq. 4 reads ("sum"). The authors'
code (capsviz.training.recipes, part "margin") halves every term and averages over batch x classes ("half-mean"):
the same loss divided by 2K, while the reconstruction term keeps its weight.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

M_PLUS, M_MINUS, LAMBDA = 0.9, 0.1, 0.5
RECON_WEIGHT = 0.0005  # scales the SUM of squared pixel errors, so it does not dominate the margin loss
# How the margin loss's (B, K) terms become one number: the paper's sum over classes, or the authors'
# 0.5 x mean over batch x classes (layers._margin_loss returns 0.5 x the terms, the model reduce_means them)
MARGIN_REDUCTIONS = ("sum", "half-mean")


def margin_loss(lengths: torch.Tensor, labels: torch.Tensor, *, m_plus: float = M_PLUS,
                m_minus: float = M_MINUS, lam: float = LAMBDA, reduction: str = "sum") -> torch.Tensor:
    """Eq. 4: T_k max(0, m+ - |v_k|)^2 + lambda (1 - T_k) max(0, |v_k| - m-)^2, summed over classes
    k, averaged over the batch (or the authors' reduction, see MARGIN_REDUCTIONS). lengths: (B, K);
    labels: (B,) class indices."""
    lengths = lengths.float()
    present = F.one_hot(labels, lengths.shape[1]).float()  # (B, K)
    return present_margin_loss(lengths, present, m_plus=m_plus, m_minus=m_minus, lam=lam, reduction=reduction)


def present_margin_loss(lengths: torch.Tensor, present: torch.Tensor, *, m_plus: float = M_PLUS,
                        m_minus: float = M_MINUS, lam: float = LAMBDA, reduction: str = "sum") -> torch.Tensor:
    """Eq. 4 with T_k given: present (B, K) is 1 for every class in the image (two for MultiMNIST,
    section 6: "the margin loss ... for each digit present") and 0 elsewhere."""
    assert reduction in MARGIN_REDUCTIONS, f"margin reduction must be one of {MARGIN_REDUCTIONS}, got {reduction!r}"
    lengths = lengths.float()
    loss = present * F.relu(m_plus - lengths) ** 2 + lam * (1.0 - present) * F.relu(lengths - m_minus) ** 2
    if reduction == "half-mean":
        return 0.5 * loss.mean()  # (B, K) -> (): the authors' code
    return loss.sum(dim=1).mean()


def pair_margin_loss(lengths: torch.Tensor, labels: torch.Tensor, *, reduction: str = "sum") -> torch.Tensor:
    """Eq. 4 for images holding two digits of different classes. lengths (B, K); labels (B, 2)."""
    assert labels.dim() == 2 and labels.shape[1] == 2, f"expected labels (B, 2), got {tuple(labels.shape)}"
    present = F.one_hot(labels, lengths.shape[1]).sum(dim=1).clamp(max=1).float()  # (B, K), two ones
    return present_margin_loss(lengths, present, reduction=reduction)


def reconstruction_loss(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Sum of squared pixel differences per image, averaged over the batch (unweighted)."""
    diff = reconstruction.float().flatten(1) - images.float().flatten(1)
    return (diff * diff).sum(dim=1).mean()


@dataclass
class LossParts:
    total: torch.Tensor
    margin: torch.Tensor
    reconstruction: torch.Tensor  # unweighted sum of squared errors per image; 0 when switched off


def capsule_loss(output, images: torch.Tensor, labels: torch.Tensor, *, recon_weight: float = RECON_WEIGHT,
                 margin_reduction: str = "sum") -> LossParts:
    """Total loss = margin + recon_weight x reconstruction. recon_weight 0 switches reconstruction
    off (Table 1's rows without it); the reconstruction error is still reported when available."""
    margin = margin_loss(output.lengths, labels, reduction=margin_reduction)
    if output.reconstruction is None:
        recon = margin.new_zeros(())
    else:
        recon = reconstruction_loss(output.reconstruction, images)
    total = margin + recon_weight * recon if recon_weight > 0 else margin
    return LossParts(total=total, margin=margin, reconstruction=recon)
