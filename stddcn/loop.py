"""One network's training run: ``train_model(config)`` from scratch, or with ``resume=True``.

Both stddcn.train (a single model) and stddcn.fusion (each stream of a late fusion) run it, so
it sits below them. The order of `_train` is the order of a run: processes, classes, the run
folder (fresh or resumed), the model, the data, the optimiser, then the epochs, each followed
by validation and a checkpoint. Every epoch's data order and augmentations depend only on
(seed, epoch), and every random generator is saved with the checkpoint, so a resumed run
continues exactly as an uninterrupted one would have, from an epoch's end or, after SIGTERM
(stddcn.preemption), from the middle of one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from stddcn import checkpoint, data, distributed, runs
from stddcn.config import TrainConfig, resolve
from stddcn.config_files import save_yaml
from stddcn.distributed import Context
from stddcn.errors import Preempted, SettingsError, TrainingError
from stddcn.evaluate import predict
from stddcn.losses import Loss, create_loss
from stddcn.metrics import Accuracy
from stddcn.models import ActionModel, create_model, use_channels_last
from stddcn.optim import create_optimizer, create_scheduler, restore_scheduler, schedule_state
from stddcn.precision import autocast, check_precision, grad_scaler
from stddcn.preemption import Abandoned, StopRequests
from stddcn.runlog import RunLog


@dataclass
class TrainResult:
    """Where a run is and how it ended."""

    run: Path
    epochs: int
    best_top1: float | None
    last_val: Accuracy | None


def train_model(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train the single network ``config.model`` (not a late fusion) on ``config.data`` into
    the run folder ``config.out``; ``config`` has passed stddcn.config.check.

    Under torchrun every process calls this; rank 0 logs and writes checkpoints.

    Raises:
        SettingsError: bad splits or labels, a run folder that already holds a run (without
            ``resume``), or a resumed run whose settings differ.
        LockError: another run holds the run folder.
        Preempted: SIGTERM stopped the run after writing a checkpoint to resume from.
    """
    context = distributed.start(config.device)
    try:
        with runs.locked(Path(config.out), context):
            return _train(config, resume, context)
    finally:
        distributed.stop(context)


