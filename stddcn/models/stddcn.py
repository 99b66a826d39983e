"""STDDCN (Hao & Zhang, Pattern Recognition 2019): two pathways, densely connected, distilled.

An appearance pathway on RGB frames and a motion pathway on flow stacks, each a 2D ResNet,
run stage by stage side by side; at the stages of ``connect_blocks`` a receiving pathway's
stage also reads the other pathway's earlier blocks (`stddcn.models.cross`). Three heads
score the pooled features: each pathway's own (the students, "appearance" and "motion") and
one on both (the teacher, "fusion", which is the prediction): with ``fusion="pooled"`` (the
paper's) a linear layer on the pooled features concatenated, with ``fusion="conv"`` on the
pooled output of a conv fusing both pathways' last feature maps place by place
(`stddcn.models.heads.ConvFusion`). The distillation between them is the training loss's
business (``stddcn.losses``); the network is trained end to end, so gradients cross between
the pathways through the connections.

    rgb  (B, V, 3, H, W)  -> stem, layer1..4 -> pool -> appearance head -.
                                  ^  |  cross                          +-> fusion head
    flow (B, V, 2L, H, W) -> stem, layer1..4 -> pool -> motion head ----'

View v of ``rgb`` and of ``flow`` is the same segment; every head's logits are averaged over V.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from stddcn.config import TEACHER_FUSIONS, ModelConfig
from stddcn.errors import ModelError
from stddcn.models.base import ActionModel, Output
from stddcn.models.cross import RECEIVERS, STAGES, Transition, check_connections, sources
from stddcn.models.heads import ClassifierHead, ConvFusion, average_views
from stddcn.models.pretrained import load_pretrained_2d
from stddcn.models.registry import create_backbone, default_arch, register_model
from stddcn.models.tuning import BATCH_NORMS, apply_partial_bn, to_memory_format

PATHWAYS = {"appearance": "rgb", "motion": "flow"}
"""Each pathway and the input it reads."""

OTHER = {"appearance": "motion", "motion": "appearance"}

RESNET_PARTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                "avgpool")
"""What a backbone must have to be run stage by stage (torchvision's ResNet layout)."""


def block_widths(backbone: nn.Module) -> list[int]:
    """Output channels of the stem and of stages 1-4 of a ResNet-layout backbone.

    A residual stage ends in a BatchNorm as wide as its output (the residual sum needs it).

    Raises:
        ModelError: the backbone lacks the ResNet stem, stages or pool.
    """
    missing = [part for part in RESNET_PARTS if not hasattr(backbone, part)]
    if missing:
        arch = getattr(backbone, "arch", type(backbone).__name__)
        raise ModelError(f"stddcn runs a ResNet-layout 2D backbone stage by stage; {arch} has "
                         f"no {', '.join(missing)}")
    stages = [getattr(backbone, f"layer{k}") for k in STAGES]
    return [backbone.bn1.num_features] + [
        [m for m in stage.modules() if isinstance(m, BATCH_NORMS)][-1].num_features
        for stage in stages]


class STDDCN(ActionModel):
    """Appearance and motion pathways with dense cross connections, two students, one teacher.

    Attributes:
        backbones: ``nn.ModuleDict`` of the pathways' ResNets ("appearance", "motion").
        transitions: per receiving pathway, an ``nn.ModuleDict`` of ``Transition`` by stage
            ("layer2", ...); empty for ``connections="none"``.
        heads: ``ClassifierHead`` per head: "appearance", "motion" (on each pathway's pooled
            features) and "fusion" (on both concatenated, or on ``fuse``'s output).
        fuse: with ``fusion="conv"``, the ``ConvFusion`` of the last feature maps; else None.
        in_channels: channels each input must have ({"rgb": 3, "flow": 2L}).
        partial_bn: TSN's partial BN in both backbones, applied by ``train()``.
        channels_last: feed the backbones channels-last inputs (see ``use_channels_last``).
    """

    channels_last: bool = False

    def __init__(self, appearance: nn.Module, motion: nn.Module, num_classes: int,
                 flow_length: int, dropout: float = 0.0, connections: str = "both",
                 connect_blocks: Sequence[int] = (2, 3, 4), partial_bn: bool = False,
                 cross_norm: bool = False, fusion: str = "pooled") -> None:
        super().__init__()
        check_connections(connections, connect_blocks)
        if fusion not in TEACHER_FUSIONS:
            raise ModelError(f"fusion must be one of {', '.join(TEACHER_FUSIONS)}, got {fusion!r}")
        self.modalities = tuple(PATHWAYS.values())
        self.layout = "segments"
        self.flow_length = flow_length
        self.connections = connections
        self.connect_blocks = tuple(sorted(connect_blocks)) if connections != "none" else ()
        self.backbones = nn.ModuleDict({"appearance": appearance, "motion": motion})
        widths = {name: block_widths(backbone) for name, backbone in self.backbones.items()}
        if widths["appearance"] != widths["motion"]:
            raise ModelError(f"the pathways' backbones must have the same widths, got "
                             f"appearance {widths['appearance']}, motion {widths['motion']}")
        self.in_channels = {modality: self.backbones[name].conv1.in_channels
                            for name, modality in PATHWAYS.items()}
        self.transitions = nn.ModuleDict({
            name: nn.ModuleDict({
                f"layer{k}": Transition(widths[name][k - 1],
                                        [widths[OTHER[name]][j] for j in sources(k)],
                                        cross_norm)
                for k in self.connect_blocks})
            for name in RECEIVERS[connections]})
        features = widths["appearance"][-1]
        self.fusion = fusion
        self.fuse = ConvFusion(2 * features, features) if fusion == "conv" else None
        self.heads = nn.ModuleDict({
            "appearance": ClassifierHead(features, num_classes, dropout),
            "motion": ClassifierHead(features, num_classes, dropout),
            "fusion": ClassifierHead(features if self.fuse is not None else 2 * features,
                                     num_classes, dropout)})
        self.partial_bn = partial_bn
        self.train()

    def train(self, mode: bool = True) -> STDDCN:
        """Set training mode; with ``partial_bn``, all BN layers but each backbone's first
        stay frozen."""
        super().train(mode)
        for backbone in self.backbones.values():
            apply_partial_bn(backbone, self.partial_bn)
        return self

    def _check_channels(self, inputs: Mapping[str, torch.Tensor]) -> None:
        for modality, expected in self.in_channels.items():
            x = inputs[modality]
            if x.shape[2] != expected:
                what = (f"flow channels (2 x flow_length {self.flow_length})"
                        if modality == "flow" else f"{modality} channels")
                raise ModelError(f"input {modality!r}: expected {expected} {what}, got "
                                 f"{x.shape[2]} in {tuple(x.shape)}")
        rgb, flow = inputs["rgb"], inputs["flow"]
        if rgb.shape[:2] != flow.shape[:2]:
            raise ModelError(f"inputs 'rgb' and 'flow' must have the same (B, V): view v of "
                             f"each is the same segment; got {tuple(rgb.shape[:2])} and "
                             f"{tuple(flow.shape[:2])}")

    def _stage_input(self, name: str, stage: int,
                     blocks: Mapping[str, list[torch.Tensor]]) -> torch.Tensor:
        """The input of ``stage`` in pathway ``name``: its previous block's output, mixed
        with the other pathway's earlier blocks where this stage is connected."""
        own = blocks[name][stage - 1]
        transitions = self.transitions[name] if name in self.transitions else {}
        if f"layer{stage}" not in transitions:
            return own
        other = blocks[OTHER[name]]
        return transitions[f"layer{stage}"](own, [other[j] for j in sources(stage)])

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> Output:
        """``rgb`` (B, V, 3, H, W), ``flow`` (B, V, 2L, H, W) -> Output: (B, K) fusion
        logits, heads "appearance", "motion", "fusion"."""
        self.check_inputs(inputs)
        self._check_channels(inputs)
        batch, views = inputs["rgb"].shape[:2]
        # blocks[name][j]: pathway ``name``'s output of block j (0 the stem, 1-4 its stages),
        # kept because later stages of the other pathway read them
        blocks: dict[str, list[torch.Tensor]] = {}
        for name, modality in PATHWAYS.items():
            net = self.backbones[name]
            x = to_memory_format(inputs[modality].flatten(0, 1), self.channels_last)
            blocks[name] = [net.maxpool(net.relu(net.bn1(net.conv1(x))))]
        for stage in STAGES:  # in lockstep: stage k of each pathway reads blocks < k only
            for name, net in self.backbones.items():
                x = self._stage_input(name, stage, blocks)
                blocks[name].append(getattr(net, f"layer{stage}")(x))
        pooled = {name: torch.flatten(net.avgpool(blocks[name][-1]), 1)
                  for name, net in self.backbones.items()}
        pooled["fusion"] = (
            self.fuse(blocks["appearance"][-1], blocks["motion"][-1]) if self.fuse is not None
            else torch.cat([pooled["appearance"], pooled["motion"]], dim=1))
        heads = {name: average_views(head(pooled[name]), batch, views)
                 for name, head in self.heads.items()}
        return Output(logits=heads["fusion"], heads=heads)


@register_model("stddcn")
def stddcn(config: ModelConfig) -> STDDCN:
    """STDDCN: an RGB and a flow-stack pathway of one 2D arch (resnet50 by default), densely
    connected per ``connections`` / ``connect_blocks``; ``pretrained`` loads into both (flow:
    cross-modality conv1). ``connections="none"``: two streams joined by the fusion head only."""
    arch = default_arch(config, "2d")
    backbones = {}
    for name, channels in (("appearance", 3), ("motion", 2 * config.flow_length)):
        backbone = create_backbone(arch, channels, config.width_mult, kind="2d")
        if config.pretrained is not None:
            load_pretrained_2d(backbone, config.pretrained, channels)
        backbones[name] = backbone
    return STDDCN(backbones["appearance"], backbones["motion"], config.num_classes,
                  config.flow_length, config.dropout, config.connections,
                  config.connect_blocks, config.partial_bn, config.cross_norm, config.fusion)
