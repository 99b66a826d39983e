"""The training loop's parts: schedules, optimiser groups, metrics, configs, checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
import yaml

from stddcn import checkpoint
from stddcn.config import DataConfig, ModelConfig, OptimConfig, TrainConfig, check, resolve
from stddcn.config_files import differences, from_dict, load_yaml, save_yaml, to_dict
from stddcn.errors import CheckpointError, SettingsError
from stddcn.metrics import accuracy, confusion_matrix, top_k_hits
from stddcn.models import create_model
from stddcn.optim import (create_optimizer, create_scheduler, restore_scheduler,
                          schedule_state, warmup_steps)


def _formula(config: OptimConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The schedule as flowkit computed it by hand before torch's schedulers: linear warm-up,
    then times lr_decay at each epoch of lr_steps, or a cosine to 0 at the end."""
    epoch = step / steps_per_epoch
    warmup = config.warmup_epochs
    if warmup > 0 and epoch < warmup:
        return config.lr * (step + 1) / (warmup * steps_per_epoch)
    if config.schedule == "cosine":
        progress = min(max((epoch - warmup) / max(epochs - warmup, 1e-12), 0.0), 1.0)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    passed = sum(1 for boundary in (config.lr_steps or ()) if step // steps_per_epoch >= boundary)
    return config.lr * config.lr_decay ** passed


def _optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9)


def _take(optimizer: torch.optim.Optimizer, scheduler, steps: int) -> list[float]:
    """The rates of the next ``steps`` steps as the training loop takes them: the optimiser's
    before its step, the scheduler stepped after."""
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def _rates(config: OptimConfig, steps_per_epoch: int, epochs: int) -> list[float]:
    """Every step's rate of a run, from create_scheduler."""
    optimizer = _optimizer()
    scheduler = create_scheduler(optimizer, config, steps_per_epoch, epochs)
    return _take(optimizer, scheduler, steps_per_epoch * epochs)


SCHEDULES = [  # (config, steps per epoch, epochs)
    (OptimConfig(lr=0.1, schedule="step", lr_steps=(5, 8), warmup_epochs=2), 10, 10),
    (OptimConfig(lr=0.1, schedule="step", lr_steps=(1, 3, 3), warmup_epochs=2), 7, 5),
    (OptimConfig(lr=0.1, schedule="step", lr_steps=(2,), lr_decay=0.5), 3, 4),
    (OptimConfig(lr=0.05, schedule="step"), 4, 2),  # no lr_steps: constant
    (OptimConfig(lr=0.2, schedule="cosine"), 10, 4),
    (OptimConfig(lr=0.2, schedule="cosine", warmup_epochs=1), 13, 6),
    (OptimConfig(lr=0.2, schedule="cosine", warmup_epochs=0.5), 10, 3),  # 5 warm-up steps
    (OptimConfig(lr=0.2, schedule="cosine", warmup_epochs=0.1), 30, 2),  # 0.1 * 30 > 3.0
    (OptimConfig(lr=0.2, schedule="cosine", warmup_epochs=2), 5, 2),  # all warm-up
]


@pytest.mark.parametrize("config, steps_per_epoch, epochs", SCHEDULES)
def test_torch_schedulers_give_the_rates_of_the_formula(config, steps_per_epoch, epochs):
    """Every step's rate equals the hand-written formula flowkit used (step decays counted
    from the start, within or after the warm-up; cosine after it), to float rounding."""
    expected = [_formula(config, step, steps_per_epoch, epochs)
                for step in range(steps_per_epoch * epochs)]
    np.testing.assert_allclose(_rates(config, steps_per_epoch, epochs), expected, rtol=1e-12,
                               atol=1e-15)


def test_step_schedule_with_warmup():
    """Warm-up climbs linearly to lr over 2 epochs (10 steps each), then x0.1 at epochs 5, 8."""
    config = OptimConfig(lr=0.1, schedule="step", lr_steps=(5, 8), warmup_epochs=2)
    rates = _rates(config, 10, 10)
    np.testing.assert_allclose(rates[:20], 0.1 * np.arange(1, 21) / 20)
    assert rates[20] == pytest.approx(rates[49]) == pytest.approx(0.1)
    assert rates[50] == pytest.approx(rates[79]) == pytest.approx(0.01)
    assert rates[80] == pytest.approx(rates[99]) == pytest.approx(0.001)


def test_cosine_schedule_ends_at_zero():
    """Cosine: lr at the start, half-way at half the epochs, near 0 at the last step."""
    rates = _rates(OptimConfig(lr=0.2, schedule="cosine"), 10, 4)
    assert rates[0] == pytest.approx(0.2) and rates[20] == pytest.approx(0.1)
    assert rates[39] < 0.001


