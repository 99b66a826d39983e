"""Memory: peak RSS of `flowkit extract` on a 5-minute video vs a 30-second one; with
``--reader``, open files and RSS of a reader that has touched thousands of shards.

Frames stream through the pipeline, so peak memory must not grow with video length (target:
5-minute peak within 1.2x the 30-second peak). Each extraction runs in a fresh Python process
that reports its own peak RSS (getrusage ru_maxrss). Farneback flow by default, so that the
5-minute video (7,500 frames at 340x256) takes minutes, not hours; the backend holds one pair at
a time whichever it is (--flow tvl1 works too, slowly).

    python bench/memory.py [--flow farneback] [--short 30] [--long 300]

A DataLoader worker reads every shard of the folder in an epoch, so a reader's open files and
memory must not grow with the number of shards (target: at most 64 open shard files and 100 MB
more RSS after 6,500 shards). ``--reader`` writes as many one-video shards as its largest count
(2-frame 32x32 videos, JPEG RGB + uint8 flow, shard attributes as `flowkit extract` writes
them), then, in a fresh process per count and limit, reads frame 0 and flow 0 of the first N
videos through ``open_shards(max_open_files=M)`` ("default": the argument not passed) and
reports the most .h5 descriptors open at once, those still open, the RSS growth and the time
per video; then reads them all again in a shuffled order (with fewer open files than shards,
most reads reopen their shard). A limit above the shard count (8000) keeps every file open,
as the reader did before issue 20.

    python bench/memory.py --reader 1100,6500 [--max-open-files default,8000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from common import machine

from flowkit.config import ExtractConfig
from flowkit.extract.shard import shard_attributes
from flowkit.store.manifest import MANIFEST_NAME, OK, Manifest, ManifestEntry
from flowkit.store.writer import ShardWriter
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


READER_CHILD = """
import gc, json, os, random, sys, time
import flowkit
root, count, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def open_h5():
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return sum(name.endswith(".h5") for name in names)

options = {} if limit == "default" else {"max_open_files": int(limit)}
reader = flowkit.open_shards(root, **options)
ids = reader.videos[:count]
gc.collect()
start, most, result = rss_kib(), 0, {"videos": len(ids)}
for name, order in (("first", ids), ("again", random.Random(0).sample(ids, len(ids)))):
    began = time.perf_counter()
    for number, video_id in enumerate(order):
        video = reader[video_id]
        video.frames[0], video.flows[0]
        if number % 50 == 0:
            most = max(most, open_h5())
    result[name + "_us"] = 1e6 * (time.perf_counter() - began) / len(ids)
    gc.collect()
    result[name + "_rss_kib"] = rss_kib() - start
result.update(most_open=max(most, open_h5()), open_after=open_h5())
print(json.dumps(result))
"""


def one_video_shards(root: Path, count: int) -> None:
    """``count`` shards of one 2-frame 32x32 video each (JPEG RGB, uint8 flow), and their
    manifest; shard attributes as ``flowkit extract`` writes them with its defaults."""
    config = ExtractConfig()
    attrs = shard_attributes(config)
    frame, flow = np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 2), np.float32)
    entries = []
    for number in range(count):
        video_id, shard_name = f"class{number % 400}/v{number:05d}.mp4", f"shard-{number:05d}.h5"
        with ShardWriter(root / shard_name, config.storage, attrs) as shard:
            with shard.video(video_id, {"bound": config.storage.bound, "step": 1,
                                        "backend": config.flow}) as video:
                video.append_frame(frame)
                video.append_frame(frame)
                video.append_flow(flow)
                video.finish({"height": 32, "width": 32, "source": f"/videos/{video_id}",
                              "label": number % 400, "fps": 25.0, "rotation": 0})
        entries.append(ManifestEntry(video_id, f"/videos/{video_id}", number % 400, shard_name,
                                     OK, 2, 1))
    Manifest(entries).write(root / MANIFEST_NAME)


def reader_study(counts: list[int], limits: list[str]) -> None:
    """Open files and RSS growth after touching ``counts`` shards, for each limit."""
    rows = []
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        began = time.perf_counter()
        one_video_shards(Path(tmp), max(counts))
        made = time.perf_counter() - began
        for count in counts:
            for limit in limits:
                result = subprocess.run([sys.executable, "-c", READER_CHILD, tmp, str(count),
                                         limit], capture_output=True, text=True, check=True)
                rows.append((count, limit, json.loads(result.stdout.strip().splitlines()[-1])))
    print(f"machine: {machine()}")
    print(f"{max(counts)} one-video shards (2 frames, 32x32) written in {made:.0f} s; frame 0 "
          "and flow 0 of the first N videos read, then again in a shuffled order; one fresh "
          "process per row")
    print("| shards touched | max_open_files | most .h5 open | .h5 open after | RSS growth (MiB), "
          "first / both passes | us per video, first / shuffled pass |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for count, limit, row in rows:
        print(f"| {count} | {limit} | {row['most_open']} | {row['open_after']} | "
              f"{row['first_rss_kib'] / 1024:.1f} / {row['again_rss_kib'] / 1024:.1f} | "
              f"{row['first_us']:.0f} / {row['again_us']:.0f} |")


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
    parser.add_argument("--reader", help="instead: shard counts for the reader study, e.g. "
                        "1100,6500")
    parser.add_argument("--max-open-files", default="default,8000",
                        help="reader study: limits to compare ('default': not passed)")
    args = parser.parse_args()
    if args.reader:
        reader_study([int(count) for count in args.reader.split(",")],
                     args.max_open_files.split(","))
        return
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
