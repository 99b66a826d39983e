"""The classifier on pooled features, the conv fusion of two pathways' feature maps, and the
consensus that averages a sample's views."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class ConvFusion(nn.Module):
    """Fusion of two pathways' last feature maps at each place, then pooled: (N, C_a, h, w) and
    (N, C_b, h, w) -> (N, out_channels).

    Concatenated, the maps pass a 1x1 conv, BatchNorm and ReLU (Feichtenhofer et al., CVPR 2016:
    conv fusion), so a feature of the fused map can combine what both pathways see at the same
    place before global pooling mixes the places, which a linear layer on pooled features
    cannot do.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        fused = self.relu(self.bn(self.conv(torch.cat([first, second], dim=1))))
        return torch.flatten(F.adaptive_avg_pool2d(fused, 1), 1)
