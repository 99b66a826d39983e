"""One network's training run: ``train_model(config)`` from scratch, or with ``resume=True``.

Both stddcn.train (a single model) and stddcn.fusion (each stream of a late fusion) run it, so
it sits below them. The order of `_train` is the order of a run: processes, classes, the run
folder (fresh or resumed), the model, the data, the optimiser, then the epochs, each followed
by validation and a checkpoint. Every epoch's data order and augmentations depend only on
(seed, epoch), and every random generator is saved with the checkpoint, so a resumed run
continues exactly as an uninterrupted one would have.
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
from stddcn.errors import SettingsError, TrainingError
from stddcn.evaluate import predict
from stddcn.losses import Loss, create_loss
from stddcn.metrics import Accuracy
from stddcn.models import ActionModel, create_model, use_channels_last
from stddcn.optim import create_optimizer, learning_rate, set_learning_rate
from stddcn.precision import autocast, check_precision, grad_scaler
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
    """
    context = distributed.start(config.device)
    try:
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
                                            ("epochs", "device", "log_every")},
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
    epoch, step, best = 0, 0, {"top1": None, "epoch": None}
    last_val = None
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        epoch, step, best = state["epoch"], state["step"], state["best"]
        runs.restore_rng(state["rng"], context)
    wrapped = model
    if context.distributed:
        device_ids = [torch.device(context.device).index] if context.device.startswith("cuda") \
            else None
        wrapped = DistributedDataParallel(model, device_ids=device_ids)
    log = RunLog(run, enabled=context.is_main)
    steps_per_epoch = len(train_loader)

    # -- the epochs
    try:
        while epoch < config.epochs:
            train_loader.sampler.set_epoch(epoch)
            stats, step = train_one_epoch(wrapped, teacher, train_loader, train_inputs,
                                          optimizer, scaler, loss_fn, config, context, epoch,
                                          step, steps_per_epoch, log)
            epoch += 1
            values: dict[str, Any] = dict(stats)
            if val_loader is not None:
                last_val = predict(model, val_loader, inputs, context,
                                   config.precision).accuracy()
                values.update({f"val_{k}": v for k, v in last_val.as_dict().items()})
                if best["top1"] is None or last_val.top1 > best["top1"]:
                    best = {"top1": last_val.top1, "epoch": epoch}
            log.write("epoch", epoch, step, **values)
            if context.is_main:
                _print_epoch(epoch, config.epochs, stats, last_val)
            runs.save_epoch(run, config, train_labels.class_names, model, optimizer, scaler,
                            epoch, step, best, values, context,
                            improved=best["epoch"] == epoch)
    finally:
        log.close()
    return TrainResult(run, epoch, best["top1"], last_val)


def train_one_epoch(model: torch.nn.Module, teacher: ActionModel | None,
                    loader: torch.utils.data.DataLoader, inputs: data.Inputs,
                    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    loss_fn: Loss, config: TrainConfig, context: Context, epoch: int,
                    step: int, steps_per_epoch: int,
                    log: RunLog) -> tuple[dict[str, float], int]:
    """One pass over this process's share of the training set (``teacher``, frozen, scoring
    each batch for a distillation loss). Returns the epoch's figures over all processes (loss,
    accuracy, clips/s, share of time waiting for data) and the global step after it."""
    model.train()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, items
    waited = 0.0
    # the bar only on rank 0, and only on a terminal (None: tqdm's check); logs get the
    # epoch lines
    bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{config.epochs}", unit="step",
               disable=None if context.is_main else True, leave=False, dynamic_ncols=True)
    lr = learning_rate(config.optim, step, steps_per_epoch, config.epochs)
    started = last = time.perf_counter()
    for batch in loader:
        waited += time.perf_counter() - last  # host time blocked on the DataLoader
        tensors, labels = data.model_inputs(batch, inputs, context.device)
        lr = learning_rate(config.optim, step, steps_per_epoch, config.epochs)
        set_learning_rate(optimizer, lr)
        with autocast(config.precision, context.device):
            output = model(tensors)
            with torch.no_grad():
                taught = teacher(tensors) if teacher is not None else None
            loss = loss_fn(output, labels, taught)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss.total).backward()
        if config.optim.grad_clip is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        step += 1

        loss_value = float(loss.total.detach())
        if not math.isfinite(loss_value):
            raise TrainingError(f"the loss became {loss_value} at step {step} (learning rate "
                                f"{lr:.3g}); lower --lr, or train in fp32 or bf16")
        correct = int((output.logits.detach().argmax(dim=1) == labels).sum())
        totals += torch.tensor([loss_value * len(labels), correct, len(labels)],
                               dtype=torch.float64)
        elapsed = time.perf_counter() - started
        clips_per_s = totals[2].item() * context.world_size / elapsed
        bar.set_postfix(loss=f"{totals[0].item() / totals[2].item():.3f}",
                        acc=f"{totals[1].item() / totals[2].item():.3f}",
                        clips_s=f"{clips_per_s:.1f}")
        bar.update()
        if step % config.log_every == 0:
            log.write("step", epoch, step, loss=loss_value, lr=lr,
                      accuracy=correct / len(labels), clips_per_s=clips_per_s,
                      **{k: float(v) for k, v in loss.parts.items()})
        last = time.perf_counter()
    bar.close()
    elapsed = time.perf_counter() - started
    totals = distributed.sum_across(context, totals)
    items = max(totals[2].item(), 1.0)
    return ({"loss": totals[0].item() / items, "accuracy": totals[1].item() / items,
             "clips_per_s": totals[2].item() / elapsed, "data_wait": waited / elapsed,
             "lr": lr}, step)


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
