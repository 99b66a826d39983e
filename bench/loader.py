"""Loader: two-stream TSN training samples/s from shards vs MMAction2 JPEG folders.

Five layouts of the same videos: shards as `flowkit extract` writes them by default (lossless
gzip uint8 flow), shards with uncompressed uint8 flow (`--compression none`), shards with
uncompressed raw RGB too (`--rgb raw`: nothing left to decode), shards with `--flow-dtype jpeg`, and MMAction2 folders exported from the latter (byte for byte the same
JPEGs). All read with the same sampling (3 segments, 1 RGB frame + 5 flow pairs each) and
transforms (multi-scale crop to 224, flip) through a DataLoader with 2 workers; the folder
baseline is a plain Dataset decoding img/x/y JPEGs with OpenCV. Two output modes for every
layout: float32 (Normalize in the workers, the classic pipeline) and uint8 (RGB and quantised
flow leave the workers as uint8; `flowkit.data.normalize_batch` finishes on the training
device, not timed here). Cold runs first evict every file of all layouts from the page cache
(fsync, then posix_fadvise DONTNEED) before each epoch; warm runs follow a full pass. Both
start fresh workers every epoch (so shards reopen their HDF5 files each epoch); a last warm
measurement keeps the workers alive (persistent_workers=True), layouts interleaved, twice.

    python bench/loader.py [--videos 48] [--frames 48] [--epochs 3]

With ``--open-latency-ms 0,0.5,2`` it measures only how a network file system's per-open
round trip (NFS, Lustre) changes the shards/folders ratio, by a model made here in the bench:
every file open of either layout first sleeps that long (each HDF5 file a worker opens; each
JPEG file the folder baseline opens). Warm page cache, uint8 output, fresh and persistent workers.

    python bench/loader.py --open-latency-ms 0,0.5,2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
from common import machine, require_all_ok, timed
from torch.utils.data import DataLoader, Dataset

from flowkit.config import ExtractConfig
from flowkit.data.dataset import ShardDataset, _flow_tensor, _rgb_tensor
from flowkit.data.items import flow_scale
from flowkit.data.sampling import FrameIndices, SegmentSampler, VideoExtent
from flowkit.data.transforms import Normalize, tsn_train_transform
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.interop import export_rawframes
from flowkit.store.codec import dequantize_flow
from flowkit.store.reader import open_shards
from flowkit.store.writer import StorageConfig
from flowkit.video.synth import SynthConfig, make_synthetic_videos

FLOW_LENGTH = 5
SHARD_LAYOUTS = ("shards", "raw_shards", "raw_rgb_shards", "jpeg_shards")
LATENCY_LAYOUTS = ("shards", "jpeg_shards", "folders")
_open_latency_s = 0.0  # the modelled network round trip of every file open (--open-latency-ms)


def _open_delay() -> None:
    if _open_latency_s:
        time.sleep(_open_latency_s)


def imread(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """cv2.imread after the modelled open latency."""
    _open_delay()
    return cv2.imread(str(path), flags)


class SlowOpenFile(h5py.File):
    """h5py.File after the modelled open latency; installed as h5py.File by the latency study
    only, so that the library's reader opens shards through it."""

    def __init__(self, *args, **kwargs) -> None:
        _open_delay()
        super().__init__(*args, **kwargs)


