"""ShardReader at scale: at most ``max_open_files`` shard files open, the least recently used
closed first, and every read after a file was closed identical to a read that never closed it."""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
from pathlib import Path
from typing import Any, Callable, Sequence

import h5py
import numpy as np
import pytest

import flowkit.store.reader as reader_module
from flowkit.data.dataset import ShardDataset
from flowkit.data.sampling import SegmentSampler
from flowkit.errors import ConfigError
from flowkit.store.manifest import MANIFEST_NAME, OK, Manifest, ManifestEntry
from flowkit.store.open_files import DEFAULT_MAX_OPEN_FILES
from flowkit.store.reader import ShardReader, Video, open_shards
from flowkit.store.writer import ShardWriter, StorageConfig

FRAMES, H, W = 6, 12, 16
# One storage per shard, two videos each: every read path of the reader (JPEG and raw RGB;
# uint8, float16 and JPEG flow; gzip, lzf and uncompressed chunks).
STORAGES = (StorageConfig(), StorageConfig(rgb="raw", flow_dtype="float16"),
            StorageConfig(flow_dtype="jpeg"), StorageConfig(rgb="raw", compression="lzf"),
            StorageConfig(rgb="raw", compression="none"))
needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(),
                                reason="counts descriptors through /proc/self/fd (Linux)")


def _write_manifest(root: Path, entries: Sequence[ManifestEntry]) -> None:
    """The folder's manifest: the one place that knows how it is written."""
    Manifest(entries).write(root / MANIFEST_NAME)


def _write_shards(root: Path, storages: Sequence[StorageConfig], videos_per_shard: int,
                  frames: int, height: int, width: int, seed: int = 0) -> dict[str, StorageConfig]:
    """A shard per storage holding ``videos_per_shard`` videos of seeded random frames and
    flows, written without decoding; returns each video's storage, in manifest order."""
    rng = np.random.default_rng(seed)
    entries, videos = [], {}
    for number, storage in enumerate(storages):
        shard = f"shard-{number:05d}.h5"
        with ShardWriter(root / shard, storage, {"flow_backend": "test", "flow_step": 1,
                                                 "flow_dtype": storage.flow_dtype,
                                                 "bound": storage.bound}) as writer:
            for index in range(videos_per_shard):
                video_id = f"c{number}/v{index}.mp4"
                with writer.video(video_id, {"bound": storage.bound, "step": 1}) as video:
                    for frame in rng.integers(0, 256, (frames, height, width, 3), np.uint8):
                        video.append_frame(frame)
                    for flow in rng.uniform(-25, 25, (frames - 1, height, width, 2)):
                        video.append_flow(flow.astype(np.float32))
                    video.finish({"height": height, "width": width, "label": number})
                entries.append(ManifestEntry(video_id, f"/src/{video_id}", number, shard, OK,
                                             frames, frames - 1))
                videos[video_id] = storage
    _write_manifest(root, entries)
    return videos


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, dict[str, StorageConfig]]:
    """Five shards of two 6-frame 16x12 videos each, one storage per shard."""
    root = tmp_path_factory.mktemp("mixed")
    return root, _write_shards(root, STORAGES, 2, FRAMES, H, W)


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """200 shards of one 2-frame 8x8 video each (raw RGB: frame values are exact)."""
    root = tmp_path_factory.mktemp("many")
    _write_shards(root, [StorageConfig(rgb="raw")] * 200, 1, 2, 8, 8)
    return root


def _operations(videos: dict[str, StorageConfig], count: int, seed: int) -> list[tuple]:
    """``count`` seeded random reads: (video id, what, index) over every kind each video has."""
    rng = np.random.default_rng(seed)
    ids = list(videos)
    operations = []
    for _ in range(count):
        video_id = ids[rng.integers(len(ids))]
        storage = videos[video_id]
        kinds = ["frames", "flows", "attrs"]
        kinds += ["quantized"] if storage.flow_dtype != "float16" else []
        kinds += ["frame_jpeg"] if storage.rgb == "jpeg" else []
        kinds += ["flow_jpeg"] if storage.flow_dtype == "jpeg" else []
        kind = kinds[rng.integers(len(kinds))]
        items = FRAMES if kind in ("frames", "frame_jpeg") else FRAMES - 1
        index = rng.integers(items, size=rng.integers(1, 5)).tolist()  # repeats allowed
        operations.append((video_id, kind, index[0] if kind.endswith("jpeg") else index))
    return operations


