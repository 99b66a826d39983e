"""What refusing non-finite flow costs: the np.isfinite check of every flow before it is stored
(:meth:`flowkit.store.writer.VideoWriter.append_flow`), against computing the flow itself
(Farneback and TV-L1, CPU) on the UCF101 clip in ../shared/data at its native 320x240.

    python bench/finite_check.py [--pairs 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine, median
from compression import DATA

from flowkit.flow import get_backend
from flowkit.video.decode import DecodeConfig, iter_frames


def per_flow(pairs: int) -> None:
    frames = np.stack([f for _, f in zip(range(pairs + 1),
                                         iter_frames(DATA / "v_ApplyEyeMakeup_g01_c01.avi",
                                                     DecodeConfig(short_side=None)))])
    for name in ("farneback", "tvl1"):
        backend = get_backend(name)
        start = time.perf_counter()
        flows = backend(frames[:-1], frames[1:])
        flow_ms = (time.perf_counter() - start) / pairs * 1e3
        times = []
        for _ in range(51):
            start = time.perf_counter()
            for flow in flows:
                np.isfinite(flow).all()
            times.append((time.perf_counter() - start) / pairs * 1e3)
        check_ms = median(times)
        print(f"{name}: {frames.shape[2]}x{frames.shape[1]}, flow {flow_ms:.2f} ms/pair, "
              f"finite check {check_ms:.4f} ms/pair ({check_ms / flow_ms:.3%} of the flow)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()
    print(machine())
    per_flow(args.pairs)


if __name__ == "__main__":
    main()