class FolderDataset(Dataset):
    """The baseline: TSN samples read from MMAction2 rawframe folders (1-based names)."""

    def __init__(self, folders: list[Path], counts: list[int], bound: float, seed: int = 0,
                 quantized_flow: bool = False):
        self.folders, self.counts, self.bound, self.seed = folders, counts, bound, seed
        self.quantized_flow = quantized_flow
        self.sampler = SegmentSampler(num_segments=3, flow_length=FLOW_LENGTH)
        self.transform = tsn_train_transform(224, normalize=None if quantized_flow else Normalize())

    def __len__(self) -> int:
        return len(self.folders)

    def read(self, index: int, rng: np.random.Generator) -> dict:
        """The untransformed sample: RGB frames and x/y planes merged, as uint8."""
        folder, num_frames = self.folders[index], self.counts[index]
        indices: FrameIndices = self.sampler(VideoExtent(num_frames, num_frames - 1), rng)
        flows = indices.flows
        rgb = np.stack([cv2.cvtColor(imread(folder / f"img_{s + 1:05d}.jpg"),
                                     cv2.COLOR_BGR2RGB) for s in indices.frames[:, 0]])
        planes = np.stack([cv2.merge([imread(folder / f"{axis}_{k + 1:05d}.jpg",
                                             cv2.IMREAD_GRAYSCALE) for axis in "xy"])
                           for k in flows.reshape(-1)])
        flow = planes.reshape((*flows.shape, *planes.shape[1:]))
        if self.quantized_flow:
            return {"rgb": rgb, "flow": flow, "flow_bound": self.bound}
        return {"rgb": rgb, "flow": dequantize_flow(flow, self.bound)}

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, 0, index])
        sample = self.transform(self.read(index, rng), rng)
        item = {"rgb": _rgb_tensor(sample["rgb"], None), "flow": _flow_tensor(sample["flow"], None)}
        if self.quantized_flow:
            item["flow_bound"] = torch.tensor(self.bound, dtype=torch.float64)
            item["flow_scale"] = torch.from_numpy(flow_scale(sample))
        return item


def evict(folder: Path) -> None:
    """Drop every file under ``folder`` from the page cache."""
    for root, _, names in os.walk(folder):
        for name in names:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def samples_per_second(dataset: Dataset, epochs: int, evict_first: list[Path],
                       persistent: bool = False) -> float:
    """Samples/s over ``epochs`` passes, evicting ``evict_first`` before each (not timed).

    Fresh workers start every epoch unless ``persistent``, in which case one untimed warm-up
    epoch starts them first.
    """
    loader = DataLoader(dataset, batch_size=8, shuffle=True, num_workers=2,
                        generator=torch.Generator().manual_seed(0),
                        persistent_workers=persistent)
    if persistent:
        for _ in loader:
            pass
    count, seconds = 0, 0.0
    for _ in range(epochs):
        for folder in evict_first:
            evict(folder)
        start = time.perf_counter()
        for batch in loader:
            count += batch["rgb"].shape[0]
        seconds += time.perf_counter() - start
    return count / seconds


def stage_costs(dataset: Dataset, rounds: int, evict_first: Path | None) -> dict[str, float]:
    """Median ms per item of reading (with decoding), transforms and tensor layout, in this
    process (no DataLoader), every handle fresh each round as in a new worker; ``evict_first``
    drops that folder from the page cache before each round."""
    transform = dataset.transform
    totals: dict[str, list[float]] = {"read": [], "transform": [], "tensors": []}
    for round_ in range(rounds):
        if evict_first is not None:
            evict(evict_first)
        if isinstance(dataset, ShardDataset):
            dataset.reader.close()  # handles reopen on the next read, as in a fresh worker
        spent = dict.fromkeys(totals, 0.0)
        for index in range(len(dataset)):
            rng = np.random.default_rng([1, round_, index])
            start = time.perf_counter()
            if isinstance(dataset, ShardDataset):
                video = dataset.reader[dataset.items[index][0]]
                extent = VideoExtent(len(video.frames), len(video.flows), video.flow_step)
                sample = dataset._read(video, dataset.sampler(extent, rng))
            else:
                sample = dataset.read(index, rng)
            middle = time.perf_counter()
            sample = transform(sample, rng)
            end = time.perf_counter()
            _rgb_tensor(sample["rgb"], None), _flow_tensor(sample["flow"], None)
            spent["read"] += middle - start
            spent["transform"] += end - middle
            spent["tensors"] += time.perf_counter() - end
        for key, seconds in spent.items():
            totals[key].append(1e3 * seconds / len(dataset))
    costs = {key: float(np.median(values)) for key, values in totals.items()}
    costs["total"] = sum(costs.values())
    return costs


def read_every_file(folder: Path) -> float:
    """Seconds to read every file under ``folder`` once, start to end."""
    start = time.perf_counter()
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as handle:
                while handle.read(1 << 20):
                    pass
    return time.perf_counter() - start


STORAGE = {"shards": StorageConfig(), "raw_shards": StorageConfig(compression="none"),
           "raw_rgb_shards": StorageConfig(rgb="raw", compression="none"),
           "jpeg_shards": StorageConfig(flow_dtype="jpeg")}


