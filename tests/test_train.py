"""Training and evaluation end to end on tiny shards: learning, resuming, fusing, evaluating."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from flowkit.cli.main import main
from flowkit.lock import FolderLock
from flowkit.store.manifest import FAILED, PENDING, Manifest
from stddcn import checkpoint, loop
from stddcn.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
from stddcn.data import Protocol
from stddcn.evaluate import evaluate_run
from stddcn.models import create_model
from stddcn.runlog import read_log
from stddcn.train import train


@pytest.fixture(scope="module")
def shards(train_shards) -> dict[str, Path]:
    """The session's training shards (see conftest.train_shards)."""
    return train_shards


def _config(shards: dict[str, Path], out: Path, family: str, **changes) -> TrainConfig:
    """A CPU-sized run: tiny backbones, 32 px inputs, no flips (the classes are directions)."""
    arch = "r3d-tiny" if family.endswith("3d") else "resnet-tiny"
    config = TrainConfig(
        out=str(out), model=ModelConfig(name=family, num_classes=0, arch=arch, dropout=0.0),
        data=DataConfig(root=str(shards["shards"]), split=str(shards["split"]), input_size=32,
                        batch_size=8, workers=0, flip=False, clip_len=4, frame_stride=2),
        optim=OptimConfig(optimizer="adamw", lr=0.01, weight_decay=0.0, schedule="cosine"),
        epochs=20, device="cpu")
    return dataclasses.replace(config, **changes)


@pytest.mark.slow
@pytest.mark.parametrize("model, epochs", [("rgb", 60), ("flow", 30), ("rgb3d", 50),
                                           ("flow3d", 30)])
def test_every_family_overfits_a_tiny_set(shards, tmp_path, model, epochs):
    """Each model family learns its 8 training videos to 100% (tested without augmentation)."""
    config = _config(shards, tmp_path / model, model, epochs=epochs)
    train(config)
    result = evaluate_run(tmp_path / model, str(shards["shards"]), str(shards["split"]),
                          Protocol(segments=3, clips=1), device="cpu", workers=0)
    assert result.accuracy.top1 == 1.0 and result.accuracy.num_videos == 8


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory) -> dict[str, Path]:
    """An rgb and a flow run (5 epochs, validated on the training split every epoch)."""
    runs = tmp_path_factory.mktemp("runs")
    for model in ("rgb", "flow"):
        train(_config(shards, runs / model, model, epochs=5,
                      data=dataclasses.replace(_config(shards, runs, model).data,
                                               val_split=str(shards["split"]))))
    return {"rgb": runs / "rgb", "flow": runs / "flow", "root": runs}


def test_run_folder_holds_config_checkpoints_and_logs(trained):
    """A run writes config.yaml (resolved: classes, absolute paths), last.pt, best.pt and
    one log line per epoch with validation figures."""
    run = trained["flow"]
    assert {"config.yaml", "last.pt", "best.pt", "log.jsonl"} <= {p.name for p in run.iterdir()}
    state = checkpoint.load(run / "last.pt")
    config = checkpoint.config_of(state)
    assert config.model.num_classes == 4 and Path(config.data.root).is_absolute()
    assert state["class_names"] == ["0", "1", "2", "3"] and state["epoch"] == 5
    epochs = read_log(run, "epoch")
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4, 5]
    assert all(0 <= r["val_top1"] <= 1 and r["val_num_videos"] == 8 for r in epochs)
    assert state["best"]["top1"] == max(r["val_top1"] for r in epochs)


