"""The training loop's parts: schedules, optimiser groups, metrics, configs, checkpoints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stddcn import checkpoint
from stddcn.config import DataConfig, ModelConfig, OptimConfig, TrainConfig, resolve
from stddcn.config_files import differences, from_dict, load_yaml, save_yaml
from stddcn.errors import CheckpointError, SettingsError
from stddcn.metrics import accuracy, confusion_matrix, top_k_hits
from stddcn.models import create_model
from stddcn.optim import create_optimizer, learning_rate


def test_step_schedule_with_warmup():
    """Warm-up climbs linearly to lr over 2 epochs (10 steps each), then x0.1 at epochs 5, 8."""
    config = OptimConfig(lr=0.1, schedule="step", lr_steps=(5, 8), warmup_epochs=2)
    rates = [learning_rate(config, step, 10, 10) for step in range(100)]
    np.testing.assert_allclose(rates[:20], 0.1 * np.arange(1, 21) / 20)
    assert rates[20] == rates[49] == pytest.approx(0.1)
    assert rates[50] == rates[79] == pytest.approx(0.01)
    assert rates[80] == rates[99] == pytest.approx(0.001)


def test_cosine_schedule_ends_at_zero():
    """Cosine: lr at the start, half-way at half the epochs, near 0 at the last step."""
    config = OptimConfig(lr=0.2, schedule="cosine")
    assert learning_rate(config, 0, 10, 4) == pytest.approx(0.2)
    assert learning_rate(config, 20, 10, 4) == pytest.approx(0.1)
    assert learning_rate(config, 39, 10, 4) < 0.001


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
