"""Worker scaling: `flowkit extract` with TV-L1 on 2 workers vs 1 worker.

Each worker runs OpenCV with one thread, so the ratio measures process parallelism (target
>= 1.8x on 2 cores). For reference, one worker with OpenCV's own threads on all cores is run
too: that is what a single process gets from OpenCV's internal parallel loops.

    python bench/scaling.py [--videos 8] [--frames 9] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import machine, median, require_all_ok, timed

from flowkit.config import ExtractConfig
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.video.synth import SynthConfig, make_synthetic_videos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=9, help="frames per video")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    runs = {"1 worker x 1 thread": (1, 1), f"{cores} workers x 1 thread": (cores, 1),
            f"1 worker x {cores} OpenCV threads": (1, cores)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_synthetic_videos(tmp / "videos", SynthConfig(num_videos=args.videos,
                                                          num_frames=args.frames))
        sources = collect_videos([tmp / "videos"])
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for round_ in range(args.rounds):
            for name, (workers, threads) in runs.items():
                out = tmp / f"{round_}-{workers}-{threads}"
                seconds[name].append(timed(lambda: require_all_ok(extract(
                    sources, out, ExtractConfig(), workers=workers, threads=threads,
                    videos_per_shard=1, progress=False))))
    pairs = args.videos * (args.frames - 1)
    print(f"machine: {machine()}")
    print(f"{args.videos} synthetic videos 340x256, {pairs} TV-L1 pairs, {args.rounds} round(s)")
    print("| run | seconds | pairs/s | speed-up vs 1 worker x 1 thread |")
    print("| --- | ---: | ---: | ---: |")
    base = median(seconds["1 worker x 1 thread"])
    for name, values in seconds.items():
        t = median(values)
        print(f"| {name} | {t:.1f} | {pairs / t:.2f} | {base / t:.2f}x |")


if __name__ == "__main__":
    main()
