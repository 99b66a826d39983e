"""Finishing uint8 batches on the training device: what :class:`Normalize` does, after the copy.

A loader that leaves RGB as uint8 and flow as its stored uint8 steps (``ShardDataset(...,
quantized_flow=True)`` with a transform built with ``normalize=None``) moves a quarter of the
bytes of float32 through its worker processes and onto the GPU; :func:`normalize_batch` then
gives the tensors a normalising transform would have given, computed where the model runs.
"""

from __future__ import annotations

from typing import Any

import torch

from flowkit.codec import dequantization_constants
from flowkit.data.transforms import Normalize
from flowkit.errors import ConfigError


def normalize_batch(batch: dict[str, Any], device: str | torch.device = "cpu",
                    normalize: Normalize = Normalize(), clips: bool = False) -> dict[str, Any]:
    """A collated batch of ShardDataset items, moved to ``device`` and normalised there.

    Args:
        batch: a DataLoader batch. uint8 ``rgb`` becomes float32 ``(x / 255 - mean) / std``;
            uint8 ``flow`` becomes pixels ``(q * 2B / 255 - B) * scale`` with each item's
            ``flow_bound`` B and ``flow_scale`` (u and v factors), then / ``normalize.bound``
            with ``flow="bound"``. Float tensors are taken as already normalised. Other tensors
            are moved; other values pass through. ``flow_bound`` and ``flow_scale`` are dropped.
        device: where to compute, e.g. "cuda:0".
        normalize: the same settings a CPU :class:`Normalize` would use.
        clips: items come from a ClipSampler (channels on axis -4: (3, T, H, W) RGB, (2, T, H, W)
            flow) rather than a SegmentSampler ((N, 3, H, W) RGB, (N, 2L, H, W) flow).
    Returns:
        A new dict; float32 ``rgb`` and ``flow`` of the same shapes.
    """
    device = torch.device(device)
    channel_axis = -4 if clips else -3
    out = {key: (value.to(device, non_blocking=True) if isinstance(value, torch.Tensor)
                 else value)
           for key, value in batch.items() if key not in ("flow_bound", "flow_scale")}
    if "rgb" in out and out["rgb"].dtype == torch.uint8:
        out["rgb"] = _normalize_rgb(out["rgb"], normalize, channel_axis)
    if "flow" in out and out["flow"].dtype == torch.uint8:
        if "flow_bound" not in batch or "flow_scale" not in batch:
            raise ConfigError("batch['flow'] is uint8 but the batch has no flow_bound / "
                              "flow_scale; make it with ShardDataset(..., quantized_flow=True)")
        out["flow"] = _dequantize_flow(out["flow"], batch["flow_bound"], batch["flow_scale"],
                                       channel_axis)
        if normalize.flow == "bound":
            out["flow"] /= torch.tensor(normalize.bound, dtype=torch.float32, device=device)
    return out


def _channel_shape(tensor: torch.Tensor, axis: int, channels: int) -> list[int]:
    """A shape that broadcasts ``channels`` values along ``axis`` of ``tensor``."""
    shape = [1] * tensor.ndim
    shape[axis] = channels
    return shape


def _normalize_rgb(rgb: torch.Tensor, normalize: Normalize, axis: int) -> torch.Tensor:
    """float32 ``x * scale - shift`` with Normalize's own constants (the same bits as on the CPU)."""
    if rgb.shape[axis] != 3:
        raise ConfigError(f"batch['rgb'] has {rgb.shape[axis]} channels on axis {axis}, not 3; "
                          "pass clips=True for ClipSampler batches")
    scale, shift = (torch.from_numpy(values).reshape(_channel_shape(rgb, axis, 3)).to(rgb.device)
                    for values in normalize.rgb_scale_shift())
    return rgb.float() * scale - shift


def _dequantize_flow(flow: torch.Tensor, bound: torch.Tensor, scale: torch.Tensor,
                     axis: int) -> torch.Tensor:
    """Pixels of uint8 flow, item by item; u and v alternate along ``axis``."""
    items = flow.shape[0]
    channels = flow.shape[axis]
    if channels % 2:
        raise ConfigError(f"batch['flow'] has {channels} channels on axis {axis}; u, v pairs "
                          "expected (pass clips=True for ClipSampler batches)")
    per_item = [items] + [1] * (flow.ndim - 1)
    step, offset = (torch.from_numpy(values).reshape(per_item).to(flow.device)
                    for values in dequantization_constants(bound.detach().cpu().numpy()))
    pixels = flow.float() * step - offset
    # (items, ..., channels, ...) -> (items, ..., channels / 2, 2, ...): u, v on their own axis
    shape = list(flow.shape)
    axis = axis % flow.ndim
    shape[axis:axis + 1] = [channels // 2, 2]
    factors = scale.to(torch.float32).reshape([items] + [1] * (axis - 1) + [1, 2]
                                              + [1] * (flow.ndim - axis - 1))
    return (pixels.reshape(shape) * factors.to(flow.device)).reshape(flow.shape)