def _train(config: TrainConfig, resume: bool, context: Context) -> TrainResult:
    # -- the data says how many classes there are
    train_labels = data.read_labels(config.data.root, config.data.split, "train",
                                    config.model.num_classes)
    val_labels = (data.read_labels(config.data.root, config.data.val_split, "test",
                                   train_labels.num_classes) if config.data.val_split else None)
    resolved = resolve(config, train_labels.num_classes, context.device)
    check_precision(resolved.precision, context.device)
    run = Path(resolved.out)

    # -- a fresh run folder, or the state of the run being resumed
    state = runs.start_or_resume(run, config, resolved, resume)
    config = checkpoint.config_of(state) if state else resolved
    config = dataclasses.replace(config, **{k: getattr(resolved, k) for k in
                                            ("out", "epochs", "device", "log_every")},
                                 data=dataclasses.replace(config.data,
                                                          workers=resolved.data.workers))

    # -- the model: the same initial weights on every process (seeded), then DDP keeps them
    # equal; dropout draws differ per process (seed + rank)
    runs.seed_everything(config.seed)
    model = create_model(config.model)
    use_channels_last(model, bool(config.channels_last))
    if config.sync_bn and context.distributed:
        model = distributed.convert_sync_batchnorm(model, context.device)
    model.to(context.device)
    runs.seed_everything(config.seed + context.rank)
    teacher = _teacher(config, context) if config.teacher else None
    inputs = data.Inputs.of(model)  # what the model reads: validation and test
    train_inputs = inputs if teacher is None else inputs.with_modalities(teacher.modalities)

    # -- the data
    train_set = data.dataset(config.data, train_inputs, train_labels, train=True,
                             seed=config.seed)
    train_loader = data.loader(train_set, context, config.data.batch_size, config.data.workers,
                               train=True, seed=config.seed)
    val_loader = None
    if val_labels is not None:  # validation: the test protocol at the training segments
        protocol = data.Protocol(segments=config.data.segments, clips=1, crops=1)
        val_set = data.dataset(config.data, inputs, val_labels, train=False,
                               protocol=protocol, seed=config.seed)
        val_loader = data.loader(val_set, context, config.data.batch_size,
                                 config.data.workers, train=False)
        if context.is_main:
            _report_skipped(val_set, val_labels, "validation")

    # -- the data and the model fit together: now the run folder is taken
    if context.is_main:
        _report_skipped(train_set, train_labels, "training")
        run.mkdir(parents=True, exist_ok=True)
        save_yaml(config, run / "config.yaml")

    # -- the optimiser, the loss scaler (fp16 only), the loss
    optimizer = create_optimizer(model, config.optim)
    scaler = grad_scaler(config.precision, context.device)
    loss_fn = create_loss(config)

    # -- resume: weights, optimiser, scaler, random generators and counters as they were
    position = Position(epoch=0, step=0, batches=0, totals=torch.zeros(3, dtype=torch.float64),
                        rng={})
    best: dict[str, Any] = {"top1": None, "epoch": None}
    last_val = None
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        position.epoch, position.step, best = state["epoch"], state["step"], state["best"]
        within = state.get("within_epoch")
        if within:  # stopped in the middle of an epoch: go on from its next batch
            position.batches = within["batches"]
            position.totals = torch.tensor(within["totals"], dtype=torch.float64)
        runs.restore_rng(state["rng"], context)
    position.rng = checkpoint.rng_state()
    wrapped = model
    if context.distributed:
        device_ids = [torch.device(context.device).index] if context.device.startswith("cuda") \
            else None
        wrapped = DistributedDataParallel(model, device_ids=device_ids)
    log = RunLog(run, enabled=context.is_main, first_step=position.step)
    steps_per_epoch = len(train_loader)
    # the schedule of this run's epochs, where the checkpoint left it (after the optimiser's
    # state, whose rate it resets)
    scheduler = create_scheduler(optimizer, config.optim, steps_per_epoch, config.epochs)
    if state:
        restore_scheduler(scheduler, state.get("lr_schedule"), position.step, steps_per_epoch,
                          config.epochs)

    # -- the epochs; SIGTERM stops them at the next safe point, with a checkpoint
    try:
        with StopRequests(context) as stops:
            while position.epoch < config.epochs:
                try:
                    stats = train_one_epoch(wrapped, teacher, train_loader, train_inputs,
                                            optimizer, scheduler, scaler, loss_fn, config,
                                            context, position, steps_per_epoch, log, stops)
                    values: dict[str, Any] = dict(stats)
                    improved = False
                    if val_loader is not None:
                        with stops.abandonable():
                            last_val = predict(model, val_loader, inputs, context,
                                               config.precision).accuracy()
                        values.update({f"val_{k}": v for k, v in last_val.as_dict().items()})
                        if best["top1"] is None or last_val.top1 > best["top1"]:
                            best, improved = {"top1": last_val.top1,
                                              "epoch": position.epoch + 1}, True
                except Abandoned:
                    runs.save_within_epoch(run, config, train_labels.class_names, model,
                                           optimizer, scaler,
                                           schedule_state(scheduler, steps_per_epoch,
                                                          config.epochs), position.epoch,
                                           position.step, position.batches, position.totals,
                                           position.rng, best, context)
                    raise Preempted(f"stopped by SIGTERM in epoch {position.epoch + 1} after "
                                    f"{position.batches} of its {steps_per_epoch} steps; "
                                    f"{run / checkpoint.LAST} holds the run: continue it "
                                    "with --resume") from None
                epoch = position.epoch + 1
                log.write("epoch", epoch, position.step, **values)
                if context.is_main:
                    _print_epoch(epoch, config.epochs, stats, last_val)
                runs.save_epoch(run, config, train_labels.class_names, model, optimizer,
                                scaler, schedule_state(scheduler, steps_per_epoch,
                                                       config.epochs),
                                epoch, position.step, best, values, context,
                                improved=improved)
                position.next_epoch()
                if stops.stop_now() and position.epoch < config.epochs:
                    raise Preempted(f"stopped by SIGTERM after epoch {epoch}; "
                                    f"{run / checkpoint.LAST} holds the run: continue it "
                                    "with --resume")
    finally:
        log.close()
    return TrainResult(run, position.epoch, best["top1"], last_val)


