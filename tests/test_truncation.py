"""Truncated videos: detected against what the container states, then failed or kept
(``ExtractConfig.on_decode_error``) with a warning in the manifest and in ``flowkit info``."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from flowkit.config import ExtractConfig
from flowkit.errors import ConfigError, DecodeError
from flowkit.extract.inputs import VideoSource, collect_videos
from flowkit.extract.run import extract
from flowkit.store.folder import CONFIG_NAME
from flowkit.store.manifest import MANIFEST_NAME, OK, Manifest
from flowkit.store.reader import open_shards
from flowkit.store.summary import summarize
from flowkit.store.verify import verify
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig, iter_frames, probe
from flowkit.video.synth import moving_texture, write_video
from helpers import faststart_copy, make_legacy_manifest

NATIVE = DecodeConfig(short_side=None)
FAIL = ExtractConfig(decode=NATIVE, flow="farneback", storage=StorageConfig(rgb="raw"))
KEEP = dataclasses.replace(FAIL, on_decode_error="keep")
KEEP_SMALL_RGB = ExtractConfig(decode=DecodeConfig(short_side=16), flow="none",
                               on_decode_error="keep")


def frames_then_error(path: Path, config: DecodeConfig = NATIVE) -> tuple[int, str]:
    """Frames iter_frames yields before its DecodeError, and the error's message."""
    decoded = 0
    with pytest.raises(DecodeError) as caught:
        for _ in iter_frames(path, config):
            decoded += 1
    return decoded, str(caught.value)


def cut(source: Path, target: Path, size: int | None = None) -> Path:
    """``target``: the first ``size`` bytes of ``source`` (default: half of it)."""
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2 if size is None else size])
    return target


def extract_one(path: Path, out: Path, config: ExtractConfig):
    return extract([VideoSource(path.name, path)], out, config, workers=1, progress=False)


@pytest.fixture(scope="module")
def half_mkv(tmp_path_factory) -> Path:
    """A lossless 64x48 FFV1 mkv of 12 frames at 25 fps (0.48 s) cut in half: its whole frames
    (5 with the pinned PyAV, see :func:`decodable`) decode cleanly, while the container still
    states 0.48 s."""
    folder = tmp_path_factory.mktemp("half_mkv")
    write_video(folder / "whole.mkv", moving_texture(64, 48, 1.0, 0.0, 12), 25, "ffv1")
    return cut(folder / "whole.mkv", folder / "half.mkv")


def decodable(half_mkv: Path) -> int:
    """The frames of ``half_mkv`` whose packets lie entirely within the cut: what an intra-only
    codec decodes from it. Counted, not hard-coded, because the bytes an encoder spends on a
    frame change between FFmpeg releases (docs/testing.md)."""
    size = half_mkv.stat().st_size
    with av.open(str(half_mkv.with_name("whole.mkv"))) as container:
        count = sum(1 for packet in container.demux(container.streams.video[0])
                    if packet.size and packet.pos + packet.size <= size)
    assert 3 <= count <= 8  # about half of 12: the cut is where the fixture says
    return count


def test_half_mkv_is_a_truncation_error_after_its_frames(half_mkv):
    """Before: its frames and no error. Now its frames, then 'truncated' naming both lengths."""
    decoded, message = frames_then_error(half_mkv)
    assert decoded == decodable(half_mkv)
    assert message == (f"{half_mkv}: truncated: {decoded} frames decoded, the container states "
                       f"about 12 frames, 0.48 s (decoded frames end at {decoded / 25:.2f} s)")


def test_half_mkv_fails_by_default(half_mkv, tmp_path):
    report = extract_one(half_mkv, tmp_path, FAIL)
    assert report.ok == 0 and len(report.failed) == 1 and not report.warned
    assert f"truncated: {decodable(half_mkv)} frames decoded" in report.failed[0].error
    assert open_shards(tmp_path).videos == []


def test_half_mkv_kept_stores_its_frames_and_flows_with_a_warning(half_mkv, tmp_path):
    """keep: N frames, N - 1 flows, status ok, the error as warning; verify passes; info
    shows it."""
    n = decodable(half_mkv)
    report = extract_one(half_mkv, tmp_path, KEEP)
    assert report.ok == 1 and not report.failed
    entry = Manifest.read(tmp_path / MANIFEST_NAME)["half.mkv"]
    assert (entry.status, entry.num_frames, entry.num_flows) == (OK, n, n - 1)
    assert entry.warning.startswith(f"{half_mkv}: truncated: {n} frames decoded")
    assert report.warned == [entry]
    assert verify(tmp_path) == []
    whole = list(iter_frames(half_mkv.with_name("whole.mkv"), NATIVE))
    np.testing.assert_array_equal(open_shards(tmp_path).frames("half.mkv"),
                                  np.stack(whole[:n]))  # lossless: the first n frames, exactly
    summary = summarize(tmp_path)
    assert "stored with warnings" in summary.to_text()
    assert f"half.mkv: {n} frames; {entry.warning}" in summary.to_text()
    document = summary.to_json()
    assert document["videos_with_warnings"] == 1
    assert document["videos"][0]["warning"] == entry.warning
    assert json.loads((tmp_path / CONFIG_NAME).read_text())["on_decode_error"] == "keep"


