"""Farneback optical flow (polynomial expansion, Farneback 2003) on the CPU through OpenCV.

Much faster than TV-L1 and coarser: a cheap option for previews and quick experiments. The
parameters are OpenCV's usual ones (its documentation's example values).
"""

from __future__ import annotations

import dataclasses

import cv2

from flowkit.checks import require_int, require_number
from flowkit.errors import ConfigError
from flowkit.flow.opencv import OpenCVFlow

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


class FarnebackFlow(OpenCVFlow):
    """Dense Farneback flow (OpenCV) for batches of RGB frame pairs, on the CPU."""

    name = "farneback"
    config_class = FarnebackConfig

    def _make_solver(self, config: FarnebackConfig) -> cv2.DenseOpticalFlow:
        # Same algorithm and output as cv2.calcOpticalFlowFarneback (which builds this object
        # on every call); fastPyramids=False keeps that equivalence.
        return cv2.FarnebackOpticalFlow_create(
            config.levels,
            config.pyr_scale,
            False,  # fastPyramids
            config.winsize,
            config.iterations,
            config.poly_n,
            config.poly_sigma,
            config.flags,
        )
