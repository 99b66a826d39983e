"""Dask: `flowkit extract` on local joblib workers vs on a loopback Dask cluster of 1 and 2 workers.

The same synthetic videos (340x256, TV-L1, one video a shard) are extracted three ways: the
local backend with 2 worker processes (joblib), and `--dask` on a LocalCluster on 127.0.0.1 with
1 and with 2 worker processes of 1 thread each (started before the clock runs; the time counts
the client connecting, the shared-folder check, submitting, and the manifest). The arrays are
compared with the local run's. Rounds interleave the three (median taken), and the load average
is printed: the machine is shared. Prints a table and the figures as JSON. (Not named dask.py: a
script's folder comes first on sys.path, and that file would hide the dask package.)

    python bench/dask_cluster.py [--videos 8] [--frames 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from common import machine, median, require_all_ok, timed

from flowkit.config import ExtractConfig
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.store.reader import open_shards
from flowkit.video.synth import SynthConfig, make_synthetic_videos


def same_arrays(left: Path, right: Path) -> bool:
    """Whether two outputs hold the same videos with the same stored frames and flows."""
    a, b = open_shards(left), open_shards(right)
    if sorted(a.videos) != sorted(b.videos):
        return False
    return all((a[v].flows.quantized(slice(None)) == b[v].flows.quantized(slice(None))).all()
               and [a[v].frames.jpeg_bytes(i) for i in range(len(a[v].frames))]
               == [b[v].frames.jpeg_bytes(i) for i in range(len(b[v].frames))]
               for v in a.videos)


def main() -> None:
    from distributed import LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=5, help="frames per video")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    pairs = args.videos * (args.frames - 1)
    config = ExtractConfig()
    runs = {"local": ("local (joblib)", 2), "dask1": ("dask (LocalCluster)", 1),
            "dask2": ("dask (LocalCluster)", 2)}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    starts: dict[str, list[float]] = {name: [0.0] for name in runs}
    same: dict[str, bool] = {}
    load_before = [round(value, 1) for value in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_synthetic_videos(tmp / "videos", SynthConfig(num_videos=args.videos,
                                                          num_frames=args.frames))
        sources = collect_videos([tmp / "videos"])

        def run(out: Path, **options) -> float:
            return timed(lambda: require_all_ok(extract(
                sources, out, config, threads=1, videos_per_shard=1, progress=False, **options)))

        for round_ in range(args.rounds):
            local = tmp / f"local{round_}"
            seconds["local"].append(run(local, workers=2))
            for workers in (1, 2):
                name, start = f"dask{workers}", time.perf_counter()
                with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
                    starts[name].append(time.perf_counter() - start)
                    out = tmp / f"{name}-{round_}"
                    seconds[name].append(run(out, dask=cluster.scheduler_address))
                same[name] = same.get(name, True) and same_arrays(local, out)
    results = [{"backend": runs[name][0], "workers": runs[name][1], "rounds": seconds[name],
                "seconds": median(seconds[name]), "start_seconds": max(starts[name]),
                **({"same_arrays_as_local": same[name]} if name in same else {})}
               for name in runs]
    base = results[0]["seconds"]
    for result in results:
        result["pairs_per_s"] = pairs / result["seconds"]
        result["vs_local"] = base / result["seconds"]
    load = {"before": load_before, "after": [round(value, 1) for value in os.getloadavg()]}
    print(f"machine: {machine()}")
    print(f"{args.videos} synthetic videos 340x256 x {args.frames} frames, {pairs} TV-L1 pairs, "
          f"one video a shard, 1 OpenCV thread a worker; median of {args.rounds} rounds; "
          f"load average (1, 5, 15 min) before {load['before']}, after {load['after']}")
    print("| backend | workers | seconds (rounds) | pairs/s | speed vs local 2 workers | "
          "cluster start (s, not timed) | arrays = local |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        same = {True: "yes", False: "NO"}.get(r.get("same_arrays_as_local"), "(reference)")
        rounds = ", ".join(f"{t:.1f}" for t in r["rounds"])
        print(f"| {r['backend']} | {r['workers']} | {r['seconds']:.1f} ({rounds}) "
              f"| {r['pairs_per_s']:.2f} "
              f"| {r['vs_local']:.2f}x | {r['start_seconds']:.1f} | {same} |")
    print(json.dumps({"machine": machine(), "videos": args.videos, "frames": args.frames,
                      "pairs": pairs, "load_average": load, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
