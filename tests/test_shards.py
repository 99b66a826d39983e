"""The shard writer's atomicity and the reader's lazy, array-like access."""

import errno
import os

import h5py
import numpy as np
import pytest

from flowkit.errors import OutputError, ShardError
from flowkit.store.codec import decode_jpeg, quantize_flow
from flowkit.store.manifest import MANIFEST_NAME, OK, Manifest, ManifestEntry
from flowkit.store.reader import open_shards
from flowkit.store.shard_file import ShardFile
from flowkit.store.writer import ShardWriter, StorageConfig, group_name


def _frames(count, height=12, width=16):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def _flows(count, height=12, width=16):
    rng = np.random.default_rng(1)
    return rng.uniform(-25, 25, (count, height, width, 2)).astype(np.float32)


def _write_folder(root, storage=StorageConfig(rgb="raw"), frames=None, flows=None,
                  video_id="cls/a.mp4"):
    frames = _frames(5) if frames is None else frames
    flows = _flows(4) if flows is None else flows
    with ShardWriter(root / "shard-00000.h5", storage, {"flow_backend": "tvl1", "flow_step": 1}) as shard:
        with shard.video(video_id, {"bound": storage.bound, "step": 1}) as video:
            for frame in frames:
                video.append_frame(frame)
            for flow in flows:
                video.append_flow(flow)
            video.finish({"height": frames.shape[1], "width": frames.shape[2], "label": 3})
    Manifest([ManifestEntry(video_id, "/src", 3, "shard-00000.h5", OK, len(frames),
                            len(flows))]).write(root / MANIFEST_NAME)
    return frames, flows


def test_raw_frames_and_uint8_flow_read_back(tmp_path):
    """Raw RGB comes back exactly; uint8 flow comes back dequantised within B/255."""
    frames, flows = _write_folder(tmp_path)
    reader = open_shards(tmp_path)
    assert reader.videos == ["cls/a.mp4"]
    np.testing.assert_array_equal(reader.frames("cls/a.mp4"), frames)
    back = reader.flows("cls/a.mp4")
    assert back.shape == (4, 12, 16, 2) and back.dtype == np.float32
    assert np.abs(back - np.clip(flows, -20, 20)).max() <= 20 / 255 + 1e-5


def test_views_slice_like_arrays(tmp_path):
    """Ints, slices, negative ints and unordered lists with repeats all index like numpy."""
    frames, _ = _write_folder(tmp_path)
    video = open_shards(tmp_path)["cls/a.mp4"]
    assert len(video.frames) == 5 and len(video.flows) == 4
    np.testing.assert_array_equal(video.frames[2], frames[2])
    np.testing.assert_array_equal(video.frames[-1], frames[-1])
    np.testing.assert_array_equal(video.frames[1:4], frames[1:4])
    np.testing.assert_array_equal(video.frames[[3, 0, 3]], frames[[3, 0, 3]])
    assert video.flows[[2, 0]].shape == (2, 12, 16, 2)
    assert video.frames[5:].shape == (0, 12, 16, 3)
    with pytest.raises(IndexError):
        video.frames[5]


def test_quantized_indexes_like_the_dequantised_view(tmp_path):
    """flows.quantized(i) is one (H, W, 2) field, as flows[i] is; slices keep the axis."""
    _, flows = _write_folder(tmp_path)
    video = open_shards(tmp_path)["cls/a.mp4"]
    assert video.flows.quantized(1).shape == video.flows[1].shape == (12, 16, 2)
    np.testing.assert_array_equal(video.flows.quantized(1), quantize_flow(flows[1], 20.0))
    assert video.flows.quantized(slice(0, 2)).shape == (2, 12, 16, 2)


def test_jpeg_frames_keep_their_bytes(tmp_path):
    """JPEG storage decodes close to the original and hands back the stored bytes untouched."""
    frames, _ = _write_folder(tmp_path, StorageConfig(rgb="jpeg", jpeg_quality=100),
                              frames=np.full((3, 12, 16, 3), 90, np.uint8))
    video = open_shards(tmp_path)["cls/a.mp4"]
    assert np.abs(video.frames[:].astype(int) - frames).max() <= 2
    with h5py.File(tmp_path / "shard-00000.h5") as handle:
        stored = handle["videos"][group_name("cls/a.mp4")]["rgb"][1].tobytes()
    assert video.frames.jpeg_bytes(1) == stored and stored[:2] == b"\xff\xd8"


