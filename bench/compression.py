"""Which HDF5 filter for flow chunks: size, write and read speed of lzf vs gzip 1-4 vs none.

Reads are timed twice: through h5py (what any HDF5 tool does) and through flowkit's reader
(`flowkit.store.chunks.RowReader`: whole stored chunks, deflate inflated by ISA-L).

Flow is real TV-L1 flow of the UCF101 clip in ../shared/data (or synthetic videos when that is
absent), quantised to uint8 with bound 20 as flowkit stores it, one (H, W, 2) chunk per frame.

    python bench/compression.py [--pairs 24]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from flowkit.flow import get_backend
from flowkit.store.chunks import RowReader
from flowkit.store.codec import quantize_flow
from flowkit.video.decode import DecodeConfig, iter_frames

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
FILTERS = {"none": {}, "lzf": {"compression": "lzf"},
           **{f"gzip-{level}": {"compression": "gzip", "compression_opts": level}
              for level in (1, 2, 4)}}


def real_flows(pairs: int) -> np.ndarray:
    video = DATA / "v_ApplyEyeMakeup_g01_c01.avi"
    frames = []
    for frame in iter_frames(video, DecodeConfig(short_side=256)):
        frames.append(frame)
        if len(frames) == pairs + 1:
            break
    frames = np.stack(frames)
    return quantize_flow(get_backend("tvl1")(frames[:-1], frames[1:]), 20.0)


def measure(flows: np.ndarray, folder: Path, repeats: int = 5) -> list[tuple]:
    rows = []
    for name, kwargs in FILTERS.items():
        path = folder / f"{name}.h5"
        write = read = ours = float("inf")
        for _ in range(repeats):
            path.unlink(missing_ok=True)
            start = time.perf_counter()
            with h5py.File(path, "w") as handle:
                dataset = handle.create_dataset("flow", shape=flows.shape, dtype=np.uint8,
                                                chunks=(1, *flows.shape[1:]), **kwargs)
                for index, flow in enumerate(flows):
                    dataset[index] = flow
            write = min(write, time.perf_counter() - start)
            start = time.perf_counter()
            with h5py.File(path, "r") as handle:
                for index in range(len(flows)):
                    handle["flow"][index]
            read = min(read, time.perf_counter() - start)
            start = time.perf_counter()
            with h5py.File(path, "r") as handle:
                RowReader(handle["flow"]).read(np.arange(len(flows)))
            ours = min(ours, time.perf_counter() - start)
        rows.append((name, os.path.getsize(path), len(flows) / write, len(flows) / read,
                     len(flows) / ours))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=24, help="flow fields to compute and store")
    args = parser.parse_args()
    flows = real_flows(args.pairs)
    raw = flows.nbytes
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; {len(flows)} TV-L1 flows {flows.shape[1:]} uint8 from "
          "the UCF101 clip")
    print("| filter | bytes | ratio | write flows/s | read flows/s, h5py | read flows/s, flowkit |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        for name, size, write, read, ours in measure(flows, Path(folder)):
            print(f"| {name} | {size} | {raw / size:.2f} | {write:.0f} | {read:.0f} | {ours:.0f} |")


if __name__ == "__main__":
    main()
