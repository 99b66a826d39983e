"""Fixtures: small synthetic videos with known motion, made once per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowkit.synth import SynthConfig, make_synthetic_videos


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
