"""Shared pieces of the benchmarks: machine description, synthetic inputs, timing."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Callable

SHARED_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


def machine() -> str:
    """CPU model, core count, memory and library versions, for the record."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import cv2
    import h5py

    return (f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB; Python "
            f"{platform.python_version()}, OpenCV {cv2.__version__}, h5py {h5py.__version__}")


def timed(function: Callable[[], object]) -> float:
    """Seconds ``function()`` takes."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def timed_flows(path: Path, pairs: int, decode, backend_name: str) -> tuple[object, float]:
    """The flows of the first ``pairs`` frame pairs of video ``path`` (decoded with ``decode``,
    a DecodeConfig) by the flow backend ``backend_name``, and its milliseconds per pair: the
    figure a per-flow cost is set against."""
    import numpy as np

    from flowkit.flow import get_backend
    from flowkit.video.decode import iter_frames

    frames = np.stack([f for _, f in zip(range(pairs + 1), iter_frames(path, decode))])
    backend = get_backend(backend_name)
    start = time.perf_counter()
    flows = backend(frames[:-1], frames[1:])
    return flows, (time.perf_counter() - start) / pairs * 1e3


def require_all_ok(report) -> None:
    """Stop the benchmark if any video failed: its figures would measure the wrong thing."""
    if report.failed:
        raise SystemExit("benchmark aborted, videos failed: "
                         + "; ".join(f"{e.video_id}: {e.error}" for e in report.failed))