def test_float16_flow_is_not_clipped_by_the_bound(tmp_path):
    """float16 storage keeps values beyond the bound, to float16 precision."""
    flows = np.full((1, 12, 16, 2), 33.25, np.float32)
    _write_folder(tmp_path, StorageConfig(rgb="none", flow_dtype="float16"),
                  frames=_frames(2), flows=flows)
    np.testing.assert_array_equal(open_shards(tmp_path).flows("cls/a.mp4"), flows)


def test_jpeg_flow_holds_the_quantised_planes_as_grayscale_jpegs(tmp_path):
    """jpeg flow: x and y are JPEGs of the uint8 planes; they decode close to the quantised flow."""
    yy, xx = np.mgrid[0:12, 0:16].astype(np.float32)
    smooth = np.stack([np.stack([xx / 4 - 2, yy / 3 - 1], axis=-1) + k for k in range(3)])
    _write_folder(tmp_path, StorageConfig(rgb="none", flow_dtype="jpeg"), frames=_frames(4),
                  flows=smooth)
    video = open_shards(tmp_path)["cls/a.mp4"]
    x_bytes, y_bytes = video.flows.jpeg_bytes(2)
    assert x_bytes[:2] == y_bytes[:2] == b"\xff\xd8"
    decoded = np.stack([decode_jpeg(x_bytes, gray=True), decode_jpeg(y_bytes, gray=True)], -1)
    np.testing.assert_array_equal(video.flows.quantized(2), decoded)
    assert np.abs(decoded.astype(int) - quantize_flow(smooth[2], 20.0)).max() <= 2
    assert np.abs(video.flows[:] - smooth).max() < 2 * 40 / 255 + 0.01


def test_jpeg_flow_with_planes_of_equal_length_is_stored(tmp_path):
    """Zero flow gives identical x and y JPEGs (same length); they are stored like any other."""
    _write_folder(tmp_path, StorageConfig(rgb="none", flow_dtype="jpeg"), frames=_frames(3),
                  flows=np.zeros((2, 12, 16, 2), np.float32))
    video = open_shards(tmp_path)["cls/a.mp4"]
    x_bytes, y_bytes = video.flows.jpeg_bytes(1)
    assert x_bytes == y_bytes
    assert np.abs(video.flows[:]).max() < 0.1


def test_stored_values_are_the_documented_quantisation(tmp_path):
    """What h5py alone reads is quantize_flow(flow, bound), chunked one frame per chunk."""
    _, flows = _write_folder(tmp_path)
    with h5py.File(tmp_path / "shard-00000.h5") as handle:
        dataset = handle["videos/cls%2Fa.mp4/flow"]
        assert dataset.chunks == (1, 12, 16, 2) and dataset.compression == "gzip"
        np.testing.assert_array_equal(dataset[:], quantize_flow(flows, 20.0))
        assert handle.attrs["format"] == "flowkit-shard" and handle.attrs["schema_version"] == 2


def test_writer_leaves_no_file_when_the_body_raises(tmp_path):
    """An exception inside the writer removes the temporary file; no shard appears."""
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "shard-00000.h5", StorageConfig(), {}) as shard:
            with shard.video("v", {}) as video:
                video.append_frame(_frames(1)[0])
            raise RuntimeError("crash")
    assert os.listdir(tmp_path) == []


def test_failed_video_group_is_removed(tmp_path):
    """A video whose body raises leaves no group; the shard keeps the other videos."""
    with ShardWriter(tmp_path / "s.h5", StorageConfig(), {}) as shard:
        with pytest.raises(ValueError):
            with shard.video("bad", {}) as video:
                video.append_frame(_frames(1)[0])
                raise ValueError("decode failed")
        with shard.video("good", {}) as video:
            video.append_frame(_frames(1)[0])
            video.finish({})
    with h5py.File(tmp_path / "s.h5") as handle:
        assert list(handle["videos"]) == ["good"]


