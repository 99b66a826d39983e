"""Farneback optical flow (polynomial expansion, Farneback 2003) on the CPU through OpenCV.

Much faster than TV-L1 and coarser: a cheap option for previews and quick experiments. The
parameters are OpenCV's usual ones (its documentation's example values).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from flowkit.checks import require_int, require_number
from flowkit.errors import BackendError, ConfigError
from flowkit.flow.base import FlowBackend, check_pair_batch

# cv2.OPTFLOW_FARNEBACK_GAUSSIAN; OPTFLOW_USE_INITIAL_FLOW is refused because no initial flow
# is ever passed in.
_FLAGS = (0, 256)


@dataclasses.dataclass(frozen=True)
class FarnebackConfig:
    """Parameters of OpenCV's Farneback flow.

    Attributes:
        pyr_scale: size ratio between neighbouring pyramid levels, in (0, 1).
        levels: pyramid levels above the original image (0 uses the original only), >= 0.
        winsize: averaging window size in pixels (larger is smoother and more robust), >= 1.
        iterations: iterations per pyramid level, >= 1.
        poly_n: neighbourhood size of the polynomial expansion (typically 5 or 7), >= 1.
        poly_sigma: Gaussian sigma of the polynomial expansion (1.1 for poly_n 5, 1.5 for 7), > 0.
        flags: 0, or 256 (cv2.OPTFLOW_FARNEBACK_GAUSSIAN: Gaussian instead of box window).
    """

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2
    flags: int = 0

    def __post_init__(self) -> None:
        require_number("FarnebackConfig", "pyr_scale", self.pyr_scale, lambda x: 0.0 < x < 1.0, "in (0, 1)")
        require_int("FarnebackConfig", "levels", self.levels, minimum=0)
        for name in ("winsize", "iterations", "poly_n"):
            require_int("FarnebackConfig", name, getattr(self, name), minimum=1)
        require_number("FarnebackConfig", "poly_sigma", self.poly_sigma, lambda x: x > 0.0, "> 0")
        if isinstance(self.flags, bool) or self.flags not in _FLAGS:
            raise ConfigError(
                f"FarnebackConfig.flags must be 0 or 256 (cv2.OPTFLOW_FARNEBACK_GAUSSIAN), "
                f"got {self.flags!r}"
            )


class FarnebackFlow(FlowBackend):
    """Dense Farneback flow for batches of RGB frame pairs, one pair at a time on the CPU.

    The OpenCV solver is built once here and reused for every pair; one instance must not be
    shared between threads.
    """

    name = "farneback"

    def __init__(self, config: FarnebackConfig, device: str = "cpu") -> None:
        if not isinstance(config, FarnebackConfig):
            raise ConfigError(
                f"farneback backend needs a FarnebackConfig, got {type(config).__name__}"
            )
        if device != "cpu":
            raise BackendError(
                f"farneback backend runs on device 'cpu' only, got {device!r}; "
                "use a PyTorch backend for GPUs"
            )
        super().__init__(config, device)
        # Same algorithm and output as cv2.calcOpticalFlowFarneback (which builds this object
        # on every call); fastPyramids=False keeps that equivalence.
        self._solver = cv2.FarnebackOpticalFlow_create(
            config.levels,
            config.pyr_scale,
            False,  # fastPyramids
            config.winsize,
            config.iterations,
            config.poly_n,
            config.poly_sigma,
            config.flags,
        )

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow from ``first`` to ``second`` on grayscale versions of the frames.

        Args:
            first, second: (B, H, W, 3) uint8 RGB frames; pair i is ``first[i] -> second[i]``.

        Returns:
            (B, H, W, 2) float32 flow (u right, v down), pixel (x, y) of ``first[i]`` is at
            (x + u, y + v) in ``second[i]``.

        Raises:
            BackendError: the batches are not matching (B, H, W, 3) uint8 arrays, or OpenCV fails.
        """
        check_pair_batch(first, second)
        batch, height, width = first.shape[:3]
        flow = np.empty((batch, height, width, 2), dtype=np.float32)
        for i in range(batch):
            gray0 = cv2.cvtColor(np.ascontiguousarray(first[i]), cv2.COLOR_RGB2GRAY)
            gray1 = cv2.cvtColor(np.ascontiguousarray(second[i]), cv2.COLOR_RGB2GRAY)
            try:
                flow[i] = self._solver.calc(gray0, gray1, None)
            except cv2.error as error:
                raise BackendError(
                    f"farneback failed on pair {i} of a {height}x{width} batch: "
                    f"{str(error).strip().splitlines()[-1]}"
                ) from error
        return flow
