"""How right the time left on `flowkit extract`'s progress bar is, on a homogeneous set.

Makes --videos synthetic videos alike (`flowkit synth`: textures sliding, --frames frames of
--size each), runs `flowkit extract` on them with --flow and --workers as a user would, reads the
bar from its stderr, and compares, at every bar line from --after seconds on, the end the bar
predicts (elapsed + time left) with the run's true length (the final line's elapsed). Prints
the largest and the median error, in percent of the run's length, and the time-left error at a
few points.

    python bench/progress_eta.py [--videos 8] [--frames 300] [--size 160x120] [--flow tvl1]
                                 [--workers 2] [--after 60]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine, median

FLOWKIT = [sys.executable, "-m", "flowkit.cli.main"]
CLOCK = r"(?:(\d+):)?(\d+):(\d\d)"
LINE = re.compile(rf"(\d+)/(\d+) pairs, {CLOCK} elapsed(?:, {CLOCK} left)?")


def _seconds(hours: str | None, minutes: str, seconds: str) -> int:
    return 3600 * int(hours or 0) + 60 * int(minutes) + int(seconds)


def bar_lines(stderr: str) -> list[tuple[int, int, int, int | None]]:
    """(pairs done, estimated total, elapsed s, left s or None) of each bar line."""
    found = []
    for line in re.split(r"[\r\n]", stderr):
        match = LINE.search(line)
        if match:
            done, total = int(match[1]), int(match[2])
            elapsed = _seconds(*match.group(3, 4, 5))
            left = _seconds(*match.group(6, 7, 8)) if match[7] is not None else None
            found.append((done, total, elapsed, left))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="160x120", help="WIDTHxHEIGHT of the videos")
    parser.add_argument("--flow", default="tvl1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--after", type=float, default=60.0,
                        help="compare from this many seconds into the run")
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        subprocess.run([*FLOWKIT, "synth", "--out", str(videos), "--num-videos",
                        str(args.videos), "--num-frames", str(args.frames), "--width",
                        str(width), "--height", str(height)], check=True,
                       stdout=subprocess.DEVNULL)
        command = [*FLOWKIT, "extract", str(videos / "labels.txt"), "--out",
                   str(Path(tmp) / "shards"), "--short-side", "0", "--flow", args.flow,
                   "--workers", str(args.workers)]
        run = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = bar_lines(run.stderr)
    if not lines:
        raise SystemExit(f"no progress bar lines in the output:\n{run.stderr}")
    end = lines[-1][2]
    timed = [(elapsed, left) for _, _, elapsed, left in lines
             if left is not None and elapsed >= args.after and elapsed < end]
    print(f"machine: {machine()}")
    print(f"flowkit extract, {args.videos} videos of {args.frames} frames at {args.size}, "
          f"--flow {args.flow} --workers {args.workers}: {lines[-1][0]} pairs in {end} s")
    if not timed:
        raise SystemExit(f"the run ended before {args.after} s: make it longer")
    errors = [abs(elapsed + left - end) / end for elapsed, left in timed]
    print(f"estimated end vs true length, from {args.after:g} s on ({len(timed)} bar lines): "
          f"max error {100 * max(errors):.1f}%, median {100 * median(errors):.1f}%")
    for fraction in (0.25, 0.5, 0.75):
        elapsed, left = min(timed, key=lambda item: abs(item[0] - fraction * end))
        print(f"  at {elapsed} s: {left} s left shown, {end - elapsed} s true")


if __name__ == "__main__":
    main()
