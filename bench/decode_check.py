"""What the pre-decode check (``flowkit extract --check-decode``, the default) costs on healthy
videos, and what it saves on a broken one.

(a) Per frame: decoding alone as the check does it (``count_frames``: no conversion, no
resizing) against decoding into RGB frames (``iter_frames``), on the real UCF101 clip (320x240
xvid) and Kinetics clip (340x256 H.264).
(b) Pairs/s of ``flowkit extract --workers 1 --threads 1 --short-side 0`` on the first
--pairs pairs of each clip with the check on and off, interleaved round by round, for DIS
(medium and fast: the fast methods, where a decoding pass weighs most) and Farneback; the cost
is the ratio of the CPU times (the wall times are printed too, but on a shared machine they
follow the other jobs), and the check's own CPU time (count_frames on the same video) as a
share of an unchecked extract's: the cost measured directly, below the noise of the ratio.
(c) A broken video: the UCF101 clip's first --pairs pairs, cut at 60% of its bytes: the time
extract spends before failing it, with and without the check, with DIS medium and TV-L1.

Everything runs in this one process, pinned to one CPU core (decoding's thread included), with
one OpenCV thread; figures are medians of the rounds.

    python bench/decode_check.py [--rounds 3] [--pairs 60] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import cv2
from common import machine, median, require_all_ok
from flow_methods import CLIPS, NATIVE, Method, cut_clip, pin_to_one_core

from flowkit.extract.inputs import VideoSource
from flowkit.extract.run import extract
from flowkit.store.manifest import FAILED
from flowkit.video.decode import count_frames, iter_frames

METHODS = [Method("dis medium", "dis", {"preset": "medium"}, 0),
           Method("dis fast", "dis", {"preset": "fast"}, 0),
           Method("farneback", "farneback", {}, 0)]
BROKEN_METHODS = [Method("dis medium", "dis", {"preset": "medium"}, 0),
                  Method("tvl1", "tvl1", {}, 0)]


def decode_costs(rounds: int) -> dict[str, dict[str, float]]:
    """size -> ms per frame of count_frames and of iter_frames on the whole clip."""
    result = {}
    for size, clip in CLIPS.items():
        counted, converted = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            frames = count_frames(clip, NATIVE)
            counted.append((time.perf_counter() - start) / frames)
            start = time.perf_counter()
            assert sum(1 for _ in iter_frames(clip, NATIVE)) == frames
            converted.append((time.perf_counter() - start) / frames)
        result[size] = {"frames": frames, "check_ms": 1e3 * median(counted),
                        "decode_ms": 1e3 * median(converted)}
        print(f"  {size} ({frames} frames): check {result[size]['check_ms']:.2f} ms/frame, "
              f"decode to RGB {result[size]['decode_ms']:.2f} ms/frame", flush=True)
    return result


def _extract_seconds(video: Path, out: Path, method: Method, check: bool
                     ) -> tuple[float, float, object]:
    """Wall and CPU seconds (this process's, all its threads) of one extract, and its report."""
    config = dataclasses.replace(method.config(), check_decode=check)
    wall, cpu = time.perf_counter(), time.process_time()
    report = extract([VideoSource("v", video)], out, config, workers=1, threads=1,
                     progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    shutil.rmtree(out)
    return wall, cpu, report


def extract_costs(rounds: int, pairs: int, work: Path) -> dict[str, dict[str, dict[str, float]]]:
    """size -> method -> {"on", "off": pairs/s through extract (wall), "cost": on/off - 1 of
    the CPU time, which a shared machine's other jobs disturb far less than the wall time,
    "share": count_frames' CPU time over an unchecked extract's}."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for size, clip in CLIPS.items():
        video = work / f"cut-{size}{clip.suffix}"
        frames = cut_clip(clip, video, pairs + 1)
        walls = {(m.label, check): [] for m in METHODS for check in (True, False)}
        cpus = {key: [] for key in walls}
        checks = []
        for _ in range(rounds):
            start = time.process_time()
            count_frames(video, NATIVE)
            checks.append(time.process_time() - start)
            for method in METHODS:
                for check in (True, False):
                    wall, cpu, report = _extract_seconds(video, work / "out", method, check)
                    require_all_ok(report)
                    walls[method.label, check].append(wall)
                    cpus[method.label, check].append(cpu)
        result[size] = {}
        for method in METHODS:
            on, off = (median(walls[method.label, check]) for check in (True, False))
            unchecked = median(cpus[method.label, False])
            cost = median(cpus[method.label, True]) / unchecked - 1
            share = median(checks) / unchecked
            result[size][method.label] = {"on": (frames - 1) / on, "off": (frames - 1) / off,
                                          "cost": cost, "share": share}
            print(f"  extract {size} {method.label}: {(frames - 1) / on:.1f} pairs/s checked, "
                  f"{(frames - 1) / off:.1f} unchecked, cost {100 * cost:+.1f}% CPU time; "
                  f"the check alone {100 * share:.1f}% of an unchecked extract's CPU time",
                  flush=True)
    return result


def broken_costs(pairs: int, work: Path) -> dict[str, dict[str, float]]:
    """method -> {"on", "off": seconds extract spends on the cut clip before failing it}."""
    whole = work / "whole.avi"
    cut_clip(CLIPS["320x240"], whole, pairs + 1)
    data = whole.read_bytes()
    broken = work / "broken.avi"
    broken.write_bytes(data[: len(data) * 6 // 10])
    result = {}
    for method in BROKEN_METHODS:
        result[method.label] = {}
        for check in (True, False):
            seconds, _, report = _extract_seconds(broken, work / "out", method, check)
            if report.failed[0].status != FAILED:
                raise SystemExit(f"{broken}: expected to fail")
            result[method.label]["on" if check else "off"] = seconds
        print(f"  broken clip, {method.label}: failed after {result[method.label]['on']:.2f} s "
              f"checked, {result[method.label]['off']:.2f} s unchecked", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=60, help="pairs of each clip extracted")
    parser.add_argument("--quick", action="store_true", help="1 round, 8 pairs (the plumbing)")
    args = parser.parse_args()
    rounds, pairs = (1, 8) if args.quick else (args.rounds, args.pairs)
    missing = [clip for clip in CLIPS.values() if not clip.exists()]
    if missing:
        raise SystemExit(f"shared data missing: {', '.join(map(str, missing))}")
    core = pin_to_one_core()
    cv2.setNumThreads(1)
    print(f"machine: {machine()}; pinned to CPU core {core}; {rounds} rounds, medians")
    print("(a) decoding per frame:")
    decode_costs(rounds)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"(b) extract, {pairs} pairs, check on vs off:")
        extract_costs(rounds, pairs, Path(tmp))
        print("(c) a broken clip (cut at 60% of its bytes):")
        broken_costs(pairs, Path(tmp))


if __name__ == "__main__":
    main()
