"""flowkit predict: video files decoded in memory give the shards' arrays, eval's scores, and
one line per failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import flowkit
import flowkit.data.decoded
from flowkit.cli.main import main
from flowkit.config import ExtractConfig
from flowkit.data import (ClipSampler, Normalize, SegmentSampler, ShardDataset, VideoDecoder,
                          read_extract_config, tsn_test_transform, video_file_item)
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig
from stddcn import checkpoint, data
from stddcn.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
from stddcn.distributed import Context
from stddcn.evaluate import predict
from stddcn.predict import predict_videos
from stddcn.train import train

NAMES = ("right", "left", "down", "up")  # the synthetic videos' classes, labels 0..3


def _sources(shards: Path) -> dict[str, Path]:
    """Video id -> the file it was extracted from, in manifest order."""
    return {e.video_id: Path(e.source) for e in flowkit.open_shards(shards).manifest}


@pytest.fixture(scope="module")
def runs(train_shards, tmp_path_factory) -> dict[str, Path]:
    """Tiny flow, rgb and rgb3d runs (2 epochs, 32 px) on the session shards, with class names."""
    folder = tmp_path_factory.mktemp("predict_runs")
    split = folder / "all.csv"
    shutil.copy(train_shards["split"], split)
    (folder / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(NAMES)))
    for name in ("flow", "rgb", "rgb3d"):
        arch = "r3d-tiny" if name.endswith("3d") else "resnet-tiny"
        train(TrainConfig(
            out=str(folder / name), model=ModelConfig(name=name, num_classes=0, arch=arch),
            data=DataConfig(root=str(train_shards["shards"]), split=str(split), input_size=32,
                            batch_size=4, workers=0, flip=False, clip_len=4, frame_stride=2),
            optim=OptimConfig(optimizer="adamw", lr=0.01, weight_decay=0.0), epochs=2,
            device="cpu"))
    return {"split": split, **{name: folder / name for name in ("flow", "rgb", "rgb3d")}}


@pytest.mark.parametrize("storage", [
    StorageConfig(), StorageConfig(rgb="raw", flow_dtype="float16"),
    StorageConfig(flow_dtype="jpeg", jpeg_quality=80, bound=4.0)],
    ids=["jpeg-uint8", "raw-float16", "jpeg-flow"])
def test_decoded_video_equals_what_the_shards_store(train_shards, tmp_path, storage):
    """VideoDecoder.decode gives bit for bit the frames and flows shards of its settings hold."""
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback",
                           storage=storage, batch_size=3)
    videos = collect_videos([train_shards["root"] / "videos"])[:2]
    extract(videos, tmp_path, config, workers=1, progress=False)
    reader = flowkit.open_shards(tmp_path)
    for source in videos:
        stored = reader[source.video_id]
        decoded = VideoDecoder(config).decode(source.path, frames=None, flows=None)
        frames, flows = np.arange(len(stored.frames)), np.arange(len(stored.flows))
        assert len(decoded.frames) == len(frames) and len(decoded.flows) == len(flows) == 9
        assert decoded.flow_bound == stored.flow_bound and decoded.flows_computed == 9
        np.testing.assert_array_equal(decoded.frames[frames], stored.frames[:])
        np.testing.assert_array_equal(decoded.flows.quantized(flows),
                                      stored.flows.quantized(flows))
        np.testing.assert_array_equal(decoded.flows[flows], stored.flows[:])


@pytest.mark.parametrize("modality, sampler, quantized", [
    ("flow", SegmentSampler(25, train=False, flow_length=5), True),
    ("rgb", SegmentSampler(7, train=False), False),
    ("rgb+flow", ClipSampler(4, 2, num_clips=3, train=False), False)])
def test_items_of_video_files_equal_shard_items(train_shards, modality, sampler, quantized):
    """video_file_item on a training video equals ShardDataset's item of it, tensor for tensor."""
    decoder = VideoDecoder(read_extract_config(train_shards["shards"]))
    transform = tsn_test_transform(32, 3, normalize=None if quantized else Normalize())
    dataset = ShardDataset(train_shards["shards"], modality, sampler, transform=transform,
                           quantized_flow=quantized)
    sources = _sources(train_shards["shards"])
    for index, (video_id, label) in enumerate(dataset.items):
        expected = dataset[index]
        item, decoded = video_file_item(sources[video_id], decoder, sampler, modality,
                                        transform=transform, quantized_flow=quantized,
                                        label=label)
        assert set(item) == set(expected) and item["video_id"] == str(sources[video_id])
        for key, tensor in expected.items():
            if isinstance(tensor, torch.Tensor):
                assert torch.equal(item[key], tensor), (video_id, key)
        assert (decoded.flows_computed > 0) == ("flow" in modality)


def _eval_probabilities(run: Path, shards: Path, split: Path,
                        protocol: data.Protocol) -> dict[str, np.ndarray]:
    """Softmax scores by video id as flowkit eval computes them from the shards."""
    model, config, _ = checkpoint.load_model(checkpoint.find(run), "cpu")
    inputs = data.Inputs.of(model)
    labels = data.read_labels(str(shards), str(split), "test", config.model.num_classes)
    dataset = data.dataset(config.data, inputs, labels, train=False, protocol=protocol,
                           seed=config.seed)
    loader = data.loader(dataset, Context(), 4, 0, train=False)
    result = predict(model, loader, inputs, Context(), config.precision)
    scores = torch.softmax(torch.from_numpy(result.scores), dim=1).numpy()
    return dict(zip(result.video_ids, scores))