def test_a_warmup_ending_inside_a_step_rises_to_lr_not_above_it():
    """0.25 epoch of 6 steps (1.5 steps): two warm-up steps, lr / 2 then lr. The formula took
    the second to 4/3 lr, above the peak it is named for."""
    config = OptimConfig(lr=0.3, schedule="cosine", warmup_epochs=0.25)
    assert warmup_steps(config, 6) == 2
    rates = _rates(config, 6, 2)
    assert rates[:2] == pytest.approx([0.15, 0.3]) and max(rates) == pytest.approx(0.3)
    assert _formula(config, 1, 6, 2) == pytest.approx(0.4)


@pytest.mark.parametrize("config, steps_per_epoch, epochs", SCHEDULES[:2] + SCHEDULES[5:7])
def test_a_restored_scheduler_goes_on_exactly(config, steps_per_epoch, epochs):
    """Restored from its state_dict (an optimiser state loaded first, as on resume) or, for a
    checkpoint without one, stepped to the step: the remaining rates are the uninterrupted
    run's, bit for bit."""
    straight = _rates(config, steps_per_epoch, epochs)
    stop = steps_per_epoch + 3
    optimizer = _optimizer()
    scheduler = create_scheduler(optimizer, config, steps_per_epoch, epochs)
    _take(optimizer, scheduler, stop)
    saved = copy.deepcopy(schedule_state(scheduler, steps_per_epoch, epochs))
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    for restored_from in (saved, None):
        resumed = _optimizer()
        resumed.load_state_dict(optimizer_state)
        fresh = create_scheduler(resumed, config, steps_per_epoch, epochs)
        restore_scheduler(fresh, restored_from, stop, steps_per_epoch, epochs)
        assert _take(resumed, fresh, len(straight) - stop) == straight[stop:], \
            restored_from is None


def test_a_resume_with_more_epochs_follows_the_longer_schedule():
    """The saved state is of 3 epochs; resumed for 5, the rates are those of a 5-epoch run
    from the same step (as the formula gave), not the end of the 3-epoch cosine."""
    config = OptimConfig(lr=0.2, schedule="cosine", warmup_epochs=1)
    optimizer = _optimizer()
    scheduler = create_scheduler(optimizer, config, 4, 3)
    _take(optimizer, scheduler, 6)
    saved = schedule_state(scheduler, 4, 3)
    longer = create_scheduler(optimizer, config, 4, 5)
    restore_scheduler(longer, saved, 6, 4, 5)
    assert _take(optimizer, longer, 14) == _rates(config, 4, 5)[6:]


def test_weight_decay_spares_biases_and_norms():
    """Convolution and linear weights decay; biases and BatchNorm parameters do not."""
    model = create_model("rgb", num_classes=3, arch="resnet-tiny")
    optimizer = create_optimizer(model, OptimConfig(weight_decay=1e-4))
    decayed, spared = optimizer.param_groups
    assert decayed["weight_decay"] == 1e-4 and spared["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1
                                                             for p in spared["params"])
    assert len(decayed["params"]) + len(spared["params"]) == len(list(model.parameters()))


def test_accuracy_counts_ties_against_the_label():
    """Equal scores are ranked by class index: constant scores are not 100% right."""
    scores = np.zeros((4, 6))
    labels = np.array([0, 1, 4, 5])
    assert top_k_hits(scores, labels, 1).tolist() == [True, False, False, False]
    assert top_k_hits(scores, labels, 5).tolist() == [True, True, True, False]
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    figures = accuracy(scores, np.array([1, 0, 0, 0]))
    assert (figures.top1, figures.num_videos) == (0.75, 4)
    assert figures.mean_class_accuracy == pytest.approx((2 / 3 + 1) / 2)
    assert confusion_matrix(np.array([1, 0, 1, 0]), np.array([1, 0, 0, 0]), 2).tolist() == [
        [2, 1], [0, 1]]


def test_config_yaml_round_trip_and_checks(tmp_path):
    """A resolved config survives YAML; unknown settings and wrong types are named."""
    config = resolve(TrainConfig(out=str(tmp_path / "run"), data=DataConfig(root="shards")),
                     num_classes=7, device="cpu")
    assert config.model.arch == "resnet50" and config.data.input_size == 224
    assert config.optim.lr_steps == (15, 22) and config.model.num_classes == 7
    save_yaml(config, tmp_path / "config.yaml")
    assert load_yaml(tmp_path / "config.yaml") == config
    with pytest.raises(SettingsError, match=r"config\.optim: unknown setting 'momentm'"):
        from_dict(TrainConfig, {"optim": {"momentm": 0.9}})
    with pytest.raises(SettingsError, match=r"config\.epochs: expected int, got '3'"):
        from_dict(TrainConfig, {"epochs": "3"})
    changed = dataclasses.replace(config, optim=dataclasses.replace(config.optim, lr=0.5))
    assert differences(config, changed) == ["optim.lr: 0.01 -> 0.5"]


