"""The shared part of CPU backends built on an OpenCV DenseOpticalFlow solver."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import cv2
import numpy as np

from flowkit.errors import BackendError, ConfigError
from flowkit.flow.base import FlowBackend, check_pair_batch


class OpenCVFlow(FlowBackend):
    """Runs an OpenCV solver pair by pair on the grayscale (RGB2GRAY) frames, on the CPU.

    The solver is built once in ``__init__`` and reused for every pair; it keeps scratch
    buffers, so one instance must not be shared between threads. OpenCV parallelises each pair
    over its own thread pool (set its size with ``cv2.setNumThreads``; results do not change).
    """

    config_class: ClassVar[type]

    def __init__(self, config: Any, device: str = "cpu") -> None:
        if not isinstance(config, self.config_class):
            raise ConfigError(f"{self.name} backend needs a {self.config_class.__name__}, "
                              f"got {type(config).__name__}")
        super().__init__(config, device)
        self._solver = self._make_solver(config)

    @abc.abstractmethod
    def _make_solver(self, config: Any) -> cv2.DenseOpticalFlow:
        """The OpenCV solver for ``config``."""

    def _reset_solver(self) -> None:
        """Undo what the solver's previous call changed in its own parameters (none by default)."""

    def _check_frames(self, height: int, width: int) -> None:
        """Raise BackendError for a frame size the solver cannot take (any, by default)."""

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow from ``first`` to ``second`` on grayscale versions of the frames.

        Args:
            first, second: (B, H, W, 3) uint8 RGB frames; pair i is ``first[i] -> second[i]``.

        Returns:
            (B, H, W, 2) float32 flow (u right, v down), pixel (x, y) of ``first[i]`` is at
            (x + u, y + v) in ``second[i]``.

        Raises:
            BackendError: the batches are not matching (B, H, W, 3) uint8 arrays, the frames are
                too small for the method, or OpenCV fails.
        """
        check_pair_batch(first, second)
        batch, height, width = first.shape[:3]
        if batch:
            self._check_frames(height, width)
        flow = np.empty((batch, height, width, 2), dtype=np.float32)
        for i in range(batch):
            gray0 = cv2.cvtColor(np.ascontiguousarray(first[i]), cv2.COLOR_RGB2GRAY)
            gray1 = cv2.cvtColor(np.ascontiguousarray(second[i]), cv2.COLOR_RGB2GRAY)
            self._reset_solver()
            try:
                flow[i] = self._solver.calc(gray0, gray1, None)
            except cv2.error as error:
                raise BackendError(
                    f"{self.name} failed on pair {i} of a {height}x{width} batch: "
                    f"{str(error).strip().splitlines()[-1]}"
                ) from error
        return flow
