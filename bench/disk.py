"""Disk: shards vs the same frames and flow as MMAction2-style JPEG folders.

Extracts RGB + TV-L1 flow of real clips (../shared/data/videos, or synthetic videos when that
is absent) into shards, then writes the very same data as MMAction2 rawframes: per video a
folder with img_00001.jpg (the stored RGB JPEG bytes), x_00001.jpg and y_00001.jpg (the stored
uint8 flow components as grayscale JPEG, OpenCV's default quality 95, as denseflow writes them).
Reports apparent bytes, allocated bytes (what `du` counts: small files waste blocks) and files.

    python bench/disk.py [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import cv2

from common import SHARED_VIDEOS, machine
from flowkit.config import ExtractConfig
from flowkit.extract import extract
from flowkit.inputs import collect_videos
from flowkit.reader import open_shards
from flowkit.synth import SynthConfig, make_synthetic_videos


def write_rawframes(shards: Path, out: Path) -> None:
    reader = open_shards(shards)
    for video_id in reader.videos:
        video = reader[video_id]
        folder = out / Path(video_id).stem
        folder.mkdir(parents=True)
        for index in range(len(video.frames)):
            (folder / f"img_{index + 1:05d}.jpg").write_bytes(video.frames.jpeg_bytes(index))
        for index in range(len(video.flows)):
            flow = video.flows.quantized(index)
            cv2.imwrite(str(folder / f"x_{index + 1:05d}.jpg"), flow[..., 0])
            cv2.imwrite(str(folder / f"y_{index + 1:05d}.jpg"), flow[..., 1])


def usage(folder: Path) -> tuple[int, int, int]:
    """(apparent bytes, allocated bytes, files) under ``folder``."""
    apparent = allocated = files = 0
    for root, _, names in os.walk(folder):
        for name in names:
            stat = os.stat(os.path.join(root, name))
            apparent += stat.st_size
            allocated += stat.st_blocks * 512
            files += 1
    return apparent, allocated, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        tmp = Path(tmp)
        if SHARED_VIDEOS.is_dir():
            inputs = [SHARED_VIDEOS / "v_ApplyEyeMakeup_g01_c01.avi",
                      SHARED_VIDEOS / "kinetics_arm_wrestling.mp4"]
        else:
            make_synthetic_videos(tmp / "videos", SynthConfig(num_videos=2, num_frames=60))
            inputs = [tmp / "videos"]
        report = extract(collect_videos(inputs), tmp / "shards", ExtractConfig(),
                         workers=args.workers, progress=False)
        write_rawframes(tmp / "shards", tmp / "rawframes")
        shards = usage(tmp / "shards")
        folders = usage(tmp / "rawframes")
    print(f"machine: {machine()}")
    print(f"{report.ok} videos, {report.frames} frames, short side 256, TV-L1, bound 20, "
          "JPEG quality 95")
    print("| layout | apparent bytes | allocated bytes | files |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| flowkit shards (JPEG RGB, gzip-1 uint8 flow) | {shards[0]} | {shards[1]} | {shards[2]} |")
    print(f"| MMAction2 folders (img/x/y JPEGs) | {folders[0]} | {folders[1]} | {folders[2]} |")
    print(f"shards / folders: {shards[0] / folders[0]:.2f}x apparent, "
          f"{shards[1] / folders[1]:.2f}x allocated, {shards[2] / folders[2]:.4f}x files")


if __name__ == "__main__":
    main()
