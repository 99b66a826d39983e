"""Switches every family shares: TSN's partial BatchNorm and the channels-last memory format.

Families call ``apply_partial_bn`` from their ``train(mode)`` and pass flattened inputs through
``to_memory_format(x, self.channels_last)``; ``use_channels_last(model)`` turns the latter on.
"""

from __future__ import annotations

import torch
from torch import nn

from stddcn.models.base import ActionModel

# every BatchNorm variant, torch's SyncBatchNorm and stddcn's CPU one included
BATCH_NORMS = (nn.modules.batchnorm._BatchNorm,)


def apply_partial_bn(backbone: nn.Module, enabled: bool) -> None:
    """Freeze every BatchNorm of ``backbone`` but the first (TSN), or unfreeze them all.

    Enabled: those layers go to eval mode (running statistics stay as loaded) and their weight
    and bias get ``requires_grad=False``. Disabled: ``requires_grad=True`` again (their mode
    is whatever ``train(mode)`` set). Call it after ``nn.Module.train(mode)``, which resets
    every layer's mode.
    """
    norms = [m for m in backbone.modules() if isinstance(m, BATCH_NORMS)]
    for norm in norms[1:]:
        if enabled:
            norm.eval()
        for param in (norm.weight, norm.bias):
            if param is not None:
                param.requires_grad_(not enabled)


def memory_format_of(ndim: int) -> torch.memory_format:
    """channels_last for 4-D (N, C, H, W), channels_last_3d for 5-D (N, C, T, H, W) tensors."""
    return torch.channels_last if ndim == 4 else torch.channels_last_3d


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``x`` (4-D or 5-D) in channels-last layout when ``channels_last``, else unchanged."""
    if not channels_last or x.ndim not in (4, 5):
        return x
    return x.contiguous(memory_format=memory_format_of(x.ndim))


def use_channels_last(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Store conv weights channels-last (2D) / channels-last-3d (3D) and feed inputs alike.

    Faster with cuDNN/AMP on recent GPUs; outputs are the same. Sets ``channels_last`` on every
    ``ActionModel`` inside ``model`` (their forwards convert flattened inputs) and converts
    in place; ``enabled=False`` goes back to contiguous. Returns ``model``.
    """
    for module in model.modules():
        if isinstance(module, ActionModel):
            module.channels_last = enabled
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            fmt = memory_format_of(module.weight.ndim) if enabled else torch.contiguous_format
            module.to(memory_format=fmt)
    return model