def test_on_decode_error_must_match_on_resume_and_old_folders_resume_as_fail(half_mkv, tmp_path):
    """It decides what is stored, so a rerun with the other value is refused; a folder made
    before the setting existed (no key in its config, no warning in its manifest) resumes
    under the old behaviour, fail."""
    extract_one(half_mkv, tmp_path, FAIL)
    with pytest.raises(ConfigError, match="--on-decode-error: fail -> keep"):
        extract_one(half_mkv, tmp_path, KEEP)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    del config["on_decode_error"]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    make_legacy_manifest(tmp_path, missing="warning")
    assert Manifest.read(tmp_path)["half.mkv"].warning is None
    assert extract_one(half_mkv, tmp_path, FAIL).skipped == 1
    with pytest.raises(ConfigError, match="on_decode_error"):
        ExtractConfig(on_decode_error="skip")


@pytest.mark.parametrize("codec", ["ffv1", "libx264"])
@pytest.mark.parametrize("fps", [12.5, 25, 29.97, 60])
def test_whole_synthetic_videos_are_not_flagged(codec, fps, tmp_path):
    """synth's videos end within a frame of their stated duration at any frame rate. (The real
    UCF101, Kinetics and cinepak clips decode whole without error: tests/test_video.py.)"""
    path = tmp_path / f"v.{'mkv' if codec == 'ffv1' else 'mp4'}"
    write_video(path, moving_texture(64, 48, 1.0, 0.0, 7), fps, codec)
    assert sum(1 for _ in iter_frames(path, NATIVE)) == 7


def test_cinepak_header_count_is_not_taken_for_truncation(videos):
    """The cinepak file states 444 frames and decodes 68, but they span its whole 29.6 s."""
    path = videos / "opencv_tree_cinepak.avi"
    assert probe(path).header_frames == 444
    assert sum(1 for _ in iter_frames(path, DecodeConfig(short_side=16))) == 68


def test_cut_avi_is_truncated_against_its_header(videos, tmp_path):
    """The UCF101 avi cut to 150 kB decodes 78 frames cleanly (it used to be stored as a whole
    video); its header counts 164 frames (6.56 s), its remaining index only 3.36 s."""
    path = cut(videos / "v_ApplyEyeMakeup_g01_c01.avi", tmp_path / "cut.avi", 150_000)
    decoded, message = frames_then_error(path, DecodeConfig(short_side=16))
    assert decoded == 78
    assert "truncated: 78 frames decoded, the container states 164 frames, 6.56 s" in message
    report = extract_one(path, tmp_path / "out", KEEP_SMALL_RGB)
    assert report.ok == 1 and report.warned[0].num_frames == 78


def test_cut_mp4_with_index_at_end_fails_even_when_keeping(videos, tmp_path):
    """Cut before its moov index, an mp4 does not open: nothing to keep, so it fails."""
    path = cut(videos / "kinetics_arm_wrestling.mp4", tmp_path / "cut.mp4", 300_000)
    report = extract_one(path, tmp_path / "out", KEEP_SMALL_RGB)
    assert report.ok == 0 and "not a readable video" in report.failed[0].error


def test_cut_faststart_mp4_keeps_the_frames_before_the_damage(videos, tmp_path):
    """A faststart mp4 cut in half: fail stores nothing; keep stores the N frames before the
    damage (N about half of 280) and N - 1 flows, the demuxer's complaint as the warning."""
    whole = faststart_copy(videos / "kinetics_arm_wrestling.mp4", tmp_path / "whole.mp4")
    path = cut(whole, tmp_path / "half.mp4")
    decoded, message = frames_then_error(path, DecodeConfig(short_side=16))
    assert 100 < decoded < 180
    failed = extract_one(path, tmp_path / "fail", ExtractConfig(
        decode=DecodeConfig(short_side=16), flow="none"))
    assert failed.ok == 0 and failed.failed[0].error == message
    config = ExtractConfig(decode=DecodeConfig(short_side=16), flow="farneback",
                           on_decode_error="keep")
    kept = extract_one(path, tmp_path / "keep", config)
    entry = kept.warned[0]
    assert (entry.num_frames, entry.num_flows) == (decoded, decoded - 1)
    assert entry.warning == message
    assert re.search(rf"truncated or damaged data at frame {decoded} ", message)
    assert verify(tmp_path / "keep") == []


def test_a_video_without_any_frame_fails_even_when_keeping(tmp_path):
    """keep needs at least one good frame: an unreadable file is still failed."""
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(2000))
    report = extract(collect_videos([bad]), tmp_path / "out", KEEP_SMALL_RGB,
                     workers=1, progress=False)
    assert report.ok == 0 and len(report.failed) == 1 and not report.warned


def test_cli_keep_reports_and_info_shows_the_warning(half_mkv, tmp_path):
    from click.testing import CliRunner

    from flowkit.cli.main import main

    def run(*args: object):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    result = run("extract", half_mkv, "--out", tmp_path, "--flow", "farneback", "--short-side",
                 "0", "--quiet", "--on-decode-error", "keep")
    assert result.exit_code == 0
    n = decodable(half_mkv)
    assert "1 ok, 0 failed" in result.output and f"kept with a warning: half.mkv: {n} frames" in (
        result.output)
    assert f"truncated: {n} frames decoded" in run("info", tmp_path).output
    info = json.loads(run("info", tmp_path, "--json").output)
    assert info["videos"][0]["warning"].endswith(f"(decoded frames end at {n / 25:.2f} s)")
    result = run("extract", half_mkv, "--out", tmp_path / "default", "--flow", "farneback",
                 "--quiet")
    assert result.exit_code == 1 and "failed: half.mkv" in result.output