def make_layouts(tmp: Path, videos: int, frames: int, shard_layouts: tuple[str, ...]
                 ) -> dict[tuple[str, str], Dataset]:
    """Extract the synthetic videos into ``shard_layouts`` (and the folders, exported from the
    JPEG shards); a Dataset per layout and output mode (float32, uint8)."""
    make_synthetic_videos(tmp / "videos", SynthConfig(num_videos=videos, num_frames=frames))
    sources = collect_videos([tmp / "videos"])
    for name in dict.fromkeys([*shard_layouts, "jpeg_shards"]):
        require_all_ok(extract(sources, tmp / name, ExtractConfig(
            flow="farneback", storage=STORAGE[name]), progress=False))
    export_rawframes(tmp / "jpeg_shards", tmp / "folders", layout="mmaction2")
    reader = open_shards(tmp / "jpeg_shards")
    folders = [tmp / "folders" / Path(v).with_suffix("") for v in reader.videos]
    counts = [reader.info(v)["num_frames"] for v in reader.videos]
    layouts: dict[tuple[str, str], Dataset] = {}
    for quantized in (False, True):
        mode = "uint8" if quantized else "float32"
        transform = tsn_train_transform(224, normalize=None if quantized else Normalize())
        for name in shard_layouts:
            layouts[name, mode] = ShardDataset(
                tmp / name, "rgb+flow", SegmentSampler(num_segments=3, flow_length=FLOW_LENGTH),
                transform=transform, quantized_flow=quantized)
        layouts["folders", mode] = FolderDataset(folders, counts, bound=20.0,
                                                 quantized_flow=quantized)
    return layouts


