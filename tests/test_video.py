"""Decoding with flowkit.video.decode: counts, sizes, frame-rate resampling, rotation, errors."""

from __future__ import annotations

import itertools
import re
import tracemalloc
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from flowkit.errors import ConfigError, DecodeError
from flowkit.video.decode import DecodeConfig, iter_frames, output_size, probe
from flowkit.video.synth import write_video
from helpers import faststart_copy

FIXTURES = Path(__file__).resolve().parent / "data"
UCF = "v_ApplyEyeMakeup_g01_c01.avi"
KINETICS = "kinetics_arm_wrestling.mp4"
CINEPAK = "opencv_tree_cinepak.avi"


def count(path: Path, config: DecodeConfig | None = None) -> int:
    """Number of frames iter_frames yields (native size unless ``config`` says otherwise)."""
    return sum(1 for _ in iter_frames(path, config or DecodeConfig(short_side=None)))


def numbered_frames(n: int, width: int = 32, height: int = 24) -> list[np.ndarray]:
    """n frames whose pixels all equal 10 * index (so a decoded frame names its index)."""
    return [np.full((height, width, 3), 10 * i, np.uint8) for i in range(n)]


# --- real videos ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, frames", [(UCF, 164), (KINETICS, 280), (CINEPAK, 68)])
def test_frame_counts_of_real_videos(videos: Path, name: str, frames: int) -> None:
    """UCF101 clip decodes 164 frames, Kinetics 280, cinepak 68 although its header says 444."""
    assert count(videos / name) == frames


def test_probe_reports_header_that_lies(videos: Path) -> None:
    """probe() gives the header's 444 frames for the cinepak file, size 320x240, ~15 fps."""
    info = probe(videos / CINEPAK)
    assert (info.header_frames, info.width, info.height, info.rotation) == (444, 320, 240, 0)
    assert info.codec == "cinepak"
    assert info.fps == pytest.approx(15.0, abs=1e-3)
    assert info.duration == pytest.approx(29.6, abs=0.01)


def test_probe_kinetics(videos: Path) -> None:
    """probe() on the Kinetics clip: h264, 340x256, 28 fps, 280 header frames, 10 s."""
    info = probe(videos / KINETICS)
    assert (info.codec, info.width, info.height, info.header_frames) == ("h264", 340, 256, 280)
    assert info.fps == 28.0 and info.duration == pytest.approx(10.0)


@pytest.mark.parametrize(
    "config, shape",
    [
        (DecodeConfig(), (256, 341, 3)),  # 320x240 -> short side 256: 341x256
        (DecodeConfig(short_side=None), (240, 320, 3)),
        (DecodeConfig(short_side=0), (240, 320, 3)),
        (DecodeConfig(short_side=120), (120, 160, 3)),
        (DecodeConfig(size=(224, 160)), (160, 224, 3)),
        (DecodeConfig(short_side=128, size=(64, 64)), (64, 64, 3)),
    ],
)
def test_resized_shapes_of_ucf_frames(videos: Path, config: DecodeConfig, shape: tuple) -> None:
    """Frames of the 320x240 UCF101 clip come out (H, W, 3) uint8 C-contiguous at the asked size."""
    frames = list(itertools.islice(iter_frames(videos / UCF, config), 3))
    assert [f.shape for f in frames] == [shape] * 3
    assert all(f.dtype == np.uint8 and f.flags.c_contiguous for f in frames)


def test_kinetics_at_default_short_side_is_not_resized(videos: Path) -> None:
    """The 340x256 Kinetics clip already has short side 256: frames equal the native decode."""
    native = next(iter_frames(videos / KINETICS, DecodeConfig(short_side=None)))
    default = next(iter_frames(videos / KINETICS))
    assert default.shape == (256, 340, 3)
    assert np.array_equal(native, default)


def test_shrinking_uses_area_interpolation(videos: Path) -> None:
    """A halved frame equals cv2.INTER_AREA of the native frame exactly."""
    native = next(iter_frames(videos / UCF, DecodeConfig(short_side=None)))
    half = next(iter_frames(videos / UCF, DecodeConfig(short_side=120)))
    assert np.array_equal(half, cv2.resize(native, (160, 120), interpolation=cv2.INTER_AREA))


def test_resampling_ucf_at_native_rate_keeps_every_frame(videos: Path) -> None:
    """fps=25 on the 25 fps UCF clip gives the same 164 frames, despite its shuffled timestamps."""
    config = DecodeConfig(size=(40, 30))
    native = list(iter_frames(videos / UCF, config))
    resampled = list(iter_frames(videos / UCF, DecodeConfig(size=(40, 30), fps=25.0)))
    assert len(resampled) == 164
    assert all(np.array_equal(a, b) for a, b in zip(native, resampled, strict=True))


