"""tvl1-torch's Triton kernels (kernels="triton") against the eager steps they fuse.

On a machine without a GPU the kernels run on CPU tensors through Triton's interpreter
(TRITON_INTERPRET=1, set here before the kernels are defined); skipped where Triton is not
installed (CPU-only PyTorch has none, e.g. CI). To run them on the CPU:

    pip install triton   # in a separate environment, beside CPU torch
    TRITON_INTERPRET=1 python -m pytest -q tests/test_tvl1_triton.py
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # read when triton is imported
pytest.importorskip("triton")

from flowkit.flow import tvl1_triton  # noqa: E402
from flowkit.flow.tvl1_torch import (  # noqa: E402
    TVL1TorchConfig,
    _inner_step,
    _median_step,
    _multiscale_flow,
    _warp_terms,
    _WarpTerms,
    median_blur,
)

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# Few, small iterations: the interpreter runs every program in Python.
FEW = {"nscales": 2, "warps": 2, "outer_iterations": 2, "inner_iterations": 6,
       "epsilon": 0.05}


def frames() -> tuple[torch.Tensor, torch.Tensor]:
    """Three 24x30 grey pairs that stop at different iterations: two shifts and no motion."""
    generator = torch.Generator().manual_seed(0)
    first = torch.rand((3, 24, 30), generator=generator) * 255
    second = torch.stack((torch.roll(first[0], (1, 1), (0, 1)),
                          torch.roll(first[1], (0, -2), (0, 1)) + 3.0,
                          first[2]))
    return first.to(DEVICE), second.to(DEVICE)


@pytest.mark.parametrize("options", [{}, {"gamma": 0.5}, {"median_filtering": 3}])
def test_flow_equals_eager(options: dict) -> None:
    """Whole multiscale flow, pairs stopping at different steps: within float rounding of
    eager's (the kernels use IEEE sqrt, as CUDA does; PyTorch's CPU sqrt is 1 ulp off at
    times, which the iterations amplify).

    Measured in the interpreter: max difference 0.0007-0.002 px, mean 1e-5 px.
    """
    gray0, gray1 = frames()
    flows, counts = {}, {}
    for kernels in ("eager", "triton"):
        counts[kernels] = []
        with torch.inference_mode():
            flows[kernels] = _multiscale_flow(
                gray0, gray1, TVL1TorchConfig(kernels=kernels, **FEW, **options),
                counts[kernels])
    assert counts["triton"][-1].sum(dim=0).unique().numel() > 1  # pairs stop apart
    difference = (flows["eager"] - flows["triton"]).abs()
    assert difference.mean() < 1e-4
    assert difference.max() < 1e-2


def test_inner_step_equals_eager() -> None:
    """One inner iteration with a stopped pair: flow and mask equal eager's bit for bit, the
    duals within 1 ulp (the sqrt)."""
    generator = torch.Generator().manual_seed(2)
    flow, dual_x, dual_y = (torch.randn((3, 2, 24, 30), generator=generator) * scale
                            for scale in (1.0, 0.1, 0.1))
    warped = torch.randn((3, 3, 24, 30), generator=generator) * 20
    gray0 = torch.randn((3, 24, 30), generator=generator) * 50
    terms = _WarpTerms(*(t.to(DEVICE) for t in _warp_terms(gray0, warped, flow, 0.045, 0.0)))
    active = torch.tensor([True, False, True], device=DEVICE).view(-1, 1, 1, 1)
    state = [t.to(DEVICE) for t in (flow, dual_x, dual_y)]
    arguments = (terms, active, 0.045, 0.3, 0.25 / 0.3, 10.0)
    expected = _inner_step(*state, *arguments)
    got = tvl1_triton.inner_step(*(t.clone() for t in state), *arguments)
    assert torch.equal(got[0], expected[0])
    assert torch.equal(got[3], expected[3])
    for dual, reference in zip(got[1:3], expected[1:3]):
        torch.testing.assert_close(dual, reference, rtol=3e-7, atol=1e-7)
    assert torch.equal(got[1][1], state[1][1])  # the stopped pair is frozen


@pytest.mark.parametrize("size", [3, 5])
def test_median_step_equals_eager(size: int) -> None:
    """Median of u1, u2 of the active pairs, u3 copied: equal to the eager step (and so to
    cv2.medianBlur), borders included."""
    flow = torch.randn((2, 3, 9, 13), generator=torch.Generator().manual_seed(1)).to(DEVICE)
    active = torch.tensor([True, False], device=DEVICE).view(-1, 1, 1, 1)
    assert torch.equal(tvl1_triton.median_step(flow, active, size),
                       _median_step(flow, active, size))
    assert torch.equal(tvl1_triton.median_step(flow, None, size)[:, :2],
                       median_blur(flow[:, :2], size))