def _read(reader: ShardReader, video: Video, kind: str, index: Any) -> Any:
    """One read, as plain comparable values (arrays as dtype, shape and bytes)."""
    if kind == "attrs":
        return (video.attrs, video.flow_bound, video.flow_step, video.has_flows,
                reader.shard_attrs(video.entry.shard)["flow_dtype"])
    if kind == "frame_jpeg":
        return video.frames.jpeg_bytes(index)
    if kind == "flow_jpeg":
        return video.flows.jpeg_bytes(index)
    array = {"frames": video.frames.__getitem__, "flows": video.flows.__getitem__,
             "quantized": video.flows.quantized}[kind](index)
    return str(array.dtype), array.shape, array.tobytes()


def _run(reader: ShardReader, operations: list[tuple], held: dict[str, Video]) -> list[Any]:
    """The reads of ``operations``: every other one through a Video held since before the
    first read (its files closed and reopened meanwhile), the others through ``reader[id]``."""
    return [_read(reader, held[video_id] if number % 2 else reader[video_id], kind, index)
            for number, (video_id, kind, index) in enumerate(operations)]


def _in_forked_child(work: Callable[[], Any]) -> Any:
    """``work()`` run in a multiprocessing "fork" child; its result (or its error) sent back."""
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)

    def child() -> None:
        try:
            sending.send(("ok", work()))
        except BaseException as exc:  # noqa: BLE001  the parent reports it
            sending.send(("error", repr(exc)))

    process = context.Process(target=child)
    process.start()
    assert receiving.poll(120), "the forked child sent nothing"
    status, result = receiving.recv()
    process.join(30)
    assert status == "ok", result
    return result


def _dead_h5py_objects() -> int:
    """h5py groups and datasets alive in this process whose file is closed."""
    gc.collect()
    return sum(type(thing) in (h5py.Group, h5py.Dataset) and not thing.id.valid
               for thing in gc.get_objects())  # type(): isinstance() wakes lazy modules


def _open_h5(folder: Path) -> int:
    """This process's open descriptors on .h5 files under ``folder``."""
    prefix, count = str(folder.resolve()), 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
        count += target.startswith(prefix) and target.endswith(".h5")
    return count


@needs_proc
@pytest.mark.parametrize("check", [False, True])
def test_two_open_files_read_what_unlimited_reads_also_after_a_fork(mixed, check):
    """With max_open_files=2 over 5 shards, seeded random frames, flows, quantised flows, JPEG
    bytes and attributes equal those of a reader that never closes a file: in this process, in
    a forked child reading through the inherited reader and Videos, and here again after it."""
    root, videos = mixed
    operations = _operations(videos, 240, seed=1)
    large = open_shards(root, check=check, max_open_files=100)
    expected = _run(large, operations, {video_id: large[video_id] for video_id in videos})
    large.close()
    small = open_shards(root, check=check, max_open_files=2)
    held = {video_id: small[video_id] for video_id in videos}
    half = len(operations) // 2
    here = _run(small, operations[:half], held)
    assert _open_h5(root) <= 2
    assert small._files.openings > len(STORAGES)  # files did close and reopen
    def in_child() -> tuple[bool, list[Any]]:
        openings = small._files.openings
        small[operations[half - 1][0]].frames[0]  # its shard is open in the parent
        return small._files.openings == openings + 1, _run(small, operations, held)

    reopened, in_child = _in_forked_child(in_child)
    assert reopened  # the child opened its own file, not the parent's handle
    here += _run(small, operations[half:], held)
    for operation, ours, child, theirs in zip(operations, here, in_child, expected):
        assert ours == theirs, operation
        assert child == theirs, ("forked child", operation)
    assert _open_h5(root) <= 2
    small.close()


