"""The optimiser and the learning-rate schedule (torch.optim.lr_scheduler's).

The rate is a function of the step alone. A checkpoint saves the scheduler's state_dict, so a
resume continues it as it was; a checkpoint without one (written before) resumes by stepping a
fresh scheduler to its step, which gives the same rates.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import (CosineAnnealingLR, LinearLR, LRScheduler, MultiStepLR,
                                      SequentialLR)

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


def warmup_steps(config: OptimConfig, steps_per_epoch: int) -> int:
    """Steps of the linear warm-up: those whose epoch (``step / steps_per_epoch``, fractional)
    is below ``warmup_epochs``."""
    if config.warmup_epochs <= 0:
        return 0
    steps = math.ceil(config.warmup_epochs * steps_per_epoch)
    while steps > 0 and not (steps - 1) / steps_per_epoch < config.warmup_epochs:
        steps -= 1  # float rounding: 0.1 * 30 is 3.0000000000000004, three steps, not four
    return steps


def create_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig,
                     steps_per_epoch: int, epochs: int) -> LRScheduler:
    """torch's schedulers, stepped once per optimisation step, giving the rate of every step.

    A linear warm-up (LinearLR) over the first ``warmup_steps`` steps, from ``lr / n`` up to
    ``lr`` at its last step n (step ``s`` of it: ``lr * (s + 1) / n``), then either the step
    schedule (MultiStepLR: times ``lr_decay`` from each epoch of ``lr_steps``, counted from the
    start of training, so a decay epoch inside the warm-up applies at its end) or a cosine
    (CosineAnnealingLR) from ``lr`` after the warm-up to 0 at the end of ``epochs``; the two
    chained by SequentialLR. These are the rates of the formula flowkit computed by hand
    before, except where the warm-up ends inside a step (``warmup_epochs * steps_per_epoch``
    not whole): that formula took its last warm-up steps above ``lr`` (up to twice it).

    The optimiser's rates start afresh from ``lr`` (a resumed optimiser holds its last rate);
    :func:`restore_scheduler` then puts the scheduler where the run was.
    """
    for group in optimizer.param_groups:
        group["lr"] = config.lr
        group.pop("initial_lr", None)  # the schedulers' base rate: lr, not a resumed rate
    warmup = warmup_steps(config, steps_per_epoch)
    if config.schedule == "cosine":
        main: LRScheduler = CosineAnnealingLR(optimizer, T_max=max(epochs * steps_per_epoch
                                                                   - warmup, 1))
    else:  # MultiStepLR counts from the step SequentialLR hands over at, the warm-up's end
        main = MultiStepLR(optimizer, [epoch * steps_per_epoch - warmup
                                       for epoch in config.lr_steps or ()], config.lr_decay)
    if not warmup:
        return main
    ramp = LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0,
                    total_iters=max(warmup - 1, 1))
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def schedule_state(scheduler: LRScheduler, steps_per_epoch: int, epochs: int
                   ) -> dict[str, Any]:
    """What a checkpoint keeps of the schedule: the scheduler's state_dict and the shape of
    training it was made for (a resume with more --epochs makes another schedule)."""
    return {"steps_per_epoch": steps_per_epoch, "epochs": epochs,
            "scheduler": scheduler.state_dict()}


def restore_scheduler(scheduler: LRScheduler, saved: dict[str, Any] | None, step: int,
                      steps_per_epoch: int, epochs: int) -> None:
    """Put a fresh ``scheduler`` (:func:`create_scheduler`) where a run stopped after ``step``
    steps: from the checkpoint's state when it was made for the same steps per epoch and
    epochs, else (checkpoints from before the schedule was saved, a run resumed with more
    --epochs) by stepping it ``step`` times, which gives the same rates: the schedule is a
    function of the step."""
    if (saved is not None and saved.get("steps_per_epoch") == steps_per_epoch
            and saved.get("epochs") == epochs):
        scheduler.load_state_dict(saved["scheduler"])
        for group, lr in zip(scheduler.optimizer.param_groups, scheduler.get_last_lr()):
            group["lr"] = lr
        return
    with warnings.catch_warnings():  # stepped without optimizer steps, on purpose
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(step):
            scheduler.step()
