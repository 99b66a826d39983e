"""Single-stream models: TSN's RGB and flow streams (2D) and their 3D counterparts.

A stream scores every view of a sample with one backbone and a linear head, then averages
the views' logits (segmental consensus):

    (B, V, C, H, W) or (B, V, C, T, H, W) -> (B*V, ...) -> backbone -> head -> (B, V, K) -> (B, K)
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from stddcn.errors import ModelError
from stddcn.models.base import ActionModel, Output
from stddcn.config import ModelConfig
from stddcn.models.heads import ClassifierHead, average_views
from stddcn.models.pretrained import inflate_2d_weights, load_pretrained_2d
from stddcn.models.registry import create_backbone, default_arch, register_model
from stddcn.models.tuning import apply_partial_bn, to_memory_format


class StreamModel(ActionModel):
    """One modality through one backbone; views scored independently and averaged.

    Attributes:
        backbone: maps (N, in_channels, [T,] H, W) to (N, feature_dim) features.
        head: ``ClassifierHead`` on those features.
        in_channels: channels C the input must have.
        partial_bn: TSN's partial BN, applied by ``train()`` (call it again after changing).
        channels_last: feed the backbone channels-last inputs (see ``use_channels_last``).
    """

    channels_last: bool = False

    def __init__(self, modality: str, layout: str, backbone: nn.Module, num_classes: int,
                 dropout: float = 0.0, flow_length: int | None = None,
                 partial_bn: bool = False) -> None:
        super().__init__()
        self.modalities = (modality,)
        self.layout = layout
        self.flow_length = flow_length
        self.backbone = backbone
        self.head = ClassifierHead(backbone.feature_dim, num_classes, dropout)
        first = next(m for m in backbone.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)))
        self.in_channels = first.in_channels
        self.partial_bn = partial_bn
        self.train()

    def train(self, mode: bool = True) -> StreamModel:
        """Set training mode; with ``partial_bn``, all BN layers but the first stay frozen."""
        super().train(mode)
        apply_partial_bn(self.backbone, self.partial_bn)
        return self

    def _channels_message(self, got: int) -> str:
        name = self.modalities[0]
        if self.flow_length is not None:
            what = f"flow channels (2 x flow_length {self.flow_length})"
        elif name == "flow":
            what = "flow channels (x, y)"
        else:
            what = f"{name} channels"
        return f"expected {self.in_channels} {what}, got {got}"

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> Output:
        """``inputs[modality]`` (B, V, C, [T,] H, W) -> Output with (B, K) logits."""
        self.check_inputs(inputs)
        x = inputs[self.modalities[0]]
        if x.shape[2] != self.in_channels:
            raise ModelError(f"input {self.modalities[0]!r}: {self._channels_message(x.shape[2])}"
                             f" in {tuple(x.shape)}")
        batch, views = x.shape[:2]
        x = to_memory_format(x.flatten(0, 1), self.channels_last)
        logits = self.head(self.backbone(x))
        return Output(logits=average_views(logits, batch, views))


def build_stream(config: ModelConfig, modality: str, layout: str) -> StreamModel:
    """A stream of ``modality`` ("rgb"/"flow") and ``layout`` from the shared model settings.

    2D flow stacks ``flow_length`` (x, y) pairs: 2L channels; 3D flow is (x, y) per frame.
    ``config.pretrained`` is loaded (2D) or inflated (3D), with cross-modality init for flow.
    """
    kind = "2d" if layout == "segments" else "3d"
    flow_length = config.flow_length if modality == "flow" and kind == "2d" else None
    in_channels = 3 if modality == "rgb" else 2 * (flow_length or 1)
    backbone = create_backbone(default_arch(config, kind), in_channels, config.width_mult,
                               kind=kind)
    if config.pretrained is not None:
        load = load_pretrained_2d if kind == "2d" else inflate_2d_weights
        load(backbone, config.pretrained, in_channels)
    return StreamModel(modality, layout, backbone, config.num_classes, config.dropout,
                       flow_length=flow_length, partial_bn=config.partial_bn)


@register_model("rgb")
def rgb(config: ModelConfig) -> StreamModel:
    """TSN's RGB stream: frames (B, V, 3, H, W), V segments, 2D backbone."""
    return build_stream(config, "rgb", "segments")


@register_model("flow")
def flow(config: ModelConfig) -> StreamModel:
    """TSN's flow stream: stacks of L flows (B, V, 2L, H, W), 2D backbone."""
    return build_stream(config, "flow", "segments")


@register_model("rgb3d")
def rgb3d(config: ModelConfig) -> StreamModel:
    """RGB clips (B, V, 3, T, H, W), V clips, 3D backbone."""
    return build_stream(config, "rgb", "clips")


@register_model("flow3d")
def flow3d(config: ModelConfig) -> StreamModel:
    """Flow clips (B, V, 2, T, H, W), one (x, y) flow per time step, 3D backbone."""
    return build_stream(config, "flow", "clips")


@register_model("d3d")
def d3d(config: ModelConfig) -> StreamModel:
    """D3D's student: a 3D CNN on RGB clips (as rgb3d); the distillation from a frozen flow3d
    teacher is in its training (stddcn.losses.TeacherDistillation), so tests need RGB only."""
    return build_stream(config, "rgb", "clips")
