"""Memory: peak RSS of `flowkit extract` on a 5-minute video vs a 30-second one.

Frames stream through the pipeline, so peak memory must not grow with video length (target:
5-minute peak within 1.2x the 30-second peak). Each extraction runs in a fresh Python process
that reports its own peak RSS (getrusage ru_maxrss). Farneback flow by default, so that the
5-minute video (7,500 frames at 340x256) takes minutes, not hours; the backend holds one pair at
a time whichever it is (--flow tvl1 works too, slowly).

    python bench/memory.py [--flow farneback] [--short 30] [--long 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from common import machine

from flowkit.video.synth import write_video

CHILD = """
import json, resource, sys
from pathlib import Path
from flowkit.config import ExtractConfig
from flowkit.extract.run import extract
from flowkit.extract.inputs import VideoSource
video, out, flow = sys.argv[1:4]
report = extract([VideoSource("v", Path(video))], out, ExtractConfig(flow=flow), workers=1,
                 progress=False)
if report.failed:
    raise SystemExit(f"extraction failed: {report.failed[0].error}")
print(json.dumps({"frames": report.frames, "ok": report.ok,
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def moving_texture(seconds: float, fps: float, width: int = 340, height: int = 256):
    """Frames of a random texture translating 2 px right per frame (cheap to make)."""
    noise = np.random.default_rng(0).integers(0, 256, (height, width * 2, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(noise, (0, 0), 2.0)
    for index in range(int(seconds * fps)):
        offset = (2 * index) % width
        yield np.ascontiguousarray(texture[:, width - offset: 2 * width - offset])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", default="farneback")
    parser.add_argument("--short", type=float, default=30.0, help="seconds of the short video")
    parser.add_argument("--long", type=float, default=300.0, help="seconds of the long video")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        tmp = Path(tmp)
        for seconds in (args.short, args.long):
            video = tmp / f"{int(seconds)}s.mp4"
            write_video(video, moving_texture(seconds, 25.0), fps=25.0, codec="libx264")
            result = subprocess.run([sys.executable, "-c", CHILD, str(video),
                                     str(tmp / f"out{int(seconds)}"), args.flow],
                                    capture_output=True, text=True, check=True)
            rows.append((seconds, json.loads(result.stdout.strip().splitlines()[-1])))
    print(f"machine: {machine()}")
    print(f"flow: {args.flow}, 340x256 at 25 fps, JPEG RGB + uint8 flow, 1 worker")
    print("| video | frames | peak RSS (MiB) |")
    print("| --- | ---: | ---: |")
    for seconds, row in rows:
        print(f"| {seconds:.0f} s | {row['frames']} | {row['peak_rss_kib'] / 1024:.1f} |")
    ratio = rows[1][1]["peak_rss_kib"] / rows[0][1]["peak_rss_kib"]
    print(f"long / short peak RSS: {ratio:.3f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
