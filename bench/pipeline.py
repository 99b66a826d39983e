"""Pipeline overhead: `flowkit extract` with TV-L1 vs a bare loop of OpenCV DualTVL1 calls.

The bare loop gets the same decoded, resized frames already in memory and only converts to
grayscale and calls DualTVL1; flowkit decodes from disk, encodes JPEG, computes the same flow,
quantises and writes HDF5. Both run in one process with the same OpenCV threads, alternating
rounds so that machine noise hits both alike. Target: overhead <= 10%.

    python bench/pipeline.py [--frames 25] [--rounds 3] [--video PATH]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from common import machine, median, require_all_ok, timed

from flowkit.config import ExtractConfig
from flowkit.extract.inputs import VideoSource
from flowkit.extract.run import extract
from flowkit.video.decode import DecodeConfig, iter_frames
from flowkit.video.synth import SynthConfig, make_synthetic_videos


def bare_tvl1(frames: list[np.ndarray]) -> None:
    solver = cv2.optflow.DualTVL1OpticalFlow_create()
    grays = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    for first, second in zip(grays[:-1], grays[1:]):
        solver.calc(first, second, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=25, help="frames of the synthetic video")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    parser.add_argument("--video", type=Path, help="use this video instead of a synthetic one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = args.video
        if video is None:
            (made,) = make_synthetic_videos(tmp / "videos", SynthConfig(
                num_videos=1, num_frames=args.frames))
            video = made.path
        frames = list(iter_frames(video, DecodeConfig()))
        pairs = len(frames) - 1
        config = ExtractConfig()
        bare, ours = [], []
        for round_ in range(args.rounds):
            bare.append(timed(lambda: bare_tvl1(frames)))
            ours.append(timed(lambda: require_all_ok(extract(
                [VideoSource("v", Path(video))], tmp / f"o{round_}", config, workers=1,
                progress=False))))
        b, o = median(bare), median(ours)
        print(f"machine: {machine()}; OpenCV threads {cv2.getNumThreads()}")
        print(f"video: {video.name if args.video else 'synthetic'} "
              f"{frames[0].shape[1]}x{frames[0].shape[0]}, {pairs} pairs, {args.rounds} rounds")
        print("| run | seconds (median) | flow pairs/s |")
        print("| --- | ---: | ---: |")
        print(f"| bare OpenCV DualTVL1 loop (frames in memory) | {b:.2f} | {pairs / b:.2f} |")
        print(f"| flowkit extract (decode, JPEG, TV-L1, HDF5) | {o:.2f} | {pairs / o:.2f} |")
        print("rounds (s): bare " + ", ".join(f"{t:.2f}" for t in bare)
              + "; flowkit " + ", ".join(f"{t:.2f}" for t in ours))
        print(f"overhead: {100 * (o / b - 1):+.1f}% (target <= 10%)")


if __name__ == "__main__":
    main()
