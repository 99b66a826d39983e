"""Inputs a real dataset throws at an extraction run: odd and extreme sizes, variable frame
rates, one-frame and frame-less videos, non-ASCII paths, symlinks, clashing names, unreadable
files. Each test states what flowkit does with it (docs/reliability.md is the table)."""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np
import pytest

from flowkit.config import ExtractConfig
from flowkit.data import ShardDataset
from flowkit.errors import InputError
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.store.manifest import FAILED, OK
from flowkit.store.reader import open_shards
from flowkit.store.verify import verify
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig, iter_frames


def _write(path: Path, frames: Sequence[np.ndarray], codec: str = "ffv1",
           pts_ms: Sequence[int] | None = None) -> Path:
    """Encode RGB frames; ffv1 (lossless, any size) or mpeg4; ``pts_ms`` gives each frame's
    presentation time in milliseconds (a variable frame rate)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = frames[0].shape[:2] if frames else (48, 64)
        stream.pix_fmt = "yuv444p" if codec == "ffv1" else "yuv420p"
        if pts_ms is not None:
            stream.time_base = Fraction(1, 1000)
        container.start_encoding()  # the header, even when no frame follows
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[index], stream.time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _moving(height: int, width: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` frames of smooth texture moving 1 px right per frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return [np.roll(base, shift, axis=1) for shift in range(count)]


def _extract(inputs: Sequence[Path], out: Path, **config: object):
    settings = {"decode": DecodeConfig(short_side=None), "flow": "farneback", **config}
    return extract(collect_videos(inputs), out, ExtractConfig(**settings), workers=1,
                   progress=False)


def _shapes(out: Path) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    with open_shards(out) as shards:
        return {video_id: (shards[video_id].frames[:].shape, shards[video_id].flows[:].shape)
                for video_id in shards}


def test_odd_and_tiny_sizes_are_stored_at_their_size(tmp_path):
    videos = tmp_path / "videos"
    _write(videos / "odd.mkv", _moving(241, 317, 3))
    _write(videos / "tiny.mkv", _moving(16, 16, 3))
    for flow in ("farneback", "tvl1"):
        report = _extract([videos], tmp_path / flow, flow=flow)
        assert report.all_ok
        assert _shapes(tmp_path / flow) == {
            "odd.mkv": ((3, 241, 317, 3), (2, 241, 317, 2)),
            "tiny.mkv": ((3, 16, 16, 3), (2, 16, 16, 2))}
    _extract([videos], tmp_path / "resized", decode=DecodeConfig(short_side=64))
    # The shorter side becomes 64; the longer one is scaled and rounded (317 * 64 / 241 = 84.2).
    assert _shapes(tmp_path / "resized") == {
        "odd.mkv": ((3, 64, 84, 3), (2, 64, 84, 2)), "tiny.mkv": ((3, 64, 64, 3), (2, 64, 64, 2))}


def test_4k_frames_are_decoded_and_resized(tmp_path):
    video = _write(tmp_path / "videos" / "uhd.mp4", _moving(2160, 3840, 2), codec="mpeg4")
    _extract([video], tmp_path / "resized", decode=DecodeConfig(short_side=128))
    assert _shapes(tmp_path / "resized") == {"uhd.mp4": ((2, 128, 228, 3), (1, 128, 228, 2))}
    _extract([video], tmp_path / "native", flow="none")
    with open_shards(tmp_path / "native") as shards:
        assert shards["uhd.mp4"].frames[1].shape == (2160, 3840, 3)


def test_variable_frame_rate_counts_decoded_frames_and_resamples_by_time(tmp_path):
    video = _write(tmp_path / "vfr.mkv", _moving(48, 64, 6), pts_ms=[0, 40, 80, 200, 240, 400])
    decoded = np.stack(list(iter_frames(video, DecodeConfig(short_side=None))))
    raw = StorageConfig(rgb="raw")
    _extract([video], tmp_path / "native", storage=raw)
    with open_shards(tmp_path / "native") as shards:
        np.testing.assert_array_equal(shards["vfr.mkv"].frames[:], decoded)
    # At 10 fps, output k is the last frame shown at k * 100 ms: frames 0, 2, 3, 4, 5.
    _extract([video], tmp_path / "10fps", decode=DecodeConfig(short_side=None, fps=10),
             storage=raw)
    with open_shards(tmp_path / "10fps") as shards:
        np.testing.assert_array_equal(shards["vfr.mkv"].frames[:], decoded[[0, 2, 3, 4, 5]])


def test_one_frame_video_is_ok_with_zero_flows_and_a_frameless_one_fails(tmp_path):
    """A bug before: ``flows[:]`` of a one-frame video raised "stores no flow data"."""
    videos = tmp_path / "videos"
    _write(videos / "one.mkv", _moving(48, 64, 1))
    _write(videos / "none.mkv", [])
    _write(videos / "two.mkv", _moving(48, 64, 2))
    report = _extract([videos], tmp_path / "out")
    assert [entry.video_id for entry in report.failed] == ["none.mkv"]
    # Our prefix, not FFmpeg's wording of the cause ("(End of file)" today), which is theirs.
    assert re.search(r"none\.mkv: (not a readable video|no frame could be decoded)",
                     report.failed[0].error)
    with open_shards(tmp_path / "out") as shards:
        assert shards["one.mkv"].frames[:].shape == (1, 48, 64, 3)
        assert shards["one.mkv"].flows[:].shape == (0, 48, 64, 2)
        with pytest.raises(IndexError):
            shards["one.mkv"].flows[0]
    assert verify(tmp_path / "out") == []
    # A flow Dataset leaves out the video that has no flow to sample.
    assert [video for video, _ in ShardDataset(tmp_path / "out", "flow").items] == ["two.mkv"]


def test_non_ascii_and_space_paths_keep_their_ids(tmp_path):
    folder = tmp_path / "vidéos été"
    names = ["clip 1 ü.mkv", "日本語/動画.mkv"]
    for seed, name in enumerate(names):
        _write(folder / name, _moving(48, 64, 2, seed=seed))
    (folder / "list.txt").write_text("".join(f"{name} {label}\n"
                                             for label, name in enumerate(names)))
    for inputs, out in (([folder], "walked"), ([folder / "list.txt"], "listed")):
        assert _extract(inputs, tmp_path / out).all_ok
        assert verify(tmp_path / out) == []
        with open_shards(tmp_path / out) as shards:
            assert sorted(shards) == sorted(names)
            assert shards["日本語/動画.mkv"].frames[:].shape == (2, 48, 64, 3)
    with open_shards(tmp_path / "listed") as shards:
        assert shards["clip 1 ü.mkv"].entry.label == 0


def test_symlinks_are_followed_once_and_a_dangling_one_fails_alone(tmp_path):
    """A bug before: a link to a parent folder listed every video 41 times (until ELOOP)."""
    real = tmp_path / "real"
    _write(real / "a.mkv", _moving(48, 64, 2))
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    os.symlink(real / "a.mkv", videos / "linked.mkv")
    os.symlink(real, videos / "sub" / "folder_link")
    os.symlink("..", videos / "sub" / "loop")
    os.symlink(tmp_path / "gone.mkv", videos / "dangling.mkv")
    ids = [source.video_id for source in collect_videos([videos])]
    assert ids == ["dangling.mkv", "linked.mkv", "sub/folder_link/a.mkv"]
    report = _extract([videos], tmp_path / "out")
    assert [(entry.video_id, entry.status) for entry in report.failed] == [("dangling.mkv", FAILED)]
    assert "no such file" in report.failed[0].error
    assert report.ok == 2


def test_equal_basenames_in_different_folders(tmp_path):
    for seed, folder in enumerate(("a", "b")):
        _write(tmp_path / "videos" / folder / "clip.mkv", _moving(48, 64, 2, seed=seed))
    ids = [source.video_id for source in collect_videos([tmp_path / "videos"])]
    assert ids == ["a/clip.mkv", "b/clip.mkv"]
    with pytest.raises(InputError, match="two inputs give the video id 'clip.mkv'"):
        collect_videos([tmp_path / "videos" / "a" / "clip.mkv",
                        tmp_path / "videos" / "b" / "clip.mkv"])


def test_an_unreadable_input_fails_alone(tmp_path, monkeypatch):
    """Permissions, injected: the tests may run as root, who reads any file."""
    videos = tmp_path / "videos"
    for name in ("locked.mkv", "open.mkv"):
        _write(videos / name, _moving(48, 64, 2))
    real_open = av.open

    def open_unless_locked(path, *args, **kwargs):
        if str(path).endswith("locked.mkv"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(av, "open", open_unless_locked)
    report = _extract([videos], tmp_path / "out")
    assert [entry.video_id for entry in report.failed] == ["locked.mkv"]
    assert report.failed[0].error.endswith("locked.mkv: cannot read (Permission denied)")
    with open_shards(tmp_path / "out") as shards:
        assert list(shards) == ["open.mkv"]
