"""The interface every optical flow backend implements."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import numpy as np

from flowkit.errors import BackendError, ConfigError


class FlowBackend(abc.ABC):
    """Computes dense optical flow for a batch of frame pairs.

    Set-up (parameters, models, devices) happens once in ``__init__``; ``__call__`` is cheap to
    call repeatedly on batches of frames of one video.
    """

    name: ClassVar[str]

    def __init__(self, config: Any, device: str = "cpu") -> None:
        self.check_device(device)
        self.config = config
        self.device = device

    @classmethod
    def check_device(cls, device: str) -> None:
        """Raise ConfigError unless this backend can run on ``device`` on this machine.

        CPU backends accept only 'cpu'; PyTorch backends override this.
        """
        if device != "cpu":
            raise ConfigError(f"the {cls.name} flow method runs on the CPU only, got device "
                              f"{device!r}; use tvl1-torch or raft for GPUs")

    @abc.abstractmethod
    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow from ``first`` to ``second``.

        Args:
            first, second: (B, H, W, 3) uint8 RGB frames; pair i is ``first[i] -> second[i]``.

        Returns:
            (B, H, W, 2) float32 flow: channel 0 is u (positive right), channel 1 is v
            (positive down); a pixel at (x, y) in ``first`` is at (x + u, y + v) in ``second``.
        """

    def settings(self) -> dict[str, Any]:
        """Every parameter that changes the output, for storing next to the data."""
        return {"backend": self.name, **dataclasses.asdict(self.config)}


def check_pair_batch(first: np.ndarray, second: np.ndarray) -> None:
    """Raise BackendError unless ``first`` and ``second`` are matching (B, H, W, 3) uint8 batches."""
    for label, array in (("first", first), ("second", second)):
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise BackendError(
                f"{label} frames must be a (B, H, W, 3) uint8 array, got {array.shape} {array.dtype}"
            )
    if first.shape != second.shape:
        raise BackendError(f"frame batches differ in shape: {first.shape} vs {second.shape}")
