"""Batched TV-L1 optical flow in PyTorch: OpenCV contrib's DualTVL1 on a batch of pairs, CPU or GPU.

The algorithm is Zach, Pock and Bischof's duality-based TV-L1 (DAGM 2007) with the improvements of
Wedel et al. (median filtering of the flow, the illumination term ``gamma``), step by step as in
opencv_contrib modules/optflow/src/tvl1flow.cpp, with one function per step of that file. The
pairs of a batch are computed together, and each pair stops iterating exactly when OpenCV would
stop it: a pair that has converged is frozen (``torch.where``) while the others go on, and set
aside once the host knows, so a batch gives the flows of its pairs computed one by one.

How closely each step follows OpenCV (checked in tests/test_tvl1_torch.py, against 5.0.0.93 and
5.1.0.95). "Exact" is bit for bit with OpenCV 5.0. OpenCV 5.1's cv2.resize halves an image
(scale_step 0.5, or a size exactly half) as a 2x2 mean instead of interpolating: 8% of the
values differ from ours, by at most one float32 step at the image's largest value; other
factors, and all the other steps, are still exact. 5.1's DualTVL1 gives 5.0's flows on the
test frames (scale_step 0.5 included), so the flow agreement below holds for both.

- grey: cvtColor(RGB2GRAY) of the uint8 frames, OpenCV 5's weights (9798, 19235, 3735) / 2^15
  rounded: exact.
- pyramid: repeated resize by ``scale_step`` (INTER_LINEAR), sides rounded half to even, source
  position (x + 0.5) / scale_step - 0.5 in double, OpenCV 5's two behaviours at the last row and
  column, interpolation a + (b - a) * w rounded once (OpenCV's FMA): exact. A scale is dropped,
  with all coarser ones, when a side of it would be below 16 pixels.
- flow between scales: resized to the finer size (INTER_LINEAR) and multiplied by 1 / scale_step
  (not u3): exact.
- warping: I1 and its centred gradient sampled at (x + u, y + v), bicubic (a = -0.75) with zero
  outside the image (cv2.remap's default BORDER_CONSTANT, tap by tap); OpenCV 5 interpolates at
  the exact fractional position (no 1/32 grid any more): equal within float rounding (1e-6).
- centred gradient (border replicated, OpenCV's one-sided half differences), forward gradient
  (zero on the last column / row), calcGradRho and the thresholding of estimateV: exact; the
  divergence (backward differences, zero outside the top / left border) adds the first
  column's terms in another order, and the dual step uses sqrt(x^2 + y^2) where OpenCV calls
  hypot: both within 1 ulp.
- median filter: 3x3 or 5x5 with the border replicated, as cv2.medianBlur on float: exact.
- stopping, per pair and per warp: outer iterations (median filter first), each of inner
  iterations, until the sum over the image of the squared change of (u1, u2, u3) in one
  iteration is <= epsilon^2 * (pixels of the scale). OpenCV sums in float, in order, this code
  in float64 (emulating OpenCV's sum changed no stopping decision on the test frames).

The remaining rounding differences are amplified by up to 1500 iterations per scale where the
data term switches branch: the mean endpoint distance to OpenCV is 0.0007 px on RubberWhale,
0.004-0.005 px on UCF101 320x240 pairs, up to 0.012 px for other settings; ~6e-6 px with few
iterations. OpenCV's own flow depends on the CPU it runs on (its SIMD dispatch): half-size
RubberWhale is 0.002 px from ours on the project's AMD EPYC VM, 0.012 px on an Intel Xeon.

Frames must be at least 2 pixels on each side (OpenCV reads outside smaller images); frames with
a side below 16 / scale_step get a single scale, like OpenCV.

Speed: an inner iteration (:func:`_inner_step`) is ~43 elementwise kernels on (B, 2, H, W)
tensors, free of host syncs so that it can be compiled into a few fused kernels. The config's
``kernels`` chooses how iterations run (:func:`iteration_steps`): "eager" (the reference: pairs
that stopped leave the batch), "static" (every tensor keeps its shape, stopped pairs frozen by
their mask: what CUDA graphs and torch.compile need; the same flows) or "triton"
(flowkit.flow.tvl1_triton's fused kernels, CUDA only). The default, "auto", is triton on a GPU
where Triton is installed (on an H200: 2.1x eager's pairs/s at batch 1, 1.8x at 32, 1.25x at
128, the same distance to OpenCV; docs/benchmarks.md) and eager elsewhere.
"""

from __future__ import annotations

