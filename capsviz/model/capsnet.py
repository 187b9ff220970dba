"""CapsNet, the reference model: Sabour, Frosst & Hinton, "Dynamic Routing Between Capsules" (NIPS 2017).

Read it beside the paper, top to bottom:

    squash                  section 2, eq. 1: a capsule's output vector, its length below 1
    predictions             section 2, eq. 2: u_hat_{j|i} = W_ij u_i
    dynamic_routing         section 2, eq. 2-3 and Procedure 1: routing by agreement
    PrimaryCaps             section 4: 32 types of convolutional 8D capsules, 9x9 stride 2
    DigitCaps               section 4: one 16D capsule per class, routed from every primary capsule
    Decoder                 section 4.1, figure 2: FC 512-1024-784 from the masked digit capsules
    CapsNetConfig, CapsNetOutput, CapsNet
                            section 4, figure 1: Conv1 -> PrimaryCaps -> DigitCaps -> decoder

The margin and reconstruction losses (section 3, eq. 4, and section 4.1) are in capsviz.model.losses.

Shapes are written for a 28x28 MNIST batch of B images: Conv1 gives 256 x 20 x 20, PrimaryCaps
1152 = 32 x 6 x 6 capsules of 8D, DigitCaps 10 capsules of 16D.

Where the authors' published code differs from the paper's text, CapsNetConfig has an option for it
(primary_scale, primary_bias, digit_bias, init), each defaulting to the paper; capsviz.training.recipes switches
them on by name ("authors").

This is plain tensor code that autograd differentiates, and it imports no speed code. The fast path
(capsviz.model.fast) swaps faster PrimaryCaps and DigitCaps in (same parameters, same function), and swaps
these back when it is turned off.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# -----------------------------------------------------------------------------
# Squash (eq. 1) and the prediction vectors (eq. 2)

# Added under the square root of |s|^2: keeps the gradient of squash finite at s = 0
# (a bare sqrt has an infinite derivative there, a known source of NaN losses in public ports).
SQUASH_EPS = 1e-8


def squash(s: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """v = |s|^2 / (1 + |s|^2) * s / |s|  (paper, eq. 1), written as s * |s| / (1 + |s|^2).

    The length of v is below 1 and its direction is that of s. At s = 0 the output is 0 and the
    gradient is finite thanks to SQUASH_EPS.
    """
    squared_norm = (s * s).sum(dim=dim, keepdim=True)
    norm = torch.sqrt(squared_norm + SQUASH_EPS)
    return s * (norm / (1.0 + squared_norm))


def predictions(u: torch.Tensor, weight: torch.Tensor, out_capsules: int) -> torch.Tensor:
    """u_hat_{j|i} = W_ij u_i  (paper, eq. 2).  u: (B, n_in, D_in), weight: (n_in, D_in, n_out * D_out)
    -> u_hat: (B, n_out, n_in, D_out)."""
    n_in, batch = weight.shape[0], u.shape[0]
    u_hat = torch.bmm(u.transpose(0, 1), weight)  # (1152, B, 8) @ (1152, 8, 160) -> (1152, B, 160)
    u_hat = u_hat.view(n_in, batch, out_capsules, -1)
    return u_hat.permute(1, 2, 0, 3).contiguous()  # (B, 10, 1152, 16)

# -----------------------------------------------------------------------------
# Routing by agreement (Procedure 1)

# The routing iterations a CapsNet may take (CapsNetConfig.routings; the paper tries 1 to 5 and recommends 3).
MIN_ROUTINGS, MAX_ROUTINGS = 1, 10


@dataclass
class RoutingTrace:
    """What dynamic routing did, one entry per iteration, detached. The dashboard and the routing probe read
    it (CapsNet.routing_trace), so that what they show is what the model's own modules compute.

    coupling:  (B, T, n_in, n_out) coupling coefficients c_ij used in iteration t
    logits:    (B, T, n_in, n_out) routing logits b_ij after iteration t's update
    agreement: (B, T, n_in, n_out) u_hat_{j|i} . v_j of iteration t: what it added to b_ij
    s:         (B, T, n_out, D) the weighted sums s_j of iteration t
    v:         (B, T, n_out, D) the digit capsules v_j = squash(s_j) after iteration t
    u_hat:     (B, n_out, n_in, D) the predictions u_hat_{j|i}
    primary:   (B, n_in, D_in) the primary capsules u_i (CapsNet.encode fills it in; None from routing alone)
    """

    coupling: torch.Tensor
    logits: torch.Tensor
    agreement: torch.Tensor | None = None
    s: torch.Tensor | None = None
    v: torch.Tensor | None = None
    u_hat: torch.Tensor | None = None
    primary: torch.Tensor | None = None


class RoutingStep(NamedTuple):
    coupling: torch.Tensor  # (B, n_out, n_in) c used in this iteration
    s: torch.Tensor  # (B, n_out, D) weighted sum of the predictions
    v: torch.Tensor  # (B, n_out, D) squash(s)
    logits: torch.Tensor | None  # (B, n_out, n_in) after this iteration's update; None when not updated


def routing_iterations(u_hat: torch.Tensor, *, iterations: int, detach_inner: bool = False,
                       update_last: bool = False, bias: torch.Tensor | None = None) -> Iterator[RoutingStep]:
    """Procedure 1, one step per iteration. u_hat: (B, n_out, n_in, D). The last iteration's logit update
    only matters to a trace, so it is made only with `update_last`. bias: (n_out, D) added to every s_j
    before squash (the authors' code, not the paper), or None."""
    assert iterations >= 1, f"routing needs at least one iteration, got {iterations}"
    batch, n_out, n_in, _ = u_hat.shape
    logits = u_hat.new_zeros(batch, n_out, n_in)  # (B, 10, 1152): b_ij = 0, "in all our experiments"
    u_hat_inner = u_hat.detach() if detach_inner else u_hat
    for iteration in range(iterations):
        last = iteration == iterations - 1
        u = u_hat if last else u_hat_inner
        coupling = F.softmax(logits, dim=1)  # eq. 3, over output capsules j: sums to 1 for each i
        s = (coupling.unsqueeze(2) @ u).squeeze(2)  # eq. 2: (B, 10, 1, 1152) @ (B, 10, 1152, 16) -> (B, 10, 16)
        if bias is not None:  # layers._update_routing: preactivate = sum_i c_ij u_hat_j|i + biases
            # detached like u_hat in the inner iterations: then only the last iteration's s carries gradient
            s = s + (bias if last or not detach_inner else bias.detach())
        v = squash(s)  # eq. 1
        updated = None
        if not last or update_last:
            # the agreement a_ij = v_j . u_hat_{j|i}, added to the logits. Written v^T u_hat^T (a row times a
            # transposed matrix) rather than u_hat v: the same numbers, but CPU BLAS streams it about 3x
            # faster (matrix-vector products with rows of 16 are a slow case), and this is the one read of
            # u_hat that routing does twice per pass
            agreement = (v.unsqueeze(2) @ u.mT).squeeze(2)  # (B, 10, 1, 16) @ (B, 10, 16, 1152) -> (B, 10, 1152)
            logits = updated = logits + agreement
        yield RoutingStep(coupling, s, v, updated)


def dynamic_routing(
    u_hat: torch.Tensor, *, iterations: int, detach_inner: bool = False, trace: bool = False,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, RoutingTrace | None]:
    """Routing by agreement (paper, Procedure 1).

    u_hat: (B, n_out, n_in, D) prediction vectors u_hat_{j|i}. Laid out with the output capsule
    before the input capsule so that both the weighted sum over i and the agreement are batched
    matrix products, with no (B, n_in, n_out, D) temporaries.
    Returns v: (B, n_out, D), and the trace when asked for.

    The logits b start at zero for every example on every call (not a parameter, not shared across
    the batch) and the softmax runs over the OUTPUT capsules j, as the paper specifies.
    detach_inner: when True, the iterations before the last see u_hat without gradient (what
    several PyTorch ports do); the paper is silent and the official code lets gradients through.
    bias: (n_out, D) added to s_j in every iteration (the authors' code; see routing_iterations), or None.
    """
    steps = list(routing_iterations(u_hat, iterations=iterations, detach_inner=detach_inner, update_last=trace,
                                    bias=bias))
    return routed(steps, u_hat, trace=trace)


def routed(steps: list[RoutingStep], u_hat: torch.Tensor, *, trace: bool) -> tuple[torch.Tensor, RoutingTrace | None]:
    """v: (B, n_out, D) of the last of routing's `steps`, and their trace when asked for (the last step must
    then carry its logit update: routing_iterations(update_last=True))."""
    v = steps[-1].v
    if not trace:
        return v, None
    # what each iteration added to the logits: the agreement of Procedure 1 (b_0 = 0)
    before = [torch.zeros_like(steps[0].logits)] + [step.logits for step in steps[:-1]]
    agreement = [step.logits - previous for step, previous in zip(steps, before)]  # each (B, 10, 1152)
    # stored as (B, iterations, n_in, n_out): input capsules first, as in the paper's c_ij
    to_ij = lambda ts: torch.stack(ts, dim=1).transpose(2, 3).detach()  # noqa: E731
    per_iteration = lambda ts: torch.stack(ts, dim=1).detach()  # noqa: E731  (B, T, 10, 16)
    return v, RoutingTrace(coupling=to_ij([step.coupling for step in steps]),
                           logits=to_ij([step.logits for step in steps]), agreement=to_ij(agreement),
                           s=per_iteration([step.s for step in steps]), v=per_iteration([step.v for step in steps]),
                           u_hat=u_hat.detach())

# -----------------------------------------------------------------------------
# The capsule layers (section 4)


class PrimaryCaps(nn.Module):
    """A 9x9 stride-2 convolution whose channels are grouped into `types` capsules of `dim` each
    (section 4: "32 channels of convolutional 8D capsules").

    The authors' code (recipe part "primary") makes this layer a capsule layer routed from one input:
    its convolution has no bias, the routing's softmax over the 32 output types of zero logits scales
    every vote by `scale` = 1/32, and a bias (types, dim), shared by every grid position, is added before
    squash: u = squash(scale * conv(x) + bias). `bias` None is the paper's: the convolution's own bias.
    """

    def __init__(self, *, in_channels: int, types: int, dim: int, kernel_size: int = 9, stride: int = 2,
                 scale: float = 1.0, bias: float | None = None):
        super().__init__()
        self.types, self.dim, self.scale = types, dim, scale
        self.conv = nn.Conv2d(in_channels, types * dim, kernel_size, stride=stride, bias=bias is None)
        # layers.conv_slim_capsule: biases of shape [output_dim, output_atoms], initialised to 0.1
        self.bias = None if bias is None else nn.Parameter(torch.full((types, dim), float(bias)))

    def convolve(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 256, 20, 20) -> (B, 32*8, 6, 6). A method of its own because it is the one step the fast
        path computes differently (through the DFT, from the same weights)."""
        return self.conv(features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.convolve(features)  # (B, 32*8, 6, 6)
        batch, _, height, width = out.shape
        # channel c belongs to capsule type c // dim; capsules ordered (type, row, column)
        out = out.reshape(batch, self.types, self.dim, height * width)  # (B, 32, 8, 36)
        if self.scale != 1.0:
            out = out.float() * self.scale
        if self.bias is not None:
            out = out.float() + self.bias.unsqueeze(-1)  # (32, 8, 1): the same for every position
        out = out.transpose(2, 3).reshape(batch, self.types * height * width, self.dim)  # (B, 1152, 8)
        return squash(out.float())


class DigitCaps(nn.Module):
    """One 8x16 transform W_ij per (primary capsule i, digit capsule j), then dynamic routing
    (section 4: "each of these capsules receives input from all the capsules in the layer below")."""

    def __init__(self, *, in_capsules: int, in_dim: int, out_capsules: int, out_dim: int,
                 routings: int, detach_inner: bool = False, bias: float | None = None):
        super().__init__()
        assert MIN_ROUTINGS <= routings <= MAX_ROUTINGS, f"routings must be in 1..10, got {routings}"
        self.out_capsules, self.routings, self.detach_inner = out_capsules, routings, detach_inner
        # stored as (n_in, D_in, n_out * D_out) so u_hat for all classes is one batched matmul per i
        self.weight = nn.Parameter(0.01 * torch.randn(in_capsules, in_dim, out_capsules * out_dim))
        # the authors' code (recipe part "digit-bias", layers.capsule): a bias added to every s_j; None: the paper
        self.bias = None if bias is None else nn.Parameter(torch.full((out_capsules, out_dim), float(bias)))

    def predictions(self, u: torch.Tensor) -> torch.Tensor:
        """u: (B, n_in, D_in) -> u_hat: (B, n_out, n_in, D_out)."""
        return predictions(u, self.weight, self.out_capsules)

    def forward(self, u: torch.Tensor, *, trace: bool = False,
                iterations: int | None = None) -> tuple[torch.Tensor, RoutingTrace | None]:
        """u: (B, 1152, 8) -> v: (B, 10, 16), and the routing trace when asked for. `iterations` (default: the
        layer's routings) lets a trace look past the model's own iterations."""
        # Routing runs in float32 even under bf16 autocast: it is cheap next to the convolutions,
        # and the agreement sums over 1152 capsules lose too much in 8 bits of mantissa.
        with torch.autocast(device_type=u.device.type, enabled=False):
            u_hat = self.predictions(u.float())  # (B, 10, 1152, 16)
            return dynamic_routing(u_hat, iterations=iterations or self.routings, detach_inner=self.detach_inner,
                                   trace=trace, bias=self.bias)


class Decoder(nn.Sequential):
    """Three fully connected layers from the masked digit capsules to the image's pixels (section 4.1,
    figure 2: ReLU, ReLU, sigmoid). A Sequential, so that its weights are decoder.0, decoder.2, decoder.4."""

    def __init__(self, *, in_features: int, hidden: tuple[int, int], pixels: int):
        hidden1, hidden2 = hidden
        super().__init__(
            nn.Linear(in_features, hidden1), nn.ReLU(inplace=True),
            nn.Linear(hidden1, hidden2), nn.ReLU(inplace=True),
            nn.Linear(hidden2, pixels), nn.Sigmoid(),
        )

# -----------------------------------------------------------------------------
# The network (section 4, figure 1)


INITS = ("pytorch", "truncated-normal")


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
    # Not decided by the paper: see dynamic_routing.
    detach_inner_routing: bool = False
    # The authors' code where it differs from the paper (capsviz.training.recipes); the defaults are the paper's.
    primary_scale: float = 1.0  # PrimaryCaps votes x this (the authors': 1/32, see PrimaryCaps)
    primary_bias: float | None = None  # None: a conv bias; a number: a capsule bias (types, dim) starting there
    digit_bias: float | None = None  # None: none; a number: DigitCaps' bias on s_j (n_out, D) starting there
    init: str = "pytorch"  # or "truncated-normal", the authors' (see CapsNet.truncated_normal_init)

    def __post_init__(self):  # model.pt's model_config arrives here: checked in every mode, asserts are not
        if not MIN_ROUTINGS <= self.routings <= MAX_ROUTINGS:
            raise ValueError(f"routings must be in {MIN_ROUTINGS}..{MAX_ROUTINGS}, got {self.routings}")
        if self.input_size < 25:
            raise ValueError(f"input_size must be at least 25 for two 9x9 convolutions, got {self.input_size}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        self.decoder_hidden = tuple(self.decoder_hidden)
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")

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
        if unknown:
            raise ValueError(f"unknown CapsNet config keys: {sorted(unknown)}")
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
        self.conv1 = nn.Conv2d(c.in_channels, c.conv_channels, kernel_size=9)  # "256, 9x9 kernels, stride 1"
        self.primary = PrimaryCaps(in_channels=c.conv_channels, types=c.primary_types, dim=c.primary_dim,
                                   scale=c.primary_scale, bias=c.primary_bias)
        self.digits = DigitCaps(in_capsules=c.primary_capsules, in_dim=c.primary_dim, out_capsules=c.num_classes,
                                out_dim=c.digit_dim, routings=c.routings, detach_inner=c.detach_inner_routing,
                                bias=c.digit_bias)
        self.decoder = Decoder(in_features=c.num_classes * c.digit_dim, hidden=c.decoder_hidden,
                               pixels=c.in_channels * c.input_size ** 2)
        if c.init == "truncated-normal":
            self.truncated_normal_init()

    # The authors' initial weights (capsule_model.py, layers.py, variables.py): std of each weight.
    TRUNCATED_NORMAL_STD = {"conv1.weight": 5e-2, "primary.conv.weight": 0.1, "digits.weight": 0.1,
                            "decoder.0.weight": 0.1, "decoder.2.weight": 0.1, "decoder.4.weight": 0.1}
    AUTHORS_BIAS_INIT = 0.1

    @torch.no_grad()
    def truncated_normal_init(self) -> None:
        """Weights drawn as TensorFlow's truncated_normal draws them, a normal redrawn beyond 2 std, with the
        authors' std; the conv and decoder biases set to 0.1. The capsule biases (primary_bias, digit_bias)
        keep the values their options give."""
        params = dict(self.named_parameters())
        for name, std in self.TRUNCATED_NORMAL_STD.items():
            nn.init.trunc_normal_(params[name], std=std, a=-2 * std, b=2 * std)
        for name in ("conv1.bias", "primary.conv.bias", "decoder.0.bias", "decoder.2.bias", "decoder.4.bias"):
            if name in params:  # primary.conv.bias is absent with a capsule bias
                params[name].fill_(self.AUTHORS_BIAS_INIT)

    @property
    def routings(self) -> int:
        return self.config.routings

    def encode(self, images: torch.Tensor, *, trace: bool = False,
               iterations: int | None = None) -> tuple[torch.Tensor, RoutingTrace | None]:
        c = self.config
        assert images.dim() == 4 and images.shape[1:] == (c.in_channels, c.input_size, c.input_size), (
            f"expected images of shape (B, {c.in_channels}, {c.input_size}, {c.input_size}), got {tuple(images.shape)}")
        features = F.relu(self.conv1(images))  # (B, 256, 20, 20)
        primary = self.primary(features)  # (B, 1152, 8)
        poses, routing = self.digits(primary, trace=trace, iterations=iterations)  # (B, 10, 16), trace
        if routing is not None:
            routing.primary = primary.detach()
        return poses, routing

    @torch.no_grad()
    def routing_trace(self, images: torch.Tensor, *, iterations: int | None = None) -> RoutingTrace:
        """The whole of routing for images (B, C, H, W) in [0, 1], through the model's own modules (fast or
        reference, with whatever options its config gives them): the primary capsules u_i, the predictions
        u_hat, and each iteration's coupling, logits, agreement, s_j and v_j. `iterations` (default: the
        model's routings) may go past the model's own, to show where routing would go next."""
        _, routing = self.encode(images, trace=True, iterations=iterations)
        return routing

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
        (training), else with the longest capsule (test time), as in the paper (section 4.1)."""
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