def test_eval_reproduces_the_accuracy_training_reported(trained):
    """``flowkit eval RUN --segments 3 --json`` on the validation split gives best.pt's
    validation top-1, and writes predictions.csv and confusion.png."""
    run = trained["flow"]
    best = checkpoint.load(run / "best.pt")
    result = CliRunner().invoke(main, ["eval", str(run), "--segments", "3", "--workers", "0",
                                       "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert set(figures) == {"top1", "top5", "mean_class_accuracy", "num_videos"}
    assert figures["top1"] == pytest.approx(best["metrics"]["val_top1"])
    assert figures["num_videos"] == 8
    rows = (run / "predictions.csv").read_text().splitlines()
    assert rows[0].startswith("video_id,label,label_name,predicted") and len(rows) == 9
    assert (run / "confusion.png").stat().st_size > 1000


def test_two_stream_fuses_trained_runs(trained, shards):
    """--model two-stream --streams RGB FLOW: the fused run's scores are the 1:1.5 mix of the
    streams' probabilities, and each stream is available as a head."""
    fused = trained["root"] / "fused"
    result = CliRunner().invoke(main, [
        "train", str(shards["shards"]), "--model", "two-stream", "--out", str(fused),
        "--streams", str(trained["rgb"]), str(trained["flow"]),
        "--val-split", str(shards["split"]), "--device", "cpu", "--workers", "0",
        "--input-size", "32"])
    assert result.exit_code == 0, result.output
    model, config, _ = checkpoint.load_model(checkpoint.find(fused), "cpu")
    assert config.model.fusion_weights == (1.0, 1.5)
    inputs = {"rgb": torch.randn(2, 3, 3, 32, 32), "flow": torch.randn(2, 3, 10, 32, 32)}
    with torch.no_grad():
        output = model(inputs)
    mix = (torch.softmax(output.heads["rgb"], 1) + 1.5 * torch.softmax(output.heads["flow"], 1))
    torch.testing.assert_close(torch.softmax(output.logits, 1), mix / 2.5)
    flow_alone = evaluate_run(fused, str(shards["shards"]), str(shards["split"]),
                              Protocol(segments=3), head="flow", device="cpu", workers=0)
    flow_run = evaluate_run(trained["flow"], str(shards["shards"]), str(shards["split"]),
                            Protocol(segments=3), device="cpu", workers=0,
                            out_dir=trained["root"] / "flow_eval")
    assert flow_alone.accuracy == flow_run.accuracy


def test_resume_continues_exactly(shards, tmp_path, monkeypatch):
    """Two epochs in one go give the same weights as one epoch, an interruption (Ctrl-C in
    the second), and --resume: data order, augmentation, dropout and optimiser state all
    continue."""
    def config(name):
        return _config(shards, tmp_path / name, "flow", epochs=2,
                       model=ModelConfig(name="flow", num_classes=0, arch="resnet-tiny",
                                         dropout=0.5),
                       optim=OptimConfig(optimizer="sgd", lr=0.05, schedule="cosine"),
                       data=dataclasses.replace(_config(shards, tmp_path, "flow").data,
                                                batch_size=4, flip=True, workers=1))

    train(config("straight"))
    real_epoch = loop.train_one_epoch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config("resumed"))
    assert checkpoint.load(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(loop, "train_one_epoch", real_epoch)
    train(config("resumed"), resume=True)
    straight = checkpoint.load(tmp_path / "straight" / "last.pt")
    resumed = checkpoint.load(tmp_path / "resumed" / "last.pt")
    assert straight["step"] == resumed["step"] == 4
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_bad_inputs_are_one_line_errors_with_exit_2(shards, tmp_path):
    """Flow on RGB-only shards, a split naming absent videos, labels beyond --num-classes,
    an occupied run folder, an unknown backbone, and eval of a folder that is no run."""
    base = ["--out", str(tmp_path / "run"), "--device", "cpu", "--epochs", "1",
            "--arch", "resnet-tiny", "--input-size", "32", "--workers", "0",
            "--batch-size", "8"]
    cases = {"store no flow (extracted with --flow none)":
             ["train", str(shards["rgb_only"]), "--model", "flow", *base]}
    absent = tmp_path / "absent.csv"
    absent.write_text("video_id,label\nright/right_0.mkv,0\nnope/a.mkv,1\nnope/b.mkv,1\n")
    cases["2 of the split's 3 videos are not stored"] = [
        "train", str(shards["shards"]), "--model", "rgb", "--split", str(absent), *base]
    cases["labels are outside 0..1"] = ["train", str(shards["shards"]), "--model", "rgb",
                                        "--num-classes", "2", *base]
    cases["unknown arch 'resnet-huge'"] = [
        "train", str(shards["shards"]), "--model", "rgb", *base, "--arch", "resnet-huge"]
    cases["no checkpoint in this folder"] = ["eval", str(shards["shards"]), "--device", "cpu"]
    for expected, args in cases.items():
        code, output = _cli(*args)
        assert code == 2, (expected, output)
        assert expected in output, output
        assert output.count("\n") == 1 and output.startswith("flowkit: error: "), output
    code, _ = _cli("train", str(shards["shards"]), "--model", "rgb", *base)
    assert code == 0
    code, output = _cli("train", str(shards["shards"]), "--model", "rgb", *base)
    assert code == 2 and "already holds a run; pass --resume" in output


def test_config_file_and_options_compose(shards, tmp_path):
    """--config YAML sets values, options override them, config.yaml records the result;
    a misspelt setting is refused by name."""
    settings = tmp_path / "settings.yaml"
    settings.write_text("model:\n  name: flow\n  arch: resnet-tiny\n  dropout: 0.0\n"
                        "data:\n  input_size: 32\n  workers: 0\n  batch_size: 4\n"
                        "optim:\n  lr: 0.003\nepochs: 3\ndevice: cpu\n")
    code, output = _cli("train", str(shards["shards"]), "--config", str(settings),
                        "--out", str(tmp_path / "run"), "--epochs", "1")
    assert code == 0, output
    config = checkpoint.config_of(checkpoint.load(tmp_path / "run" / "last.pt"))
    assert (config.model.name, config.optim.lr, config.epochs) == ("flow", 0.003, 1)
    assert (tmp_path / "run" / "config.yaml").read_text().count("lr: 0.003") == 1
    settings.write_text("optim:\n  learning_rate: 0.1\n")
    code, output = _cli("train", str(shards["shards"]), "--config", str(settings), "--model",
                        "rgb", "--out", str(tmp_path / "other"))
    assert code == 2 and "unknown setting 'learning_rate'" in output


@pytest.mark.parametrize("family", ["rgb", "rgb3d"])
def test_device_and_worker_normalisation_train_the_same_weights(shards, tmp_path, family):
    """RGB items normalised on the device (uint8) or in the workers (float32) are the same
    numbers, so one epoch from each ends with identical weights. (Flow is not: resizing its
    uint8 steps rounds, within one step; flowkit's tests bound that.)"""
    runs = {}
    for on_device in (True, False):
        config = _config(shards, tmp_path / str(on_device), family, epochs=1)
        config = dataclasses.replace(config, data=dataclasses.replace(
            config.data, device_normalize=on_device, flip=True, batch_size=4))
        train(config)
        runs[on_device] = checkpoint.load(tmp_path / str(on_device) / "last.pt")["model"]
    for name, tensor in runs[True].items():
        assert torch.equal(tensor, runs[False][name]), name


def test_two_stream_without_runs_trains_both_streams(shards, tmp_path):
    """--model two-stream alone trains RUN/rgb and RUN/flow, then fuses them into RUN."""
    code, output = _cli("train", str(shards["shards"]), "--model", "two-stream", "--out",
                        str(tmp_path / "fused"), "--arch", "resnet-tiny", "--epochs", "1",
                        "--input-size", "32", "--device", "cpu", "--workers", "0",
                        "--batch-size", "8", "--val-split", str(shards["split"]))
    assert code == 0, output
    assert "two-stream (1:1.5): val top-1" in output
    for stream in ("rgb", "flow"):
        config = checkpoint.config_of(checkpoint.load(tmp_path / "fused" / stream / "last.pt"))
        assert config.model.name == stream
    fused = checkpoint.load(tmp_path / "fused" / "last.pt")
    assert set(fused["streams"]) == {"rgb", "flow"} and len(fused["config"]["streams"]) == 2


def test_pretrained_weights_turn_on_partial_bn_and_bf16_runs_on_the_cpu(shards, tmp_path):
    """--pretrained FILE (a torchvision-format state dict) loads into the flow stream with
    TSN's partial BN on by default; bf16 autocast trains on the CPU; fp16 is refused there."""
    weights = tmp_path / "imagenet.pth"
    torch.save(create_model("rgb", num_classes=1000, arch="resnet-tiny").backbone.state_dict(),
               weights)
    args = ["train", str(shards["shards"]), "--model", "flow", "--arch", "resnet-tiny",
            "--pretrained", str(weights), "--epochs", "1", "--input-size", "32", "--device",
            "cpu", "--workers", "0", "--batch-size", "8"]
    code, output = _cli(*args, "--out", str(tmp_path / "run"), "--precision", "bf16")
    assert code == 0, output
    config = checkpoint.config_of(checkpoint.load(tmp_path / "run" / "last.pt"))
    assert config.model.partial_bn and config.precision == "bf16"
    assert config.model.pretrained == str(weights.resolve())
    code, output = _cli(*args, "--out", str(tmp_path / "half"), "--precision", "fp16")
    assert code == 2 and "fp16 needs a CUDA device" in output


def test_a_diverging_loss_stops_with_exit_3(shards, tmp_path):
    """A learning rate that blows the loss up ends the run with one line and exit code 3."""
    code, output = _cli("train", str(shards["shards"]), "--model", "rgb", "--arch",
                        "resnet-tiny", "--out", str(tmp_path / "run"), "--epochs", "3",
                        "--input-size", "32", "--device", "cpu", "--workers", "0",
                        "--lr", "1e12", "--grad-clip", "none", "--batch-size", "2")
    assert code == 3, output
    assert "the loss became" in output and "lower --lr" in output
    assert "whose inputs are all finite" in output and "on a batch of " in output


def test_tensorboard_events_are_written_when_installed(shards, tmp_path):
    """With the tensorboard extra installed, RUN/tensorboard receives event files."""
    pytest.importorskip("tensorboard")
    train(_config(shards, tmp_path / "run", "rgb", epochs=1, log_every=1))
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(read_log(tmp_path / "run", "step")) == 1  # 8 videos, batch 8: one step


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_matches_the_cpu(shards, tmp_path):
    """On a GPU (channels-last on), one fp32 epoch ends near the CPU's weights, and bf16
    autocast with device normalisation trains."""
    weights = {}
    for device in ("cpu", "cuda"):
        train(_config(shards, tmp_path / device, "flow", epochs=1, device=device))
        weights[device] = checkpoint.load(tmp_path / device / "last.pt")["model"]
    for name, tensor in weights["cpu"].items():
        if tensor.is_floating_point():
            torch.testing.assert_close(weights["cuda"][name], tensor, rtol=1e-3, atol=1e-4)
    result = train(_config(shards, tmp_path / "bf16", "rgb3d", epochs=2, device="cuda",
                           precision="bf16"))
    assert result.epochs == 2


def test_skip_missing_trains_on_the_stored_part_of_a_split(shards, tmp_path):
    """--skip-missing trains on the split's stored videos and says how many it left out."""
    split = tmp_path / "partly.csv"
    split.write_text("video_id,label\nright/right_0.mkv,0\nleft/left_1.mkv,1\nnope/a.mkv,1\n")
    code, output = _cli("train", str(shards["shards"]), "--model", "rgb", "--arch",
                        "resnet-tiny", "--split", str(split), "--skip-missing", "--out",
                        str(tmp_path / "run"), "--epochs", "1", "--input-size", "32",
                        "--device", "cpu", "--workers", "0", "--batch-size", "2")
    assert code == 0, output
    assert "training on 2 videos: 1 of the split are not in the shards and were skipped" in output


@pytest.mark.parametrize("family", ["rgb", "rgb3d"])
def test_a_last_batch_of_one_item_is_dropped_not_a_batchnorm_crash(shards, tmp_path, family):
    """8 videos in batches of 7, one segment (or clip) per video at 32 px: the last batch,
    one item, gave BatchNorm one value per channel (a ValueError after the whole epoch).
    Training drops it: one step per epoch, every epoch."""
    config = _config(shards, tmp_path / "run", family, epochs=2)
    config = dataclasses.replace(config, data=dataclasses.replace(
        config.data, batch_size=7, segments=1))
    result = train(config)
    assert result.epochs == 2
    assert checkpoint.load(tmp_path / "run" / "last.pt")["step"] == 2


def test_a_training_set_smaller_than_one_batch_is_refused(shards, tmp_path):
    """Dropping the last incomplete batch would leave no step at all: one line naming the
    sizes and the largest --batch-size that trains, exit 2, no run folder."""
    code, output = _cli("train", str(shards["shards"]), "--model", "rgb", "--arch",
                        "resnet-tiny", "--out", str(tmp_path / "run"), "--epochs", "1",
                        "--input-size", "32", "--device", "cpu", "--workers", "0",
                        "--batch-size", "9")
    assert code == 2, output
    assert output == (f"flowkit: error: {shards['shards']}: the training set (8 videos) is "
                      "smaller than one batch (--batch-size 9); pass --batch-size 8 or less\n")
    assert not (tmp_path / "run").exists()


def _unfinished(shards: dict[str, Path], folder: Path, pending: tuple[str, ...] = (),
                failed: tuple[str, ...] = ()) -> Path:
    """A copy of the training shards whose manifest says ``pending`` were not extracted yet
    (as a run stopped midway leaves it) and ``failed`` failed at extraction."""
    shutil.copytree(shards["shards"], folder)
    with Manifest.open(folder) as manifest:
        manifest.put_many([dataclasses.replace(manifest[v], status=PENDING) for v in pending]
                          + [dataclasses.replace(manifest[v], status=FAILED,
                                                 error="not a readable video")
                             for v in failed])
    return folder


#: 5 of the 8 training videos, both of classes 2 and 3 among them: what is done has classes 0, 1
PENDING_VIDEOS = ("down/down_2.mkv", "up/up_3.mkv", "left/left_5.mkv", "down/down_6.mkv",
                  "up/up_7.mkv")
_QUICK = ("--model", "rgb", "--arch", "resnet-tiny", "--epochs", "1", "--input-size", "32",
          "--device", "cpu", "--workers", "0", "--batch-size", "2")


def test_an_unfinished_extraction_is_refused_unless_allowed(shards, tmp_path):
    """Pending videos in the manifest: training used to run on the 3 done (classes 0 and 1
    only, so a 2-class model of 4-class data), exit 0, nothing said. Now one line with the
    counts, exit 2, no run folder; --allow-partial trains on the 3 done, says so, and the
    model has the manifest's 4 classes."""
    data = _unfinished(shards, tmp_path / "data", pending=PENDING_VIDEOS)
    code, output = _cli("train", str(data), *_QUICK, "--out", str(tmp_path / "run"))
    assert code == 2, output
    assert output == (f"flowkit: error: {data}: extraction is unfinished (3 of 8 videos done, "
                      "5 pending); finish it by rerunning the flowkit extract command that "
                      "made it (it resumes), or pass --allow-partial to train on the 3 done\n")
    assert not (tmp_path / "run").exists()
    code, output = _cli("train", str(data), *_QUICK, "--out", str(tmp_path / "run"),
                        "--allow-partial")
    assert code == 0, output
    assert (f"{data}: training on an unfinished extraction, --allow-partial: 3 of 8 videos "
            "done, 5 pending; only the 3 done are read") in output
    state = checkpoint.load(tmp_path / "run" / "last.pt")
    config = checkpoint.config_of(state)
    assert config.model.num_classes == 4 and config.data.allow_partial
    assert state["class_names"] == ["0", "1", "2", "3"] and state["step"] == 1  # 3 videos


def test_a_folder_a_run_is_writing_is_refused_unless_allowed(shards, tmp_path):
    """A flowkit extract holding the folder's lock (here: this process) is an unfinished
    extraction even before it planned anything; its stale lock file, once released, is not."""
    data = _unfinished(shards, tmp_path / "data")
    with FolderLock(data):
        code, output = _cli("train", str(data), *_QUICK, "--out", str(tmp_path / "run"))
        assert code == 2, output
        assert output == (f"flowkit: error: {data}: extraction is unfinished: a flowkit run "
                          f"(pid {os.getpid()}) is writing it now (8 of 8 videos done); wait "
                          "for it to end, or pass --allow-partial to train on the 8 done\n")
        code, output = _cli("train", str(data), *_QUICK, "--out", str(tmp_path / "partial"),
                            "--allow-partial")
        assert code == 0 and "(a flowkit run is still writing it)" in output, output
    planning = tmp_path / "planning"  # locked, no manifest yet: listing its inputs
    planning.mkdir()
    with FolderLock(planning):
        code, output = _cli("train", str(planning), *_QUICK, "--out", str(tmp_path / "run"))
        assert code == 2 and "is writing it now (0 of 0 videos done)" in output, output
    code, output = _cli("train", str(data), *_QUICK, "--out", str(tmp_path / "run"))
    assert code == 0 and "unfinished" not in output, output


def test_failed_videos_are_left_out_and_said_and_keep_their_classes(shards, tmp_path):
    """Videos that failed at extraction are final (until --retry-failed): training goes on
    without them and says how many; the classes count them (both videos of class 3 failed:
    the model still has 4 classes, it used to get 3)."""
    data = _unfinished(shards, tmp_path / "data", failed=("up/up_3.mkv", "up/up_7.mkv"))
    code, output = _cli("train", str(data), *_QUICK, "--out", str(tmp_path / "run"))
    assert code == 0, output
    assert (f"{data}: 2 of 8 videos failed at extraction and are left out (flowkit info "
            f"{data} names them; flowkit extract --retry-failed tries them again)") in output
    state = checkpoint.load(tmp_path / "run" / "last.pt")
    assert checkpoint.config_of(state).model.num_classes == 4 and state["step"] == 3


def test_a_split_with_pending_videos_is_refused_unless_allowed(shards, tmp_path):
    """With a split, what counts is the split's videos (here both splits'): pending ones are
    refused even with --skip-missing (which is for failed videos); --allow-partial leaves
    them out and says how many. Pending videos outside the splits do not matter."""
    data = _unfinished(shards, tmp_path / "data", pending=("up/up_3.mkv", "up/up_7.mkv"))
    train_split, val_split = tmp_path / "train.csv", tmp_path / "val.csv"
    train_split.write_text("right/right_0.mkv,0\nleft/left_1.mkv,1\nup/up_3.mkv,3\n")
    val_split.write_text("right/right_4.mkv,0\nup/up_7.mkv,3\n")
    (tmp_path / "other.csv").write_text("right/right_0.mkv,0\nleft/left_1.mkv,1\n")
    splits = ("--split", str(train_split), "--val-split", str(val_split))
    code, output = _cli("train", str(data), *_QUICK, *splits, "--skip-missing", "--out",
                        str(tmp_path / "run"))
    assert code == 2, output
    assert (f"{data}: extraction is unfinished (3 of the split's 5 videos done, 2 pending); "
            in output)
    code, output = _cli("train", str(data), *_QUICK, *splits, "--allow-partial", "--out",
                        str(tmp_path / "run"))
    assert code == 0, output
    assert "3 of the split's 5 videos done, 2 pending; only the 3 done are read" in output
    assert "training on 2 videos: 1 of the split are not in the shards" in output
    assert "validation on 1 videos: 1 of the split are not in the shards" in output
    code, output = _cli("train", str(data), *_QUICK, "--split", str(tmp_path / "other.csv"),
                        "--out", str(tmp_path / "other"))
    assert code == 0 and "unfinished" not in output, output


def _damage(folder: Path, how: str) -> tuple[Path, str]:
    """Damage the shard of ``up/up_3.mkv`` (the main process never opens it: the workers
    meet it): truncated, or every stored JPEG frame replaced by bytes that do not decode
    (the reader's message then names neither the file nor the video)."""
    video = "up/up_3.mkv"
    path = folder / Manifest.read(folder)[video].shard
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:4096])
    else:
        with h5py.File(path, "r+") as handle:
            frames = handle["videos"][video.replace("/", "%2F")]["rgb"]
            for index in range(len(frames)):
                frames[index] = np.zeros(64, dtype=np.uint8)
    return path, video


