"""What checksums cost (issue 14): reading rows with and without checking, and writing.

Reads: flowkit's reader (RowReader) on uint8 TV-L1 flow chunks (gzip 1 and none, each ending
with HDF5's fletcher32), raw RGB chunks, and JPEG RGB frames (CRC32 per item, decoding
included), all at short side 256 from the UCF101 clip in ../shared/data. Writes: a
VideoWriter storing the same frames (JPEG) and flows (gzip 1) with checksums, and with the
checksums taken out (schema-1 files), as a share of the whole extraction's time per frame.

    python bench/checksums.py [--pairs 24] [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
from common import machine, median
from compression import DATA
from isal import isal_zlib

from flowkit.store import writer
from flowkit.config import ExtractConfig
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.flow import get_backend
from flowkit.store.chunks import RowReader
from flowkit.store.codec import encode_jpeg
from flowkit.store.reader import open_shards
from flowkit.store.writer import ShardWriter, StorageConfig
from flowkit.video.decode import DecodeConfig, iter_frames


def frames_of(count: int) -> np.ndarray:
    video = DATA / "v_ApplyEyeMakeup_g01_c01.avi"
    return np.stack([f for _, f in zip(range(count), iter_frames(video, DecodeConfig(256)))])


def without_checksums():
    """Writers as schema 1 wrote: no fletcher32 filter, no <name>_crc32 datasets."""
    filters = writer._filter_kwargs
    return mock.patch.multiple(
        writer, _filter_kwargs=lambda storage: {k: v for k, v in filters(storage).items()
                                                if k != "fletcher32"}), \
        mock.patch.object(writer._GrowingDataset, "_create_crcs", lambda self, shape: None)


def write(path: Path, frames: np.ndarray, flows: np.ndarray, storage: StorageConfig) -> float:
    start = time.perf_counter()
    with ShardWriter(path, storage, {}) as shard:
        with shard.video("v", {"bound": 20.0, "step": 1, "backend": "tvl1"}) as video:
            for frame in frames:
                video.append_frame(frame)
            for flow in flows:
                video.append_flow(flow)
            video.finish({"height": frames.shape[1], "width": frames.shape[2]})
    return time.perf_counter() - start


def read_rows(path: Path, name: str, check: bool, repeats: int) -> float:
    """Median microseconds per row of RowReader.read over all rows in random order."""
    times = []
    with h5py.File(path, "r") as handle:
        dataset = handle["videos/v"][name]
        order = np.random.default_rng(0).permutation(dataset.shape[0])
        for _ in range(repeats):
            reader = RowReader(dataset, check)
            start = time.perf_counter()
            reader.read(order)
            times.append((time.perf_counter() - start) / len(order) * 1e6)
    return median(times)


def read_frames(root: Path, check: bool, repeats: int) -> float:
    """Median microseconds per JPEG frame read and decoded through open_shards."""
    times = []
    for _ in range(repeats):
        with open_shards(root, check=check) as reader:
            video = reader[reader.videos[0]]
            start = time.perf_counter()
            video.frames[:]
            times.append((time.perf_counter() - start) / len(video.frames) * 1e6)
    return median(times)


def read_both(read, repeats: int) -> tuple[float, float]:
    """Medians of ``read(False)`` and ``read(True)``, taken in turns (the machine is shared)."""
    plain, checked = [], []
    for _ in range(repeats):
        plain.append(read(False))
        checked.append(read(True))
    return median(plain), median(checked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    frames = frames_of(args.pairs + 1)
    flows_px = get_backend("tvl1")(frames[:-1], frames[1:])
    print(f"machine: {machine()}; {len(frames)} frames {frames.shape[2]}x{frames.shape[1]}")
    jpegs = [encode_jpeg(frame, 95) for frame in frames]
    for name, function in (("zlib.crc32", zlib.crc32), ("isal crc32", isal_zlib.crc32)):
        start = time.perf_counter()
        for _ in range(200):
            for jpeg in jpegs:
                function(jpeg)
        print(f"{name}: {(time.perf_counter() - start) / 200 / len(jpegs) * 1e6:.1f} us per "
              f"JPEG frame ({np.mean([len(j) for j in jpegs]) / 1e3:.0f} KB)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("\nreads, us per row (RowReader, random order): check=False / check=True")
        for label, storage in (("flow uint8 gzip-1", StorageConfig(rgb="raw")),
                               ("flow uint8 none", StorageConfig(rgb="raw", compression="none"))):
            path = tmp / f"{label}.h5"
            write(path, frames, flows_px, storage)
            for name in ("flow", "rgb"):
                what = label if name == "flow" else label.replace("flow uint8", "rgb raw")
                plain, checked = read_both(lambda c: read_rows(path, name, c, 1), args.repeats)
                print(f"  {what}: {plain:.0f} / {checked:.0f} (+{checked / plain - 1:.0%})")
        shard_dir = tmp / "jpeg"
        videos = tmp / "videos"
        videos.mkdir()
        (videos / "clip.avi").symlink_to(DATA / "v_ApplyEyeMakeup_g01_c01.avi")
        config = ExtractConfig(decode=DecodeConfig(256), flow="none")
        extract(collect_videos([videos]), shard_dir, config, workers=1, progress=False)
        plain, checked = read_both(lambda c: read_frames(shard_dir, c, 1), args.repeats)
        print(f"  rgb jpeg (decoded): {plain:.0f} / {checked:.0f} (+{checked / plain - 1:.0%})")

        print("\nwrites, ms per frame + flow (VideoWriter: rgb jpeg, flow uint8 gzip-1)")
        timings = {"checksums": [], "none": []}
        for _ in range(args.repeats):
            timings["checksums"].append(write(tmp / "w.h5", frames, flows_px, StorageConfig()))
            patches = without_checksums()
            with patches[0], patches[1]:
                timings["none"].append(write(tmp / "w.h5", frames, flows_px, StorageConfig()))
        with_, without = (median(timings[k]) / len(frames) * 1e3 for k in ("checksums", "none"))
        start = time.perf_counter()
        get_backend("tvl1")(frames[:-1], frames[1:])
        flow_ms = (time.perf_counter() - start) / (len(frames) - 1) * 1e3
        print(f"  with checksums {with_:.2f}, without {without:.2f} (+{with_ - without:.2f} ms); "
              f"TV-L1 alone takes {flow_ms:.0f} ms per flow: "
              f"+{(with_ - without) / (flow_ms + without):.2%} of extraction")


if __name__ == "__main__":
    main()
