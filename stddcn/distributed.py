"""Training on several processes with torch.distributed (DDP), launched by torchrun.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them the run is one process and nothing
here communicates. GPUs use nccl, one process per GPU (cuda:LOCAL_RANK); CPUs use gloo.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn

from stddcn.errors import SettingsError



@dataclass(frozen=True)
class Context:
    """This process's place in the run.

    Attributes:
        rank: 0 .. world_size - 1; rank 0 logs and writes checkpoints.
        world_size: processes in the run (1 without torchrun).
        local_rank: rank on this machine, which picks the GPU.
        device: where this process computes, e.g. "cuda:1" or "cpu".
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def default_device() -> str:
    """cuda when a GPU is visible, else cpu."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def start(device: str | None) -> Context:
    """Join the process group torchrun describes (if any) and pick this process's device.

    ``device`` "cuda" becomes cuda:LOCAL_RANK under torchrun; an explicit "cuda:N" is kept
    for one process only.
    """
    device = device or default_device()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(f"--device {device}: no CUDA GPU is visible; use --device cpu")
        if world_size > 1:
            if device != "cuda":
                raise SettingsError(f"--device {device} under torchrun: give --device cuda, each "
                                  "process takes the GPU of its LOCAL_RANK")
            device = f"cuda:{local_rank}"
        elif device == "cuda":  # set_device needs an index
            device = f"cuda:{torch.cuda.current_device()}"
        torch.cuda.set_device(torch.device(device))
    elif device != "cpu":
        raise SettingsError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return Context(rank, world_size, local_rank, device)


def stop(context: Context) -> None:
    """Leave the process group (after the last collective)."""
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: Context) -> None:
    if context.distributed:
        dist.barrier()


def broadcast_object(context: Context, value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not context.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(context: Context, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not context.distributed:
        return [value]
    out: list[Any] = [None] * context.world_size
    dist.all_gather_object(out, value)
    return out


def sum_across(context: Context, values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of ``values`` over the ranks (a copy)."""
    values = values.detach().clone()
    if context.distributed:
        dist.all_reduce(values)
    return values


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose batch statistics span every process, on any device.

    torch's own SyncBatchNorm runs on GPUs only; this one reduces the sums with autograd-aware
    all_reduce, so two CPU processes with half a batch each compute what one process computes
    with the whole batch (forward and gradients). Outside a process group it is BatchNorm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = [0] + list(range(2, x.ndim))
        shape = [1, -1] + [1] * (x.ndim - 2)
        values = x.float()
        count = torch.tensor([values.numel() / values.shape[1]], device=x.device)
        sums = dist_fn.all_reduce(torch.cat([count, values.sum(dims)]))
        total = sums[0]
        mean = sums[1:] / total
        centred = values - mean.reshape(shape)  # two passes: no cancellation in E[x²] - E[x]²
        var = dist_fn.all_reduce((centred ** 2).sum(dims)) / total
        out = centred * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats:
            with torch.no_grad():
                momentum = 0.1 if self.momentum is None else self.momentum
                unbiased = var * total / (total - 1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.detach())
                self.num_batches_tracked.add_(1)
        return out.to(x.dtype)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.ndim < 2:
            raise ValueError(f"expected at least 2D input, got {x.ndim}D")


def convert_sync_batchnorm(model: nn.Module, device: str) -> nn.Module:
    """Every BatchNorm of ``model`` synchronised across processes: torch's SyncBatchNorm on
    CUDA, :class:`SyncBatchNorm` on other devices. Weights and statistics are kept."""
    if device.startswith("cuda"):
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _replace_batchnorm(model)


def _replace_batchnorm(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module,
                                                                             SyncBatchNorm):
        synced = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        synced.load_state_dict(module.state_dict())
        synced.train(module.training)
        for name in ("weight", "bias"):
            parameter = getattr(module, name, None)
            if parameter is not None:
                getattr(synced, name).requires_grad_(parameter.requires_grad)
        return synced
    for name, child in module.named_children():
        module.add_module(name, _replace_batchnorm(child))
    return module
