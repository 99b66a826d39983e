"""STDDCN's block-level dense connections: the other pathway's earlier blocks feed a stage.

At a connected stage k (1-4, stage k = ``layer{k}``) of a receiving pathway, the stage reads

    transition(concat(own input of stage k, resize(other's block j) for j in sources(k)))

where the own input is the pathway's stage k-1 output (its stem's for k = 1) and
``sources(k)`` are the other pathway's stages 1..k-1 (DenseNet: every earlier block); stage 1
has no earlier stage, so it takes the other's stem. Each source is resized to the own input's
spatial size (and, with ``cross_norm``, batch-normalised: the other pathway's features can
be on any scale, whatever the receiving stage's own input is). The 1x1 transition conv maps
the concatenation back to the own channel count; it starts as the identity on the own
channels and zero on the other's, so untrained connections change nothing: the network starts
as two independent streams (with ImageNet weights, two ImageNet streams) and training learns
how much of the other pathway to mix in.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stddcn.errors import ModelError

CONNECTIONS = ("both", "appearance-to-motion", "motion-to-appearance", "none")
"""Values of ``ModelConfig.connections``: which pathways receive the other's features."""

RECEIVERS = {"both": ("appearance", "motion"), "appearance-to-motion": ("motion",),
             "motion-to-appearance": ("appearance",), "none": ()}
"""The pathways whose connected stages read the other pathway, per ``connections`` value."""

STAGES = (1, 2, 3, 4)
"""Stages a connection can enter (``ModelConfig.connect_blocks``)."""


def check_connections(connections: str, connect_blocks: Sequence[int]) -> None:
    """Raise ModelError, listing the valid values, unless the two settings fit together.

    ``connect_blocks`` is read only when something is connected: then it must name distinct
    stages of 1-4, at least one.
    """
    if connections not in CONNECTIONS:
        raise ModelError(f"connections must be one of {', '.join(CONNECTIONS)}, "
                         f"got {connections!r}")
    if connections == "none":
        return
    valid = ", ".join(map(str, STAGES))
    blocks = list(connect_blocks) if isinstance(connect_blocks, (list, tuple)) else None
    if not blocks:
        raise ModelError(f"connect_blocks must name at least one stage of {valid} (or set "
                         f"connections to none), got {connect_blocks!r}")
    bad = [b for b in blocks if isinstance(b, bool) or b not in STAGES]
    if bad:
        raise ModelError(f"connect_blocks must be stages among {valid}, got {connect_blocks!r}")
    if len(set(blocks)) != len(blocks):
        raise ModelError(f"connect_blocks names a stage twice: {connect_blocks!r}; give each "
                         f"of {valid} at most once")


def sources(stage: int) -> tuple[int, ...]:
    """Blocks of the other pathway feeding ``stage``: its stages 1..stage-1; 0 (its stem)
    for stage 1, which has no earlier stage."""
    return tuple(range(1, stage)) or (0,)


def resize_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, *size): average pooling when at least as large in both
    directions (exact 2x2, 4x4 means for ResNet's halving stages), else bilinear."""
    size = tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Transition(nn.Module):
    """Own features plus resized cross features -> 1x1 conv -> ReLU, back to the own width.

    No BatchNorm after the conv: batch statistics would break the identity at initialisation.
    With ``cross_norm`` each cross input passes a BatchNorm of its own before the conv, which
    keeps the identity (the conv's weights on the cross channels start at zero). The ReLU
    keeps the stage input non-negative, as a ResNet stage's input (a block's ReLU output)
    always is, and leaves the identity intact on those non-negative own features.

    Attributes:
        own_channels: channels of the pathway's own stage input (and of the output).
        norms: with ``cross_norm``, one ``BatchNorm2d`` per cross input; else empty.
        conv: (own_channels, own + sum(other_channels), 1, 1) weights, no bias.
    """

    def __init__(self, own_channels: int, other_channels: Sequence[int],
                 cross_norm: bool = False) -> None:
        super().__init__()
        self.own_channels = own_channels
        self.norms = nn.ModuleList(
            [nn.BatchNorm2d(channels) for channels in other_channels] if cross_norm else [])
        self.conv = nn.Conv2d(own_channels + sum(other_channels), own_channels, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Identity on the own channels, zero on the other pathway's."""
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, :self.own_channels, 0, 0] = torch.eye(self.own_channels)

    def forward(self, own: torch.Tensor, others: Sequence[torch.Tensor]) -> torch.Tensor:
        """own (N, C, h, w), others (N, C_j, h_j, w_j) -> (N, C, h, w)."""
        resized = [resize_to(other, own.shape[-2:]) for other in others]
        if self.norms:
            resized = [norm(x) for norm, x in zip(self.norms, resized)]
        return self.relu(self.conv(torch.cat([own, *resized], dim=1)))
