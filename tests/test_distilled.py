"""The distilled networks' training: distillation terms, a frozen D3D teacher, RGB-only tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from flowkit.cli.main import main
from stddcn import checkpoint, loop
from stddcn.config import DataConfig, DistillConfig, ModelConfig, OptimConfig, TrainConfig
from stddcn.data import Protocol
from stddcn.evaluate import evaluate_run
from stddcn.losses import FusionDistillation, TeacherDistillation, distillation
from stddcn.models import Output
from stddcn.train import train


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_distillation_is_zero_for_equal_logits_and_positive_otherwise(kind):
    """A student that matches its teacher pays nothing; one that does not, pays."""
    logits = torch.randn(4, 6)
    assert distillation(logits, logits.clone(), kind, 2.0).item() == pytest.approx(0, abs=1e-6)
    assert distillation(logits, logits.flip(1), kind, 2.0).item() > 0.01


def _heads(requires_grad: bool = True) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {name: torch.randn(3, 5, requires_grad=requires_grad)
            for name in ("fusion", "appearance", "motion")}


def test_a_detached_fusion_teacher_learns_only_from_its_own_labels():
    """With detach_teacher, the fusion logits' gradient is that of CE(fusion) alone; without,
    the distillation terms pull on the fusion head too."""
    labels = torch.tensor([0, 3, 1])
    gradients = {}
    for detach in (True, False):
        heads = _heads()
        loss = FusionDistillation(weight=1.0, temperature=2.0, detach_teacher=detach)(
            Output(heads["fusion"], heads), labels)
        loss.total.backward()
        gradients[detach] = heads["fusion"].grad.clone()
    alone = _heads()
    torch.nn.functional.cross_entropy(alone["fusion"], labels).backward()
    torch.testing.assert_close(gradients[True], alone["fusion"].grad)
    assert not torch.allclose(gradients[False], alone["fusion"].grad)


def test_fusion_distillation_adds_its_parts():
    """The STDDCN loss is CE(fusion) + CE(appearance) + CE(motion) + w * (KL_a + KL_m);
    weight 0 leaves the cross-entropies alone."""
    heads, labels = _heads(requires_grad=False), torch.tensor([1, 1, 4])
    loss = FusionDistillation(weight=0.5)(Output(heads["fusion"], heads), labels)
    ce = sum(torch.nn.functional.cross_entropy(heads[n], labels) for n in heads)
    expected = ce + 0.5 * sum(distillation(heads[n], heads["fusion"], "kl", 2.0)
                              for n in ("appearance", "motion"))
    torch.testing.assert_close(loss.total, expected)
    assert set(loss.parts) == {"ce_fusion", "ce_appearance", "ce_motion", "distill"}
    plain = FusionDistillation(weight=0.0)(Output(heads["fusion"], heads), labels)
    torch.testing.assert_close(plain.total, ce)


def test_teacher_distillation_needs_a_teacher():
    """D3D's loss without a teacher's output is a clear error."""
    from stddcn.errors import SettingsError
    with pytest.raises(SettingsError, match="--teacher"):
        TeacherDistillation()(Output(torch.zeros(2, 3)), torch.tensor([0, 1]))


def _config(shards: dict[str, Path], out: Path, model: str, **changes) -> TrainConfig:
    config = TrainConfig(
        out=str(out), model=ModelConfig(name=model, num_classes=0, arch="r3d-tiny",
                                        dropout=0.0),
        data=DataConfig(root=str(shards["shards"]), split=str(shards["split"]), input_size=32,
                        batch_size=4, workers=0, flip=False, clip_len=4, frame_stride=2),
        optim=OptimConfig(optimizer="adamw", lr=0.01, weight_decay=0.0), epochs=2,
        device="cpu")
    return dataclasses.replace(config, **changes)


@pytest.fixture(scope="module")
def flow3d_run(train_shards, tmp_path_factory) -> Path:
    """A flow3d run (the teacher) on the training shards."""
    run = tmp_path_factory.mktemp("teacher") / "flow3d"
    train(_config(train_shards, run, "flow3d"))
    return run


def test_d3d_teacher_stays_frozen_and_tests_need_no_flow(train_shards, flow3d_run, tmp_path,
                                                        monkeypatch):
    """D3D trains against its flow3d teacher without changing it (eval mode, no gradients,
    weights as saved), saves the student alone, and is tested on shards without flow."""
    teachers = []
    real_teacher = loop._teacher

    def keep(*args, **kwargs):
        teachers.append(real_teacher(*args, **kwargs))
        return teachers[-1]

    monkeypatch.setattr(loop, "_teacher", keep)
    run = tmp_path / "d3d"
    train(_config(train_shards, run, "d3d", teacher=str(flow3d_run),
                  distill=DistillConfig(weight=2.0)))
    (teacher,) = teachers
    saved = checkpoint.load(flow3d_run / "last.pt")["model"]
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    for name, tensor in teacher.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    state = checkpoint.load(run / "last.pt")
    config = checkpoint.config_of(state)
    assert (config.distill.weight, config.distill.kind) == (2.0, "mse")
    assert not any(key.startswith("teacher") for key in state["model"])
    model, _, _ = checkpoint.load_model(run / "last.pt", "cpu")  # from its config alone
    assert model.modalities == ("rgb",)
    result = evaluate_run(run, str(train_shards["rgb_only"]), str(train_shards["split"]),
                          Protocol(clips=2), device="cpu", workers=0)
    assert result.accuracy.num_videos == 8


def test_d3d_without_a_teacher_and_a_wrong_teacher_are_refused(train_shards, tmp_path):
    """--model d3d needs --teacher, and the teacher must be a clip model of the same classes."""
    base = ["train", str(train_shards["shards"]), "--model", "d3d", "--arch", "r3d-tiny",
            "--out", str(tmp_path / "run"), "--device", "cpu", "--epochs", "1",
            "--input-size", "32", "--clip-len", "4", "--workers", "0"]
    result = CliRunner().invoke(main, base)
    assert result.exit_code == 2 and "needs --teacher" in result.output
    rgb = tmp_path / "rgb"
    train(dataclasses.replace(_config(train_shards, rgb, "rgb"), model=ModelConfig(
        name="rgb", num_classes=0, arch="resnet-tiny"), epochs=1))
    result = CliRunner().invoke(main, [*base, "--teacher", str(rgb)])
    assert result.exit_code == 2 and "cannot teach" in result.output, result.output


def test_two_stream3d_fuses_rgb3d_and_flow3d(train_shards, flow3d_run, tmp_path):
    """two-stream3d fuses an rgb3d and a flow3d run; its flow head scores as the flow3d run."""
    rgb3d = tmp_path / "rgb3d"
    train(_config(train_shards, rgb3d, "rgb3d"))
    fused = tmp_path / "fused"
    train(_config(train_shards, fused, "two-stream3d", streams=(str(rgb3d), str(flow3d_run))))
    protocol = Protocol(clips=2)
    flow_head = evaluate_run(fused, str(train_shards["shards"]), str(train_shards["split"]),
                             protocol, head="flow", device="cpu", workers=0)
    alone = evaluate_run(flow3d_run, str(train_shards["shards"]), str(train_shards["split"]),
                         protocol, device="cpu", workers=0, out_dir=tmp_path / "alone")
    assert flow_head.accuracy == alone.accuracy


def test_stddcn_ablations_from_the_command_line(train_shards, tmp_path):
    """--connections none (KD only) and --distill-weight 0 (dense only) reach the saved
    config; eval --head scores each head. (The word "none" once became None and failed.)"""
    base = ["train", str(train_shards["shards"]), "--model", "stddcn", "--arch", "resnet-tiny",
            "--device", "cpu", "--epochs", "1", "--input-size", "32", "--workers", "0",
            "--batch-size", "8"]
    for name, options, expected in (("kd", ["--connections", "none"], ("none", 1.0)),
                                    ("dense", ["--distill-weight", "0"], ("both", 0.0))):
        result = CliRunner().invoke(main, [*base, "--out", str(tmp_path / name), *options])
        assert result.exit_code == 0, result.output
        config = checkpoint.config_of(checkpoint.load(tmp_path / name / "last.pt"))
        assert (config.model.connections, config.distill.weight) == expected
        assert config.distill.kind == "kl"
    heads = CliRunner().invoke(main, ["eval", str(tmp_path / "kd"), "--head", "motion",
                                      "--segments", "3", "--workers", "0", "--json",
                                      "--device", "cpu", "--out", str(tmp_path / "motion")])
    assert heads.exit_code == 0, heads.output
