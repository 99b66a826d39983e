"""Training objectives: what a model's :class:`~stddcn.models.Output` is scored by.

A loss is called as ``loss(output, labels)`` and returns a :class:`LossValue`: the total to
minimise and its named parts for the log. Models with several heads (a fusion teacher and
stream students) get losses that combine those heads; single-stream models use
:class:`CrossEntropy` on their prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from stddcn.models import Output


@dataclass
class LossValue:
    """``total`` (a scalar tensor with gradients) and ``parts``, its named terms (detached)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class CrossEntropy:
    """Softmax cross-entropy of the prediction's logits, with optional label smoothing."""

    label_smoothing: float = 0.0

    def __call__(self, output: Output, labels: torch.Tensor) -> LossValue:
        loss = F.cross_entropy(output.logits.float(), labels,
                               label_smoothing=self.label_smoothing)
        return LossValue(loss, {"ce": loss.detach()})
