"""Devices and numeric precision for the PyTorch backends, checked once with actionable errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from flowkit.errors import ConfigError
from flowkit.flow.base import FlowBackend

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")


def torch_device(name: str) -> "torch.device":
    """The torch device for ``name`` (cpu, cuda, cuda:N), refused when this machine lacks it.

    Raises:
        ConfigError: the name is not a device, or CUDA (or that GPU index) is not available.
    """
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {name!r} ({exc}); use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but this PyTorch build or machine "
                               "has no CUDA GPU; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {name!r} asked for, but this machine has {count} "
                               f"CUDA GPU(s) (cuda:0 to cuda:{count - 1})")
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r} is not supported; use cpu, cuda or cuda:N")
    return device


def check_precision(owner: str, precision: str) -> None:
    """Raise ConfigError unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{owner}.precision must be one of {', '.join(PRECISIONS)}, "
                          f"got {precision!r}")


def autocast_dtype(precision: str) -> "torch.dtype | None":
    """The autocast dtype for ``precision``; None for fp32 (no autocast)."""
    import torch

    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class TorchFlowBackend(FlowBackend):
    """A backend computed with PyTorch on a device of this machine (cpu, cuda, cuda:N)."""

    @classmethod
    def check_device(cls, device: str) -> None:
        torch_device(device)

    def __init__(self, config: Any, device: str = "cpu") -> None:
        super().__init__(config, device)
        self.torch_device = torch_device(device)

    def frames_to_device(self, frames: np.ndarray) -> "torch.Tensor":
        """(B, H, W, 3) uint8 frames as the same uint8 tensor on the device: the copy moves
        3 bytes a pixel, not 12, and is asynchronous from pinned memory on a GPU."""
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(frames))
        if self.torch_device.type == "cuda":
            tensor = tensor.pin_memory().to(self.torch_device, non_blocking=True)
        return tensor
