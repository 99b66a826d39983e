"""What refusing non-finite flow costs: the np.isfinite check of every flow before it is stored
(:meth:`flowkit.store.writer.VideoWriter.append_flow`), against computing the flow itself
(Farneback and TV-L1, CPU) on the UCF101 clip in ../shared/data at its native 320x240.

    python bench/finite_check.py [--pairs 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine, median, timed_flows
from compression import DATA

from flowkit.video.decode import DecodeConfig


def per_flow(pairs: int) -> None:
    for name in ("farneback", "tvl1"):
        flows, flow_ms = timed_flows(DATA / "v_ApplyEyeMakeup_g01_c01.avi", pairs,
                                     DecodeConfig(short_side=None), name)
        times = []
        for _ in range(51):
            start = time.perf_counter()
            for flow in flows:
                np.isfinite(flow).all()
            times.append((time.perf_counter() - start) / pairs * 1e3)
        check_ms = median(times)
        print(f"{name}: {flows.shape[2]}x{flows.shape[1]}, flow {flow_ms:.2f} ms/pair, "
              f"finite check {check_ms:.4f} ms/pair ({check_ms / flow_ms:.3%} of the flow)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()
    print(machine())
    per_flow(args.pairs)


if __name__ == "__main__":
    main()
