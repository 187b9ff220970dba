"""The unmasked-decoder variant (capsviz.model.variants): the decoder reads all the digit capsules, where section
4.1 masks out "all but the activity vector of the correct digit capsule"."""
from __future__ import annotations

import torch

from ..capsnet import CapsNet


class UnmaskedDecoderCapsNet(CapsNet):
    """CapsNet whose decoder is fed the ten digit capsules as they are. Swapped in by changing the model's
    class (the same parameters and state_dict keys as the reference); still a CapsNet to everything that
    asks (the trainer, capsviz.model.registry.model_kind, the dashboard)."""

    def decode(self, poses: torch.Tensor, classes: torch.Tensor | int) -> torch.Tensor:
        """poses (B, 10, 16) -> (B, C, H, W). `classes` is ignored: nothing is masked, so the reconstruction
        is the same whichever class it is asked for (the first thing to check in a port, see docs/bugs.md)."""
        c = self.config
        pixels = self.decoder(poses.flatten(1))  # (B, 160): every capsule, the wrong classes' included
        return pixels.view(poses.shape[0], c.in_channels, c.input_size, c.input_size)
