"""The RAFT flow backend: batches of frame pairs through the network on any torch device."""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import numpy as np
import torch
import torch.nn.functional as F

from flowkit.errors import BackendError, ConfigError
from flowkit.flow.base import check_pair_batch
from flowkit.flow.device import TorchFlowBackend, autocast_dtype
from flowkit.flow.raft.checkpoint import load_raft
from flowkit.flow.raft.config import RAFTConfig
from flowkit.flow.raft.network import CORR_LEVELS, DOWNSAMPLE

# The coarsest correlation level must be at least 2 wide (the lookup divides by size - 1), so
# padded frames need sides of at least 8 * 2 * 2**(levels - 1) = 128 pixels.
MIN_PADDED_SIDE = DOWNSAMPLE * 2 * 2 ** (CORR_LEVELS - 1)
CPU_CORR_BUDGET_BYTES = 4 << 30   # correlation memory per forward pass on the CPU
GPU_CORR_FRACTION = 0.5           # ... and on a GPU, as a fraction of its free memory


def padding(height: int, width: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) edge padding to multiples of 8, the odd pixel at the end.

    The original RAFT pads this way for Sintel-style evaluation (388 rows -> 2 on top, 2 below).
    """
    pad_h, pad_w = -height % DOWNSAMPLE, -width % DOWNSAMPLE
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


def correlation_bytes(height: int, width: int) -> int:
    """Bytes of one pair's correlation pyramid at padded size ``height`` x ``width``."""
    cells = (height // DOWNSAMPLE) * (width // DOWNSAMPLE)
    return cells * cells * 4 * 4 // 3


class RAFTFlow(TorchFlowBackend):
    """RAFT flow for batches of RGB frame pairs, on the CPU or a GPU.

    Frames are edge-padded to multiples of 8 and the flow cropped back. A batch larger than
    the correlation memory allows is split into several forward passes (results do not change).
    Frames must be at least 121 pixels on each side (padded to 128); resize smaller videos.
    """

    name = "raft"

    def __init__(self, config: RAFTConfig, device: str = "cpu") -> None:
        if not isinstance(config, RAFTConfig):
            raise ConfigError(f"raft backend needs a RAFTConfig, got {type(config).__name__}")
        super().__init__(config, device)
        if config.precision == "fp16" and self.torch_device.type == "cpu":
            raise ConfigError("fp16 on the CPU is emulated (about 50x slower than fp32 here); "
                              "use --precision bf16 or fp32 on the CPU, fp16 on GPUs")
        self.model = load_raft(config.weights, config.small, self.torch_device)
        dtype = autocast_dtype(config.precision)
        self._autocast: Callable[[], ContextManager[object]] = (
            contextlib.nullcontext if dtype is None
            else lambda: torch.autocast(device_type=self.torch_device.type, dtype=dtype))

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow from ``first`` to ``second``: (B, H, W, 3) uint8 RGB -> (B, H, W, 2) float32.

        Raises:
            BackendError: the batches do not match, or the frames are too small for RAFT.
        """
        check_pair_batch(first, second)
        batch, height, width = first.shape[:3]
        left, right, top, bottom = padding(height, width)
        padded_h, padded_w = height + top + bottom, width + left + right
        if min(padded_h, padded_w) < MIN_PADDED_SIDE:
            raise BackendError(
                f"raft needs frames of at least {MIN_PADDED_SIDE - DOWNSAMPLE + 1} pixels on each "
                f"side, got {width}x{height}; resize the video (e.g. --short-side 256)")
        flow = np.empty((batch, height, width, 2), dtype=np.float32)
        step = self._pairs_per_pass(padded_h, padded_w)
        for start in range(0, batch, step):
            stop = min(batch, start + step)
            flow[start:stop] = self._forward(first[start:stop], second[start:stop],
                                             (left, right, top, bottom))
        return flow

    def _pairs_per_pass(self, padded_h: int, padded_w: int) -> int:
        """How many pairs one forward pass takes, bounded by correlation memory."""
        if self.torch_device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.torch_device)
            budget = int(free * GPU_CORR_FRACTION)
        else:
            budget = CPU_CORR_BUDGET_BYTES
        return max(1, budget // correlation_bytes(padded_h, padded_w))

    def _to_device(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, H, W) on the device."""
        return self.frames_to_device(frames).permute(0, 3, 1, 2).float()

    @torch.inference_mode()
    def _forward(self, first: np.ndarray, second: np.ndarray,
                 pad: tuple[int, int, int, int]) -> np.ndarray:
        image1 = F.pad(self._to_device(first), pad, mode="replicate")
        image2 = F.pad(self._to_device(second), pad, mode="replicate")
        _, flow_up = self.model(image1, image2, iters=self.config.iters, autocast=self._autocast)
        left, right, top, bottom = pad
        height, width = flow_up.shape[-2:]
        flow_up = flow_up[:, :, top:height - bottom, left:width - right]
        return flow_up.permute(0, 2, 3, 1).float().cpu().numpy()