@dataclass
class Position:
    """Where a run is as of its last committed step: what a checkpoint written now holds.

    Attributes:
        epoch: epochs finished (trained, validated, saved).
        step: optimiser steps taken.
        batches: batches of the epoch under way done.
        totals: this process's loss sum, correct and items over those batches.
        rng: the random generators as they were after the last step.
    """

    epoch: int
    step: int
    batches: int
    totals: torch.Tensor
    rng: dict[str, Any]

    def next_epoch(self) -> None:
        self.epoch, self.batches = self.epoch + 1, 0
        self.totals = torch.zeros(3, dtype=torch.float64)


def train_one_epoch(model: torch.nn.Module, teacher: ActionModel | None,
                    loader: torch.utils.data.DataLoader, inputs: data.Inputs,
                    optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                    loss_fn: Loss, config: TrainConfig, context: Context, position: Position,
                    steps_per_epoch: int, log: RunLog, stops: StopRequests) -> dict[str, float]:
    """The rest of epoch ``position.epoch + 1`` over this process's share of the training set
    (``teacher``, frozen, scoring each batch for a distillation loss), ``position`` updated
    after every step. Returns the epoch's figures over all processes (loss, accuracy, clips/s,
    share of time waiting for data).

    Raises:
        Abandoned: a stop was requested (SIGTERM); ``position`` is the last committed step.
        TrainingError: the loss became non-finite.
    """
    model.train()
    loader.sampler.set_epoch(position.epoch)
    loader.sampler.skip(position.batches * loader.batch_size)
    items_before = position.totals[2].item()
    waited = 0.0
    # the bar only on rank 0, and only on a terminal (None: tqdm's check); logs get the
    # epoch lines
    bar = tqdm(total=steps_per_epoch, initial=position.batches,
               desc=f"epoch {position.epoch + 1}/{config.epochs}", unit="step",
               disable=None if context.is_main else True, leave=False, dynamic_ncols=True)
    lr = optimizer.param_groups[0]["lr"]  # the rate of the next step: the scheduler's
    started = last = time.perf_counter()
    batches = iter(loader)
    while True:
        with stops.abandonable():  # nothing of the run's state changes in here
            batch = next(batches, None)
            if batch is None:
                break
            waited += time.perf_counter() - last  # host time blocked on the DataLoader
            tensors, labels = data.model_inputs(batch, inputs, context.device)
            lr = optimizer.param_groups[0]["lr"]
            with autocast(config.precision, context.device):
                output = model(tensors)
                with torch.no_grad():
                    taught = teacher(tensors) if teacher is not None else None
                loss = loss_fn(output, labels, taught)
            loss_value = float(loss.total.detach())
            if not math.isfinite(loss_value):
                raise TrainingError(_diverged(loss_value, position.step + 1, lr, batch,
                                              tensors))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss.total).backward()
            if config.optim.grad_clip is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        # -- the commit: the update and the counters, never abandoned half way
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()  # the rate of the next step
        correct = int((output.logits.detach().argmax(dim=1) == labels).sum())
        position.totals = position.totals + torch.tensor(
            [loss_value * len(labels), correct, len(labels)], dtype=torch.float64)
        position.step += 1
        position.batches += 1
        position.rng = checkpoint.rng_state()
        totals = position.totals
        elapsed = time.perf_counter() - started
        clips_per_s = (totals[2].item() - items_before) * context.world_size / elapsed
        bar.set_postfix(loss=f"{totals[0].item() / totals[2].item():.3f}",
                        acc=f"{totals[1].item() / totals[2].item():.3f}",
                        clips_s=f"{clips_per_s:.1f}")
        bar.update()
        if position.step % config.log_every == 0:
            log.write("step", position.epoch, position.step, loss=loss_value, lr=lr,
                      accuracy=correct / len(labels), clips_per_s=clips_per_s,
                      **{k: float(v) for k, v in loss.parts.items()})
        if stops.stop_now():
            raise Abandoned
        last = time.perf_counter()
    bar.close()
    elapsed = max(time.perf_counter() - started, 1e-9)
    totals = distributed.sum_across(context, position.totals)
    trained_here = distributed.sum_across(
        context, torch.tensor([position.totals[2].item() - items_before], dtype=torch.float64))
    items = max(totals[2].item(), 1.0)
    return {"loss": totals[0].item() / items, "accuracy": totals[1].item() / items,
            "clips_per_s": trained_here.item() / elapsed, "data_wait": waited / elapsed,
            "lr": lr}