@pytest.mark.parametrize("family, protocol", [("flow", data.Protocol()),
                                              ("rgb", data.Protocol(segments=5, crops=10)),
                                              ("rgb3d", data.Protocol(clips=10, crops=3))])
def test_predictions_on_training_videos_equal_eval(runs, train_shards, family, protocol):
    """predict_videos on the shards' source files gives eval's top-1 class and probabilities."""
    expected = _eval_probabilities(runs[family], train_shards["shards"], runs["split"],
                                   protocol)
    sources = _sources(train_shards["shards"])
    results = predict_videos(runs[family], list(sources.values()), protocol, top=4,
                             device="cpu")
    assert [r.video for r in results] == [str(p) for p in sources.values()]
    for video_id, result in zip(sources, results):
        assert result.ok, result.error
        np.testing.assert_allclose(result.probabilities, expected[video_id], rtol=1e-5,
                                   atol=1e-6)
        assert result.top[0].label == int(np.argmax(expected[video_id]))
        assert [s.name for s in result.top] == [NAMES[s.label] for s in result.top]
        assert (result.flows_computed > 0) == (family == "flow")


def test_rgb_models_never_create_a_flow_backend(runs, train_shards, monkeypatch):
    """A model that reads RGB only (2D or 3D) classifies without computing any flow."""
    def refuse(*args, **kwargs):
        raise AssertionError("a flow backend was created for an RGB-only model")

    monkeypatch.setattr(flowkit.data.decoded, "get_backend", refuse)
    video = next(iter(_sources(train_shards["shards"]).values()))
    for family in ("rgb", "rgb3d"):
        (result,) = predict_videos(runs[family], [video], device="cpu")
        assert result.ok and result.flows_computed == 0, result.error
    with pytest.raises(AssertionError, match="a flow backend was created"):
        predict_videos(runs["flow"], [video], device="cpu")


def test_cli_json_lines_and_failed_videos(runs, train_shards, tmp_path):
    """--json: a line per video in order; missing and corrupt files are named, exit code 1."""
    good = list(_sources(train_shards["shards"]).values())[:2]
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all" * 100)
    missing = tmp_path / "missing.mp4"
    result = CliRunner().invoke(main, ["predict", str(runs["flow"]), str(good[0]),
                                       str(missing), str(corrupt), str(good[1]), "--json",
                                       "--top", "3", "--segments", "5", "--device", "cpu"])
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["video"] for line in lines] == [str(good[0]), str(missing), str(corrupt),
                                                 str(good[1])]
    for line in (lines[0], lines[3]):
        top = line["top"]
        assert len(top) == 3 and [s["name"] for s in top] == [NAMES[s["label"]] for s in top]
        probabilities = [s["probability"] for s in top]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6
    assert "no such file" in lines[1]["error"] and str(missing) in lines[1]["error"]
    assert str(corrupt) in lines[2]["error"] and "top" not in lines[2]


def test_cli_text_output(runs, train_shards, tmp_path):
    """Without --json: the path, then ranked "1. name 87.3%" lines; a failure is one line."""
    video = next(iter(_sources(train_shards["shards"]).values()))
    result = CliRunner().invoke(main, ["predict", str(runs["rgb3d"]), str(video),
                                       str(tmp_path / "gone.mkv"), "--clips", "2",
                                       "--device", "cpu"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0] == str(video) and len(lines) == 6  # 4 classes: --top 5 shows 4
    assert [line.split()[0] for line in lines[1:6]] == ["1.", "2.", "3.", "4.", "failed:"]
    assert lines[1].split()[1] in NAMES and lines[1].endswith("%")
    assert lines[5].startswith(f"failed: {tmp_path / 'gone.mkv'}: no such file")


def test_missing_extraction_settings_and_bad_runs_exit_2(runs, train_shards, tmp_path):
    """A gone shards folder (unless --extract-config), no flow, or no run: one line, exit 2."""
    state = checkpoint.load(checkpoint.find(runs["rgb"]))
    state["config"]["data"]["root"] = str(tmp_path / "gone")
    checkpoint.save(tmp_path / "moved.pt", state)
    video = str(next(iter(_sources(train_shards["shards"]).values())))
    base = ["predict", str(tmp_path / "moved.pt"), video, "--device", "cpu"]
    result = CliRunner().invoke(main, base)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("flowkit: error: ") and result.output.count("\n") == 1
    assert f"{tmp_path / 'gone' / 'extract_config.json'}: no such file" in result.output
    assert "--extract-config" in result.output
    result = CliRunner().invoke(main, [*base, "--extract-config",
                                       str(train_shards["shards"] / "extract_config.json")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["predict", str(runs["flow"]), video, "--extract-config",
                                       str(train_shards["rgb_only"] / "extract_config.json")])
    assert result.exit_code == 2 and "compute no flow; this flow model reads flow" in result.output
    result = CliRunner().invoke(main, ["predict", str(tmp_path), video])
    assert result.exit_code == 2 and "no checkpoint in this folder" in result.output
