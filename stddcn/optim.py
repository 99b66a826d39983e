"""The optimiser and the learning-rate schedule.

The schedule is a pure function of the step: nothing but the step counter needs saving to
resume it exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stddcn.config import OptimConfig


def create_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW over the trainable parameters.

    Weight decay applies to weight tensors with two or more dimensions (convolutions, linear
    layers); biases and normalisation parameters are not decayed, as is usual for ResNets.
    """
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim > 1 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


def learning_rate(config: OptimConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The learning rate of optimisation step ``step`` (0-based).

    Linear warm-up from 0 to ``lr`` over ``warmup_epochs``, then either the step schedule
    (times ``lr_decay`` at each epoch of ``lr_steps``) or a cosine from ``lr`` to 0 at the end.
    """
    epoch = step / steps_per_epoch  # fractional: warm-up and cosine move every step
    warmup = config.warmup_epochs
    if warmup > 0 and epoch < warmup:
        return config.lr * (step + 1) / (warmup * steps_per_epoch)
    if config.schedule == "cosine":
        span = max(epochs - warmup, 1e-12)
        progress = min(max((epoch - warmup) / span, 0.0), 1.0)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    passed = sum(1 for boundary in (config.lr_steps or ()) if step // steps_per_epoch >= boundary)
    return config.lr * config.lr_decay ** passed


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
