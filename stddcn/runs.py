"""A run folder's life: a fresh start or an exact resume (never an overwrite), a checkpoint
after every epoch, and the random generators that make a resume exact."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stddcn import checkpoint, distributed
from stddcn.config import TrainConfig
from stddcn.config_files import differences
from stddcn.distributed import Context
from stddcn.errors import SettingsError

#: settings a resumed run may change: they do not change what is computed
RESUMABLE_CHANGES = ("epochs", "data.workers", "device", "log_every")


def start_or_resume(run: Path, config: TrainConfig, resolved: TrainConfig,
                    resume: bool) -> dict[str, Any] | None:
    """The checkpoint to resume from (None: a fresh start); refuses to overwrite a run.

    ``config`` is the run's settings as given, ``resolved`` with its open settings filled in;
    a resumed run must have the stored settings but for :data:`RESUMABLE_CHANGES`.
    """
    last = run / checkpoint.LAST
    if not resume:
        if last.exists() or (run / "config.yaml").exists():
            raise SettingsError(f"{run} already holds a run; pass --resume to continue it, "
                                "or choose another --out")
        return None
    if not last.exists():
        return None  # interrupted before its first checkpoint: start afresh
    state = checkpoint.load(last)
    stored = checkpoint.config_of(state)
    if config.optim.lr_steps is None:  # decay epochs were derived from the first --epochs
        resolved = dataclasses.replace(resolved, optim=dataclasses.replace(
            resolved.optim, lr_steps=stored.optim.lr_steps))
    changed = differences(stored, resolved, ignore=RESUMABLE_CHANGES)
    if changed:
        raise SettingsError(f"{run}: --resume with other settings than the run's: "
                            f"{'; '.join(changed)}; use the run's settings (see "
                            f"{run / 'config.yaml'}) or another --out")
    return state


def save_epoch(run: Path, config: TrainConfig, class_names: list[str], model: nn.Module,
               optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, epoch: int,
               step: int, best: dict[str, Any], values: dict[str, Any], context: Context,
               improved: bool) -> None:
    """last.pt after every epoch (and best.pt when validation improved), by rank 0, with
    every process's random generators."""
    rng = distributed.gather_objects(context, checkpoint.rng_state())
    if context.is_main:
        state = checkpoint.make_state(config, class_names, model,
                                      optimizer=optimizer.state_dict(),
                                      scaler=scaler.state_dict(), rng=rng, epoch=epoch,
                                      step=step, best=best, metrics=values)
        checkpoint.save(run / checkpoint.LAST, state)
        if improved:
            checkpoint.save(run / checkpoint.BEST, state)
    distributed.barrier(context)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def restore_rng(states: list[dict[str, Any]], context: Context) -> None:
    """This process's generators as saved; a run resumed on another number of processes
    re-seeds instead (its data order stays exact; dropout draws differ)."""
    if len(states) == context.world_size:
        checkpoint.set_rng_state(states[context.rank])
    else:
        seed_everything(1_000_003 * len(states) + context.rank)
