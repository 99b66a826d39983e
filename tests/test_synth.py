"""Synthetic videos: files and labels written, frames decode back, motion is as truth.json says."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from flowkit.errors import ConfigError
from flowkit.video.decode import DecodeConfig, iter_frames, output_size
from flowkit.video.synth import (MOTIONS, SynthConfig, make_synthetic_videos, moving_texture,
                                 write_video)

# 160x128 are DFT-friendly sizes: cv2.phaseCorrelate would zero-pad other widths (340 -> 360),
# which breaks the exact circular shift of the periodic texture.
SMALL = SynthConfig(num_videos=4, num_frames=5, width=160, height=128)


@pytest.fixture(scope="module")
def small_h264(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 160x128 H.264 videos of 5 frames (right, left, down, up)."""
    folder = tmp_path_factory.mktemp("synth_h264")
    make_synthetic_videos(folder, SMALL)
    return folder


def gray(frame: np.ndarray) -> np.ndarray:
    """(H, W) float64 luma of an RGB uint8 frame, as phaseCorrelate wants."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float64)


def test_files_and_labels_are_written(small_h264: Path) -> None:
    """One video per class folder, labels.txt in video order with 0-based labels."""
    assert sorted(p.relative_to(small_h264).as_posix() for p in small_h264.rglob("*.mp4")) == [
        "down/down_2.mp4", "left/left_1.mp4", "right/right_0.mp4", "up/up_3.mp4"]
    assert (small_h264 / "labels.txt").read_text().splitlines() == [
        "right/right_0.mp4 0", "left/left_1.mp4 1", "down/down_2.mp4 2", "up/up_3.mp4 3"]


def test_truth_json_lists_motion_per_video(small_h264: Path) -> None:
    """truth.json holds id, label, label_name, dx, dy, num_frames for each video."""
    truth = json.loads((small_h264 / "truth.json").read_text())
    assert [(t["id"], t["label"], t["label_name"], t["dx"], t["dy"], t["num_frames"])
            for t in truth] == [
        ("right/right_0.mp4", 0, "right", 1.5, 0.0, 5),
        ("left/left_1.mp4", 1, "left", -1.5, 0.0, 5),
        ("down/down_2.mp4", 2, "down", 0.0, 1.0, 5),
        ("up/up_3.mp4", 3, "up", 0.0, -1.0, 5),
    ]


def test_returned_videos_match_the_files(tmp_path: Path) -> None:
    """make_synthetic_videos returns one SynthVideo per file; video 4 wraps to class 0."""
    videos = make_synthetic_videos(tmp_path, SynthConfig(num_videos=5, num_frames=2, width=32,
                                                         height=24, codec="ffv1"))
    assert [(v.video_id, v.label, v.num_frames) for v in videos] == [
        ("right/right_0.mkv", 0, 2), ("left/left_1.mkv", 1, 2), ("down/down_2.mkv", 2, 2),
        ("up/up_3.mkv", 3, 2), ("right/right_4.mkv", 0, 2)]
    assert all(v.path == tmp_path / v.video_id and v.path.is_file() for v in videos)


def test_frames_decode_back_with_the_right_count(small_h264: Path) -> None:
    """Each video decodes to 5 frames of 128x160 RGB."""
    for path in sorted(small_h264.rglob("*.mp4")):
        shapes = [f.shape for f in iter_frames(path, DecodeConfig(short_side=None))]
        assert shapes == [(128, 160, 3)] * 5


def test_ffv1_is_lossless(tmp_path: Path) -> None:
    """FFV1 videos decode to exactly the frames moving_texture made."""
    config = SynthConfig(num_videos=2, num_frames=3, width=33, height=21, codec="ffv1")
    for index, video in enumerate(make_synthetic_videos(tmp_path, config)):
        decoded = list(iter_frames(video.path, DecodeConfig(short_side=None)))
        made = list(moving_texture(33, 21, video.dx, video.dy, 3, seed=(0, index)))
        assert all(np.array_equal(a, b) for a, b in zip(decoded, made, strict=True))
        assert len(decoded) == 3


@pytest.mark.parametrize("codec", ["libx264", "ffv1"])
def test_output_is_deterministic(tmp_path: Path, codec: str) -> None:
    """The same config writes byte-identical files twice."""
    config = SynthConfig(num_videos=2, num_frames=3, width=64, height=48, codec=codec)

    def digests(folder: Path) -> dict[str, str]:
        make_synthetic_videos(folder, config)
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    first, second = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert len(first) == 4 and first == second


def test_h264_frames_are_close_to_the_truth(small_h264: Path) -> None:
    """CRF 10 H.264 keeps the luma within 2 grey levels on average of the uncompressed frames."""
    decoded = list(iter_frames(small_h264 / "right/right_0.mp4", DecodeConfig(short_side=None)))
    made = list(moving_texture(160, 128, 1.5, 0.0, 5, seed=(0, 0)))
    error = np.mean([np.abs(gray(a) - gray(b)).mean() for a, b in zip(decoded, made, strict=True)])
    assert error < 2.0


@pytest.mark.parametrize("motion", MOTIONS, ids=[m.name for m in MOTIONS])
def test_phase_correlation_recovers_the_motion(small_h264: Path, motion) -> None:
    """Decoded frames move by (dx, dy) per frame: phase correlation agrees within 0.1 px.

    cv2.phaseCorrelate's 5x5 centroid is biased for half-pixel shifts (1.5 px reads about 1.3
    or 1.7), so the 0.1 px check is over two frames (3 px) halved; each single step must still
    have the right sign and lie within 0.25 px.
    """
    index = motion.label
    path = small_h264 / f"{motion.name}/{motion.name}_{index}.mp4"
    frames = [gray(f) for f in iter_frames(path, DecodeConfig(short_side=None))]
    truth = np.array([motion.dx, motion.dy])
    over_two = np.array([cv2.phaseCorrelate(frames[t], frames[t + 2])[0] for t in range(3)]) / 2
    assert np.abs(over_two - truth).max() < 0.1
    steps = np.array([cv2.phaseCorrelate(frames[t], frames[t + 1])[0] for t in range(4)])
    assert np.abs(steps - truth).max() < 0.25
    moving = truth != 0
    assert np.all(np.sign(steps[:, moving]) == np.sign(truth[moving]))


def test_integer_motion_is_an_exact_roll() -> None:
    """With (dx, dy) = (2, -1), frame 1 is frame 0 rolled 2 px right and 1 px up."""
    first, second = moving_texture(40, 30, 2.0, -1.0, 2, seed=3)
    assert np.abs(second.astype(int) - np.roll(first, (-1, 2), axis=(0, 1))).max() <= 1


def test_texture_has_contrast_and_colour() -> None:
    """Frames span most of 0..255 (grey std > 30) and the channels differ (colour)."""
    frame = next(moving_texture(160, 128, 0.0, 0.0, 1, seed=0))
    assert gray(frame).std() > 30
    assert frame.min() < 30 and frame.max() > 225
    assert np.abs(frame[..., 0].astype(int) - frame[..., 2]).mean() > 10


def test_each_video_has_its_own_texture() -> None:
    """Videos 0 and 4 share a class but not a texture; the same seed repeats exactly."""
    a = next(moving_texture(32, 24, 0, 0, 1, seed=(0, 0)))
    b = next(moving_texture(32, 24, 0, 0, 1, seed=(0, 4)))
    again = next(moving_texture(32, 24, 0, 0, 1, seed=(0, 0)))
    assert np.abs(a.astype(int) - b).mean() > 20
    assert np.array_equal(a, again)


def test_default_size_is_not_resized_by_default_decoding() -> None:
    """The default 340x256 already has short side 256, so DecodeConfig() keeps it."""
    config = SynthConfig()
    assert output_size(config.width, config.height, DecodeConfig()) == (340, 256)


def test_write_video_returns_the_frame_count(tmp_path: Path) -> None:
    """write_video reports 7 frames written, and 7 decode back."""
    frames = [np.full((24, 32, 3), 30 * i, np.uint8) for i in range(7)]
    path = tmp_path / "out" / "seven.mp4"
    assert write_video(path, iter(frames), fps=25.0) == 7
    assert sum(1 for _ in iter_frames(path, DecodeConfig(short_side=None))) == 7


@pytest.mark.parametrize(
    "frames, codec, message",
    [
        ([np.zeros((24, 32), np.uint8)], "libx264", "H, W, 3"),
        ([np.zeros((24, 32, 3), np.float32)], "libx264", "uint8"),
        ([np.zeros((24, 32, 3), np.uint8), np.zeros((24, 30, 3), np.uint8)], "ffv1", "shape"),
        ([np.zeros((23, 32, 3), np.uint8)], "libx264", "even"),
        ([], "ffv1", "no frames"),
        ([np.zeros((24, 32, 3), np.uint8)], "mjpeg", "unknown codec"),
    ],
)
def test_write_video_refuses_bad_input_and_leaves_no_file(
    tmp_path: Path, frames: list, codec: str, message: str
) -> None:
    """Bad frames or codec raise ConfigError and leave nothing in the folder."""
    with pytest.raises(ConfigError, match=message):
        write_video(tmp_path / "bad.mkv", frames, fps=25.0, codec=codec)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"codec": "vp9"}, {"width": 341}, {"num_frames": 0}, {"fps": -1.0}, {"num_videos": 1.5}],
)
def test_invalid_synth_config_is_refused(kwargs: dict) -> None:
    """Unknown codec, odd H.264 width, no frames, negative fps, fractional counts: ConfigError."""
    with pytest.raises(ConfigError):
        SynthConfig(**kwargs)