@needs_proc
@pytest.mark.parametrize("limit", [1, 8, None])
def test_iterating_200_shards_keeps_at_most_the_limit_open(many, limit):
    """Reading every video of 200 one-video shards never has more .h5 descriptors open than
    max_open_files (32 by default), during or after, and no h5py object of a closed file stays
    alive (HDF5's close slows down with each one)."""
    bound = DEFAULT_MAX_OPEN_FILES if limit is None else limit
    reader = open_shards(many) if limit is None else open_shards(many, max_open_files=limit)
    assert reader.max_open_files == bound
    dead, most = _dead_h5py_objects(), 0
    for video_id in reader:
        assert reader[video_id].frames[1].shape == (8, 8, 3)
        assert reader[video_id].flows[0].shape == (8, 8, 2)
        most = max(most, _open_h5(many))
    assert 1 <= most <= bound and _open_h5(many) <= bound
    assert _dead_h5py_objects() == dead
    reader.close()
    assert _open_h5(many) == 0


@needs_proc
def test_a_dataset_iterating_200_shards_keeps_at_most_its_limit_open(many):
    """ShardDataset(max_open_files=3) reads every item of 200 shards with <= 3 files open."""
    dataset = ShardDataset(many, "rgb+flow", SegmentSampler(num_segments=1, flow_length=1),
                           max_open_files=3)
    counts = []
    for index in range(len(dataset)):
        assert dataset[index]["rgb"].shape == (1, 3, 8, 8)
        counts.append(_open_h5(many))
    assert len(dataset) == 200 and max(counts) <= 3
    dataset.reader.close()


def test_videos_cached_are_bounded_and_read_the_same_after(many, monkeypatch):
    """The reader keeps at most MAX_CACHED_VIDEOS videos, and reading one again gives the same."""
    monkeypatch.setattr(reader_module, "MAX_CACHED_VIDEOS", 16)
    reader = open_shards(many, max_open_files=4)
    first = {video_id: reader[video_id].frames[:] for video_id in reader.videos}
    assert len(reader._videos) == 16 and len(reader._files) == 4
    for video_id in reader.videos[::-1]:
        np.testing.assert_array_equal(reader[video_id].frames[:], first[video_id])
    reader.close()


def test_close_and_pickling_leave_videos_readable(mixed):
    """A Video held across close(), and a reader pickled after reading, read as before."""
    root, videos = mixed
    reader = open_shards(root, max_open_files=2)
    video_id = next(iter(videos))
    video = reader[video_id]
    frames = video.frames[:]
    reader.close()
    np.testing.assert_array_equal(video.frames[:], frames)
    copy = pickle.loads(pickle.dumps(reader))
    assert len(copy._files) == 0 and copy.max_open_files == 2
    np.testing.assert_array_equal(copy[video_id].frames[:], frames)
    reader.close()
    copy.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4", None])
def test_a_bad_limit_is_a_config_error(mixed, bad):
    """max_open_files must be an integer >= 1, for the reader, open_shards and ShardDataset."""
    root, _ = mixed
    for make in (lambda: ShardReader(root, max_open_files=bad),
                 lambda: open_shards(root, max_open_files=bad),
                 lambda: ShardDataset(root, max_open_files=bad)):
        with pytest.raises(ConfigError, match="max_open_files must be an integer >= 1"):
            make()


def test_the_h5py_objects_of_at_most_max_video_handles_videos_are_kept(tmp_path, monkeypatch):
    """A shard holds many videos: reading all 40 of one file keeps the objects of the last 8
    only (the limit set to 8), and a video read again reads the same."""
    import flowkit.store.open_files as open_files

    monkeypatch.setattr(open_files, "MAX_VIDEO_HANDLES", 8)
    _write_shards(tmp_path, [StorageConfig(rgb="raw")], 40, 2, 8, 8)
    reader = open_shards(tmp_path)
    first = {video_id: reader[video_id].frames[:] for video_id in reader.videos}
    kept = [len(opened.handles) for opened in reader._files._open.values()]
    assert kept == [8]
    for video_id in reader.videos:
        np.testing.assert_array_equal(reader[video_id].frames[:], first[video_id])
    assert [len(opened.handles) for opened in reader._files._open.values()] == [8]
    reader.close()
