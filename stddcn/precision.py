"""Mixed precision: autocast contexts and the fp16 loss scaler, from one precision name."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from stddcn.errors import SettingsError


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: str) -> None:
    """fp16 needs loss scaling and fast half kernels: CUDA only. bf16 runs anywhere."""
    if precision == "fp16" and not device.startswith("cuda"):
        raise SettingsError(f"--precision fp16 needs a CUDA device (got {device}); "
                          "use bf16 or fp32 on the CPU")


def autocast(precision: str, device: str) -> ContextManager:
    """Autocast to bf16 / fp16 on ``device``; fp32 does nothing. Convolutions and matrix
    products run in the low precision; losses and reductions stay fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: str) -> torch.amp.GradScaler:
    """Dynamic loss scaling for fp16 (gradients would underflow); a no-op otherwise."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def inference_precision(precision: str, device: str) -> str:
    """The precision to score with: a run's own, except that fp16 (CUDA only) becomes fp32 on
    other devices, so a run trained in fp16 can be tested anywhere."""
    return "fp32" if precision == "fp16" and not device.startswith("cuda") else precision
