"""A run folder's life: locked by one run at a time, a fresh start or an exact resume (never an
overwrite), checkpoints written in an order that a kill at any point cannot make disagree, and
the random generators that make a resume exact.

The save sequence at the end of an epoch is: the epoch's log line, best.pt (when validation
improved), last.pt. A run killed anywhere in it resumes from last.pt, the previous epoch; the
resume drops the log lines after last.pt's step and recomputes that epoch exactly. A best.pt
newer than last.pt (a kill between the two) is a real, validated model, so the resumed run
keeps it as its best and the three agree again (:func:`start_or_resume`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import flowkit
from flowkit.errors import LockError
from stddcn import checkpoint, distributed
from stddcn.config import TrainConfig
from stddcn.config_files import differences, load_yaml
from stddcn.distributed import Context
from stddcn.errors import CheckpointError, SettingsError
from stddcn.runlog import trim_log

#: settings a resumed run may change: they do not change what is computed (``out``: a run
#: folder may be moved or copied and resumed where it is now)
RESUMABLE_CHANGES = ("out", "epochs", "data.workers", "device", "log_every")
CONFIG = "config.yaml"


@contextlib.contextmanager
def locked(run: Path, context: Context) -> Iterator[None]:
    """Hold ``run`` for this run alone (rank 0 takes the lock, every rank learns the outcome);
    a second run or resume into it is a LockError naming the holder. A folder made here and
    left holding nothing but the lock (a run refused before it started) is removed again."""
    run = Path(run)
    created = not run.exists()
    lock = flowkit.FolderLock(run)
    with contextlib.ExitStack() as held:
        refused = None
        if context.is_main:
            run.mkdir(parents=True, exist_ok=True)
            held.callback(_remove_if_unused, run, lock.path, created)
            try:
                held.enter_context(lock)
            except LockError as exc:
                refused = str(exc)
        refused = distributed.broadcast_object(context, refused)
        if refused:
            raise LockError(refused)
        yield


def _remove_if_unused(run: Path, lock_file: Path, created: bool) -> None:
    """Remove a run folder made by this run that holds nothing but its lock file."""
    if created and [p.name for p in run.iterdir()] == [lock_file.name]:
        lock_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run.rmdir()


def start_or_resume(run: Path, config: TrainConfig, resolved: TrainConfig,
                    resume: bool) -> dict[str, Any] | None:
    """The checkpoint to resume from (None: a fresh start); refuses to overwrite a run.

    ``config`` is the run's settings as given, ``resolved`` with its open settings filled in;
    a resumed run must have the stored settings but for :data:`RESUMABLE_CHANGES`. Call it
    holding the run's lock: a resume removes what killed writers left (temporary files, log
    lines after the checkpoint) and repairs best.pt's record (see the module).
    """
    last = run / checkpoint.LAST
    if not resume:
        if last.exists() or (run / CONFIG).exists():
            raise SettingsError(f"{run} already holds a run; pass --resume to continue it, "
                                "or choose another --out")
        return None
    checkpoint.remove_partials(run)
    if not last.exists():  # stopped before its first checkpoint: start afresh, same settings
        if (run / CONFIG).exists():
            _check_settings(run, load_yaml(run / CONFIG, stored=True), config, resolved)
        trim_log(run, step=0, epoch=0)
        return None
    state = checkpoint.load(last)
    _check_settings(run, checkpoint.config_of(state), config, resolved)
    trim_log(run, step=state["step"], epoch=state["epoch"])
    state["best"] = _reconciled_best(run, state)
    return state


def _check_settings(run: Path, stored: TrainConfig, config: TrainConfig,
                    resolved: TrainConfig) -> None:
    if config.optim.lr_steps is None:  # decay epochs were derived from the first --epochs
        resolved = dataclasses.replace(resolved, optim=dataclasses.replace(
            resolved.optim, lr_steps=stored.optim.lr_steps))
    changed = differences(stored, resolved, ignore=RESUMABLE_CHANGES)
    if changed:
        raise SettingsError(f"{run}: --resume with other settings than the run's: "
                            f"{'; '.join(changed)}; use the run's settings (see "
                            f"{run / CONFIG}) or another --out")


def _reconciled_best(run: Path, state: dict[str, Any]) -> dict[str, Any]:
    """The best result a resumed run goes on from: last.pt's, or that of a best.pt written
    after it (see the module)."""
    best = state["best"]
    path = run / checkpoint.BEST
    if not path.exists():
        return best
    try:
        stored = checkpoint.load(path)
    except CheckpointError as exc:
        tqdm.write(f"warning: {exc}; it is rewritten when validation next improves")
        return {"top1": None, "epoch": None}
    epoch, top1 = stored["best"]["epoch"], stored["best"]["top1"]
    if epoch is not None and epoch > state["epoch"]:
        return {"top1": top1, "epoch": epoch}
    return best


def save_epoch(run: Path, config: TrainConfig, class_names: list[str], model: nn.Module,
               optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               lr_schedule: dict[str, Any], epoch: int, step: int, best: dict[str, Any],
               values: dict[str, Any], context: Context, improved: bool) -> None:
    """best.pt when validation improved, then last.pt, by rank 0, with every process's random
    generators (the order is the module's) and the learning-rate schedule's state
    (stddcn.optim.schedule_state). Every process calls it."""
    files = (checkpoint.BEST, checkpoint.LAST) if improved else (checkpoint.LAST,)
    _save(run, files, context, checkpoint.rng_state(), config, class_names, model, optimizer,
          scaler, lr_schedule=lr_schedule, epoch=epoch, step=step, best=best, metrics=values)


def save_within_epoch(run: Path, config: TrainConfig, class_names: list[str],
                      model: nn.Module, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler, lr_schedule: dict[str, Any], epoch: int,
                      step: int, batches: int,
                      totals: torch.Tensor, rng: dict[str, Any], best: dict[str, Any],
                      context: Context) -> None:
    """last.pt in the middle of epoch ``epoch + 1`` (``batches`` of it done; the generators
    ``rng`` as they were after the last of them), so that a resume goes on from the next batch.
    Every process calls it."""
    _save(run, (checkpoint.LAST,), context, rng, config, class_names, model, optimizer, scaler,
          lr_schedule=lr_schedule, epoch=epoch, step=step, best=best, metrics={},
          within_epoch={"batches": batches, "totals": totals.tolist()})


def _save(run: Path, files: tuple[str, ...], context: Context, rng: dict[str, Any],
          config: TrainConfig, class_names: list[str], model: nn.Module,
          optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
          **progress: Any) -> None:
    """One checkpoint with every process's ``rng`` and ``progress``, written by rank 0 to
    each of ``files`` in turn."""
    states = distributed.gather_objects(context, rng)
    if context.is_main:
        state = checkpoint.make_state(config, class_names, model,
                                      optimizer=optimizer.state_dict(),
                                      scaler=scaler.state_dict(), rng=states, **progress)
        for name in files:
            checkpoint.save(run / name, state)
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
