"""What every model takes and returns: named input tensors with a views axis, named logits.

A batch maps modality names to tensors with a leading batch axis B and a views axis V:

- ``layout == "segments"`` (2D, TSN): ``rgb`` (B, V, 3, H, W), ``flow`` (B, V, 2L, H, W);
  V is segments (training) or segments x crops (test).
- ``layout == "clips"`` (3D): ``rgb`` (B, V, 3, T, H, W), ``flow`` (B, V, 2, T, H, W);
  V is clips x crops (1 in training).

A model scores every view and averages the logits over V (TSN's segmental consensus, the
clip averaging of 3D test protocols), so one forward serves training and test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from stddcn.errors import ModelError

LAYOUTS = ("segments", "clips")


@dataclass
class Output:
    """A model's scores: ``logits`` (B, K) it predicts with, and each named head's (B, K) logits.

    Single-stream models have no other heads; a fusion of streams names each stream's logits
    (``heads["rgb"]``), and a distilled network its teacher and students.
    """

    logits: torch.Tensor
    heads: dict[str, torch.Tensor] = field(default_factory=dict)

    def head(self, name: str | None) -> torch.Tensor:
        """The logits of head ``name``; None is the prediction."""
        if name is None:
            return self.logits
        if name not in self.heads:
            raise ModelError(f"no head {name!r}; this model has "
                             f"{', '.join(sorted(self.heads)) or 'only its prediction'}")
        return self.heads[name]


class ActionModel(nn.Module):
    """Base of every model: says which inputs it reads and how they are laid out.

    Attributes:
        modalities: the batch keys ``forward`` reads, e.g. ("rgb",) or ("rgb", "flow").
        layout: "segments" (2D frames or flow stacks) or "clips" (3D).
        flow_length: flows per stack of a 2D flow input; None when no such input is read.
    """

    modalities: tuple[str, ...] = ()
    layout: str = "segments"
    flow_length: int | None = None

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> Output:  # pragma: no cover
        raise NotImplementedError

    def check_inputs(self, inputs: Mapping[str, torch.Tensor]) -> None:
        """Raise ModelError naming the input and the expected shape when one does not fit."""
        dims = 5 if self.layout == "segments" else 6
        for name in self.modalities:
            if name not in inputs:
                raise ModelError(f"{type(self).__name__} needs input {name!r}, got "
                                 f"{', '.join(sorted(inputs)) or 'none'}")
            tensor = inputs[name]
            if tensor.ndim != dims:
                shape = "(B, V, C, H, W)" if dims == 5 else "(B, V, C, T, H, W)"
                raise ModelError(f"input {name!r} must be {shape}, got {tuple(tensor.shape)}")
