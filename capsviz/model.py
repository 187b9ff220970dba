"""CapsNet (Sabour, Frosst & Hinton 2017, section 4): Conv1 -> PrimaryCaps -> DigitCaps -> decoder."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .capsules import DigitCaps, PrimaryCaps


@dataclass
class CapsNetConfig:
    """Architecture. Defaults are the paper's MNIST network; input size and class count vary for
    affNIST (40x40) and MultiMNIST (36x36)."""

    routings: int = 3
    input_size: int = 28
    in_channels: int = 1
    num_classes: int = 10
    conv_channels: int = 256
    primary_types: int = 32
    primary_dim: int = 8
    digit_dim: int = 16
    decoder_hidden: tuple[int, int] = (512, 1024)
    # Not decided by the paper: see routing.dynamic_routing.
    detach_inner_routing: bool = False

    def __post_init__(self):
        assert 1 <= self.routings <= 10, f"routings must be in 1..10, got {self.routings}"
        assert self.input_size >= 25, f"input_size must be at least 25 for two 9x9 convolutions, got {self.input_size}"
        assert self.num_classes >= 2, f"num_classes must be at least 2, got {self.num_classes}"
        self.decoder_hidden = tuple(self.decoder_hidden)

    @property
    def primary_grid(self) -> int:
        conv1 = self.input_size - 8  # 9x9, stride 1
        return (conv1 - 9) // 2 + 1  # 9x9, stride 2: 6 for 28x28, 12 for 40x40

    @property
    def primary_capsules(self) -> int:
        return self.primary_types * self.primary_grid ** 2  # 1152 for 28x28

    def to_dict(self) -> dict:
        out = asdict(self)
        out["decoder_hidden"] = list(self.decoder_hidden)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "CapsNetConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        assert not unknown, f"unknown CapsNet config keys: {sorted(unknown)}"
        return cls(**values)


@dataclass
class CapsNetOutput:
    lengths: torch.Tensor  # (B, 10) digit-capsule lengths, the class probabilities
    poses: torch.Tensor  # (B, 10, 16) digit-capsule vectors
    reconstruction: torch.Tensor | None  # (B, 1, H, W) in [0, 1]
    masked_classes: torch.Tensor  # (B,) the class each reconstruction was decoded from
    coupling: torch.Tensor | None = None  # (B, routings, 1152, 10), with trace=True
    logits: torch.Tensor | None = None  # (B, routings, 1152, 10), with trace=True

    @property
    def predictions(self) -> torch.Tensor:
        return self.lengths.argmax(dim=1)


class CapsNet(nn.Module):
    def __init__(self, config: CapsNetConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = CapsNetConfig(**overrides)
        else:
            assert not overrides, "pass either a config or keyword overrides, not both"
        self.config = config
        c = config
        self.conv1 = nn.Conv2d(c.in_channels, c.conv_channels, kernel_size=9)
        self.primary = PrimaryCaps(in_channels=c.conv_channels, types=c.primary_types, dim=c.primary_dim)
        self.digits = DigitCaps(in_capsules=c.primary_capsules, in_dim=c.primary_dim, out_capsules=c.num_classes,
                                out_dim=c.digit_dim, routings=c.routings, detach_inner=c.detach_inner_routing)
        pixels = c.in_channels * c.input_size ** 2
        hidden1, hidden2 = c.decoder_hidden
        self.decoder = nn.Sequential(
            nn.Linear(c.num_classes * c.digit_dim, hidden1), nn.ReLU(inplace=True),
            nn.Linear(hidden1, hidden2), nn.ReLU(inplace=True),
            nn.Linear(hidden2, pixels), nn.Sigmoid(),
        )

    @property
    def routings(self) -> int:
        return self.config.routings

    def encode(self, images: torch.Tensor, *, trace: bool = False):
        c = self.config
        assert images.dim() == 4 and images.shape[1:] == (c.in_channels, c.input_size, c.input_size), (
            f"expected images of shape (B, {c.in_channels}, {c.input_size}, {c.input_size}), got {tuple(images.shape)}")
        features = F.relu(self.conv1(images))  # (B, 256, 20, 20)
        primary = self.primary(features)  # (B, 1152, 8)
        return self.digits(primary, trace=trace)  # (B, 10, 16), trace

    def decode(self, poses: torch.Tensor, classes: torch.Tensor | int) -> torch.Tensor:
        """Reconstruct images from digit-capsule vectors, every capsule but `classes` masked to zero.

        poses: (B, 10, 16), possibly edited by hand; classes: (B,) or one int for all.
        Returns (B, C, H, W) in [0, 1]. Runs only the decoder: this is what the dimension sliders call.
        """
        c = self.config
        batch = poses.shape[0]
        if not torch.is_tensor(classes) or classes.dim() == 0:
            classes = torch.full((batch,), int(classes), device=poses.device)
        mask = F.one_hot(classes.long(), c.num_classes).to(poses.dtype)  # (B, 10)
        masked = (poses * mask.unsqueeze(-1)).flatten(1)  # (B, 160)
        pixels = self.decoder(masked)
        return pixels.view(batch, c.in_channels, c.input_size, c.input_size)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, *, trace: bool = False,
                reconstruct: bool = True) -> CapsNetOutput:
        """images: float (B, C, H, W) in [0, 1]. The decoder is masked with `labels` when given
        (training), else with the longest capsule (test time), as in the paper."""
        poses, routing_trace = self.encode(images, trace=trace)
        lengths = torch.sqrt((poses * poses).sum(-1) + 1e-12)  # (B, 10)
        masked_classes = labels if labels is not None else lengths.argmax(dim=1)
        reconstruction = self.decode(poses, masked_classes) if reconstruct else None
        return CapsNetOutput(
            lengths=lengths, poses=poses, reconstruction=reconstruction, masked_classes=masked_classes,
            coupling=routing_trace.coupling if routing_trace else None,
            logits=routing_trace.logits if routing_trace else None,
        )

    def parameter_count(self, *, decoder: bool = True) -> int:
        return sum(p.numel() for name, p in self.named_parameters() if decoder or not name.startswith("decoder."))
