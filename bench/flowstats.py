"""What recording flow statistics costs (issue 15), and where `flowkit info` reads them.

1. Per flow: :func:`flowkit.store.flowstats.flow_stats` (clipped share, length histogram, largest
   length) against computing the flow itself (Farneback and TV-L1, CPU), at short side 256 on
   the UCF101 clip in ../shared/data.
2. Per folder: `flowkit info` on ``--videos`` small extracted videos, which reads the statistics
   from manifest.json, against reading them from every video's group attributes (the shards).

    python bench/flowstats.py [--pairs 8] [--videos 200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, median, require_all_ok, timed_flows
from compression import DATA

from flowkit.config import ExtractConfig
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.store.flowstats import flow_stats
from flowkit.store.reader import open_shards
from flowkit.store.summary import summarize
from flowkit.video.decode import DecodeConfig
from flowkit.video.synth import SynthConfig, make_synthetic_videos


def per_flow(pairs: int) -> None:
    for name in ("farneback", "tvl1"):
        flows, flow_ms = timed_flows(DATA / "v_ApplyEyeMakeup_g01_c01.avi", pairs,
                                     DecodeConfig(256), name)
        times = []
        for _ in range(21):
            start = time.perf_counter()
            flow_stats(flows, 20.0)
            times.append((time.perf_counter() - start) / pairs * 1e3)
        stats_ms = median(times)
        print(f"{name}: {flows.shape[2]}x{flows.shape[1]}, flow {flow_ms:.2f} ms/pair, "
              f"stats {stats_ms:.3f} ms/pair ({stats_ms / flow_ms:.2%} of the flow)")


def per_folder(videos: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_synthetic_videos(root / "videos", SynthConfig(num_videos=videos, num_frames=3,
                                                           width=64, height=48, codec="ffv1"))
        require_all_ok(extract(collect_videos([root / "videos"]), root / "out",
                               ExtractConfig(decode=DecodeConfig(short_side=None),
                                             flow="farneback"),
                               workers=1, progress=False))
        manifest, shards = [], []
        for _ in range(5):
            start = time.perf_counter()
            summarize(root / "out").to_text()
            manifest.append(time.perf_counter() - start)
            start = time.perf_counter()
            with open_shards(root / "out") as reader:
                known = sum(reader[v].flow_stats is not None for v in reader)
            shards.append(time.perf_counter() - start)
        assert known == videos
        command = [sys.executable, "-m", "flowkit", "info", str(root / "out")]
        cli = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            cli.append(time.perf_counter() - start)
        size = (root / "out" / "manifest.json").stat().st_size
        print(f"{videos} videos in {len(list((root / 'out').glob('*.h5')))} shards, manifest "
              f"{size / videos:.0f} bytes a video: summary from the manifest "
              f"{median(manifest) * 1e3:.1f} ms, stats from group attributes "
              f"{median(shards) * 1e3:.1f} ms; `flowkit info` process {median(cli):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--videos", type=int, default=200)
    args = parser.parse_args()
    print(machine())
    per_flow(args.pairs)
    per_folder(args.videos)


if __name__ == "__main__":
    main()