import functools
import itertools
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from flowkit.errors import BackendError, ConfigError
from flowkit.flow.base import check_pair_batch
from flowkit.flow.device import TorchFlowBackend
from flowkit.flow.tvl1 import KERNELS, TVL1Config, TVL1TorchConfig

MIN_SIDE = 2                # smaller frames make OpenCV read outside the image
MIN_SCALE_SIDE = 16         # OpenCV drops a pyramid scale whose side would be smaller
_FLT_EPSILON = float(np.finfo(np.float32).eps)  # estimateV's "gradient is zero" threshold
_GRAY_WEIGHTS = (9798, 19235, 3735)  # R, G, B weights of OpenCV 5's RGB2GRAY on uint8 ...
_GRAY_SHIFT = 15                     # ... in units of 2^-15, rounded half up
_CUBIC_A = -0.75                     # OpenCV's bicubic kernel parameter (Keys' a)
# How often (in inner iterations) the solver asks whether any pair is still iterating, to stop
# early. Each question waits for the device; free on the CPU, a pipeline stall on a GPU. The
# answer only saves time: converged pairs are frozen either way, so flows do not depend on it.
_CHECK_EVERY = {"cpu": 1, "cuda": 5}
# On the CPU the backend solves this many pairs at a time: the tensors of one 320x240 pair fit
# in the caches, those of a batch do not (8 UCF101 pairs: 4.5-6.1 s one by one, 5.2-8.8 s as
# one batch, on 2 cores). Results do not depend on it.
CPU_PAIRS_PER_SOLVE = 1


class TVL1TorchFlow(TorchFlowBackend):
    """Dense TV-L1 flow (a port of OpenCV DualTVL1) for batches of RGB frame pairs, CPU or CUDA.

    On a GPU all pairs of a batch are solved together; on the CPU one at a time (see
    CPU_PAIRS_PER_SOLVE). Either way each pair's flow is what it would be alone. Frames are
    turned grey (RGB2GRAY) on the device; flows come back as float32 numpy arrays.
    """

    name = "tvl1-torch"

    def __init__(self, config: TVL1TorchConfig, device: str = "cpu") -> None:
        if not isinstance(config, TVL1TorchConfig):
            raise ConfigError(f"{self.name} backend needs a TVL1TorchConfig, "
                              f"got {type(config).__name__}")
        super().__init__(config, device)
        if config.kernels == "triton":
            from flowkit.flow import tvl1_triton

            tvl1_triton.check_available(self.torch_device)

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow from ``first`` to ``second``: (B, H, W, 3) uint8 RGB -> (B, H, W, 2) float32.

        Channel 0 is u (right), 1 is v (down): pixel (x, y) of ``first[i]`` is at (x + u, y + v)
        in ``second[i]``.

        Raises:
            BackendError: the batches do not match, or a side of the frames is below 2 pixels.
        """
        check_pair_batch(first, second)
        batch, height, width = first.shape[:3]
        _check_size(height, width)
        if batch == 0:
            return np.zeros((0, height, width, 2), dtype=np.float32)
        flow = np.empty((batch, height, width, 2), dtype=np.float32)
        step = CPU_PAIRS_PER_SOLVE if self.torch_device.type == "cpu" else batch
        for start in range(0, batch, step):
            part = slice(start, start + step)
            gray0 = rgb_to_gray(self.frames_to_device(first[part]))
            gray1 = rgb_to_gray(self.frames_to_device(second[part]))
            flow[part] = tvl1_flow(gray0, gray1, self.config).permute(0, 2, 3, 1).cpu().numpy()
        return flow


def _check_size(height: int, width: int) -> None:
    """Raise BackendError if frames of ``height`` x ``width`` are too small for TV-L1."""
    if height < MIN_SIDE or width < MIN_SIDE:
        raise BackendError(f"tvl1-torch needs frames of at least {MIN_SIDE}x{MIN_SIDE} pixels, "
                           f"got {width}x{height} (width x height)")


def rgb_to_gray(frames: torch.Tensor) -> torch.Tensor:
    """(..., 3) uint8 RGB -> (...) float32 grey 0..255: exactly OpenCV 5's RGB2GRAY."""
    red, green, blue = frames.to(torch.int32).unbind(-1)
    r_weight, g_weight, b_weight = _GRAY_WEIGHTS
    gray = (red * r_weight + green * g_weight + blue * b_weight + (1 << (_GRAY_SHIFT - 1)))
    return (gray >> _GRAY_SHIFT).to(torch.float32)