def _write_three_videos(path, storage=StorageConfig(rgb="raw", compression="none")):
    """Three videos of 12 raw 120x160 frames and 11 flows: 1.5 MB, more than HDF5's chunk
    cache holds, so that it writes both while the videos are appended and when it closes."""
    frames, flows = _frames(12, 120, 160), _flows(11, 120, 160)
    with ShardWriter(path, storage, {}) as shard:
        for name in ("a", "b", "c"):
            with shard.video(name, {"bound": 20.0, "step": 1}) as video:
                for frame in frames:
                    video.append_frame(frame)
                for flow in flows:
                    video.append_flow(flow)
                video.finish({"height": 120, "width": 160})


@pytest.mark.parametrize("share", [0.0, 0.3, 0.7, 0.97])
def test_a_disk_filling_up_under_hdf5_is_an_output_error_and_drops_the_file(
        tmp_path, monkeypatch, share):
    """The disk fills after ``share`` of the shard's bytes (at its first write, while videos
    are appended, or while HDF5 writes its caches out at the end): OutputError naming the
    file and the cause, and no file left. HDF5 never sees the failure (a write failing under
    it left it unable to close the file without a segmentation fault), so the process goes
    on: the next shard, written once there is room, reads back whole."""
    _write_three_videos(tmp_path / "whole.h5")
    budget = int(share * (tmp_path / "whole.h5").stat().st_size)
    real_pwrite, written = os.pwrite, [0]

    def pwrite(fd, data, offset):
        if written[0] + len(data) > budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written[0] += len(data)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(OutputError) as caught:
        _write_three_videos(tmp_path / "full.h5")
    assert str(caught.value).startswith(f"{tmp_path / 'full.h5.tmp'}: cannot write: no space "
                                        "left on the device")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["whole.h5"]

    monkeypatch.setattr(os, "pwrite", real_pwrite)
    _write_three_videos(tmp_path / "later.h5")
    with h5py.File(tmp_path / "later.h5") as later, h5py.File(tmp_path / "whole.h5") as whole:
        for name in ("a", "b", "c"):
            for dataset in ("rgb", "flow"):
                np.testing.assert_array_equal(later["videos"][name][dataset][:],
                                              whole["videos"][name][dataset][:])


def test_a_shard_file_holds_what_is_written_after_a_failed_write(tmp_path, monkeypatch):
    """After the first failed write, ShardFile keeps the error and the data, and reads give
    back what was written (the file's bytes with the held ones over them), so that HDF5
    can finish its work on a file it believes whole."""
    file = ShardFile(tmp_path / "x.tmp")
    file.seek(0)
    file.write(b"abcdef")
    real_pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    file.seek(4)
    assert file.write(memoryview(b"XYZW")) == 4
    assert file.error is not None and file.error.errno == errno.ENOSPC
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    file.seek(2)
    assert file.write(b"12") == 2  # held too: the file is lost either way
    buffer = bytearray(10)
    file.seek(0)
    file.readinto(buffer)
    assert bytes(buffer) == b"ab12XYZW\0\0"
    assert file.seek(0, os.SEEK_END) == 8
    file.truncate(6)
    file.seek(0)
    file.readinto(buffer)
    assert bytes(buffer[:6]) == b"ab12XY" and file.seek(0, os.SEEK_END) == 6
    assert (tmp_path / "x.tmp").read_bytes() == b"abcdef"
    file.close()


def test_reader_explains_missing_and_failed_videos(tmp_path):
    """Asking for an unknown or failed video raises KeyError saying which and why."""
    _write_folder(tmp_path)
    with Manifest.open(tmp_path) as manifest:
        manifest.put(ManifestEntry("broken.mp4", "/x", None, "shard-00000.h5", "failed",
                                   error="no frames decoded"))
    reader = open_shards(tmp_path)
    with pytest.raises(KeyError, match="no frames decoded"):
        reader["broken.mp4"]
    with pytest.raises(KeyError, match="no video 'other'"):
        reader["other"]


