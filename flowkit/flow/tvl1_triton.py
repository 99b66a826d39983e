"""tvl1-torch's iterations as fused Triton kernels (TVL1TorchConfig.kernels = "triton").

The eager inner iteration is ~43 PyTorch kernels reading and writing 162 fp32 planes a pixel;
here it is two kernels, a primal one (estimateV, the divergence of p, estimateU and each
block's share of the squared change) and a dual one (the forward gradient of u and the
projection of p), plus a small reduction: about 22 planes a pixel and 4 launches. The 5x5
median filter is one kernel (ranking the values of each window) instead of ~166. Warping stays eager (once
per warp). Pairs that stopped are frozen by their mask, so shapes never change.

Every step does what the eager step does, operation by operation, in float32, with IEEE
division and square root (``div_rn``, ``sqrt_rn``) and no fused multiply-add
(``enable_fp_fusion=False``): the flows equal eager's up to the order of the float64 sum of
the change (checked against eager on the CPU by Triton's interpreter, TRITON_INTERPRET=1,
in tests/test_tvl1_triton.py).
"""

from __future__ import annotations

import os

import torch

from flowkit.errors import ConfigError

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only PyTorch ships without Triton; eager runs everywhere
    triton = None

BLOCK = 256          # pixels a program handles
MEDIAN_BLOCK = 16    # pixels a median program handles (each compares 32 x 32 values)


def available(device: torch.device) -> bool:
    """Whether the kernels can run on ``device``: Triton is installed and the device is a
    GPU, or the tensors are on the CPU under Triton's interpreter (TRITON_INTERPRET=1)."""
    if triton is None:
        return False
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


def check_available(device: torch.device) -> None:
    """Raise ConfigError when the kernels cannot run on ``device``."""
    if not available(device):
        reason = ("Triton is not installed" if triton is None
                  else f"they run on CUDA devices, not {device.type}")
        raise ConfigError(f"tvl1-torch kernels 'triton' cannot run here ({reason}); "
                          "use kernels 'auto' (the default) or 'eager'")


def _launch_options() -> dict[str, bool]:
    """No fused multiply-add on a GPU, as eager PyTorch rounds each operation (the
    interpreter computes with numpy and takes no compiler options)."""
    return {} if os.environ.get("TRITON_INTERPRET") == "1" else {"enable_fp_fusion": False}