@torch.inference_mode()
def tvl1_flow(gray0: torch.Tensor, gray1: torch.Tensor,
              config: TVL1Config = TVL1TorchConfig()) -> torch.Tensor:
    """TV-L1 flow from ``gray0`` to ``gray1`` for a batch of grey frame pairs, on their device.

    Args:
        gray0, gray1: (B, H, W) float32 grey frames, values 0..255 (e.g. :func:`rgb_to_gray`),
            on one device (cpu or cuda), H and W >= 2.
        config: OpenCV DualTVL1's parameters (a TVL1Config or TVL1TorchConfig).

    Returns:
        (B, 2, H, W) float32 flow on the same device: channel 0 u (right), 1 v (down).

    Raises:
        BackendError: the tensors are not matching (B, H, W) float32 batches on one device, or
            H or W is below 2.
    """
    if (gray0.ndim != 3 or gray0.shape != gray1.shape or gray0.dtype != torch.float32
            or gray1.dtype != torch.float32 or gray0.device != gray1.device):
        raise BackendError("tvl1_flow needs two (B, H, W) float32 tensors on one device, got "
                           f"{tuple(gray0.shape)} {gray0.dtype} {gray0.device} and "
                           f"{tuple(gray1.shape)} {gray1.dtype} {gray1.device}")
    _check_size(gray0.shape[1], gray0.shape[2])
    return _multiscale_flow(gray0, gray1, config)


def _multiscale_flow(gray0: torch.Tensor, gray1: torch.Tensor, config: TVL1Config,
                     iterations: list[torch.Tensor] | None = None) -> torch.Tensor:
    """OpenCV's calc(): solve from the coarsest scale to the finest, zooming the flow between.

    ``iterations``, when given, receives per scale (coarsest first) a (warps, B) int64 tensor
    of the inner iterations each pair ran in each warp (for benchmarks).
    """
    batch = gray0.shape[0]
    pyramid0, pyramid1 = build_pyramid(gray0, config), build_pyramid(gray1, config)
    channels = 3 if config.gamma != 0 else 2  # (u1, u2) and, with gamma, u3
    height, width = pyramid0[-1].shape[-2:]
    flow = gray0.new_zeros((batch, channels, height, width))
    for scale in reversed(range(len(pyramid0))):
        flow = _solve_scale(pyramid0[scale], pyramid1[scale], flow, config, iterations)
        if scale > 0:
            flow = zoom_flow(flow, tuple(pyramid0[scale - 1].shape[-2:]), config.scale_step)
    return flow[:, :2]


# ---------------------------------------------------------------------------------------------
# Pyramid: cv2.resize INTER_LINEAR as OpenCV 5 computes it on float images.

def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """cv2.resize's output (height, width) for factor ``scale``: sides rounded half to even."""
    return round(height * scale), round(width * scale)


def build_pyramid(gray: torch.Tensor, config: TVL1Config) -> list[torch.Tensor]:
    """Finest first: ``gray`` and up to nscales - 1 successive resizes by scale_step.

    Like OpenCV, stops before the first scale with a side below 16 pixels.
    """
    pyramid = [gray]
    for _ in range(1, config.nscales):
        size = scaled_size(*pyramid[-1].shape[-2:], config.scale_step)
        if min(size) < MIN_SCALE_SIDE:
            break
        factor = (config.scale_step, config.scale_step)
        pyramid.append(resize_linear(pyramid[-1], size, factor))
    return pyramid


def zoom_flow(flow: torch.Tensor, size: tuple[int, int], scale_step: float) -> torch.Tensor:
    """(B, C, h, w) flow of a coarse scale -> (B, C, H, W), u and v divided by scale_step."""
    zoomed = resize_linear(flow, size)
    factor = float(np.float32(1.0 / scale_step))  # OpenCV multiplies by a float Scalar
    return torch.cat((zoomed[:, :2] * factor, zoomed[:, 2:]), dim=1)  # u3 is not scaled


def resize_linear(images: torch.Tensor, size: tuple[int, int],
                  factor: tuple[float, float] | None = None) -> torch.Tensor:
    """cv2.resize(INTER_LINEAR) of float32 images (..., H, W) to ``size`` (height, width).

    ``factor`` is OpenCV's (fy, fx) when it is called with them (the output size then being
    ``size``, rounded); None is a call with dsize = ``size``. Columns are interpolated first,
    then rows, each as a + (b - a) * w rounded once, as OpenCV 5 computes float images.
    """
    height, width = images.shape[-2:]
    rows = _linear_taps(height, size[0], None if factor is None else factor[0], images.device)
    columns = _linear_taps(width, size[1], None if factor is None else factor[1], images.device)
    row0, row1, row_weight = rows
    col0, col1, col_weight = columns

    def along_rows(lines: torch.Tensor) -> torch.Tensor:
        return _lerp(lines.index_select(-1, col0), lines.index_select(-1, col1), col_weight)

    top = along_rows(images.index_select(-2, row0))
    bottom = along_rows(images.index_select(-2, row1))
    return _lerp(top, bottom, row_weight[:, None])