def _diverged(loss: float, step: int, lr: float, batch: dict[str, Any],
              tensors: dict[str, torch.Tensor]) -> str:
    """Why training stops on a non-finite loss: the batch's videos, and whether its inputs
    were finite (damaged data) or not (the model diverged)."""
    videos = list(batch.get("video_id", []))
    bad_inputs = sorted({videos[i] for tensor in tensors.values()
                         for i in torch.nonzero(~torch.isfinite(tensor.float()).flatten(1)
                                                .all(dim=1)).flatten().tolist()
                         if i < len(videos)})
    shown = ", ".join(videos[:4]) + (f" and {len(videos) - 4} more" if len(videos) > 4 else "")
    if bad_inputs:
        return (f"the loss became {loss} at step {step}: the inputs of {', '.join(bad_inputs)} "
                "are not finite (NaN or infinity in the stored frames or flow); check the "
                "shards with flowkit verify, and re-extract those videos")
    return (f"the loss became {loss} at step {step} (learning rate {lr:.3g}) on a batch of "
            f"{shown}, whose inputs are all finite: the training diverged; lower --lr, or "
            "train in fp32 or bf16")


def _teacher(config: TrainConfig, context: Context) -> ActionModel:
    """The frozen teacher of a distilled student (D3D: a flow3d run): eval mode, no gradients,
    on the training device; its classes must be the student's."""
    path = checkpoint.find(config.teacher)
    teacher, teacher_config, _ = checkpoint.load_model(path, context.device)
    if teacher.layout != "clips" or teacher_config.model.num_classes != \
            config.model.num_classes:
        raise SettingsError(f"--teacher {path}: a {teacher_config.model.name} run with "
                            f"{teacher_config.model.num_classes} classes cannot teach a "
                            f"{config.model.name} model of {config.model.num_classes} classes; "
                            "give a flow3d run trained on the same classes")
    teacher.requires_grad_(False)
    return teacher


def _report_skipped(dataset: Any, labels: data.Labels, what: str) -> None:
    """Say how many split videos --skip-missing left out (none without it: they are errors)."""
    missing = len(labels.videos) - len(dataset)
    if missing:
        tqdm.write(f"{what} on {len(dataset)} videos: {missing} of the split are not in the "
                   "shards and were skipped")


def _print_epoch(epoch: int, epochs: int, stats: dict[str, float],
                 val: Accuracy | None) -> None:
    line = (f"epoch {epoch}/{epochs}: loss {stats['loss']:.4f}, train acc "
            f"{100 * stats['accuracy']:.1f}%, {stats['clips_per_s']:.1f} clips/s, "
            f"data wait {100 * stats['data_wait']:.0f}%")
    if val is not None:
        line += (f"; val top-1 {100 * val.top1:.1f}%, top-5 {100 * val.top5:.1f}%, "
                 f"mean class {100 * val.mean_class_accuracy:.1f}%")
    tqdm.write(line)
