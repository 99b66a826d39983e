"""The classifier on pooled features, and the consensus that averages a sample's views."""

from __future__ import annotations

import torch
from torch import nn

from stddcn.errors import ModelError


class ClassifierHead(nn.Module):
    """Dropout then a linear layer: (N, in_features) -> (N, num_classes) logits.

    Initialised as TSN's new fc (weights normal with std 0.001, bias 0), so training starts
    from near-uniform scores on top of pretrained features.
    """

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(in_features, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, 0.001)
        nn.init.constant_(self.fc.bias, 0.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))


def average_views(logits: torch.Tensor, batch: int, views: int) -> torch.Tensor:
    """Segmental consensus: (batch * views, K) per-view logits -> (batch, K) mean over views.

    Raises:
        ModelError: ``logits`` is not (batch * views, K).
    """
    if logits.ndim != 2 or logits.shape[0] != batch * views:
        raise ModelError(f"per-view logits must be ({batch * views}, K) for {batch} samples "
                         f"of {views} views, got {tuple(logits.shape)}")
    return logits.view(batch, views, logits.shape[1]).mean(dim=1)