def test_reader_reopens_files_after_fork(tmp_path):
    """A reader used before a fork reads correctly in the child (fresh h5py handles)."""
    frames, _ = _write_folder(tmp_path)
    reader = open_shards(tmp_path)
    reader.frames("cls/a.mp4", 0)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        ok = np.array_equal(reader.frames("cls/a.mp4", 4), frames[4])
        os.write(write_end, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read_end, 1) == b"1"
    np.testing.assert_array_equal(reader.frames("cls/a.mp4", 1), frames[1])


def test_missing_manifest_is_a_clear_error(tmp_path):
    """Opening a folder without a manifest raises ShardError saying so."""
    with pytest.raises(ShardError, match="no manifest"):
        open_shards(tmp_path)


class _SelectionSpy:
    """Wraps an h5py dataset and records every selection it is asked for."""

    def __init__(self, dataset):
        self._dataset, self.selections = dataset, []
        self.shape, self.dtype = dataset.shape, dataset.dtype

    def __getitem__(self, selection):
        self.selections.append(selection)
        return self._dataset[selection]


def test_scattered_reads_use_slices_not_point_selections(tmp_path):
    """Rows are read as contiguous slices: h5py's array selection on compressed chunks is ~70x
    slower (181 ms vs 2.6 ms for 15 flows measured), so it must never be used."""
    from flowkit.store.chunks import _read_runs

    _, flows = _write_folder(tmp_path, frames=_frames(12), flows=_flows(11))
    with h5py.File(tmp_path / "shard-00000.h5") as handle:
        spy = _SelectionSpy(handle["videos/cls%2Fa.mp4/flow"])
        positions = np.array([7, 1, 2, 3, 9, 8, 1])
        rows = _read_runs(spy, positions, np.empty((7, *spy.shape[1:]), spy.dtype))
        np.testing.assert_array_equal(rows, handle["videos/cls%2Fa.mp4/flow"][:][[7, 1, 2, 3, 9, 8, 1]])
    assert spy.selections and all(isinstance(s, slice) for s in spy.selections)
    assert len(spy.selections) == 2  # runs 1..3 and 7..9


@pytest.mark.parametrize("storage", [StorageConfig(), StorageConfig(rgb="raw"),
                                     StorageConfig(rgb="raw", compression="none")])
def test_written_flow_and_raw_rgb_take_the_direct_chunk_path(tmp_path, storage):
    """The writer's layout (one row per chunk, deflate or nothing) is what the reader's fast
    path needs; if the layout changes, reads silently fall back to h5py's 2-3x slower path."""
    frames, _ = _write_folder(tmp_path, storage=storage)
    video = open_shards(tmp_path)["cls/a.mp4"]
    video.flows.quantized([2, 0])  # opens the readers
    assert video._rows("flow")._direct
    assert video._rows("flow")._deflated == (storage.compression == "gzip")
    if storage.rgb == "raw":
        np.testing.assert_array_equal(video.frames[[4, 1, 1]], frames[[4, 1, 1]])
        assert video._rows("rgb")._direct


@pytest.mark.parametrize("storage", [StorageConfig(), StorageConfig(flow_dtype="float16"),
                                     StorageConfig(flow_dtype="jpeg")])
def test_each_flow_is_one_hdf5_write(tmp_path, monkeypatch, storage):
    """A uint8 or float16 flow is written whole; only JPEG flow writes its two planes apart
    (and its two checksums at once). Numeric flows were written one image row at a time: 240
    h5py writes for a 320x240 flow, most of the time of a pair through extract with DIS."""
    writes = []
    original = h5py.Dataset.__setitem__

    def counted(self, key, value):
        writes.append(self.name.rsplit("/", 1)[-1])
        return original(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", counted)
    _write_folder(tmp_path, storage=storage, frames=_frames(3, 40, 48), flows=_flows(2, 40, 48))
    per_flow = 2 if storage.flow_dtype == "jpeg" else 1
    assert writes.count("flow") == 2 * per_flow
    assert writes.count("flow_crc32") == (2 if storage.flow_dtype == "jpeg" else 0)
