"""Late fusion of streams (Simonyan & Zisserman 2014; TSN): weighted average of class scores.

Each stream's logits become probabilities; their weighted mean (weights normalised to sum 1)
is the fused distribution. The fused logits are its log, so ``softmax(logits)`` gives it back
and a cross-entropy on them trains both streams through the fusion.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stddcn.errors import ModelError
from stddcn.models.base import ActionModel, Output
from stddcn.config import ModelConfig
from stddcn.models.registry import register_model
from stddcn.models.streams import build_stream


class TwoStream(ActionModel):
    """Streams scored side by side and fused late; each stream's logits are a named head.

    ``streams`` is an ``nn.ModuleDict``, so separately trained streams load into it:
    ``model.streams["rgb"].load_state_dict(rgb_model.state_dict())``.
    """

    channels_last: bool = False

    def __init__(self, streams: Mapping[str, ActionModel], weights: Sequence[float]) -> None:
        super().__init__()
        if not streams:
            raise ModelError("TwoStream needs at least one stream")
        layouts = {name: stream.layout for name, stream in streams.items()}
        if len(set(layouts.values())) != 1:
            raise ModelError(f"streams must share a layout, got "
                             f"{', '.join(f'{n}: {l}' for n, l in layouts.items())}")
        weights = tuple(float(w) for w in weights)
        if len(weights) != len(streams) or any(not w > 0 for w in weights):
            raise ModelError(f"fusion_weights must be positive, one per stream "
                             f"({', '.join(streams)}), got {weights}")
        self.streams = nn.ModuleDict(streams)
        self.layout = next(iter(layouts.values()))
        self.modalities = tuple(dict.fromkeys(m for s in streams.values() for m in s.modalities))
        lengths = [s.flow_length for s in streams.values() if s.flow_length is not None]
        self.flow_length = lengths[0] if lengths else None
        self.weights = weights
        total = sum(weights)
        self.register_buffer("log_weights", torch.tensor([w / total for w in weights]).log(),
                             persistent=False)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> Output:
        """Every stream on its inputs -> Output(log fused probabilities, heads per stream)."""
        self.check_inputs(inputs)
        heads = {name: stream(inputs).logits for name, stream in self.streams.items()}
        # log(sum_i w_i softmax(l_i)) computed in log space: no -inf when a probability
        # underflows, so the fused logits stay trainable.
        terms = [F.log_softmax(logits.float(), dim=-1) + log_w
                 for logits, log_w in zip(heads.values(), self.log_weights)]
        fused = torch.logsumexp(torch.stack(terms), dim=0)
        return Output(logits=fused, heads=heads)


@register_model("two-stream")
def two_stream(config: ModelConfig) -> TwoStream:
    """TSN two-stream: an ``rgb`` and a ``flow`` model from the same settings, fused late."""
    streams = {modality: build_stream(config, modality, "segments")
               for modality in ("rgb", "flow")}
    return TwoStream(streams, config.fusion_weights)


@register_model("two-stream3d")
def two_stream3d(config: ModelConfig) -> TwoStream:
    """``rgb3d`` and ``flow3d`` from the same settings, fused late (the baseline of D3D)."""
    streams = {modality: build_stream(config, modality, "clips")
               for modality in ("rgb", "flow")}
    return TwoStream(streams, config.fusion_weights)
