"""Loader: two-stream TSN training samples/s from shards vs MMAction2 JPEG folders.

Three layouts of the same videos: shards as `flowkit extract` writes them by default (lossless
gzip uint8 flow), shards with `--flow-dtype jpeg`, and MMAction2 folders exported from the
latter (byte for byte the same JPEGs). All read with the same sampling (3 segments, 1 RGB frame
+ 5 flow pairs each) and transforms (multi-scale crop to 224, flip, normalisation) through a
DataLoader with 2 workers; the folder baseline is a plain Dataset decoding img/x/y JPEGs with
OpenCV. Cold runs first evict every file of all layouts from the page cache (fsync, then
posix_fadvise DONTNEED) before each epoch; warm runs follow a full pass. Both start fresh
workers every epoch (so shards reopen their HDF5 files each epoch); a last warm measurement
keeps the workers alive (persistent_workers=True), layouts interleaved, twice.

    python bench/loader.py [--videos 48] [--frames 48] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from common import machine, require_all_ok
from flowkit.codec import dequantize_flow
from flowkit.config import ExtractConfig
from flowkit.data.dataset import ShardDataset, _flow_tensor, _rgb_tensor
from flowkit.data.sampling import SegmentSampler, flow_stack_indices
from flowkit.data.transforms import tsn_train_transform
from flowkit.extract import extract
from flowkit.inputs import collect_videos
from flowkit.interop import export_rawframes
from flowkit.reader import open_shards
from flowkit.shards import StorageConfig
from flowkit.synth import SynthConfig, make_synthetic_videos

FLOW_LENGTH = 5


class FolderDataset(Dataset):
    """The baseline: TSN samples read from MMAction2 rawframe folders (1-based names)."""

    def __init__(self, folders: list[Path], counts: list[int], bound: float, seed: int = 0):
        self.folders, self.counts, self.bound, self.seed = folders, counts, bound, seed
        self.sampler, self.transform = SegmentSampler(num_segments=3), tsn_train_transform(224)

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, index: int) -> dict:
        folder, num_frames = self.folders[index], self.counts[index]
        rng = np.random.default_rng([self.seed, 0, index])
        starts = self.sampler(num_frames, FLOW_LENGTH + 1, rng)
        flows = flow_stack_indices(starts, FLOW_LENGTH, num_frames - 1)
        rgb = np.stack([cv2.cvtColor(cv2.imread(str(folder / f"img_{s + 1:05d}.jpg")),
                                     cv2.COLOR_BGR2RGB) for s in starts])
        planes = np.stack([np.stack([cv2.imread(str(folder / f"{axis}_{k + 1:05d}.jpg"),
                                                cv2.IMREAD_GRAYSCALE) for axis in "xy"], -1)
                           for k in flows.reshape(-1)])
        flow = dequantize_flow(planes, self.bound).reshape(*flows.shape, *planes.shape[1:])
        sample = self.transform({"rgb": rgb, "flow": flow}, rng)
        return {"rgb": _rgb_tensor(sample["rgb"], None), "flow": _flow_tensor(sample["flow"], None)}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        tmp = Path(tmp)
        make_synthetic_videos(tmp / "videos", SynthConfig(num_videos=args.videos,
                                                          num_frames=args.frames))
        sources = collect_videos([tmp / "videos"])
        require_all_ok(extract(sources, tmp / "shards", ExtractConfig(flow="farneback"),
                               progress=False))
        require_all_ok(extract(sources, tmp / "jpeg_shards", ExtractConfig(
            flow="farneback", storage=StorageConfig(flow_dtype="jpeg")), progress=False))
        export_rawframes(tmp / "jpeg_shards", tmp / "folders", layout="mmaction2")
        reader = open_shards(tmp / "jpeg_shards")
        folders = [tmp / "folders" / Path(v).with_suffix("") for v in reader.videos]
        counts = [reader.info(v)["num_frames"] for v in reader.videos]
        layouts = {
            "shards": ShardDataset(tmp / "shards", "rgb+flow", SegmentSampler(num_segments=3),
                                   transform=tsn_train_transform(224), flow_length=FLOW_LENGTH),
            "jpeg_shards": ShardDataset(tmp / "jpeg_shards", "rgb+flow",
                                        SegmentSampler(num_segments=3),
                                        transform=tsn_train_transform(224),
                                        flow_length=FLOW_LENGTH),
            "folders": FolderDataset(folders, counts, bound=20.0),
        }
        files = {name: sum(len(f) for _, _, f in os.walk(tmp / name)) for name in layouts}
        sizes = {name: sum(os.path.getsize(os.path.join(r, n)) for r, _, f in os.walk(tmp / name)
                           for n in f) for name in layouts}
        results = {}
        every = [tmp / name for name in layouts]
        for name, dataset in layouts.items():
            results[(name, "cold")] = samples_per_second(dataset, args.epochs, every)
        for name, dataset in layouts.items():
            samples_per_second(dataset, 1, [])  # a full pass brings every file into the cache
            results[(name, "warm")] = samples_per_second(dataset, args.epochs, [])
        for round_ in range(2):  # persistent workers, layouts interleaved, warm cache
            for name, dataset in layouts.items():
                results[(name, f"persistent{round_}")] = samples_per_second(
                    dataset, args.epochs, [], persistent=True)
    print(f"machine: {machine()}")
    print(f"{args.videos} synthetic videos x {args.frames} frames, 340x256, Farneback flow; "
          "TSN 3 segments x (1 RGB + 5 flow pairs), 224 crop + flip; DataLoader 2 workers, batch 8")
    print("| layout | files | bytes | cold samples/s | warm samples/s | "
          "warm, persistent workers (2 rounds) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    names = {"shards": "shards (default: lossless gzip-1 uint8 flow)",
             "jpeg_shards": "shards (--flow-dtype jpeg)",
             "folders": "MMAction2 folders (same JPEG bytes as jpeg shards)"}
    for name, label in names.items():
        print(f"| {label} | {files[name]} | {sizes[name]} | {results[(name, 'cold')]:.1f} | "
              f"{results[(name, 'warm')]:.1f} | {results[(name, 'persistent0')]:.1f}, "
              f"{results[(name, 'persistent1')]:.1f} |")
    for name in ("shards", "jpeg_shards"):
        for cache in ("cold", "warm", "persistent0", "persistent1"):
            ratio = results[(name, cache)] / results[("folders", cache)]
            print(f"{cache}: {name} / folders = {ratio:.2f}x")


if __name__ == "__main__":
    main()