def _lerp(start: torch.Tensor, end: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """start + (end - start) * weight in float32, with one rounding for the multiply-add (FMA)."""
    return (start.double() + (end - start).double() * weight).float()


@functools.lru_cache(maxsize=256)
def _linear_taps(source: int, destination: int, factor: float | None,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Along one axis: first and second source index of each output pixel and the weight of
    the second (float32 values, held as float64), as OpenCV 5's INTER_LINEAR resize does.

    The source position is (x + 0.5) * scale - 0.5 in double, with scale = 1 / factor, or
    source / destination without factor. Past the last pixel OpenCV 5 has two behaviours
    (measured): with dsize, or a factor that gives the size exactly, it takes the last pixel
    (weight 0); with a factor whose size was rounded, it clamps the position to the last pixel
    and interpolates from the one before it with weight 1 (equal up to rounding).
    """
    scale = source / destination if factor is None else 1.0 / factor
    position = (np.arange(destination, dtype=np.float64) + 0.5) * scale - 0.5
    if factor is None or source * factor == destination:
        first = np.floor(position)
        weight = (position - first).astype(np.float32)
        outside = (first < 0) | (first >= source - 1)  # clamped to the border pixel
        weight[outside] = 0.0
        first = np.clip(first, 0, source - 1)
    else:
        position = np.clip(position, 0, source - 1)
        first = np.clip(np.floor(position), 0, max(source - 2, 0))
        weight = (position - first).astype(np.float32)
    first = first.astype(np.int64)
    second = np.minimum(first + 1, source - 1)
    return (torch.from_numpy(first).to(device), torch.from_numpy(second).to(device),
            torch.from_numpy(weight.astype(np.float64)).to(device))


# ---------------------------------------------------------------------------------------------
# One scale: procOneScale.

class _WarpTerms(NamedTuple):
    """What the inner iterations need from one warping, fixed during its iterations."""

    image_grad: torch.Tensor   # (B, C, H, W): I1wx, I1wy (and the constant gamma when C = 3)
    rho_c: torch.Tensor        # (B, H, W): the constant part of the data term's residual
    grad: torch.Tensor         # (B, H, W): |grad I1w|^2
    neg_grad: torch.Tensor     # -grad
    lt_grad: torch.Tensor      # lambda * theta * grad: the thresholds of estimateV
    neg_lt_grad: torch.Tensor  # -lt_grad
    grad_ok: torch.Tensor      # grad > FLT_EPSILON


def _solve_scale(gray0: torch.Tensor, gray1: torch.Tensor, flow: torch.Tensor,
                 config: TVL1Config, iterations: list[torch.Tensor] | None) -> torch.Tensor:
    """OpenCV's procOneScale on a batch: warps, each with outer and inner iterations, per pair
    until its change is small; returns the refined (B, C, H, W) flow."""
    batch, height, width = gray0.shape
    # OpenCV holds these in float; the scalars below are rounded to float32 by the tensor ops.
    threshold = float(np.float32(config.epsilon * config.epsilon * height * width))
    l_t = config.lambda_ * config.theta
    steps = iteration_steps(resolve_kernels(getattr(config, "kernels", "eager"), gray0.device))
    source = torch.stack((gray1, *centered_gradient(gray1)), dim=1)  # I1, I1x, I1y
    state = (flow, torch.zeros_like(flow), torch.zeros_like(flow))  # u, p (x), p (y)
    counts = torch.zeros((config.warps, batch), dtype=torch.int64, device=gray0.device)
    for warp in range(config.warps):
        warped = remap_cubic(source, state[0][:, :2])
        terms = _warp_terms(gray0, warped, state[0], l_t, config.gamma)
        state = _iterate_warp(state, terms, config, threshold,
                              None if iterations is None else counts[warp], steps)
    if iterations is not None:
        iterations.append(counts)
    return state[0]


class IterationSteps(NamedTuple):
    """How the iterations of a warp run: the median step, the inner step, and whether pairs
    that stopped leave the batch (``shrink``) or stay in it frozen by their mask, so that every
    tensor keeps its shape (what CUDA graphs, torch.compile and fixed-grid kernels need).

    ``median(flow, active, size)`` and ``inner(flow, dual_x, dual_y, terms, active, l_t,
    theta, taut, threshold)`` have the signatures of :func:`_median_step` and
    :func:`_inner_step`; ``active`` is None only where ``shrink`` is True.
    """

    median: Callable[..., torch.Tensor]
    inner: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
    shrink: bool


def resolve_kernels(kernels: str, device: torch.device) -> str:
    """The kernels that run on ``device``: ``kernels`` itself, except "auto", which is triton
    on a CUDA device where Triton is installed (faster at every batch size measured) and eager
    elsewhere (the CPU, or a GPU without Triton)."""
    if kernels != "auto":
        return kernels
    from flowkit.flow import tvl1_triton

    return "triton" if device.type == "cuda" and tvl1_triton.available(device) else "eager"


def iteration_steps(kernels: str) -> IterationSteps:
    """The steps of TVL1TorchConfig.kernels: eager (stopped pairs leave the batch), static
    (eager operations on fixed shapes, stopped pairs masked) or triton (fused kernels, masked).

    Raises:
        ConfigError: unknown name, or triton asked for where it cannot run.
    """
    if kernels == "eager":
        return IterationSteps(_median_step, _inner_step, shrink=True)
    if kernels == "static":
        return IterationSteps(_median_step, _inner_step, shrink=False)
    if kernels == "triton":
        from flowkit.flow import tvl1_triton

        return IterationSteps(tvl1_triton.median_step, tvl1_triton.inner_step, shrink=False)
    raise ConfigError(f"TVL1TorchConfig.kernels must be one of {', '.join(KERNELS)} (auto "
                      f"resolved by resolve_kernels), got {kernels!r}")


def _iterate_warp(state: tuple[torch.Tensor, torch.Tensor, torch.Tensor], terms: _WarpTerms,
                  config: TVL1Config, threshold: float, counts: torch.Tensor | None,
                  steps: IterationSteps = IterationSteps(None, None, True)  # type: ignore[arg-type]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The outer and inner iterations of one warp on (u, p_x, p_y), each pair until its change
    is small (OpenCV's loops, a pair at a time); ``counts`` (B,), if given, counts each pair's
    inner iterations.

    Pairs run as one batch; a pair that has stopped is frozen by a mask. The host learns which
    pairs run every few steps (every step on the CPU); it then stops when none does and, with
    ``steps.shrink``, sets the stopped pairs aside so that the others go on as a smaller batch.
    Neither changes any pair's numbers.
    """
    median, inner = steps.median or _median_step, steps.inner or _inner_step
    device = state[0].device
    check_every = _CHECK_EVERY.get(device.type, _CHECK_EVERY["cuda"])
    l_t, taut = config.lambda_ * config.theta, config.tau / config.theta
    result = [tensor.clone() for tensor in state]
    if not steps.shrink:
        state = tuple(result)  # the masked steps may update their inputs in place
    pairs = torch.arange(state[0].shape[0], device=device)  # the pairs being iterated
    active = torch.ones((len(pairs), 1, 1, 1), dtype=torch.bool, device=device)
    all_active = steps.shrink  # known on the host: then no pair needs freezing
    done = 0
    for outer in range(config.outer_iterations):
        if outer > 0 and not all_active and not bool(active.any()):
            break
        if config.median_filtering > 1:
            flow = median(state[0], None if all_active else active, config.median_filtering)
            state = (flow, *state[1:])
        for _ in range(config.inner_iterations):
            if counts is not None:
                counts.index_add_(0, pairs, active.view(-1).long())
            *state, active = inner(*state, terms, None if all_active else active, l_t,
                                   config.theta, taut, threshold)
            done += 1
            all_active = False
            if done % check_every == 0:
                running = int(active.sum())
                if running == 0 and not steps.shrink:
                    return tuple(state)
                if steps.shrink and running < len(pairs):
                    for full, part in zip(result, state):  # set the stopped pairs aside
                        full.index_copy_(0, pairs, part)
                    if running == 0:
                        return tuple(result)
                    keep = active.view(-1).nonzero().view(-1)
                    pairs, active = pairs[keep], active[keep]
                    state = [tensor[keep] for tensor in state]
                    terms = _WarpTerms(*(tensor[keep] for tensor in terms))
                all_active = steps.shrink
    if not steps.shrink:
        return tuple(state)
    for full, part in zip(result, state):
        full.index_copy_(0, pairs, part)
    return tuple(result)


def _warp_terms(gray0: torch.Tensor, warped: torch.Tensor, flow: torch.Tensor, l_t: float,
                gamma: float) -> _WarpTerms:
    """calcGradRho plus the per-warp constants of estimateV."""
    warped_image, warped_dx, warped_dy = warped.unbind(1)
    grad, rho_c = calc_grad_rho(gray0, warped_image, warped_dx, warped_dy, flow[:, 0], flow[:, 1])
    image_grad = warped[:, 1:].contiguous()  # one plane after another, as kernels read it
    if flow.shape[1] == 3:
        image_grad = torch.cat((image_grad, torch.full_like(warped[:, :1], gamma)), dim=1)
    lt_grad = l_t * grad
    return _WarpTerms(image_grad, rho_c, grad, -grad, lt_grad, -lt_grad, grad > _FLT_EPSILON)


def _median_step(flow: torch.Tensor, active: torch.Tensor | None, size: int) -> torch.Tensor:
    """Median-filter u1 and u2 of the active pairs (all when ``active`` is None)."""
    filtered = median_blur(flow[:, :2], size)
    if active is not None:
        filtered = torch.where(active, filtered, flow[:, :2])
    return torch.cat((filtered, flow[:, 2:]), dim=1)


def _inner_step(flow: torch.Tensor, dual_x: torch.Tensor, dual_y: torch.Tensor,
                terms: _WarpTerms, active: torch.Tensor | None, l_t: float, theta: float,
                taut: float, threshold: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One inner iteration for every pair; pairs not ``active`` keep their flow and duals.

    ``active`` is a (B, 1, 1, 1) bool mask, or None when every pair is known to be active.
    Returns the new flow, duals and mask: a pair stays active while the squared change of its
    flow exceeds ``threshold``. Pure tensor code without device syncs, so it can be compiled.
    """
    v = estimate_v(flow, terms, l_t)
    new_flow, change = estimate_u(v, divergence(dual_x, dual_y), flow, theta)
    new_x, new_y = estimate_dual_variables(dual_x, dual_y, *forward_gradient(new_flow), taut)
    still_active = (change > threshold).view(-1, 1, 1, 1)
    if active is None:
        return new_flow, new_x, new_y, still_active
    return (torch.where(active, new_flow, flow), torch.where(active, new_x, dual_x),
            torch.where(active, new_y, dual_y), active & still_active)


# ---------------------------------------------------------------------------------------------
# The steps of tvl1flow.cpp, on (B, ...) tensors.

def centered_gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, W) -> (dx, dy): half central differences, border replicated (as OpenCV's)."""
    padded = F.pad(image[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    dx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    dy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    return dx, dy


def forward_gradient(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> (dx, dy): forward differences, 0 on the last column / row."""
    dx, dy = torch.empty_like(flow), torch.empty_like(flow)
    _subtract_into(dx[..., :-1], flow[..., 1:], flow[..., :-1])
    dx[..., -1] = 0.0
    _subtract_into(dy[..., :-1, :], flow[..., 1:, :], flow[..., :-1, :])
    dy[..., -1, :] = 0.0
    return dx, dy


def divergence(dual_x: torch.Tensor, dual_y: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence of (dual_x, dual_y), zero outside the top / left border."""
    div_x, div_y = torch.empty_like(dual_x), torch.empty_like(dual_y)
    _subtract_into(div_x[..., 1:], dual_x[..., 1:], dual_x[..., :-1])
    div_x[..., 0] = dual_x[..., 0]
    _subtract_into(div_y[..., 1:, :], dual_y[..., 1:, :], dual_y[..., :-1, :])
    div_y[..., 0, :] = dual_y[..., 0, :]
    return div_x.add_(div_y)


def _subtract_into(out: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> None:
    """out = first - second in one pass (a strided ``out=`` eagerly; what compilers accept)."""
    if torch.compiler.is_compiling():
        out.copy_(first - second)
    else:
        torch.sub(first, second, out=out)


def calc_grad_rho(gray0: torch.Tensor, warped: torch.Tensor, warped_dx: torch.Tensor,
                  warped_dy: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """|grad I1w|^2 and the constant part of the residual, I1w - I1wx u1 - I1wy u2 - I0."""
    grad = warped_dx * warped_dx + warped_dy * warped_dy
    rho_c = warped - warped_dx * u1 - warped_dy * u2 - gray0
    return grad, rho_c


def estimate_v(flow: torch.Tensor, terms: _WarpTerms, l_t: float) -> torch.Tensor:
    """The thresholding step TH: v = u + a step along grad I1 (and gamma) that shrinks rho."""
    image_dx, image_dy = terms.image_grad[:, 0], terms.image_grad[:, 1]
    rho = terms.rho_c + (image_dx * flow[:, 0] + image_dy * flow[:, 1])
    if flow.shape[1] == 3:
        rho = rho + terms.image_grad[:, 2] * flow[:, 2]  # + gamma * u3
    step = torch.where(terms.grad_ok, rho / terms.neg_grad, 0.0)  # -rho / grad
    step = torch.where(rho > terms.lt_grad, -l_t, step)
    step = torch.where(rho < terms.neg_lt_grad, l_t, step)
    return flow + step[:, None] * terms.image_grad


def estimate_u(v: torch.Tensor, div_p: torch.Tensor, flow: torch.Tensor, theta: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """u = v + theta div p, and each pair's sum of squared change of u (float64, shape (B,))."""
    new_flow = v + theta * div_p
    change = new_flow - flow
    return new_flow, (change * change).sum(dim=(1, 2, 3), dtype=torch.float64)


def estimate_dual_variables(dual_x: torch.Tensor, dual_y: torch.Tensor, grad_x: torch.Tensor,
                            grad_y: torch.Tensor, taut: float
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected gradient ascent on the dual p: (p + taut grad u) / (1 + taut |grad u|)."""
    norm = 1.0 + taut * torch.sqrt(grad_x * grad_x + grad_y * grad_y)
    return (dual_x + taut * grad_x) / norm, (dual_y + taut * grad_y) / norm


# ---------------------------------------------------------------------------------------------
# Image operations with OpenCV's semantics.

def remap_cubic(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images sampled at (x + u, y + v) of the (B, 2, H, W) flow.

    Like cv2.remap(INTER_CUBIC) with OpenCV's default BORDER_CONSTANT 0: Keys' bicubic kernel
    (a = -0.75) at the exact fractional position; each of the 16 taps outside the image reads 0.
    """
    batch, channels, height, width = images.shape
    device = images.device
    # Beyond 2 pixels outside every tap is outside (and reads 0): clamping changes nothing but
    # keeps the integer parts small; NaN positions are sent outside too.
    x = torch.arange(width, dtype=torch.float32, device=device) + flow[:, 0]
    y = torch.arange(height, dtype=torch.float32, device=device)[:, None] + flow[:, 1]
    x = torch.nan_to_num(x, nan=-3.0).clamp(-3.0, width + 2.0)
    y = torch.nan_to_num(y, nan=-3.0).clamp(-3.0, height + 2.0)
    x_floor, y_floor = x.floor(), y.floor()
    x_weights, y_weights = _cubic_weights(x - x_floor), _cubic_weights(y - y_floor)
    # A 1-pixel zero frame: every tap index clamped to [-1, size] then reads 0 when outside.
    padded = F.pad(images, (1, 1, 1, 1)).reshape(batch, channels, -1)
    x_index, y_index = x_floor.long(), y_floor.long()
    columns = [(x_index + k).clamp(-1, width) + 1 for k in (-1, 0, 1, 2)]
    rows = [((y_index + k).clamp(-1, height) + 1) * (width + 2) for k in (-1, 0, 1, 2)]
    result = None
    for row, row_weight in zip(rows, y_weights):
        row_sum = None
        for column, column_weight in zip(columns, x_weights):
            index = (row + column).view(batch, 1, -1).expand(batch, channels, -1)
            tap = padded.gather(2, index).view(batch, channels, height, width)
            term = tap * column_weight[:, None]
            row_sum = term if row_sum is None else row_sum + term
        term = row_sum * row_weight[:, None]
        result = term if result is None else result + term
    return result


def _cubic_weights(fraction: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """OpenCV's interpolateCubic: the 4 tap weights at offsets -1, 0, 1, 2 for ``fraction``."""
    a = _CUBIC_A
    after = fraction + 1.0
    w0 = ((a * after - 5.0 * a) * after + 8.0 * a) * after - 4.0 * a
    w1 = ((a + 2.0) * fraction - (a + 3.0)) * fraction * fraction + 1.0
    before = 1.0 - fraction
    w2 = ((a + 2.0) * before - (a + 3.0)) * before * before + 1.0
    return w0, w1, w2, 1.0 - w0 - w1 - w2


def median_blur(images: torch.Tensor, size: int) -> torch.Tensor:
    """(..., H, W) float images -> their size x size median, border replicated (cv2.medianBlur).

    Sorts each column of ``size`` pixels once (shared by the ``size`` windows that contain it),
    then runs a min/max selection network on the sorted columns of each window: elementwise
    tensor operations only (9 + 146 comparisons for 5x5), no gathering of windows.
    """
    height, width = images.shape[-2:]
    radius = size // 2
    flat = images.reshape(-1, 1, height, width)
    padded = F.pad(flat, (radius, radius, radius, radius), mode="replicate")[:, 0]
    column = [padded[:, row:row + height] for row in range(size)]  # (N, H, W + 2 radius) each
    ranks = _run_network(*_selection_network(size, sorted_columns=False), column)
    # Input size * k + i of a window: the i-th smallest of its k-th column.
    window = [rank[..., k:k + width] for k in range(size) for rank in ranks]
    (median,) = _run_network(*_selection_network(size, sorted_columns=True), window)
    return median.reshape(images.shape)


_Comparator = tuple[int, int, int, int]  # (min output or -1, max output or -1, input, input)


def _run_network(network: tuple[_Comparator, ...], outputs: tuple[int, ...],
                 inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Apply a min/max network to tensors; values are numbered inputs first, then outputs.

    An intermediate value's tensor is reused for a later output after its last use: no fresh
    memory per comparison (on the CPU fresh memory costs page faults, 3x the comparison).
    """
    last_use = {number: index for index, (*_, first, second) in enumerate(network)
                for number in (first, second)}
    values = dict(enumerate(inputs))
    spare: list[torch.Tensor] = []
    for index, (low, high, first, second) in enumerate(network):
        if low >= 0:
            values[low] = torch.minimum(values[first], values[second],
                                        out=spare.pop() if spare else None)
        if high >= 0:
            values[high] = torch.maximum(values[first], values[second],
                                         out=spare.pop() if spare else None)
        for number in (first, second):
            if last_use[number] == index and number >= len(inputs) and number not in outputs:
                spare.append(values.pop(number))
    return [values[number] for number in outputs]


@functools.cache
def _selection_network(size: int, sorted_columns: bool
                       ) -> tuple[tuple[_Comparator, ...], tuple[int, ...]]:
    """A min/max network that sorts ``size`` values or, with ``sorted_columns``, selects the
    median of a size x size window given as its ``size`` sorted columns.

    Batcher's odd-even merge sort on a power of two of wires (the extra ones hold +infinity),
    keeping only the comparators that swap for some allowed input (found on every allowed 0-1
    input: by the 0-1 principle that decides for all inputs) and that lead to a wanted output.
    Returns the comparators and the value numbers of the outputs (sorted values, or the median).
    """
    count = size * size if sorted_columns else size
    if sorted_columns:  # every column: some zeros on top, ones below
        zeros = np.array(list(itertools.product(range(size + 1), repeat=size))).T
        bits = (np.arange(size)[None, :, None] >= zeros[:, None, :]).reshape(count, -1)
    else:
        bits = (np.arange(2 ** count)[None, :] >> np.arange(count)[:, None]) & 1 == 1
    wires = 1 << (count - 1).bit_length()
    held: list[int | None] = [*range(count), *[None] * (wires - count)]  # None: +infinity
    known = {number: bits[number] for number in range(count)}  # value -> its 0-1 outputs
    network = []
    for top, bottom in _batcher_comparators(wires):
        first, second = held[top], held[bottom]
        if second is None:
            continue  # min(x, +inf) is x: nothing moves
        if first is None or not (known[second] & ~known[first]).any():
            held[top], held[bottom] = second, first  # always in reverse order: a relabelling
            continue
        if not (known[first] & ~known[second]).any():
            continue  # always in order
        low, high = len(known), len(known) + 1
        known[low], known[high] = known[first] & known[second], known[first] | known[second]
        network.append((low, high, first, second))
        held[top], held[bottom] = low, high
    outputs = (held[count // 2],) if sorted_columns else tuple(held[:count])
    ones = bits.sum(axis=0)
    for position, number in enumerate(outputs):  # the rank-th smallest is 1 iff enough ones
        rank = count // 2 if sorted_columns else position
        assert (known[number] == (ones >= count - rank)).all()
    needed, kept = set(outputs), []
    for low, high, first, second in reversed(network):
        if low in needed or high in needed:
            kept.append((low if low in needed else -1, high if high in needed else -1,
                         first, second))
            needed |= {first, second}
    return tuple(reversed(kept)), outputs


def _batcher_comparators(wires: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort for a power of two of wires (Knuth 5.3.4, algorithm M)."""
    comparators = []
    block = 1
    while block < wires:
        step = block
        while step >= 1:
            for start in range(step % block, wires - step, 2 * step):
                for offset in range(min(step, wires - start - step)):
                    if (start + offset) // (2 * block) == (start + offset + step) // (2 * block):
                        comparators.append((start + offset, start + offset + step))
            step //= 2
        block *= 2
    return comparators