def inner_step(flow: torch.Tensor, dual_x: torch.Tensor, dual_y: torch.Tensor, terms,
               active: torch.Tensor | None, l_t: float, theta: float, taut: float,
               threshold: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """flowkit.flow.tvl1_torch._inner_step in two kernels, updating flow and duals in place.

    ``active`` is the (B, 1, 1, 1) bool mask of the pairs still iterating (None: all).
    """
    batch, channels, height, width = flow.shape
    pixels = height * width
    if active is None:
        active = torch.ones((batch, 1, 1, 1), dtype=torch.bool, device=flow.device)
    blocks = triton.cdiv(pixels, BLOCK)
    partial = torch.empty((batch, blocks), dtype=torch.float64, device=flow.device)
    _primal_kernel[(batch, blocks)](
        flow, dual_x, dual_y, terms.image_grad, terms.rho_c, terms.grad, terms.lt_grad, active,
        partial, height, width, l_t, theta, channels, BLOCK, **_launch_options())
    _dual_kernel[(batch * channels, blocks)](
        flow, dual_x, dual_y, active, height, width, taut, channels, BLOCK, **_launch_options())
    still_active = (partial.sum(dim=1) > threshold).view(-1, 1, 1, 1)
    return flow, dual_x, dual_y, active & still_active


def median_step(flow: torch.Tensor, active: torch.Tensor | None, size: int) -> torch.Tensor:
    """flowkit.flow.tvl1_torch._median_step in one kernel: u1 and u2 of the active pairs
    median-filtered (size x size, border replicated), u3 copied; a new tensor."""
    batch, channels, height, width = flow.shape
    if active is None:
        active = torch.ones((batch, 1, 1, 1), dtype=torch.bool, device=flow.device)
    out = torch.empty_like(flow)
    grid = (batch * channels, triton.cdiv(height * width, MEDIAN_BLOCK))
    _median_kernel[grid](flow, out, active, height, width, channels, size, MEDIAN_BLOCK)
    return out


if triton is not None:

    @triton.jit
    def _block(height, width, BLOCK_SIZE: tl.constexpr):
        """This program's pixels of a plane (axis 1 of the grid): offsets, in-plane mask, x, y."""
        offsets = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        return offsets, offsets < height * width, offsets % width, offsets // width

    @triton.jit
    def _divergence(dual_x, dual_y, plane, offsets, x, y, inside, width):
        """Backward differences of the duals of one plane, zero outside the top / left."""
        px = tl.load(dual_x + plane + offsets, mask=inside, other=0.0)
        px_left = tl.load(dual_x + plane + offsets - 1, mask=inside & (x > 0), other=0.0)
        py = tl.load(dual_y + plane + offsets, mask=inside, other=0.0)
        py_up = tl.load(dual_y + plane + offsets - width, mask=inside & (y > 0), other=0.0)
        return tl.where(x > 0, px - px_left, px) + tl.where(y > 0, py - py_up, py)

    @triton.jit
    def _primal_kernel(flow, dual_x, dual_y, image_grad, rho_c, grad, lt_grad, active, partial,
                       height, width, l_t, theta, CHANNELS: tl.constexpr,
                       BLOCK_SIZE: tl.constexpr):
        """estimateV, divergence, estimateU for one block of one pair; u in place, the
        block's float64 sum of the squared change of u in partial[pair, block]."""
        pair = tl.program_id(0)
        block = tl.program_id(1)
        pixels = height * width
        offsets, inside, x, y = _block(height, width, BLOCK_SIZE)
        running = tl.load(active + pair) != 0
        scalar = pair * pixels
        planes = pair * CHANNELS * pixels
        u1 = tl.load(flow + planes + offsets, mask=inside, other=0.0)
        u2 = tl.load(flow + planes + pixels + offsets, mask=inside, other=0.0)
        ix = tl.load(image_grad + planes + offsets, mask=inside, other=0.0)
        iy = tl.load(image_grad + planes + pixels + offsets, mask=inside, other=0.0)
        g = tl.load(grad + scalar + offsets, mask=inside, other=0.0)
        lt = tl.load(lt_grad + scalar + offsets, mask=inside, other=0.0)
        rho = tl.load(rho_c + scalar + offsets, mask=inside, other=0.0) + (ix * u1 + iy * u2)
        if CHANNELS == 3:
            u3 = tl.load(flow + planes + 2 * pixels + offsets, mask=inside, other=0.0)
            gamma = tl.load(image_grad + planes + 2 * pixels)  # the constant third plane
            rho = rho + gamma * u3
        step = tl.where(g > 1.1920928955078125e-07, tl.math.div_rn(rho, -g), 0.0)
        step = tl.where(rho > lt, -l_t, step)
        step = tl.where(rho < -lt, l_t, step)
        new1 = (u1 + step * ix) + theta * _divergence(dual_x, dual_y, planes, offsets, x, y,
                                                      inside, width)
        new2 = (u2 + step * iy) + theta * _divergence(dual_x, dual_y, planes + pixels, offsets,
                                                      x, y, inside, width)
        change1 = new1 - u1
        change2 = new2 - u2
        total = (change1 * change1).to(tl.float64) + (change2 * change2).to(tl.float64)
        tl.store(flow + planes + offsets, tl.where(running, new1, u1), mask=inside)
        tl.store(flow + planes + pixels + offsets, tl.where(running, new2, u2), mask=inside)
        if CHANNELS == 3:
            new3 = (u3 + step * gamma) + theta * _divergence(
                dual_x, dual_y, planes + 2 * pixels, offsets, x, y, inside, width)
            change3 = new3 - u3
            total = total + (change3 * change3).to(tl.float64)
            tl.store(flow + planes + 2 * pixels + offsets, tl.where(running, new3, u3),
                     mask=inside)
        total = tl.where(inside, total, 0.0)
        tl.store(partial + pair * tl.num_programs(1) + block, tl.sum(total, axis=0))

    @triton.jit
    def _dual_kernel(flow, dual_x, dual_y, active, height, width, taut,
                     CHANNELS: tl.constexpr, BLOCK_SIZE: tl.constexpr):
        """Forward gradient of one plane of u and the projected step of its duals, in place."""
        plane_index = tl.program_id(0)
        pair = plane_index // CHANNELS
        pixels = height * width
        offsets, inside, x, y = _block(height, width, BLOCK_SIZE)
        running = tl.load(active + pair) != 0
        plane = plane_index * pixels
        u = tl.load(flow + plane + offsets, mask=inside, other=0.0)
        right = tl.load(flow + plane + offsets + 1, mask=inside & (x < width - 1), other=0.0)
        below = tl.load(flow + plane + offsets + width, mask=inside & (y < height - 1),
                        other=0.0)
        gx = tl.where(x < width - 1, right - u, 0.0)
        gy = tl.where(y < height - 1, below - u, 0.0)
        norm = 1.0 + taut * tl.sqrt_rn(gx * gx + gy * gy)
        px = tl.load(dual_x + plane + offsets, mask=inside, other=0.0)
        py = tl.load(dual_y + plane + offsets, mask=inside, other=0.0)
        new_x = tl.math.div_rn(px + taut * gx, norm)
        new_y = tl.math.div_rn(py + taut * gy, norm)
        tl.store(dual_x + plane + offsets, tl.where(running, new_x, px), mask=inside)
        tl.store(dual_y + plane + offsets, tl.where(running, new_y, py), mask=inside)

    @triton.jit
    def _median_kernel(flow, out, active, height, width, CHANNELS: tl.constexpr,
                       SIZE: tl.constexpr, BLOCK_SIZE: tl.constexpr):
        """SIZE x SIZE median of one block of one plane (u1, u2; u3 copied), border
        replicated: each window's values (at most 32) ranked against each other."""
        plane_index = tl.program_id(0)
        pair = plane_index // CHANNELS
        pixels = height * width
        offsets, inside, x, y = _block(height, width, BLOCK_SIZE)
        plane = plane_index * pixels
        centre = tl.load(flow + plane + offsets, mask=inside, other=0.0)
        tap = tl.arange(0, 32)
        in_window = tap < SIZE * SIZE
        row = tl.minimum(tl.maximum(y[:, None] + (tap // SIZE - SIZE // 2)[None, :], 0),
                         height - 1)
        column = tl.minimum(tl.maximum(x[:, None] + (tap % SIZE - SIZE // 2)[None, :], 0),
                            width - 1)
        window = tl.load(flow + plane + row * width + column,
                         mask=inside[:, None] & in_window[None, :], other=0.0)
        # The median is the value with at most SIZE^2 // 2 values below it and more than
        # that at or below it: count both for every value of the window at once.
        others = tl.where(in_window[None, None, :], window[:, None, :], float("nan"))
        below = tl.sum((others < window[:, :, None]).to(tl.int32), axis=2)
        at_most = tl.sum((others <= window[:, :, None]).to(tl.int32), axis=2)
        half = SIZE * SIZE // 2
        is_median = in_window[None, :] & (below <= half) & (at_most > half)
        median = tl.max(tl.where(is_median, window, float("-inf")), axis=1)
        filtered = (tl.load(active + pair) != 0) & (plane_index % CHANNELS < 2)
        tl.store(out + plane + offsets, tl.where(filtered, median, centre), mask=inside)
