"""The extraction pipeline: correctness of what is stored, fault isolation, resume, workers."""

from __future__ import annotations

import dataclasses
import shutil

import h5py
import numpy as np
import pytest

from flowkit.config import ExtractConfig
from flowkit.errors import ConfigError, LockError
from flowkit.extract.inputs import collect_videos
from flowkit.lock import FolderLock
from flowkit.extract.run import extract
from flowkit.flow import get_backend, make_backend_config
from flowkit.store.codec import quantize_flow
from flowkit.store.manifest import MANIFEST_NAME, Manifest
from flowkit.store.reader import open_shards
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig, iter_frames
from helpers import shared_data_dir

NATIVE = DecodeConfig(short_side=None)


def stored_arrays(out_dir) -> dict:
    """Everything stored per video, exactly as on disk: JPEG bytes, raw flow values, attrs."""
    reader = open_shards(out_dir)
    result = {}
    for video_id in reader.videos:
        video = reader[video_id]
        frames = [video.frames.jpeg_bytes(i) for i in range(len(video.frames))]
        result[video_id] = (frames, video.flows.quantized(slice(None)), video.attrs)
    return result


def assert_same_output(left, right) -> None:
    a, b = stored_arrays(left), stored_arrays(right)
    assert list(a) == list(b)
    for video_id in a:
        assert a[video_id][0] == b[video_id][0], video_id
        np.testing.assert_array_equal(a[video_id][1], b[video_id][1])
        assert a[video_id][2] == b[video_id][2]
    entries = lambda d: [dataclasses.astuple(e) for e in Manifest.read(d / MANIFEST_NAME)]  # noqa: E731
    assert entries(left) == entries(right)


def test_known_translation_gives_mean_flow_within_a_tenth_of_a_pixel(motion_videos, tmp_path):
    """TV-L1 through the whole pipeline recovers each video's translation, sign included."""
    folder, truth = motion_videos
    config = ExtractConfig(decode=NATIVE, storage=StorageConfig(flow_dtype="float16"))
    report = extract(collect_videos([folder / "labels.txt"]), tmp_path, config, workers=1,
                     progress=False)
    assert report.ok == 4
    reader = open_shards(tmp_path)
    for video_id, item in truth.items():
        flows = reader.flows(video_id)
        assert flows.shape == (3, 96, 128, 2)
        mean_u, mean_v = flows[:, 16:-16, 16:-16].reshape(-1, 2).mean(axis=0)
        assert abs(mean_u - item["dx"]) < 0.1 and abs(mean_v - item["dy"]) < 0.1, video_id
        assert reader.info(video_id)["label"] == item["label"]


def test_stored_flow_is_the_backend_on_decoded_frames_in_order(tiny_videos, tmp_path):
    """Flow k is quantize(backend(frame k*s, frame (k+1)*s)) exactly, for step s = 2."""
    config = ExtractConfig(decode=NATIVE, flow_step=2, batch_size=1)
    extract(collect_videos([tiny_videos]), tmp_path, config, workers=1, progress=False)
    reader = open_shards(tmp_path)
    backend = get_backend("tvl1")
    for video_id in reader.videos:
        frames = np.stack(list(iter_frames(tiny_videos / video_id, NATIVE)))
        expected = quantize_flow(backend(frames[0:-1:2][:2], frames[2::2][:2]), 20.0)
        assert reader.info(video_id)["num_flows"] == 2  # floor((5 - 1) / 2)
        np.testing.assert_array_equal(reader[video_id].flows.quantized(slice(None)), expected)


def test_batch_size_does_not_change_the_output(tiny_videos, tmp_path):
    """Computing flow one pair at a time or in batches of 8 stores the same bytes."""
    sources = collect_videos([tiny_videos])
    for batch in (1, 8):
        extract(sources, tmp_path / f"b{batch}", ExtractConfig(decode=NATIVE, batch_size=batch),
                workers=1, progress=False)
    assert_same_output(tmp_path / "b1", tmp_path / "b8")


def test_one_and_two_workers_write_identical_arrays(tiny_videos, tmp_path):
    """The arrays written do not depend on the number of workers."""
    sources = collect_videos([tiny_videos])
    config = ExtractConfig(decode=NATIVE)
    for workers in (1, 2):
        extract(sources, tmp_path / f"w{workers}", config, workers=workers, videos_per_shard=1,
                progress=False)
    assert_same_output(tmp_path / "w1", tmp_path / "w2")


@pytest.mark.parametrize("name,frames", [("v_ApplyEyeMakeup_g01_c01.avi", 164),
                                         ("opencv_tree_cinepak.avi", 68)])
