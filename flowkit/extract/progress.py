"""A progress bar counting videos, with frames per second alongside."""

from __future__ import annotations

import threading
import time


class ProgressBar:
    """tqdm bar over videos; ``update(videos, frames)`` may be called from any thread.

    The final state is printed once, by :meth:`close`: the update that completes the bar does
    not print it (tqdm would, and then close() again), so that a log, where every carriage
    return makes a line, ends with one 100% line.
    """

    def __init__(self, total: int, enabled: bool = True) -> None:
        self._bar = None
        self._frames = 0
        self._started = time.perf_counter()
        self._lock = threading.Lock()
        if enabled and total > 0:  # nothing to do (all done before): no bar
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="video", dynamic_ncols=True, smoothing=0.1)

    def update(self, videos: int, frames: int) -> None:
        with self._lock:
            self._frames += frames
            if self._bar is None:
                return
            elapsed = max(time.perf_counter() - self._started, 1e-9)
            self._bar.set_postfix_str(f"{self._frames / elapsed:.1f} frames/s", refresh=False)
            if videos and self._bar.n + videos >= (self._bar.total or 0):
                self._bar.n += videos  # the last videos: close() prints the final line
            elif videos:
                self._bar.update(videos)

    def close(self) -> None:
        """Print the final line (with tqdm's leave=True) and end the bar; once."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
