"""DIS optical flow (Dense Inverse Search, Kroeger et al. 2016) on the CPU through OpenCV.

Tens of times faster than TV-L1 on a CPU core, for somewhat less accuracy (docs/flow-methods.md
has the figures). OpenCV's three presets choose how much work is done; every parameter of the
method can also be set on its own, and all of them are stored next to the output.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import cv2

from flowkit.checks import require_int, require_number
from flowkit.errors import BackendError, ConfigError
from flowkit.flow.opencv import OpenCVFlow

# What each of OpenCV's presets sets (cv::DISOpticalFlow::create); the other parameters keep
# their defaults whatever the preset. Held here, not read from OpenCV, so that a preset means the
# same thing with every OpenCV release (a test checks this table against the installed one).
PRESETS: dict[str, dict[str, int]] = {
    "ultrafast": {"finest_scale": 2, "patch_stride": 4, "gradient_descent_iterations": 12,
                  "variational_refinement_iterations": 0},
    "fast": {"finest_scale": 2, "patch_stride": 4, "gradient_descent_iterations": 16,
             "variational_refinement_iterations": 5},
    "medium": {"finest_scale": 1, "patch_stride": 3, "gradient_descent_iterations": 25,
               "variational_refinement_iterations": 5},
}
DEFAULT_PRESET = "medium"


def _by_preset(name: str) -> Any:
    """A field whose default comes from the preset: None until ``__post_init__`` fills it."""
    return dataclasses.field(default=None, metadata={
        "by_preset": {preset: values[name] for preset, values in PRESETS.items()}})


@dataclasses.dataclass(frozen=True)
class DISConfig:
    """Parameters of OpenCV's DISOpticalFlow. Fields left None take the preset's value when the
    config is made, so a config always holds the values the solver runs with.

    Attributes:
        preset: OpenCV's preset the unset parameters come from: ultrafast, fast or medium
            (slower and more accurate in that order).
        finest_scale: finest pyramid level computed (0: full resolution, 1: half, ...); the flow
            is upscaled from there, >= 0.
        coarsest_scale: coarsest pyramid level, -1 for OpenCV's choice from the frame size (the
            original method's), else >= finest_scale.
        patch_size: side of the square patches matched, in pixels, >= 2.
        patch_stride: pixels between neighbouring patches (smaller is denser and slower), in
            1..patch_size-1.
        gradient_descent_iterations: gradient-descent iterations of each patch's inverse
            search, >= 0.
        variational_refinement_iterations: fixed-point iterations of the variational refinement
            on each level (0 turns it off), >= 0.
        variational_refinement_alpha: weight of the smoothness term of the refinement, >= 0.
        variational_refinement_delta: weight of the colour-constancy term, >= 0.
        variational_refinement_gamma: weight of the gradient-constancy term, >= 0.
        variational_refinement_epsilon: small constant of the refinement's robust penalty, > 0.
        mean_normalization: subtract each patch's mean before matching (robust to changes of
            illumination).
        spatial_propagation: propagate good flow vectors to neighbouring patches.
    """

    preset: str = dataclasses.field(default=DEFAULT_PRESET,
                                    metadata={"choices": tuple(PRESETS)})
    finest_scale: int | None = _by_preset("finest_scale")
    coarsest_scale: int = -1
    patch_size: int = 8
    patch_stride: int | None = _by_preset("patch_stride")
    gradient_descent_iterations: int | None = _by_preset("gradient_descent_iterations")
    variational_refinement_iterations: int | None = _by_preset(
        "variational_refinement_iterations")
    variational_refinement_alpha: float = 20.0
    variational_refinement_delta: float = 5.0
    variational_refinement_gamma: float = 10.0
    variational_refinement_epsilon: float = 0.01
    mean_normalization: bool = True
    spatial_propagation: bool = True

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"DISConfig.preset must be one of {', '.join(PRESETS)}, "
                              f"got {self.preset!r}")
        for name, value in PRESETS[self.preset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        require_int("DISConfig", "finest_scale", self.finest_scale, minimum=0)
        require_int("DISConfig", "coarsest_scale", self.coarsest_scale, minimum=-1)
        if 0 <= self.coarsest_scale < self.finest_scale:
            raise ConfigError(f"DISConfig.coarsest_scale must be -1 (automatic) or at least "
                              f"DISConfig.finest_scale ({self.finest_scale}), "
                              f"got {self.coarsest_scale}")
        require_int("DISConfig", "patch_size", self.patch_size, minimum=2)
        # OpenCV's documented limit; strides beyond the patch crash it on some frame sizes.
        require_int("DISConfig", "patch_stride", self.patch_stride, minimum=1)
        if self.patch_stride >= self.patch_size:
            raise ConfigError(f"DISConfig.patch_stride must be smaller than DISConfig.patch_size "
                              f"({self.patch_size}), got {self.patch_stride}")
        for name in ("gradient_descent_iterations", "variational_refinement_iterations"):
            require_int("DISConfig", name, getattr(self, name), minimum=0)
        for name in ("alpha", "delta", "gamma"):
            require_number("DISConfig", f"variational_refinement_{name}",
                           getattr(self, f"variational_refinement_{name}"),
                           lambda x: x >= 0.0, ">= 0")
        # 0 makes OpenCV crash (a division by zero in the refinement's penalty).
        require_number("DISConfig", "variational_refinement_epsilon",
                       self.variational_refinement_epsilon, lambda x: x > 0.0, "> 0")
        for name in ("mean_normalization", "spatial_propagation"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"DISConfig.{name} must be true or false, "
                                  f"got {getattr(self, name)!r}")


def automatic_coarsest_scale(width: int, height: int, patch_size: int) -> int:
    """The coarsest level OpenCV's DIS picks for a frame (dis_flow.cpp, ``calc``): the level where
    a quarter of the long side is one patch, but no coarser than the short side holds a patch.
    Negative when the frame holds no patch."""
    patches = min(width, height) // patch_size
    if patches == 0:
        return -1
    return min(int(math.log(max(width, height) / (4.0 * patch_size)) / math.log(2.0) + 0.5),
               int(math.log(patches) / math.log(2.0)))


class DISFlow(OpenCVFlow):
    """Dense DIS flow (OpenCV DISOpticalFlow) for batches of RGB frame pairs, on the CPU."""

    name = "dis"
    config_class = DISConfig

    def _make_solver(self, config: DISConfig) -> cv2.DenseOpticalFlow:
        solver = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._setters = [(getattr(solver, "set" + method), value)
                         for method, value in self._parameters(config)]
        return solver

    @staticmethod
    def _parameters(config: DISConfig) -> list[tuple[str, Any]]:
        """(OpenCV setter name without ``set``, value) for every parameter."""
        parameters = [
            ("FinestScale", config.finest_scale), ("PatchSize", config.patch_size),
            ("PatchStride", config.patch_stride),
            ("GradientDescentIterations", config.gradient_descent_iterations),
            ("VariationalRefinementIterations", config.variational_refinement_iterations),
            ("VariationalRefinementAlpha", float(config.variational_refinement_alpha)),
            ("VariationalRefinementDelta", float(config.variational_refinement_delta)),
            ("VariationalRefinementGamma", float(config.variational_refinement_gamma)),
            ("UseMeanNormalization", config.mean_normalization),
            ("UseSpatialPropagation", config.spatial_propagation),
        ]
        # Settable in recent OpenCV releases only (5.1 has both); older ones use these values
        # without a way to change them.
        for method, value, fixed in (
                ("VariationalRefinementEpsilon", float(config.variational_refinement_epsilon),
                 0.01),
                ("CoarsestScale", config.coarsest_scale, -1)):
            if hasattr(cv2.DISOpticalFlow, "set" + method):
                parameters.append((method, value))
            elif value != fixed:
                raise ConfigError(f"DIS's {method} cannot be set in OpenCV {cv2.__version__}: "
                                  f"leave it at {fixed} or install a newer OpenCV")
        return parameters

    def _reset_solver(self) -> None:
        # On a frame too small for its pyramid, OpenCV picks another finest scale, coarsest
        # scale and patch size and keeps them for every later pair: set them all again.
        for setter, value in self._setters:
            setter(value)

    def _check_frames(self, height: int, width: int) -> None:
        """Refuse frames whose pyramid cannot reach the finest scale: there OpenCV chooses its
        own parameters (and keeps them), and on some sizes (200x28) it crashes the process."""
        config = self.config
        if automatic_coarsest_scale(width, height, config.patch_size) >= config.finest_scale:
            return
        short = config.patch_size * 2 ** config.finest_scale
        long_ = next(side for side in range(short, 64 * short) if automatic_coarsest_scale(
            side, short, config.patch_size) >= config.finest_scale)
        raise BackendError(
            f"dis: a {width}x{height} frame is too small for finest_scale "
            f"{config.finest_scale} with patch_size {config.patch_size} (it needs a short side "
            f">= {short} px and a long side >= {long_} px); decode larger frames or lower "
            "finest_scale or patch_size (--dis-finest-scale, --dis-patch-size)")
