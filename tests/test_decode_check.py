"""The pre-decode check (``ExtractConfig.check_decode``): a video that does not decode to its
end fails before any flow is computed for it, and the count the check gives is exact."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flowkit.cli.main import EXIT_SOME_FAILED, main
from flowkit.config import ExtractConfig
from flowkit.errors import DecodeError
from flowkit.extract.shard import extract_shard
from flowkit.flow.base import FlowBackend
from flowkit.store.folder import CONFIG_NAME
from flowkit.store.manifest import FAILED, OK, Manifest, ManifestEntry
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig, count_frames, iter_frames
from flowkit.video.synth import moving_texture, write_video
from helpers import faststart_copy

NATIVE = DecodeConfig(short_side=None)
CHECKED = ExtractConfig(decode=NATIVE, flow="farneback", storage=StorageConfig(rgb="raw"),
                        batch_size=2)


class CountingFlow(FlowBackend):
    """Zero flow that counts the pairs it was asked for."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__(None)
        self.pairs = 0

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        self.pairs += len(first)
        return np.zeros((*first.shape[:3], 2), np.float32)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    """A 64x48 H.264 mp4 of 40 frames, its index first (a cut copy still opens)."""
    folder = tmp_path_factory.mktemp("check")
    write_video(folder / "whole.mp4", moving_texture(64, 48, 1.0, 0.5, 40), fps=25)
    return faststart_copy(folder / "whole.mp4", folder / "healthy.mp4")


@pytest.fixture(scope="module")
def truncated(healthy: Path) -> Path:
    """``healthy`` cut at 60% of its bytes: it opens, and decoding breaks off mid-stream."""
    data = healthy.read_bytes()
    path = healthy.with_name("truncated.mp4")
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def _extract(tmp_path: Path, video: Path, config: ExtractConfig) -> tuple[ManifestEntry, int]:
    """One video through extract_shard with a counting backend: its entry, pairs computed."""
    backend = CountingFlow()
    entry = ManifestEntry(video_id=video.name, source=str(video), label=0, shard="shard-0.h5")
    [done] = extract_shard(tmp_path / "shard-0.h5", [entry], config,
                           make_backend=lambda device: backend)
    return done, backend.pairs


def test_count_frames_equals_the_frames_iter_frames_yields(healthy):
    for config in (NATIVE, DecodeConfig(short_side=24), DecodeConfig(short_side=None, fps=10),
                   DecodeConfig(short_side=None, fps=60)):
        assert count_frames(healthy, config) == sum(1 for _ in iter_frames(healthy, config))
    assert count_frames(healthy, NATIVE) == 40


def test_count_frames_raises_the_error_iter_frames_raises(truncated):
    with pytest.raises(DecodeError) as counted:
        count_frames(truncated, NATIVE)
    with pytest.raises(DecodeError) as iterated:
        for _ in iter_frames(truncated, NATIVE):
            pass
    assert str(counted.value) == str(iterated.value)
    assert str(truncated) in str(counted.value)


def test_a_video_truncated_mid_stream_fails_before_any_flow_is_computed(tmp_path, truncated):
    done, pairs = _extract(tmp_path, truncated, CHECKED)
    assert done.status == FAILED and str(truncated) in done.error
    assert pairs == 0


def test_without_the_check_the_flow_of_the_good_frames_is_computed_first(tmp_path, truncated):
    """What the check saves: the same video unchecked spends flow on its frames before the
    error, and fails the same way."""
    (tmp_path / "checked").mkdir()
    checked, _ = _extract(tmp_path / "checked", truncated, CHECKED)
    done, pairs = _extract(tmp_path, truncated, dataclasses.replace(CHECKED, check_decode=False))
    assert done.status == FAILED and done.error == checked.error
    assert pairs > 0


def test_a_healthy_video_is_stored_alike_with_and_without_the_check(tmp_path, healthy):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    checked, pairs = _extract(tmp_path / "a", healthy, CHECKED)
    unchecked, _ = _extract(tmp_path / "b", healthy, dataclasses.replace(CHECKED,
                                                                          check_decode=False))
    assert checked.status == unchecked.status == OK
    assert (checked.num_frames, checked.num_flows) == (unchecked.num_frames,
                                                        unchecked.num_flows) == (40, 39)
    assert pairs == 39


def test_the_check_is_not_a_stored_setting():
    """Turning it off does not change what is stored, so a run resumes across it."""
    assert CHECKED.output_settings() == dataclasses.replace(
        CHECKED, check_decode=False).output_settings()


def _failures(out: Path) -> list[str | None]:
    with contextlib.closing(Manifest.open(out)) as manifest:
        return [entry.error for entry in manifest.with_status(FAILED)]


def test_the_cli_turns_the_check_off_and_a_resume_accepts_either(tmp_path, truncated, healthy):
    """``--no-check-decode`` reaches the saved config; the broken video fails with the same
    reason either way, and a rerun with the check on resumes the folder."""
    out = tmp_path / "out"
    args = ["extract", str(healthy), str(truncated), "--out", str(out), "--short-side", "0",
            "--flow", "farneback", "--workers", "1", "-q"]
    result = CliRunner().invoke(main, [*args, "--no-check-decode"])
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    assert json.loads((out / CONFIG_NAME).read_text())["check_decode"] is False
    unchecked = _failures(out)
    result = CliRunner().invoke(main, [*args, "--retry-failed"])
    assert result.exit_code == EXIT_SOME_FAILED, result.output
    assert "1 ok, 1 failed" in result.output
    assert _failures(out) == unchecked