def test_resampling_ucf_to_10_fps_takes_every_2_5th_frame(videos: Path) -> None:
    """25 -> 10 fps: output k is decoded frame floor(2.5 k); 6.56 s gives 66 frames."""
    native = list(iter_frames(videos / UCF, DecodeConfig(size=(40, 30))))
    slow = list(iter_frames(videos / UCF, DecodeConfig(size=(40, 30), fps=10.0)))
    assert len(slow) == 66
    assert all(np.array_equal(frame, native[int(2.5 * k)]) for k, frame in enumerate(slow))


def test_resampling_cinepak_restores_its_444_displayed_frames(videos: Path) -> None:
    """The cinepak file's 68 frames are spread over 444 slots of 1/15 s: fps=15 gives 444."""
    assert count(videos / CINEPAK, DecodeConfig(size=(32, 24), fps=15.0)) == 444


def test_frames_are_streamed_not_accumulated(videos: Path) -> None:
    """Decoding all 280 Kinetics frames (73 MB as arrays) never holds more than 8 MB of numpy."""
    tracemalloc.start()
    try:
        for _ in iter_frames(videos / KINETICS):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


# --- output_size and config -----------------------------------------------------------------


@pytest.mark.parametrize(
    "width, height, config, expected",
    [
        (320, 240, DecodeConfig(), (341, 256)),
        (240, 320, DecodeConfig(), (256, 341)),
        (340, 256, DecodeConfig(), (340, 256)),
        (1920, 1080, DecodeConfig(), (455, 256)),
        (100, 100, DecodeConfig(short_side=None), (100, 100)),
        (320, 240, DecodeConfig(size=(224, 224)), (224, 224)),
    ],
)
def test_output_size(width: int, height: int, config: DecodeConfig, expected: tuple) -> None:
    """Short side scaling rounds the long side like MMAction2 (int(x * s + 0.5)); size wins."""
    assert output_size(width, height, config) == expected


@pytest.mark.parametrize(
    "kwargs",
    [{"short_side": -1}, {"short_side": 2.5}, {"size": (0, 10)}, {"size": (10,)},
     {"fps": 0.0}, {"fps": float("nan")}, {"threads": -1}],
)
def test_invalid_decode_config_is_refused(kwargs: dict) -> None:
    """Negative or non-integer sizes, non-positive fps and negative threads raise ConfigError."""
    with pytest.raises(ConfigError):
        DecodeConfig(**kwargs)


def test_size_given_as_list_is_stored_as_tuple() -> None:
    """DecodeConfig(size=[64, 48]) keeps (64, 48), so configs compare and hash as values."""
    assert DecodeConfig(size=[64, 48]).size == (64, 48)


# --- frame-rate resampling on a synthetic video -------------------------------------------


@pytest.fixture
def numbered_video(tmp_path: Path) -> Path:
    """A lossless 25 fps video of 8 frames, frame i filled with grey 10 * i."""
    path = tmp_path / "numbered.mkv"
    write_video(path, numbered_frames(8), fps=25.0, codec="ffv1")
    return path


