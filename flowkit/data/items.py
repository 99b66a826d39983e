"""The structures that pass between the reader, the transforms, the DataLoader and the device.

Three stages, one typed dict each, so that the keys are written down once:

- [`Sample`][flowkit.data.Sample]: numpy arrays read for one item, channel-last, before the
  transforms.
- [`Item`][flowkit.data.Item]: what ``ShardDataset[i]`` returns: channel-first torch tensors.
- [`Batch`][flowkit.data.Batch]: a DataLoader's collation of items (every tensor gains a leading B
  axis, strings become lists), which [`flowkit.data.normalize_batch`][] finishes on the training
  device.

They are plain dicts at run time (torch's default collation, pinning and ``.to`` handle them);
the classes document and type the keys.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import torch

RGB, FLOW = "rgb", "flow"
FLOW_BOUND, FLOW_SCALE = "flow_bound", "flow_scale"


class Sample(TypedDict, total=False):
    """Arrays of one item between reading and tensors (see flowkit.data.transforms).

    Attributes:
        rgb: (N, H, W, 3) uint8 frames; float32 once normalised.
        flow: (N, L, H, W, 2) float32 pixels, or uint8 quantised steps (then ``flow_bound`` is set).
        flow_bound: bound B of quantised flow: pixels = q * 2B / 255 - B.
        flow_scale: (2,) float32 (sx, sy) resize factors still to apply to quantised u and v.
    """

    rgb: np.ndarray
    flow: np.ndarray
    flow_bound: float
    flow_scale: np.ndarray


class Item(TypedDict, total=False):
    """One ``ShardDataset`` item (N = segments x crops, or clips x crops).

    Attributes:
        rgb: segments (N, 3, H, W); clips (3, T, H, W) for one, (N, 3, T, H, W) for more.
        flow: segments (N, 2L, H, W) as u0, v0, u1, v1, ...; clips (2, T, H, W) / (N, 2, T, H, W).
        label: () int64 0-based class, -1 where unknown.
        video_id: the video's id in the manifest.
        frame_indices: int64 0-based frame indices read: (segments,) or (clips, T).
        flow_indices: int64 flow indices read: (segments, L) or (clips, T); width 0 without flow.
        flow_bound: () float64, only with uint8 (quantised) flow.
        flow_scale: (2,) float32, only with uint8 (quantised) flow.
    """

    rgb: torch.Tensor
    flow: torch.Tensor
    label: torch.Tensor
    video_id: str
    frame_indices: torch.Tensor
    flow_indices: torch.Tensor
    flow_bound: torch.Tensor
    flow_scale: torch.Tensor


class Batch(TypedDict, total=False):
    """Items collated by a DataLoader: each tensor of [`Item`][flowkit.data.Item] with a leading B
    axis, ``video_id`` a list of B strings."""

    rgb: torch.Tensor
    flow: torch.Tensor
    label: torch.Tensor
    video_id: list[str]
    frame_indices: torch.Tensor
    flow_indices: torch.Tensor
    flow_bound: torch.Tensor
    flow_scale: torch.Tensor


def is_quantized_flow(sample: Sample) -> bool:
    """Whether ``sample`` holds quantised flow (uint8 steps of 2B/255)."""
    return FLOW in sample and sample[FLOW].dtype == np.uint8


def flow_scale(sample: Sample) -> np.ndarray:
    """(sx, sy) float32 still to apply to the quantised flow of ``sample``; (1, 1) if none."""
    return np.asarray(sample.get(FLOW_SCALE, (1.0, 1.0)), dtype=np.float32)
