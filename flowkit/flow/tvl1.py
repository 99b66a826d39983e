"""TV-L1 optical flow on the CPU through OpenCV contrib's DualTVL1 (Zach et al. 2007).

This is the flow most two-stream and I3D-style models were trained on, so its parameters are
OpenCV's own defaults unless a user changes them; every one is stored next to the output.
"""

from __future__ import annotations

import dataclasses

import cv2

from flowkit.checks import require_int, require_number
from flowkit.errors import ConfigError
from flowkit.flow.opencv import OpenCVFlow

# OpenCV applies cv2.medianBlur to float32 flow, which supports only 3x3 and 5x5 windows;
# 0 and 1 switch the median filter off.
_MEDIAN_SIZES = (0, 1, 3, 5)
# How tvl1-torch runs its iterations (flowkit.flow.tvl1_torch.iteration_steps); "auto" is
# triton on a GPU where Triton is installed, eager elsewhere (tvl1_torch.resolve_kernels).
KERNELS = ("auto", "eager", "static", "triton")


@dataclasses.dataclass(frozen=True)
class TVL1Config:
    """Parameters of OpenCV's DualTVL1OpticalFlow; the defaults are OpenCV's.

    Attributes:
        tau: time step of the numerical scheme, in (0, 0.25].
        lambda_: weight of the data term (smaller gives smoother flow), > 0.
        theta: coupling between the data and smoothness steps, > 0.
        nscales: number of pyramid scales, >= 1.
        warps: warpings per scale, >= 1.
        epsilon: stopping threshold of the inner loop, > 0.
        inner_iterations: iterations of the inner loop, >= 1.
        outer_iterations: iterations of the outer loop, >= 1.
        scale_step: size ratio between neighbouring pyramid scales, in (0, 1).
        gamma: weight of the illumination-change term (0 turns it off), >= 0.
        median_filtering: median filter size applied to the flow, one of 0, 1 (off), 3, 5.
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5

    def __post_init__(self) -> None:
        require_number("TVL1Config", "tau", self.tau, lambda x: 0.0 < x <= 0.25, "in (0, 0.25]")
        require_number("TVL1Config", "lambda_", self.lambda_, lambda x: x > 0.0, "> 0")
        require_number("TVL1Config", "theta", self.theta, lambda x: x > 0.0, "> 0")
        for name in ("nscales", "warps", "inner_iterations", "outer_iterations"):
            require_int("TVL1Config", name, getattr(self, name), minimum=1)
        require_number("TVL1Config", "epsilon", self.epsilon, lambda x: x > 0.0, "> 0")
        require_number("TVL1Config", "scale_step", self.scale_step, lambda x: 0.0 < x < 1.0, "in (0, 1)")
        require_number("TVL1Config", "gamma", self.gamma, lambda x: x >= 0.0, ">= 0")
        require_int("TVL1Config", "median_filtering", self.median_filtering, minimum=0)
        if self.median_filtering not in _MEDIAN_SIZES:
            raise ConfigError(
                f"TVL1Config.median_filtering must be one of {_MEDIAN_SIZES} "
                f"(OpenCV median-filters float flow with 3 or 5 only), got {self.median_filtering}"
            )


@dataclasses.dataclass(frozen=True)
class TVL1TorchConfig(TVL1Config):
    """Parameters of the PyTorch TV-L1 (flowkit.flow.tvl1_torch): OpenCV DualTVL1's, with its
    defaults, and how its iterations run. Kept here, free of torch, so the CLI reads it without
    loading torch.

    Attributes:
        kernels: how the iterations run: eager (PyTorch operations, stopped pairs leave the
            batch; the reference), static (the same on fixed shapes, stopped pairs masked),
            triton (fused Triton kernels, CUDA only; equal to eager up to float rounding) or
            auto (triton on a GPU where Triton is installed, eager elsewhere). How, not what:
            a store made with one resumes with another.
    """

    kernels: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernels not in KERNELS:
            raise ConfigError(f"TVL1TorchConfig.kernels must be one of {', '.join(KERNELS)}, "
                              f"got {self.kernels!r}")


# The CLI reads a config's field descriptions from one docstring: the inherited ones first.
TVL1TorchConfig.__doc__ = TVL1TorchConfig.__doc__.replace(
    "    Attributes:\n", TVL1Config.__doc__[TVL1Config.__doc__.index("    Attributes:"):].rstrip()
    + "\n", 1)


class TVL1Flow(OpenCVFlow):
    """Dense TV-L1 flow (OpenCV contrib DualTVL1) for batches of RGB frame pairs, on the CPU."""

    name = "tvl1"
    config_class = TVL1Config

    def _reset_solver(self) -> None:
        # A frame too small for nscales makes DualTVL1 lower its own nscales, and it stays
        # lowered for every later pair unless set again.
        self._solver.setScalesNumber(self.config.nscales)

    def _make_solver(self, config: TVL1Config) -> cv2.DenseOpticalFlow:
        # Positional arguments: OpenCV's keyword for inner iterations is misspelt
        # ("innnerIterations"), so keywords would be fragile across versions.
        return cv2.optflow.DualTVL1OpticalFlow_create(
            config.tau,
            config.lambda_,
            config.theta,
            config.nscales,
            config.warps,
            config.epsilon,
            config.inner_iterations,
            config.outer_iterations,
            config.scale_step,
            config.gamma,
            config.median_filtering,
            False,  # useInitialFlow: every pair starts from zero flow, so calls are independent
        )
