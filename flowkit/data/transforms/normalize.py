"""Normalisation: uint8 RGB and flow in pixels or steps -> the float32 a network takes.

[`Normalize`][flowkit.data.transforms.Normalize] does it in the DataLoader's workers, on one
sample. [`normalize_batch`][flowkit.data.transforms.normalize_batch] gives the same values for a
collated batch on the training device: a loader that leaves RGB as uint8 and flow as its stored
uint8 steps (``ShardDataset(..., quantized_flow=True)`` with a pipeline built with
``normalize=None``) moves a quarter of the bytes of float32 through its worker processes and onto
the GPU, and the arithmetic happens where the model runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from flowkit.data.items import FLOW, FLOW_BOUND, FLOW_SCALE, RGB, Batch, Sample, flow_scale
from flowkit.data.transforms.geometry import map_sample, per_image, quantized
from flowkit.errors import ConfigError
from flowkit.store.codec import dequantization_constants, dequantize_flow


@dataclass(frozen=True)
class Normalize:
    """RGB uint8 -> float32 ``(x / 255 - mean) / std``; flow stays float32 pixels or / ``bound``.

    ``flow="pixels"`` keeps flow in pixels (already centred on 0); ``flow="bound"`` divides by
    ``bound`` (I3D: values within +-bound land in [-1, 1]; nothing is clipped). Shapes unchanged.
    Quantised flow is dequantised with ``sample["flow_bound"]`` and multiplied by its
    ``flow_scale`` (both keys are then dropped).
    """

    rgb_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    rgb_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    flow: str = "pixels"
    bound: float = 20.0

    def __post_init__(self) -> None:
        if self.flow not in ("pixels", "bound"):
            raise ConfigError(f"Normalize flow must be 'pixels' or 'bound', got {self.flow!r}")
        if self.bound <= 0 or any(s <= 0 for s in self.rgb_std):
            raise ConfigError(f"bound and rgb_std must be positive, got bound={self.bound}, "
                              f"rgb_std={self.rgb_std}")

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        scale, shift = self.rgb_scale_shift()
        # every uint8 value of every channel, normalised: one table lookup per pixel
        table = (np.arange(256, dtype=np.float32)[:, None] * scale - shift).reshape(256, 1, 3)

        def normalize(key: str, a: np.ndarray) -> np.ndarray:
            if key == RGB:
                if a.dtype != np.uint8:
                    raise ConfigError(f"Normalize takes uint8 RGB (0..255), got {a.dtype}")
                return per_image(a, a.shape[-3:-1],
                                 lambda image, target: cv2.LUT(image, table, target), np.float32)
            if quantized(key, a):
                out = dequantize_flow(a, float(sample[FLOW_BOUND]))
                factors = flow_scale(sample)
                out[..., 0] *= factors[0]
                out[..., 1] *= factors[1]
            else:
                out = a.astype(np.float32, copy=True)
            if self.flow == "bound":
                out /= np.float32(self.bound)
            return out
        out = map_sample(sample, normalize)
        if FLOW in sample and quantized(FLOW, sample[FLOW]):
            del out[FLOW_BOUND]
            out.pop(FLOW_SCALE, None)
        return out

    def rgb_scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 (3,) ``scale`` = 1 / (255 std) and ``shift`` = mean / std: normalised RGB is
        ``x * scale - shift`` for x in 0..255 (also on the GPU, in normalize_batch)."""
        std = np.asarray(self.rgb_std, dtype=np.float32)
        return (np.float32(1.0) / (np.float32(255.0) * std),
                np.asarray(self.rgb_mean, dtype=np.float32) / std)


def normalize_batch(batch: Batch, device: str | torch.device = "cpu",
                    normalize: Normalize = Normalize(), clips: bool = False) -> Batch:
    """A collated batch of ShardDataset items, moved to ``device`` and normalised there.

    Args:
        batch: a DataLoader batch. uint8 ``rgb`` becomes float32 ``(x / 255 - mean) / std``;
            uint8 ``flow`` becomes pixels ``(q * 2B / 255 - B) * scale`` with each item's
            ``flow_bound`` B and ``flow_scale`` (u and v factors), then / ``normalize.bound``
            with ``flow="bound"``. Float tensors are taken as already normalised. Other tensors
            are moved; other values pass through. ``flow_bound`` and ``flow_scale`` are dropped.
        device: where to compute, e.g. "cuda:0".
        normalize: the same settings a CPU [`Normalize`][flowkit.data.transforms.Normalize]
            would use.
        clips: items come from a ClipSampler (channels on axis -4: (3, T, H, W) RGB, (2, T, H, W)
            flow) rather than a SegmentSampler ((N, 3, H, W) RGB, (N, 2L, H, W) flow).
    Returns:
        A new dict; float32 ``rgb`` and ``flow`` of the same shapes.
    """
    device = torch.device(device)
    channel_axis = -4 if clips else -3
    out = {key: (value.to(device, non_blocking=True) if isinstance(value, torch.Tensor)
                 else value)
           for key, value in batch.items() if key not in (FLOW_BOUND, FLOW_SCALE)}
    if RGB in out and out[RGB].dtype == torch.uint8:
        out[RGB] = _normalize_rgb(out[RGB], normalize, channel_axis)
    if FLOW in out and out[FLOW].dtype == torch.uint8:
        if FLOW_BOUND not in batch or FLOW_SCALE not in batch:
            raise ConfigError("batch['flow'] is uint8 but the batch has no flow_bound / "
                              "flow_scale; make it with ShardDataset(..., quantized_flow=True)")
        out[FLOW] = _dequantize_flow(out[FLOW], batch[FLOW_BOUND], batch[FLOW_SCALE],
                                     channel_axis)
        if normalize.flow == "bound":
            out[FLOW] /= torch.tensor(normalize.bound, dtype=torch.float32, device=device)
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
