"""Losses against values computed by hand from the paper's formulas."""
import pytest
import torch

from capsviz import CapsNetOutput, capsule_loss, margin_loss, reconstruction_loss


def test_margin_loss_by_hand():
    lengths = torch.tensor([[0.95, 0.20, 0.05], [0.50, 0.60, 0.30]])
    labels = torch.tensor([0, 1])
    # example 1: present 0.95 >= 0.9 -> 0; absent 0.5 * (0.2 - 0.1)^2 = 0.005; 0.05 < 0.1 -> 0
    # example 2: present (0.9 - 0.6)^2 = 0.09; absent 0.5 * (0.4^2 + 0.2^2) = 0.1
    expected = (0.005 + 0.19) / 2
    assert margin_loss(lengths, labels).item() == pytest.approx(expected, abs=1e-7)


def test_reconstruction_loss_is_summed_over_pixels_and_averaged_over_batch():
    images = torch.zeros(2, 1, 2, 2)
    reconstruction = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.5, 0.5], [0.5, 0.5]]]])
    # per image: 1.0 and 4 * 0.25 = 1.0
    assert reconstruction_loss(reconstruction, images).item() == pytest.approx(1.0)


def output(lengths, reconstruction):
    return CapsNetOutput(lengths=lengths, poses=torch.zeros(len(lengths), 3, 16), reconstruction=reconstruction,
                         masked_classes=torch.zeros(len(lengths), dtype=torch.long))


def test_total_weights_reconstruction_by_0_0005():
    lengths = torch.tensor([[0.5, 0.6, 0.3]])
    images = torch.zeros(1, 1, 28, 28)
    reconstruction = torch.full((1, 1, 28, 28), 0.5)  # 784 * 0.25 = 196
    parts = capsule_loss(output(lengths, reconstruction), images, torch.tensor([1]))
    assert parts.margin.item() == pytest.approx(0.19, abs=1e-6)
    assert parts.reconstruction.item() == pytest.approx(196.0)
    assert parts.total.item() == pytest.approx(0.19 + 0.0005 * 196.0, abs=1e-6)
    without = capsule_loss(output(lengths, reconstruction), images, torch.tensor([1]), recon_weight=0.0)
    assert without.total.item() == pytest.approx(0.19, abs=1e-6)
