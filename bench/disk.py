"""Disk: shards vs the same frames and flow as MMAction2-style JPEG folders.

Extracts RGB + TV-L1 flow of real clips (../shared/data/videos, or synthetic videos when that
is absent) twice: into shards with the default lossless uint8 flow, and into shards with
`--flow-dtype jpeg` (the uint8 x/y planes as grayscale JPEGs at quality 95, as denseflow and
MMAction2 write them). The JPEG shards are then written out as MMAction2 rawframes, byte for byte
the same JPEGs: per video a folder of img_00001.jpg, x_00001.jpg, y_00001.jpg. Reports apparent
bytes, allocated bytes (what `du` counts: small files waste blocks) and files.

    python bench/disk.py [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import SHARED_VIDEOS, machine, require_all_ok

from flowkit.config import ExtractConfig
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.store.reader import open_shards
from flowkit.store.writer import StorageConfig
from flowkit.video.synth import SynthConfig, make_synthetic_videos


def write_rawframes(shards: Path, out: Path) -> None:
    reader = open_shards(shards)
    for video_id in reader.videos:
        video = reader[video_id]
        folder = out / Path(video_id).stem
        folder.mkdir(parents=True)
        for index in range(len(video.frames)):
            (folder / f"img_{index + 1:05d}.jpg").write_bytes(video.frames.jpeg_bytes(index))
        for index in range(len(video.flows)):
            x_bytes, y_bytes = video.flows.jpeg_bytes(index)
            (folder / f"x_{index + 1:05d}.jpg").write_bytes(x_bytes)
            (folder / f"y_{index + 1:05d}.jpg").write_bytes(y_bytes)


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
        sources = collect_videos(inputs)
        report = extract(sources, tmp / "shards", ExtractConfig(), workers=args.workers,
                         progress=False)
        require_all_ok(report)
        require_all_ok(extract(sources, tmp / "jpeg_shards",
                               ExtractConfig(storage=StorageConfig(flow_dtype="jpeg")),
                               workers=args.workers, progress=False))
        write_rawframes(tmp / "jpeg_shards", tmp / "rawframes")
        shards = usage(tmp / "shards")
        jpeg_shards = usage(tmp / "jpeg_shards")
        folders = usage(tmp / "rawframes")
    print(f"machine: {machine()}")
    print(f"{report.ok} videos, {report.frames} frames, short side 256, TV-L1, bound 20, "
          "JPEG quality 95")
    print("| layout | apparent bytes | allocated bytes | files |")
    print("| --- | ---: | ---: | ---: |")
    rows = [("flowkit shards, default (JPEG RGB, lossless gzip-1 uint8 flow)", shards),
            ("flowkit shards, --flow-dtype jpeg (JPEG RGB, JPEG x/y flow)", jpeg_shards),
            ("MMAction2 folders (the same img/x/y JPEG bytes as files)", folders)]
    for name, (apparent, allocated, files) in rows:
        print(f"| {name} | {apparent} | {allocated} | {files} |")
    for name, (apparent, allocated, files) in rows[:2]:
        print(f"{name.split(' (')[0]} / folders: {apparent / folders[0]:.2f}x apparent, "
              f"{allocated / folders[1]:.2f}x allocated, {files / folders[2]:.4f}x files")


if __name__ == "__main__":
    main()