def test_halving_frame_rate_keeps_even_frames(numbered_video: Path) -> None:
    """25 -> 12.5 fps turns 8 frames into 4: frames 0, 2, 4, 6."""
    frames = list(iter_frames(numbered_video, DecodeConfig(short_side=None, fps=12.5)))
    assert [int(f[0, 0, 0]) // 10 for f in frames] == [0, 2, 4, 6]


def test_doubling_frame_rate_repeats_each_frame(numbered_video: Path) -> None:
    """25 -> 50 fps turns 8 frames into 16: each frame twice."""
    frames = list(iter_frames(numbered_video, DecodeConfig(short_side=None, fps=50.0)))
    assert [int(f[0, 0, 0]) // 10 for f in frames] == [k // 2 for k in range(16)]


def test_no_fps_keeps_every_decoded_frame(numbered_video: Path) -> None:
    """Without fps all 8 frames come back in order, pixel-exact (FFV1 is lossless)."""
    frames = list(iter_frames(numbered_video, DecodeConfig(short_side=None)))
    assert [int(f[0, 0, 0]) for f in frames] == [10 * i for i in range(8)]
    assert all(np.array_equal(a, b) for a, b in zip(frames, numbered_frames(8), strict=True))


# --- rotation -------------------------------------------------------------------------------


def marker_centre(frame: np.ndarray, channel: int) -> tuple[float, float]:
    """(row, col) centre of the pixels where ``channel`` is high and the others low."""
    others = [c for c in range(3) if c != channel]
    mask = (frame[..., channel] > 200) & (frame[..., others].max(axis=-1) < 80)
    rows, cols = np.nonzero(mask)
    return float(rows.mean()), float(cols.mean())


@pytest.mark.parametrize(
    "name, rotation, shape, red, blue",
    [
        # Stored 48x32 with red at top-left, blue at bottom-left. +90 turns counter-clockwise.
        ("rotate_90", 90, (48, 32, 3), (43.5, 3.5), (43.5, 27.5)),
        ("rotate_m90", -90, (48, 32, 3), (3.5, 27.5), (3.5, 3.5)),
        ("rotate_180", -180, (32, 48, 3), (27.5, 43.5), (3.5, 43.5)),
    ],
)
def test_rotation_metadata_is_applied_like_ffmpeg(
    name: str, rotation: int, shape: tuple, red: tuple, blue: tuple
) -> None:
    """Frames are turned as ffmpeg's autorotate shows them: markers where ffmpeg put them."""
    path = FIXTURES / f"{name}.mp4"
    frames = list(iter_frames(path, DecodeConfig(short_side=None)))
    assert len(frames) == 2 and frames[0].shape == shape
    assert marker_centre(frames[0], 0) == pytest.approx(red, abs=0.5)
    assert marker_centre(frames[0], 2) == pytest.approx(blue, abs=0.5)
    ffmpeg = cv2.cvtColor(cv2.imread(str(FIXTURES / f"{name}_ffmpeg.png")), cv2.COLOR_BGR2RGB)
    assert np.abs(frames[0].astype(int) - ffmpeg).max() <= 2
    info = probe(path)
    assert (info.rotation, info.height, info.width) == (rotation, shape[0], shape[1])


def test_rotation_happens_before_resizing() -> None:
    """A 48x32 video shown turned to 32x48, at short side 64, comes out 64x96 (W x H)."""
    frame = next(iter_frames(FIXTURES / "rotate_90.mp4", DecodeConfig(short_side=64)))
    assert frame.shape == (96, 64, 3)


# --- errors ---------------------------------------------------------------------------------


def decode_error(path: Path) -> str:
    """Message of the DecodeError raised while decoding ``path``; fails if none is raised."""
    with pytest.raises(DecodeError) as caught:
        for _ in iter_frames(path):
            pass
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    """A missing path raises DecodeError naming it, from iter_frames and probe."""
    assert "no such file" in decode_error(tmp_path / "absent.mp4")
    with pytest.raises(DecodeError, match="absent.mp4: no such file"):
        probe(tmp_path / "absent.mp4")


def test_empty_file(tmp_path: Path) -> None:
    """A 0-byte .mp4 raises DecodeError saying it is empty."""
    path = tmp_path / "empty.mp4"
    path.touch()
    assert "empty file" in decode_error(path)


def test_text_file_renamed_mp4(tmp_path: Path) -> None:
    """A text file named .mp4 raises DecodeError: not a readable video (FFmpeg's invalid data)."""
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    assert "not a readable video" in decode_error(path)


def test_directory_is_not_a_video(tmp_path: Path) -> None:
    """A directory path raises DecodeError."""
    assert "not a regular file" in decode_error(tmp_path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    """A WAV file raises DecodeError listing the streams it has."""
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert "no video stream (streams: audio)" in decode_error(path)


def test_truncated_mp4_with_index_at_end_fails_to_open(videos: Path, tmp_path: Path) -> None:
    """The Kinetics mp4 cut to 300 kB (its moov index is at the end) raises DecodeError."""
    path = tmp_path / "cut.mp4"
    path.write_bytes((videos / KINETICS).read_bytes()[:300_000])
    assert "not a readable video" in decode_error(path)


def test_truncated_faststart_mp4_yields_frames_then_fails(videos: Path, tmp_path: Path) -> None:
    """A faststart copy cut in half yields its first N frames, then DecodeError at frame N."""
    data = faststart_copy(videos / KINETICS, tmp_path / "faststart.mp4").read_bytes()
    cut = tmp_path / "faststart_cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    reported = []
    for threads in (0, 1):  # the same with and without frame threading
        decoded = 0
        with pytest.raises(DecodeError, match=r"faststart_cut.mp4: truncated") as caught:
            for _ in iter_frames(cut, DecodeConfig(short_side=None, threads=threads)):
                decoded += 1
        reported.append((decoded, int(re.search(r"at frame (\d+)", str(caught.value))[1])))
    assert reported[0] == reported[1] and reported[0][0] == reported[0][1]
    assert 100 < reported[0][0] < 180  # half the bytes hold about half of the 280 frames
