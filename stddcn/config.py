"""A training run's settings: frozen dataclasses (stddcn.config_files reads and writes them).

``TrainConfig`` nests the model, data and optimisation settings; ``ModelConfig`` alone is what
rebuilds a network (stddcn.models takes it). What the user leaves open
(``None``, or ``num_classes`` 0) is filled in by `resolve` once the data is known, and the
resolved configuration is what RUN/config.yaml and every checkpoint hold, so a run can be read,
resumed and evaluated without the command that started it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection

from stddcn.errors import SettingsError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine")
PRECISIONS = ("fp32", "bf16", "fp16")
CLIP_MODELS = ("rgb3d", "flow3d", "d3d", "two-stream3d")
#: late fusions of separately trained runs, and the models of their streams
FUSIONS = {"two-stream": ("rgb", "flow"), "two-stream3d": ("rgb3d", "flow3d")}
DISTILL_KINDS = ("kl", "mse")
#: STDDCN's teachers (ModelConfig.fusion)
TEACHER_FUSIONS = ("pooled", "conv")
#: DataConfig.rgb_frame: flowkit.data.SegmentSampler's (kept here: this module loads no data code)
RGB_FRAMES = ("first", "centre")
#: models whose items hold an RGB frame and a flow stack per segment (where rgb_frame matters)
RGB_WITH_FLOW = ("stddcn", "two-stream")
#: per distilled model: the weight and kind of its distillation term when left open
DISTILL_DEFAULTS = {"stddcn": (1.0, "kl"), "d3d": (1.0, "mse")}


@dataclass(frozen=True)
class ModelConfig:
    """Settings of one action-recognition model; ``create_model(config)`` builds it.

    Attributes:
        name: the model family, one of ``list_models()`` (rgb, flow, two-stream, stddcn, rgb3d,
            flow3d, two-stream3d, d3d).
        num_classes: classes of the classifier (K).
        arch: backbone, one of ``list_archs()``; None takes the family's default
            (resnet50 for 2D models, r2plus1d-18 for 3D ones).
        width_mult: multiplies every backbone width (channels), rounded to integers.
        dropout: dropout before the classifier (TSN used 0.8 for RGB, 0.7 for flow).
        flow_length: L, flows per stacked input of 2D flow models (2L input channels).
        pretrained: local file of a torchvision-format ImageNet ResNet state dict; 2D backbones
            load it (flow: cross-modality conv1), 3D r3d backbones inflate it (I3D).
        partial_bn: TSN's partial BatchNorm: every BN layer but the first keeps its statistics
            and affine parameters frozen during training.
        fusion_weights: late fusion weights of the streams, in the order of ``modalities``
            (two-stream: rgb, flow; TSN's 1 : 1.5).
        connections: STDDCN's dense cross-pathway connections: "both", "appearance-to-motion",
            "motion-to-appearance" or "none" (two streams joined only by the fusion head).
        connect_blocks: STDDCN: the backbone stages (1-4) whose input also receives the other
            pathway's outputs of every earlier stage.
        cross_norm: STDDCN: BatchNorm on the other pathway's features where a connection mixes
            them in, so that they arrive at the scale of the receiving stage's own input.
        fusion: STDDCN's teacher (the prediction): "pooled" (the paper's: a linear layer on
            both pathways' globally pooled features, concatenated) or "conv" (a 1x1 conv fusing
            both pathways' last feature maps at each place, then pooled; Feichtenhofer et al.,
            CVPR 2016).
    """

    name: str = "rgb"
    num_classes: int = 101
    arch: str | None = None
    width_mult: float = 1.0
    dropout: float = 0.5
    flow_length: int = 5
    pretrained: str | None = None
    partial_bn: bool = False
    fusion_weights: tuple[float, ...] = (1.0, 1.5)
    connections: str = "both"
    connect_blocks: tuple[int, ...] = (2, 3, 4)
    cross_norm: bool = False
    fusion: str = "pooled"


@dataclass(frozen=True)
class DistillConfig:
    """Distillation from a teacher's class scores to a student's.

    STDDCN: the fusion head teaches both pathways' heads, KL at ``temperature``. D3D: a frozen
    flow3d run (``TrainConfig.teacher``) teaches the RGB network, mean squared error of logits.

    Attributes:
        weight: w (STDDCN) or lambda (D3D) of the distillation term; None: the model's default
            (STDDCN 1.0, D3D 1.0); 0 turns distillation off.
        kind: "kl" (KL(teacher || student) of softmax at ``temperature``, times T^2) or "mse"
            (mean squared difference of the logits); None: STDDCN kl, D3D mse.
        temperature: T of the KL term.
        detach_teacher: no gradient from the distillation term into the teacher (STDDCN's
            fusion head; a D3D teacher is always frozen).
    """

    weight: float | None = None
    kind: str | None = None
    temperature: float = 2.0
    detach_teacher: bool = True


@dataclass(frozen=True)
class DataConfig:
    """Which videos a run reads, and how.

    Attributes:
        root: the shards folder (``flowkit extract --out``).
        split: training split file (UCF101 list, HMDB51 split file, or CSV); None takes every
            stored video with the label stored at extraction.
        val_split: validation split file, evaluated after every epoch; None for no validation.
        segments: TSN segments per training item (2D models).
        clip_len: frames per clip (3D models).
        frame_stride: frames between the frames of a clip (3D models).
        input_size: side of the square network input; None: 224 for 2D models, 112 for 3D.
        rgb_frame: models reading RGB frames with flow stacks (RGB_WITH_FLOW): which frame of
            its stack a segment's RGB frame is, "first" (TSN's) or "centre" (the first frame of
            the stack's middle flow, where the objects are while the stack moves them); None:
            centre for those models, first for the others (where it changes nothing).
        flip: random horizontal flips in training (flow u negated); off for classes that a
            mirror image turns into one another (left vs right).
        skip_missing: leave out split videos the shards do not hold (failed at extraction)
            instead of refusing to start.
        allow_partial: train on an unfinished extraction (videos still pending, or a flowkit
            run still writing the folder): on the videos done so far. Without it such a folder
            is refused, since it would train on a subset.
        device_normalize: items leave the DataLoader workers as uint8 and are normalised on
            the training device (a quarter of float32's bytes); False normalises in the workers.
        batch_size: items per optimisation step, over all processes together.
        workers: DataLoader worker processes per training process.
    """

    root: str = ""
    split: str | None = None
    val_split: str | None = None
    segments: int = 3
    clip_len: int = 16
    frame_stride: int = 2
    input_size: int | None = None
    rgb_frame: str | None = None
    flip: bool = True
    skip_missing: bool = False
    allow_partial: bool = False
    device_normalize: bool = True
    batch_size: int = 32
    workers: int = 4


@dataclass(frozen=True)
class OptimConfig:
    """How the weights move.

    Attributes:
        optimizer: "sgd" (momentum) or "adamw".
        lr: peak learning rate, reached after the warm-up, for the whole batch.
        momentum: SGD momentum (AdamW's beta1 stays 0.9).
        weight_decay: L2 (SGD) or decoupled (AdamW) decay of weights; never of biases and norms.
        schedule: "step" (times ``lr_decay`` at each of ``lr_steps``) or "cosine" (to 0).
        lr_steps: epochs at which the step schedule decays; None: at 1/2 and 3/4 of the epochs.
        lr_decay: factor of each step.
        warmup_epochs: linear warm-up from 0 over these epochs (fractions allowed).
        grad_clip: largest gradient norm (TSN: 20 for RGB, 40 for flow); None: no clipping.
    """

    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    lr_steps: tuple[int, ...] | None = None
    lr_decay: float = 0.1
    warmup_epochs: float = 0.0
    grad_clip: float | None = 20.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on.

    Attributes:
        out: the run folder: config.yaml, checkpoints, logs.
        model: the network (num_classes 0: as many classes as the data has).
        data: the videos and their sampling.
        optim: optimiser and schedule.
        epochs: passes over the training set.
        device: "cpu", "cuda" or "cuda:N"; None: cuda when available, else cpu.
        precision: "fp32", or "bf16" / "fp16" autocast (fp16 on CUDA only, with loss scaling).
        channels_last: channels-last memory format; None: on CUDA only.
        sync_bn: synchronise BatchNorm statistics across processes (DDP).
        seed: seeds data sampling, augmentation, initialisation and dropout.
        streams: two-stream only: trained rgb and flow runs (or checkpoints) to fuse; empty:
            train both streams first, into out/rgb and out/flow.
        teacher: d3d only: the trained flow3d run (or checkpoint) to distil from, frozen.
        distill: the distillation term of stddcn and d3d.
        log_every: steps between step lines in log.jsonl.
    """

    out: str = ""
    model: ModelConfig = field(default_factory=lambda: ModelConfig(num_classes=0))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 30
    device: str | None = None
    precision: str = "fp32"
    channels_last: bool | None = None
    sync_bn: bool = False
    seed: int = 0
    streams: tuple[str, ...] = ()
    teacher: str | None = None
    distill: DistillConfig = field(default_factory=DistillConfig)
    log_every: int = 10

    @property
    def clips(self) -> bool:
        """Whether the model reads 3D clips (else TSN segments)."""
        return self.model.name in CLIP_MODELS


def check(config: TrainConfig, models: Collection[str]) -> None:
    """Raise SettingsError naming the first setting that cannot work.

    ``models``: the model names there are, ``stddcn.models.list_models()`` (the caller's to
    give: the models import this module, and their registry imports torch).
    """
    def need(condition: bool, message: str) -> None:
        if not condition:
            raise SettingsError(message)

    need(config.model.name in models,
         f"model must be one of {', '.join(models)}, got {config.model.name!r}")
    need(bool(config.data.root), "give the shards folder (DATA)")
    need(bool(config.out), "give the run folder (--out)")
    need(config.epochs >= 1, f"epochs must be >= 1, got {config.epochs}")
    need(config.data.batch_size >= 1, f"batch size must be >= 1, got {config.data.batch_size}")
    need(config.data.workers >= 0, f"workers must be >= 0, got {config.data.workers}")
    for name in ("segments", "clip_len", "frame_stride"):
        value = getattr(config.data, name)
        need(value >= 1, f"{name.replace('_', '-')} must be >= 1, got {value}")
    need(config.data.rgb_frame in (None, *RGB_FRAMES),
         f"rgb frame must be one of {', '.join(RGB_FRAMES)}, got {config.data.rgb_frame!r}")
    need(config.model.fusion in TEACHER_FUSIONS,
         f"fusion must be one of {', '.join(TEACHER_FUSIONS)}, got {config.model.fusion!r}")
    need(config.data.input_size is None or config.data.input_size >= 16,
         f"input size must be >= 16 pixels, got {config.data.input_size}")
    need(config.optim.optimizer in OPTIMIZERS,
         f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optim.optimizer!r}")
    need(config.optim.schedule in SCHEDULES,
         f"schedule must be one of {', '.join(SCHEDULES)}, got {config.optim.schedule!r}")
    need(config.optim.lr > 0, f"lr must be > 0, got {config.optim.lr}")
    need(config.optim.weight_decay >= 0,
         f"weight decay must be >= 0, got {config.optim.weight_decay}")
    need(0 <= config.optim.warmup_epochs <= config.epochs,
         f"warm-up epochs must be within 0..{config.epochs}, got {config.optim.warmup_epochs}")
    need(config.optim.grad_clip is None or config.optim.grad_clip > 0,
         f"grad clip must be > 0 (or none), got {config.optim.grad_clip}")
    need(config.precision in PRECISIONS,
         f"precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}")
    need(config.model.num_classes >= 0,
         f"num_classes must be >= 0 (0: from the data), got {config.model.num_classes}")
    need(len(config.streams) in (0, 2),
         f"--streams takes two runs (rgb, flow), got {len(config.streams)}")
    need(not config.streams or config.model.name in FUSIONS,
         "--streams applies to --model two-stream and two-stream3d only")
    need(config.teacher is None or config.model.name == "d3d",
         "--teacher applies to --model d3d only")
    need(config.teacher is not None or config.model.name != "d3d",
         "--model d3d needs --teacher, a trained flow3d run to distil from")
    distill = config.distill
    need(distill.kind is None or distill.kind in DISTILL_KINDS,
         f"distillation kind must be one of {', '.join(DISTILL_KINDS)}, got {distill.kind!r}")
    need(distill.weight is None or distill.weight >= 0,
         f"distillation weight must be >= 0, got {distill.weight}")
    need(distill.temperature > 0, f"temperature must be > 0, got {distill.temperature}")


def resolve(config: TrainConfig, num_classes: int, device: str) -> TrainConfig:
    """``config`` with every open setting filled in: classes, arch, input size, RGB frame,
    decay epochs, device and memory format; paths made absolute, so that the run can be
    evaluated and resumed from any working directory."""
    model = dataclasses.replace(config.model, pretrained=_absolute(config.model.pretrained))
    config = dataclasses.replace(
        config, out=_absolute(config.out), streams=tuple(map(_absolute, config.streams)),
        data=dataclasses.replace(config.data, root=_absolute(config.data.root),
                                 split=_absolute(config.data.split),
                                 val_split=_absolute(config.data.val_split)))
    if model.arch is None:
        model = dataclasses.replace(model, arch="r2plus1d-18" if config.clips else "resnet50")
    model = dataclasses.replace(model, num_classes=num_classes)
    size = config.data.input_size or (112 if config.clips else 224)
    steps = config.optim.lr_steps
    if steps is None:
        steps = tuple(sorted({max(1, config.epochs // 2), max(1, (3 * config.epochs) // 4)}))
    channels_last = (device.startswith("cuda") if config.channels_last is None
                     else config.channels_last)
    distill = config.distill
    if config.model.name in DISTILL_DEFAULTS:
        weight, kind = DISTILL_DEFAULTS[config.model.name]
        distill = dataclasses.replace(
            distill, weight=weight if distill.weight is None else distill.weight,
            kind=distill.kind or kind)
    rgb_frame = config.data.rgb_frame or (
        "centre" if config.model.name in RGB_WITH_FLOW else "first")
    return dataclasses.replace(
        config, model=model,
        data=dataclasses.replace(config.data, input_size=size, rgb_frame=rgb_frame),
        optim=dataclasses.replace(config.optim, lr_steps=tuple(steps)), device=device,
        channels_last=channels_last, distill=distill, teacher=_absolute(config.teacher))


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())
