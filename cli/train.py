"""``flowkit train``: train a model on shards into a run folder.

Every option maps to one field of :class:`stddcn.config.TrainConfig`; options left out keep
the value of ``--config FILE.yaml`` (or the dataclass default), so a YAML file and the command
line compose. The training itself is :func:`stddcn.train.train`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import click

from flowkit.cli.grouped import GroupedCommand
from stddcn.config import (DISTILL_KINDS, OPTIMIZERS, PRECISIONS, RGB_FRAMES, SCHEDULES,
                           TEACHER_FUSIONS, TrainConfig)
from stddcn.config_files import load_yaml

MODELS = ("rgb", "flow", "two-stream", "stddcn", "rgb3d", "flow3d", "two-stream3d", "d3d")
CONNECTIONS = ("both", "appearance-to-motion", "motion-to-appearance", "none")
_DEFAULTS = TrainConfig()


def _default(path: str) -> Any:
    value: Any = _DEFAULTS
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _floats(ctx: click.Context, param: click.Parameter, value: str | None
            ) -> tuple[float, ...] | None:
    """'1,1.5' -> (1.0, 1.5)."""
    if value is None:
        return None
    try:
        return tuple(float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 1,1.5, got "
                                 f"{value!r}") from None


def _ints(ctx: click.Context, param: click.Parameter, value: str | None
          ) -> tuple[int, ...] | None:
    """'10,20' -> (10, 20)."""
    if value is None:
        return None
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 10,20, got "
                                 f"{value!r}") from None


def _grad_clip(ctx: click.Context, param: click.Parameter, value: str | None
               ) -> float | str | None:
    """A number, or the word none (kept as the string "none": no clipping)."""
    if value is None or value.lower() == "none":
        return value and "none"
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"expected a number or 'none', got {value!r}") from None


# option, TrainConfig field, click settings, help. The default shown is the field's.
_OPTIONS: list[tuple[str, str, dict[str, Any], str]] = [
    ("--split", "data.split", {"type": click.Path(dir_okay=False)},
     "Training split: UCF101 trainlist (classInd.txt beside it), HMDB51 <class>_test_splitN.txt "
     "(its train part), or CSV of video_id,label [default: every stored video with the label "
     "stored at extraction]."),
    ("--val-split", "data.val_split", {"type": click.Path(dir_okay=False)},
     "Validation split (of an HMDB51 file its test part), tested after every epoch; the best "
     "epoch is kept as best.pt [default: none]."),
    ("--arch", "model.arch", {},
     "Backbone: resnet18/34/50, resnet-tiny (2D); r2plus1d-18, r3d-18, r3d-tiny (3D) "
     "[default: resnet50, r2plus1d-18]."),
    ("--width-mult", "model.width_mult", {"type": click.FloatRange(min=0, min_open=True)},
     "Multiply every backbone width by this."),
    ("--pretrained", "model.pretrained", {"type": click.Path(exists=True, dir_okay=False)},
     "Local ImageNet ResNet weights (torchvision state dict), loaded by 2D models, inflated "
     "by r3d ones (I3D) [default: none]."),
    ("--partial-bn/--no-partial-bn", "model.partial_bn", {"default": None},
     "TSN partial BatchNorm: freeze every BN layer but the first [default: on with "
     "--pretrained, else off]."),
    ("--dropout", "model.dropout", {"type": click.FloatRange(0, 1, max_open=True)},
     "Dropout before the classifier."),
    ("--flow-length", "model.flow_length", {"type": click.IntRange(min=1)},
     "Flows per stack of 2D flow models (2L input channels)."),
    ("--num-classes", "model.num_classes", {"type": click.IntRange(min=0)},
     "Classes of the classifier (0: as many as the split names)."),
    ("--fusion-weights", "model.fusion_weights", {"callback": _floats},
     "two-stream, two-stream3d: weights of the rgb and flow scores, e.g. 1,1.5."),
    ("--streams", "streams", {"nargs": 2, "type": click.Path(exists=True)},
     "two-stream, two-stream3d: fuse these trained rgb and flow runs (RGB_RUN FLOW_RUN; rgb3d "
     "and flow3d runs for two-stream3d) instead of training both streams."),
    ("--connections", "model.connections", {"type": click.Choice(CONNECTIONS)},
     "stddcn: dense connections between the appearance and motion pathways (none: joined by "
     "the fusion head only)."),
    ("--connect-blocks", "model.connect_blocks", {"callback": _ints},
     "stddcn: backbone stages (1-4) whose input also takes the other pathway's earlier "
     "stages, e.g. 2,3,4."),
    ("--cross-norm/--no-cross-norm", "model.cross_norm", {"default": None},
     "stddcn: BatchNorm on the other pathway's features where a connection mixes them in."),
    ("--fusion", "model.fusion", {"type": click.Choice(TEACHER_FUSIONS)},
     "stddcn: the teacher, which is the prediction: pooled (the paper's: a linear layer on "
     "both pathways' pooled features) or conv (a 1x1 conv fusing their last feature maps "
     "place by place, then pooled)."),
    ("--teacher", "teacher", {"type": click.Path(exists=True)},
     "d3d: the trained flow3d run (or checkpoint) to distil from; it stays frozen."),
    ("--distill-weight", "distill.weight", {"type": click.FloatRange(min=0)},
     "stddcn, d3d: weight of the distillation term (w, lambda); 0 turns it off [default: "
     "1.0]."),
    ("--distill-kind", "distill.kind", {"type": click.Choice(DISTILL_KINDS)},
     "stddcn, d3d: kl (KL(teacher || student) at --temperature, times T^2) or mse of the "
     "logits [default: kl for stddcn, mse for d3d]."),
    ("--temperature", "distill.temperature", {"type": click.FloatRange(min=0, min_open=True)},
     "stddcn, d3d: temperature T of the KL term."),
    ("--detach-teacher/--no-detach-teacher", "distill.detach_teacher", {"default": None},
     "stddcn: keep the distillation terms from training the fusion head (the teacher)."),
    ("--epochs", "epochs", {"type": click.IntRange(min=1)}, "Passes over the training set."),
    ("--batch-size", "data.batch_size", {"type": click.IntRange(min=1)},
     "Videos per step over all processes (each epoch's last incomplete batch is dropped)."),
    ("--segments", "data.segments", {"type": click.IntRange(min=1)},
     "TSN segments per training video (2D models)."),
    ("--clip-len", "data.clip_len", {"type": click.IntRange(min=1)},
     "Frames per clip (3D models)."),
    ("--frame-stride", "data.frame_stride", {"type": click.IntRange(min=1)},
     "Frames between clip frames (3D models)."),
    ("--input-size", "data.input_size", {"type": click.IntRange(min=16)},
     "Side of the square network input in pixels [default: 224 for 2D models, 112 for 3D]."),
    ("--rgb-frame", "data.rgb_frame", {"type": click.Choice(RGB_FRAMES)},
     "Models reading RGB frames with flow stacks (stddcn, two-stream): which frame of its "
     "flow stack a segment's RGB frame is: first (TSN's) or centre (the first frame of the "
     "stack's middle flow: where the objects are while the stack moves them) [default: "
     "centre for those models]."),
    ("--flip/--no-flip", "data.flip", {"default": None},
     "Random horizontal flips in training (flow u negated); --no-flip where a mirror image "
     "changes the class (moving left vs right)."),
    ("--skip-missing", "data.skip_missing", {"is_flag": True, "default": None},
     "Leave out split videos that the shards do not hold (failed at extraction) instead of "
     "refusing to start; their number is printed."),
    ("--allow-partial", "data.allow_partial", {"is_flag": True, "default": None},
     "Train on an unfinished extraction (videos still pending, or flowkit extract still "
     "writing DATA): on the videos done so far, counted on one line. Without it such a "
     "folder is refused."),
    ("--device-normalize/--worker-normalize", "data.device_normalize", {"default": None},
     "Normalise uint8 items on the training device (a quarter of float32's bytes through the "
     "DataLoader), or in the DataLoader workers."),
    ("--workers", "data.workers", {"type": click.IntRange(min=0)},
     "DataLoader worker processes per training process."),
    ("--optimizer", "optim.optimizer", {"type": click.Choice(OPTIMIZERS)},
     "sgd (momentum 0.9) or adamw."),
    ("--lr", "optim.lr", {"type": click.FloatRange(min=0, min_open=True)},
     "Peak learning rate for the whole batch."),
    ("--weight-decay", "optim.weight_decay", {"type": click.FloatRange(min=0)},
     "Weight decay of conv and linear weights (not of biases and norms)."),
    ("--schedule", "optim.schedule", {"type": click.Choice(SCHEDULES)},
     "step: times 0.1 at --lr-steps; cosine: down to 0 at the last epoch."),
    ("--lr-steps", "optim.lr_steps", {"callback": _ints},
     "Epochs of the step decays, e.g. 30,60 [default: 1/2 and 3/4 of --epochs]."),
    ("--warmup-epochs", "optim.warmup_epochs", {"type": click.FloatRange(min=0)},
     "Linear warm-up of the learning rate over these epochs."),
    ("--grad-clip", "optim.grad_clip", {"callback": _grad_clip},
     "Largest gradient norm, or none (TSN: 20 for RGB, 40 for flow)."),
    ("--device", "device", {},
     "cpu, cuda or cuda:N; under torchrun give cuda [default: cuda when available]."),
    ("--precision", "precision", {"type": click.Choice(PRECISIONS)},
     "fp32, or bf16 / fp16 autocast (fp16 on CUDA only, with loss scaling)."),
    ("--channels-last/--no-channels-last", "channels_last", {"default": None},
     "Channels-last memory format [default: on CUDA only]."),
    ("--sync-bn", "sync_bn", {"is_flag": True, "default": None},
     "Synchronise BatchNorm statistics across torchrun processes."),
    ("--seed", "seed", {"type": int}, "Seed of sampling, augmentation, initialisation, dropout."),
    ("--log-every", "log_every", {"type": click.IntRange(min=1)},
     "Steps between the step lines of log.jsonl."),
]


def _key(option: str) -> str:
    return option.split("/")[0].lstrip("-").replace("-", "_")


def _training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option, path, settings, text in reversed(_OPTIONS):
        settings = dict(settings)
        default = _default(path)
        shown = "" if text.endswith("].") else f"  [default: {_show(default)}]"
        settings.setdefault("default", None)
        command = click.option(option, _key(option), help=text + shown, **settings)(command)
    return command


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or "none"
    return "none" if value is None else str(value)


EXAMPLES = """\b
Examples (more, and every model, in docs/training.md):
  flowkit train shards/ --model flow --split ucfTrainTestlist/trainlist01.txt \\
      --val-split ucfTrainTestlist/testlist01.txt --out runs/flow --precision bf16
  flowkit train shards/ --model stddcn --arch resnet50 --out runs/stddcn --precision bf16
  flowkit train shards/ --model two-stream --streams runs/rgb runs/flow --out runs/fused
  flowkit train shards/ --model d3d --teacher runs/flow3d --out runs/d3d
  flowkit train shards/ --model flow --out runs/flow --resume     # continue after a stop
  torchrun --nproc_per_node 4 -m flowkit.cli.main train shards/ --model rgb --out runs/rgb