def test_a_run_stored_before_issue_23s_settings_keeps_what_it_was_trained_with(tmp_path):
    """An STDDCN checkpoint or config.yaml written before --rgb-frame, --cross-norm and
    --fusion existed (or when their defaults differed) reads as the paper's STDDCN it was
    trained as, not as today's defaults; fresh configs still take the defaults."""
    config = resolve(TrainConfig(out=str(tmp_path / "run"), data=DataConfig(root="shards"),
                                 model=ModelConfig(name="stddcn", arch="resnet-tiny")),
                     num_classes=3, device="cpu")
    old = to_dict(config)
    del old["data"]["rgb_frame"], old["model"]["cross_norm"], old["model"]["fusion"]
    stored = checkpoint.config_of({"config": old})
    assert (stored.data.rgb_frame, stored.model.cross_norm, stored.model.fusion) == (
        "first", False, "pooled")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    assert load_yaml(tmp_path / "config.yaml", stored=True) == stored
    fresh = load_yaml(tmp_path / "config.yaml")
    assert (fresh.data.rgb_frame, fresh.model.cross_norm, fresh.model.fusion) == (
        DataConfig().rgb_frame, ModelConfig().cross_norm, ModelConfig().fusion)
    assert checkpoint.config_of({"config": to_dict(config)}) == config


def test_the_rgb_frame_is_the_centre_where_frames_meet_flow_and_first_elsewhere(tmp_path):
    """Left open, --rgb-frame resolves to centre for the models that read an RGB frame beside
    each flow stack, to first (what runs were stored with before it existed) for the others,
    so that such a run stored before issue 23 still resumes with today's defaults."""
    def resolved(name: str, **data) -> TrainConfig:
        return resolve(TrainConfig(out=str(tmp_path / name), data=DataConfig(root="s", **data),
                                   model=ModelConfig(name=name)), num_classes=3, device="cpu")

    frames = {name: resolved(name).data.rgb_frame for name in
              ("stddcn", "two-stream", "rgb", "flow", "rgb3d", "d3d")}
    assert frames == {"stddcn": "centre", "two-stream": "centre", "rgb": "first",
                      "flow": "first", "rgb3d": "first", "d3d": "first"}
    assert resolved("stddcn", rgb_frame="first").data.rgb_frame == "first"
    old = to_dict(resolved("flow"))
    del old["data"]["rgb_frame"], old["model"]["cross_norm"], old["model"]["fusion"]
    assert checkpoint.config_of({"config": old}) == resolved("flow")


def test_the_configs_rgb_frames_are_the_samplers():
    """stddcn.config keeps its own copy of the sampler's choices (it loads no data code)."""
    from flowkit.data.sampling import RGB_FRAMES as SAMPLER_FRAMES
    from stddcn.config import RGB_FRAMES

    assert RGB_FRAMES == SAMPLER_FRAMES


def test_unknown_rgb_frame_and_fusion_are_named():
    base = TrainConfig(out="run", data=DataConfig(root="shards"))
    for changed, message in (
            (dataclasses.replace(base, data=dataclasses.replace(base.data, rgb_frame="mid")),
             "rgb frame must be one of first, centre, got 'mid'"),
            (dataclasses.replace(base, model=dataclasses.replace(base.model, fusion="sum")),
             "fusion must be one of pooled, conv, got 'sum'")):
        with pytest.raises(SettingsError, match=message):
            check(changed, ["rgb", "stddcn"])


def test_damaged_and_foreign_checkpoints_are_named(tmp_path):
    """A truncated checkpoint, a torch file that is no checkpoint, and a missing one each give
    one CheckpointError naming the file."""
    model = create_model(ModelConfig(name="flow", num_classes=2, arch="resnet-tiny"))
    state = checkpoint.make_state(TrainConfig(out="x"), ["a", "b"], model, epoch=1)
    checkpoint.save(tmp_path / "last.pt", state)
    assert checkpoint.load(tmp_path / "last.pt")["epoch"] == 1
    assert not list(tmp_path.glob(".*partial"))  # the temporary file is gone
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    torch.save({"weights": 1}, tmp_path / "other.pt")
    for name, message in (("cut.pt", "cannot read the checkpoint"),
                          ("other.pt", "not a stddcn checkpoint"),
                          ("none.pt", "no such checkpoint file")):
        with pytest.raises(CheckpointError, match=f"{name}: {message}"):
            checkpoint.load(tmp_path / name)


def test_a_run_trained_in_fp16_is_tested_in_fp32_off_cuda():
    """eval and predict share one rule: fp16 autocast is CUDA's; elsewhere a run scores in fp32,
    other precisions stay as trained."""
    from stddcn.precision import inference_precision
    assert inference_precision("fp16", "cpu") == "fp32"
    assert inference_precision("fp16", "cuda:0") == "fp16"
    assert inference_precision("bf16", "cpu") == "bf16"