@pytest.mark.parametrize("how", ["truncated", "jpeg"])
@pytest.mark.parametrize("workers", [1, 0])
def test_a_damaged_shard_is_one_line_naming_file_video_and_repair(shards, tmp_path, how,
                                                                  workers):
    """A shard damaged after extraction, met while training: the error used to reach the
    user (from a DataLoader worker) as "Caught ShardError in DataLoader worker process 0"
    and the worker's traceback, the file named only inside it. Now it is one line naming
    the shard file and the video, and how to find and repair the damage; exit 3 (the run
    cannot go on, as for any unreadable shard), the same with and without workers."""
    data = tmp_path / "data"
    shutil.copytree(shards["shards"], data)
    path, video = _damage(data, how)
    code, output = _cli("train", str(data), "--model", "rgb", "--arch", "resnet-tiny",
                        "--epochs", "1", "--input-size", "32", "--device", "cpu",
                        "--batch-size", "2", "--workers", str(workers), "--out",
                        str(tmp_path / "run"))
    assert code == 3, output
    assert output.count("\n") == 1 and output.startswith(f"flowkit: error: {path}: "), output
    assert f"video {video!r}" in output
    assert output.endswith(f"; flowkit verify {data} lists every damaged video, and the "
                           "flowkit extract command rerun with --repair re-extracts them\n")
    assert "Traceback" not in output and "Caught" not in output
