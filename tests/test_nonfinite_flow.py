"""Flow that is not finite (NaN, infinities) from a backend fails its video with the reason
instead of being stored (uint8 quantisation made NaN -bound without a trace); float16 shards
holding such flow (written before the check) are damage to `flowkit verify`."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import flowkit.extract.shard as shard_work
from flowkit.cli.main import main
from flowkit.config import ExtractConfig
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.flow import get_backend
from flowkit.store.manifest import FAILED, MANIFEST_NAME, OK, Manifest
from flowkit.store.reader import open_shards
from flowkit.store.verify import DAMAGED, verify
from flowkit.store.writer import StorageConfig, group_name
from flowkit.video.decode import DecodeConfig, iter_frames

VIDEO = "left/left_1.mkv"  # the video whose flow of frames 2->3 the backend spoils
NATIVE = DecodeConfig(short_side=None)


class _Spoiling:
    """Farneback, except for the pair whose first frame is ``frame``: ``count`` of its values
    set to ``value`` (NaN, inf, or a finite value float16 cannot hold)."""

    def __init__(self, frame: np.ndarray, value: float, count: int) -> None:
        self._real = get_backend("farneback")
        self._frame, self._value, self._count = frame, value, count

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        flows = self._real(first, second)
        for index, image in enumerate(first):
            if np.array_equal(image, self._frame):
                flows[index].reshape(-1)[:self._count] = self._value
        return flows


def _config(storage: StorageConfig) -> ExtractConfig:
    return ExtractConfig(decode=NATIVE, flow="farneback", storage=storage)


@pytest.mark.parametrize("flow_dtype, value, cause", [
    ("uint8", np.nan, "is not finite (34 NaN values)"),
    ("jpeg", np.inf, "is not finite (34 infinite values)"),
    ("float16", -np.inf, "is not finite (34 infinite values)"),
    ("float16", np.nan, "is not finite (34 NaN values)"),
    ("float16", 1e6, "does not fit float16 storage (34 values beyond 65504 px)")])
def test_non_finite_flow_fails_that_video_with_the_reason_and_the_others_are_stored(
        tiny_videos, tmp_path, monkeypatch, flow_dtype, value, cause):
    """34 bad values in one flow of one video: that video is failed in the manifest, one
    line naming the file, the frames, the cause and the backend; the run goes on and the
    three other videos are stored as without the fault."""
    sources = collect_videos([tiny_videos])
    config = _config(StorageConfig(flow_dtype=flow_dtype))
    reference = extract(sources, tmp_path / "reference", config, workers=1, progress=False)
    assert reference.all_ok
    frames = list(iter_frames(tiny_videos / VIDEO, NATIVE))
    monkeypatch.setattr(shard_work, "get_backend",
                        lambda name, params, device: _Spoiling(frames[2], value, 34))

    report = extract(sources, tmp_path / "out", config, workers=1, progress=False)
    assert (report.ok, [entry.video_id for entry in report.failed]) == (3, [VIDEO])
    source = tiny_videos / VIDEO
    assert report.failed[0].error == (f"{source}: flow of frames 2->3 {cause} from backend "
                                      "farneback")
    manifest = Manifest.read(tmp_path / "out" / MANIFEST_NAME)
    assert manifest[VIDEO].status == FAILED and manifest[VIDEO].num_flows is None
    with open_shards(tmp_path / "out") as reader, \
            open_shards(tmp_path / "reference") as clean:
        assert sorted(reader.videos) == sorted(v for v in clean.videos if v != VIDEO)
        for video_id in reader.videos:
            assert manifest[video_id].status == OK
            np.testing.assert_array_equal(reader.flows(video_id), clean.flows(video_id))
    assert verify(tmp_path / "out") == []


def test_the_check_names_the_frames_with_a_flow_step(tiny_videos, tmp_path, monkeypatch):
    """With --flow-step 2, flow 1 maps frame 2 to frame 4: its frames are named."""
    sources = collect_videos([tiny_videos])
    frames = list(iter_frames(tiny_videos / VIDEO, NATIVE))
    monkeypatch.setattr(shard_work, "get_backend",
                        lambda name, params, device: _Spoiling(frames[2], np.nan, 1))
    config = ExtractConfig(decode=NATIVE, flow="farneback", flow_step=2)
    report = extract(sources, tmp_path / "out", config, workers=1, progress=False)
    assert [entry.error for entry in report.failed] == [
        f"{tiny_videos / VIDEO}: flow of frames 2->4 is not finite (1 NaN value) from backend "
        "farneback"]


def _poison(out: Path, video_id: str, index: int, value: float) -> None:
    """Write ``value`` into some of flow ``index``'s float16 values through HDF5 (the
    fletcher32 checksum of the chunk is rewritten too: what an older flowkit stored)."""
    path = out / Manifest.read(out / MANIFEST_NAME)[video_id].shard
    with h5py.File(path, "r+") as handle:
        dataset = handle["videos"][group_name(video_id)]["flow"]
        flow = dataset[index]
        flow[3, :5] = value
        dataset[index] = flow


def test_verify_reports_non_finite_float16_flow_as_damage(tiny_videos, tmp_path):
    """NaN in flow 2 and an infinity in flow 0 of two videos of a float16 shard: verify names
    the videos and indices as damaged (they passed), the CLI prints them and exits 1, and
    --repair re-extracts exactly those videos."""
    out = tmp_path / "out"
    options = ["--flow", "farneback", "--short-side", "0", "--flow-dtype", "float16",
               "--workers", "1", "--videos-per-shard", "4", "-q"]
    assert CliRunner().invoke(main, ["extract", str(tiny_videos), "--out", str(out),
                                     *options]).exit_code == 0
    _poison(out, VIDEO, 2, np.nan)
    _poison(out, "right/right_0.mkv", 0, np.inf)

    problems = verify(out)
    assert [(p.video_id, p.kind) for p in problems] == [(VIDEO, DAMAGED),
                                                         ("right/right_0.mkv", DAMAGED)]
    assert [p.text for p in problems] == [
        "flow 2 not finite (NaN or infinite values) (shard-00000.h5)",
        "flow 0 not finite (NaN or infinite values) (shard-00000.h5)"]
    result = CliRunner().invoke(main, ["verify", str(out), "-q"])
    assert result.exit_code == 1
    assert (f"problem: {VIDEO}: flow 2 not finite (NaN or infinite values) (shard-00000.h5)"
            in result.output)

    repair = CliRunner().invoke(main, ["extract", str(tiny_videos), "--out", str(out),
                                       "--repair", *options])
    assert repair.exit_code == 0, repair.output
    assert "this run: 2 videos" in repair.output
    assert verify(out) == []
