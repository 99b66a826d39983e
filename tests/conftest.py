"""Fixtures: small synthetic videos with known motion, made once per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowkit.video.synth import SynthConfig, make_synthetic_videos
from helpers import shared_data_dir


@pytest.fixture
def videos() -> Path:
    """The shared real videos folder (UCF101 avi, Kinetics mp4, cinepak avi), or skip."""
    data = shared_data_dir()
    if data is None or not (data / "videos").is_dir():
        pytest.skip("shared real data ../shared/data/videos not found next to the project")
    return data / "videos"


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory) -> Path:
    """Four 64x48 lossless videos of 5 frames (right, left, down, up), with labels.txt."""
    folder = tmp_path_factory.mktemp("tiny_videos")
    make_synthetic_videos(folder, SynthConfig(num_videos=4, num_frames=5, width=64, height=48,
                                              codec="ffv1"))
    return folder


@pytest.fixture(scope="session")
def motion_videos(tmp_path_factory) -> tuple[Path, dict]:
    """Four 128x96 H.264 videos of 4 frames with known translation, and their truth by id."""
    folder = tmp_path_factory.mktemp("motion_videos")
    make_synthetic_videos(folder, SynthConfig(num_videos=4, num_frames=4, width=128, height=96))
    truth = {item["id"]: item for item in json.loads((folder / "truth.json").read_text())}
    return folder, truth


@pytest.fixture(scope="session")
def train_shards(tmp_path_factory) -> dict[str, Path]:
    """Shards to train on: 8 lossless 64x48 videos of 10 frames (2 per direction) with
    Farneback flow, the same videos without flow ("rgb_only"), and "split", a CSV of all 8."""
    from flowkit.config import ExtractConfig
    from flowkit.extract.inputs import collect_videos
    from flowkit.extract.run import extract
    from flowkit.video.decode import DecodeConfig

    root = tmp_path_factory.mktemp("train_data")
    make_synthetic_videos(root / "videos", SynthConfig(num_videos=8, num_frames=10, width=64,
                                                       height=48, codec="ffv1"))
    rows = [line.split() for line in (root / "videos" / "labels.txt").read_text().splitlines()]
    (root / "all.csv").write_text("video_id,label\n" + "".join(f"{v},{l}\n" for v, l in rows))
    out = {"split": root / "all.csv", "root": root}
    for name, flow in (("shards", "farneback"), ("rgb_only", "none")):
        config = ExtractConfig(decode=DecodeConfig(short_side=None), flow=flow)
        extract(collect_videos([root / "videos" / "labels.txt"]), root / name, config,
                workers=1, progress=False)
        out[name] = root / name
    return out
