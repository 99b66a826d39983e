"""Two-stream late fusion (TSN): an RGB and a flow run, trained apart, scored together.

``flowkit train DATA --model two-stream --out RUN`` trains the rgb stream into RUN/rgb and the
flow stream into RUN/flow (each as its own run, with the same settings), then writes the fused
model to RUN/last.pt; with ``--streams RGB_RUN FLOW_RUN`` it fuses runs trained before.
``two-stream3d`` does the same with rgb3d and flow3d runs (the baseline of D3D). The fused
checkpoint keeps each stream's model settings, so streams with different backbones fuse; the
fused model's heads are named rgb and flow.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from stddcn import checkpoint, data, distributed, runs
from stddcn.config import FUSIONS, TrainConfig, resolve
from stddcn.config_files import save_yaml, to_dict
from stddcn.errors import SettingsError
from stddcn.evaluate import predict
from stddcn.loop import TrainResult, train_model
from stddcn.models import TwoStream, create_model
from stddcn.runlog import RunLog

HEADS = ("rgb", "flow")


def train_two_stream(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train (or take) both streams, then fuse them into ``config.out``; see the module."""
    run = Path(config.out)
    streams = FUSIONS[config.model.name]
    if (run / checkpoint.LAST).exists() and not resume:
        raise SettingsError(f"{run} already holds a run; pass --resume to continue it, or "
                            "choose another --out")
    if config.streams:
        paths = [checkpoint.find(path) for path in config.streams]
    else:
        for name in streams:
            stream = dataclasses.replace(config, out=str(run / name), streams=(),
                                         model=dataclasses.replace(config.model, name=name))
            train_model(stream, resume=resume)
        paths = [checkpoint.find(run / name) for name in streams]
    states = [checkpoint.load(path) for path in paths]
    configs = [checkpoint.config_of(state) for state in states]
    _check_streams(paths, streams, states, configs)

    context = distributed.start(config.device)
    try:
        with runs.locked(run, context):
            return _fuse(config, run, paths, states, configs, context)
    finally:
        distributed.stop(context)


def _fuse(config: TrainConfig, run: Path, paths: list[Path], states: list[dict],
          configs: list[TrainConfig], context: distributed.Context) -> TrainResult:
    """The fused model of the two streams, validated, written to RUN/last.pt."""
    models = {name: create_model(stream.model) for name, stream in zip(HEADS, configs)}
    for (name, model), state in zip(models.items(), states):
        model.load_state_dict(state["model"])
    fused = TwoStream(models, config.model.fusion_weights).to(context.device)
    rgb_config = configs[0]
    fused_config = resolve(dataclasses.replace(
        config, streams=tuple(str(p) for p in paths),
        model=dataclasses.replace(config.model, arch=rgb_config.model.arch),
        data=dataclasses.replace(config.data, input_size=rgb_config.data.input_size,
                                 clip_len=rgb_config.data.clip_len,
                                 frame_stride=rgb_config.data.frame_stride)),
        rgb_config.model.num_classes, context.device)
    last_val, values = None, {}
    if config.data.val_split:
        labels = data.read_labels(config.data.root, config.data.val_split, "test",
                                  fused_config.model.num_classes)
        inputs = data.Inputs.of(fused)
        protocol = data.Protocol(segments=config.data.segments, clips=1, crops=1)
        val_set = data.dataset(fused_config.data, inputs, labels, train=False,
                               protocol=protocol)
        loader = data.loader(val_set, context, config.data.batch_size, config.data.workers,
                             train=False)
        last_val = predict(fused, loader, inputs, context, config.precision).accuracy()
        values = {f"val_{k}": v for k, v in last_val.as_dict().items()}
    if context.is_main:
        run.mkdir(parents=True, exist_ok=True)
        save_yaml(fused_config, run / "config.yaml")
        state = checkpoint.make_state(
            fused_config, states[0]["class_names"], fused, epoch=0, step=0,
            best={"top1": last_val.top1 if last_val else None, "epoch": 0},
            metrics=values, streams={name: to_dict(c.model)
                                     for name, c in zip(HEADS, configs)})
        checkpoint.save(run / checkpoint.LAST, state)
        log = RunLog(run)
        log.write("fusion", 0, 0, weights=list(config.model.fusion_weights), **values)
        log.close()
        if last_val is not None:
            print(f"{config.model.name} ({config.model.fusion_weights[0]:g}:"
                  f"{config.model.fusion_weights[1]:g}): val top-1 "
                  f"{100 * last_val.top1:.1f}%, top-5 {100 * last_val.top5:.1f}%")
    return TrainResult(run, 0, last_val.top1 if last_val else None, last_val)


def _check_streams(paths: list[Path], streams: tuple[str, ...], states: list[dict],
                   configs: list[TrainConfig]) -> None:
    """Each run must be of its stream's model, and both on the same classes, input size and
    clips (one item feeds both streams)."""
    for path, name, stream in zip(paths, streams, configs):
        if stream.model.name != name:
            raise SettingsError(f"--streams expects an {name} run in that place; {path} is a "
                                f"{stream.model.name} run")
    if states[0]["class_names"] != states[1]["class_names"]:
        raise SettingsError(f"{paths[0]} and {paths[1]} were trained on different classes")
    first, second = (c.data for c in configs)
    shared = ["input_size"] + (["clip_len", "frame_stride"] if configs[0].clips else [])
    for setting in shared:
        if getattr(first, setting) != getattr(second, setting):
            raise SettingsError(
                f"{paths[0]} and {paths[1]} differ in {setting} ({getattr(first, setting)} and "
                f"{getattr(second, setting)}); one item feeds both streams")