def test_real_clip_counts_come_from_decoding(name, frames, tmp_path):
    """The UCF101 clip stores 164 frames and 163 flows; the cinepak file 68 (its header says 444)."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is absent")
    config = ExtractConfig(decode=DecodeConfig(short_side=32), flow="farneback")
    report = extract(collect_videos([data / "videos" / name]), tmp_path, config, workers=1,
                     progress=False)
    assert report.ok == 1
    info = open_shards(tmp_path).info(name)
    assert (info["num_frames"], info["num_flows"]) == (frames, frames - 1)
    assert (info["height"], info["width"]) == (32, 43)
    assert info["header_frames"] != frames or name.startswith("v_")


def test_bad_videos_are_recorded_and_the_good_ones_stored(tiny_videos, tmp_path):
    """Corrupt, fake, empty and missing videos fail with a reason; the run stores the rest."""
    inputs = tmp_path / "inputs"
    shutil.copytree(tiny_videos, inputs)
    good = sorted(p.relative_to(inputs).as_posix() for p in inputs.rglob("*.mkv"))
    (inputs / "fake.mp4").write_text("this is a text file, not a video\n")
    (inputs / "empty.avi").write_bytes(b"")
    (inputs / "corrupt.mkv").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 5000,
                                                                                 dtype=np.uint8)))
    listing = inputs / "list.txt"
    listing.write_text("\n".join([*good, "fake.mp4", "empty.avi", "corrupt.mkv", "missing.mp4"]))
    report = extract(collect_videos([listing]), tmp_path / "out", ExtractConfig(decode=NATIVE),
                     workers=2, videos_per_shard=2, progress=False)
    assert report.ok == 4 and sorted(e.video_id for e in report.failed) == [
        "corrupt.mkv", "empty.avi", "fake.mp4", "missing.mp4"]
    for entry in report.failed:
        assert entry.video_id in entry.error and entry.num_frames is None
    reader = open_shards(tmp_path / "out")
    assert reader.videos == good
    assert all(len(reader[v].flows) == 4 for v in good)


def test_rerun_skips_done_videos_and_redoes_missing_shards(tiny_videos, tmp_path):
    """A second identical run processes nothing; a deleted shard is redone identically."""
    sources = collect_videos([tiny_videos])
    config = ExtractConfig(decode=NATIVE)
    extract(sources, tmp_path / "ref", config, workers=1, videos_per_shard=2, progress=False)
    shutil.copytree(tmp_path / "ref", tmp_path / "out")
    again = extract(sources, tmp_path / "out", config, workers=1, videos_per_shard=2,
                    progress=False)
    assert (again.processed, again.skipped, again.ok) == (0, 4, 4)
    (tmp_path / "out" / "shard-00001.h5").unlink()
    redo = extract(sources, tmp_path / "out", config, workers=1, progress=False)
    assert (redo.processed, redo.ok) == (2, 4)
    assert_same_output(tmp_path / "ref", tmp_path / "out")


def test_new_videos_join_an_existing_folder_in_new_shards(tiny_videos, tmp_path):
    """Videos added to the inputs later go into new shards; the old shards are untouched."""
    sources = collect_videos([tiny_videos])
    config = ExtractConfig(decode=NATIVE)
    extract(sources[:2], tmp_path, config, workers=1, videos_per_shard=2, progress=False)
    before = (tmp_path / "shard-00000.h5").stat().st_mtime_ns
    report = extract(sources, tmp_path, config, workers=1, videos_per_shard=2, progress=False)
    assert (report.processed, report.ok) == (2, 4)
    assert (tmp_path / "shard-00000.h5").stat().st_mtime_ns == before
    assert sorted(e.shard for e in Manifest.read(tmp_path / MANIFEST_NAME)) == [
        "shard-00000.h5", "shard-00000.h5", "shard-00001.h5", "shard-00001.h5"]


def test_other_settings_on_an_existing_folder_are_refused(tiny_videos, tmp_path):
    """Resuming with other output settings raises ConfigError naming the change; --overwrite works."""
    sources = collect_videos([tiny_videos])
    extract(sources, tmp_path, ExtractConfig(decode=NATIVE), workers=1, progress=False)
    other = ExtractConfig(decode=NATIVE, flow_params=make_backend_config("tvl1", nscales=3))
    with pytest.raises(ConfigError, match=r"\(--tvl1-nscales: 5 -> 3\)"):
        extract(sources, tmp_path, other, workers=1, progress=False)
    report = extract(sources, tmp_path, other, workers=1, overwrite=True, progress=False)
    assert (report.processed, report.ok) == (4, 4)
    assert open_shards(tmp_path).shard_attrs("shard-00000.h5")["flow_params"] != ""


def test_a_locked_folder_is_refused(tiny_videos, tmp_path):
    """While another run holds the folder, extract raises LockError and writes nothing."""
    with FolderLock(tmp_path):
        with pytest.raises(LockError, match="another flowkit run"):
            extract(collect_videos([tiny_videos]), tmp_path, ExtractConfig(decode=NATIVE),
                    workers=1, progress=False)
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_retry_failed_moves_fixed_videos_to_a_new_shard(tiny_videos, tmp_path):
    """A video that failed and was then fixed is extracted by --retry-failed into a new shard."""
    inputs = tmp_path / "inputs"
    shutil.copytree(tiny_videos, inputs)
    broken = next(inputs.rglob("*.mkv"))
    original = broken.read_bytes()
    broken.write_bytes(b"garbage")
    sources = collect_videos([inputs])
    config = ExtractConfig(decode=NATIVE)
    first = extract(sources, tmp_path / "out", config, workers=1, videos_per_shard=4, progress=False)
    assert [e.video_id for e in first.failed] == [broken.relative_to(inputs).as_posix()]
    broken.write_bytes(original)
    second = extract(sources, tmp_path / "out", config, workers=1, retry_failed=True, progress=False)
    assert (second.processed, second.ok, second.failed) == (1, 4, [])
    assert Manifest.read(tmp_path / "out" / MANIFEST_NAME)[first.failed[0].video_id].shard == \
        "shard-00001.h5"


def test_shard_attributes_record_every_parameter(tiny_videos, tmp_path):
    """Backend, its parameters, bound, dtype, resize, fps, versions and schema are in the shard."""
    extract(collect_videos([tiny_videos]), tmp_path, ExtractConfig(decode=NATIVE), workers=1,
            progress=False)
    with h5py.File(tmp_path / "shard-00000.h5") as handle:
        attrs = dict(handle.attrs)
    assert attrs["flow_backend"] == "tvl1" and attrs["bound"] == 20.0
    assert attrs["flow_dtype"] == "uint8" and attrs["schema_version"] == 2
    for key in ("flow_params", "short_side", "size", "fps", "versions", "config", "flow_step"):
        assert key in attrs
    assert '"lambda_": 0.15' in attrs["flow_params"] and '"opencv"' in attrs["versions"]