def open_latency_study(tmp: Path, layouts: dict[tuple[str, str], Dataset],
                       latencies_ms: list[float], epochs: int) -> None:
    """Samples/s of each layout (uint8 output, warm cache) with every file open delayed by each
    of ``latencies_ms``: fresh workers each epoch, then persistent workers."""
    global _open_latency_s
    h5py.File = SlowOpenFile  # the library's reader now opens shards through the model
    files = {name: sum(len(f) for _, _, f in os.walk(tmp / name)) for name in LATENCY_LAYOUTS}
    rows = []
    for ms in latencies_ms:
        _open_latency_s = ms / 1e3
        sleeps = 200
        actual = 1e3 * timed(lambda: [_open_delay() for _ in range(sleeps)]) / sleeps
        row = {"open_latency_ms": ms, "measured_ms_per_open": actual}
        for name in LATENCY_LAYOUTS:
            dataset = layouts[name, "uint8"]
            samples_per_second(dataset, 1, [])  # every file in the page cache
            row[name] = {"fresh": samples_per_second(dataset, epochs, []),
                         "persistent": samples_per_second(dataset, epochs, [], persistent=True)}
        rows.append(row)
    _open_latency_s = 0.0
    print("| ms per file open (measured) | shards, fresh workers | jpeg shards, fresh | "
          "folders, fresh | shards / folders | shards, persistent workers | jpeg shards, "
          "persistent | folders, persistent | shards / folders |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        cells = [f"{row['open_latency_ms']:g} ({row['measured_ms_per_open']:.3f})"]
        for workers in ("fresh", "persistent"):
            cells += [f"{row[name][workers]:.1f}" for name in LATENCY_LAYOUTS]
            cells.append(f"{row['shards'][workers] / row['folders'][workers]:.2f}x")
        print("| " + " | ".join(cells) + " |")
    print(f"files: {files}")
    print(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--stage-rounds", type=int, default=5,
                        help="rounds of the in-process cost breakdown (median taken)")
    parser.add_argument("--open-latency-ms", type=lambda text: [float(v) for v in text.split(",")],
                        help="only the network file system model: ms slept in every file open, "
                             "e.g. 0,0.5,2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        tmp = Path(tmp)
        if args.open_latency_ms:
            layouts = make_layouts(tmp, args.videos, args.frames, ("shards", "jpeg_shards"))
            print(f"machine: {machine()}")
            print(f"{args.videos} synthetic videos x {args.frames} frames, TSN 3 segments x "
                  "(1 RGB + 5 flow pairs), uint8 output, DataLoader 2 workers, batch 8, "
                  f"{args.epochs} epochs, warm page cache")
            open_latency_study(tmp, layouts, args.open_latency_ms, args.epochs)
            return
        layouts = make_layouts(tmp, args.videos, args.frames, SHARD_LAYOUTS)
        names = sorted({name for name, _ in layouts})
        files = {name: sum(len(f) for _, _, f in os.walk(tmp / name)) for name in names}
        sizes = {name: sum(os.path.getsize(os.path.join(r, n)) for r, _, f in os.walk(tmp / name)
                           for n in f) for name in names}
        results = {}
        every = [tmp / name for name in names]
        for key, dataset in layouts.items():
            results[(*key, "cold")] = samples_per_second(dataset, args.epochs, every)
        for key, dataset in layouts.items():
            samples_per_second(dataset, 1, [])  # a full pass brings every file into the cache
            results[(*key, "warm")] = samples_per_second(dataset, args.epochs, [])
        for round_ in range(2):  # persistent workers, layouts interleaved, warm cache
            for key, dataset in layouts.items():
                results[(*key, f"persistent{round_}")] = samples_per_second(
                    dataset, args.epochs, [], persistent=True)
        file_reads = {}
        for name in names:
            evict(tmp / name)
            file_reads[name] = (read_every_file(tmp / name), read_every_file(tmp / name))
        stages = {(name, cache): stage_costs(layouts[name, "uint8"], args.stage_rounds,
                                             tmp / name if cache == "cold" else None)
                  for cache in ("warm", "cold") for name in names}
    print(f"machine: {machine()}")
    print(f"{args.videos} synthetic videos x {args.frames} frames, 340x256, Farneback flow; "
          "TSN 3 segments x (1 RGB + 5 flow pairs), 224 crop + flip; DataLoader 2 workers, batch 8")
    print("| layout | output | files | bytes | cold samples/s | warm samples/s | "
          "warm, persistent workers (2 rounds) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    labels = {"shards": "shards (default: lossless gzip-1 uint8 flow)",
              "raw_shards": "shards (uint8 flow, --compression none)",
              "raw_rgb_shards": "shards (--rgb raw --compression none: nothing to decode)",
              "jpeg_shards": "shards (--flow-dtype jpeg)",
              "folders": "MMAction2 folders (same JPEG bytes as jpeg shards)"}
    for mode in ("float32", "uint8"):
        for name, label in labels.items():
            r = {cache: results[(name, mode, cache)]
                 for cache in ("cold", "warm", "persistent0", "persistent1")}
            print(f"| {label} | {mode} | {files[name]} | {sizes[name]} | {r['cold']:.1f} | "
                  f"{r['warm']:.1f} | {r['persistent0']:.1f}, {r['persistent1']:.1f} |")
    for mode in ("float32", "uint8"):
        for name in SHARD_LAYOUTS:
            ratios = [results[(name, mode, cache)] / results[("folders", mode, cache)]
                      for cache in ("cold", "warm", "persistent0", "persistent1")]
            print(f"{mode} {name} / folders: cold {ratios[0]:.2f}x, warm {ratios[1]:.2f}x, "
                  f"persistent {ratios[2]:.2f}x, {ratios[3]:.2f}x")
    for name in labels:
        gain = (results[(name, "uint8", "persistent1")]
                / results[(name, "float32", "persistent1")])
        print(f"{name}: uint8 / float32 output, persistent workers: {gain:.2f}x")

    print("\nEvery file of a layout read once, start to end: cold (evicted) / warm seconds")
    for name in names:
        cold, warm = file_reads[name]
        print(f"{name}: {files[name]} files, cold {cold:.3f} s, warm {warm:.3f} s, "
              f"{1e3 * (cold - warm) / files[name]:.3f} ms more per file cold")
    print("\nIn-process cost per uint8 item, fresh handles each round (median of "
          f"{args.stage_rounds}): ms read+decode / transforms / tensors = total")
    for cache in ("warm", "cold"):
        for name in names:
            c = stages[name, cache]
            ratio = stages["folders", cache]["total"] / c["total"]
            print(f"{cache} {name}: {c['read']:.2f} / {c['transform']:.2f} / {c['tensors']:.2f} "
                  f"= {c['total']:.2f} ms; folders / this {ratio:.2f}x")


if __name__ == "__main__":
    main()