\b
RUN/ receives config.yaml (the full resolved settings), last.pt after every epoch,
best.pt at the best validation top-1, log.jsonl, and TensorBoard files when the
tensorboard package is installed. Evaluate with: flowkit eval RUN.
"""


# --help shows the options under these headings (GroupedCommand); names are parameter names.
GROUPS = {
    "Run": ["model_name", "out", "config_file", "resume", "seed", "log_every"],
    "Data": ["split", "val_split", "batch_size", "segments", "clip_len", "frame_stride",
             "input_size", "rgb_frame", "flip", "skip_missing", "allow_partial",
             "device_normalize", "workers"],
    "Model": ["arch", "width_mult", "pretrained", "partial_bn", "dropout", "flow_length",
              "num_classes", "fusion_weights", "streams", "connections", "connect_blocks",
              "cross_norm", "fusion"],
    "Distillation": ["teacher", "distill_weight", "distill_kind", "temperature",
                     "detach_teacher"],
    "Optimisation": ["epochs", "optimizer", "lr", "weight_decay", "schedule", "lr_steps",
                     "warmup_epochs", "grad_clip"],
    "Hardware": ["device", "precision", "channels_last", "sync_bn"],
}


# What a first run needs; --help shows these, --help-all every option.
COMMON = ["model_name", "out", "config_file", "resume", "split", "val_split", "batch_size",
          "arch", "pretrained", "epochs", "lr", "device", "precision"]


@click.command("train", cls=GroupedCommand, groups=GROUPS, common=COMMON, epilog=EXAMPLES)
@click.argument("data_root", metavar="DATA", type=click.Path(exists=True, file_okay=False))
@click.option("--model", "model_name", type=click.Choice(MODELS),
              help="rgb / flow: TSN streams (2D); rgb3d / flow3d: 3D CNNs on clips; "
                   "two-stream, two-stream3d: their late fusion; stddcn: both pathways densely "
                   "connected, distilled from their fusion; d3d: rgb3d distilled from a flow3d "
                   "--teacher.  [required unless --config names it]")
@click.option("--out", "out", type=click.Path(file_okay=False),
              help="Run folder for config.yaml, checkpoints and logs.  [required unless "
                   "--config names it]")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file of settings (the layout of a run's config.yaml); options given "
                   "on the command line override it.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint, exactly (same settings; "
                   "--epochs may grow).")
@_training_options
def train_command(data_root: str, model_name: str | None, out: str | None,
                  config_file: str | None, resume: bool, **options: Any) -> None:
    """Train an action-recognition model on a shards folder (DATA)."""
    from stddcn.train import train  # torch loads only when training

    config = build_config(data_root, model_name, out, config_file, options)
    result = train(config, resume=resume)
    if result.best_top1 is not None:
        click.echo(f"{result.run}: best val top-1 {100 * result.best_top1:.1f}%")
    else:
        click.echo(f"{result.run}: trained {result.epochs} epochs")


def build_config(data_root: str, model_name: str | None, out: str | None,
                 config_file: str | None, options: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from --config (if any) and the options given."""
    config = load_yaml(Path(config_file)) if config_file else TrainConfig()
    changes: dict[str, Any] = {"data.root": data_root}
    if model_name is not None:
        changes["model.name"] = model_name
    elif not config_file:
        raise click.UsageError(f"Missing option '--model' ({', '.join(MODELS)}).")
    if out is not None:
        changes["out"] = out
    elif not config.out:
        raise click.UsageError("Missing option '--out' (the run folder).")
    for option, path, _, _ in _OPTIONS:
        value = options[_key(option)]
        if value is None:  # not given: the --config file's value, or the default
            continue
        if path == "optim.grad_clip" and value == "none":
            value = None
        changes[path] = tuple(value) if isinstance(value, (list, tuple)) else value
    if changes.get("model.pretrained") and options["partial_bn"] is None \
            and not config_file:
        changes["model.partial_bn"] = True  # TSN: partial BN goes with ImageNet weights
    return _apply(config, changes)


def _apply(config: Any, changes: dict[str, Any]) -> Any:
    """``config`` with dotted-path fields replaced."""
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    for path, value in changes.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, inner in nested.items():
        direct[head] = _apply(getattr(config, head), inner)
    return dataclasses.replace(config, **direct)
