"""A progress bar counting videos, with frames per second alongside."""

from __future__ import annotations

import threading
import time


class ProgressBar:
    """tqdm bar over videos; ``update(videos, frames)`` may be called from any thread."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self._bar = None
        self._frames = 0
        self._started = time.perf_counter()
        self._lock = threading.Lock()
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="video", dynamic_ncols=True, smoothing=0.1)

    def update(self, videos: int, frames: int) -> None:
        with self._lock:
            self._frames += frames
            if self._bar is None:
                return
            if videos:
                self._bar.update(videos)
            elapsed = max(time.perf_counter() - self._started, 1e-9)
            self._bar.set_postfix_str(f"{self._frames / elapsed:.1f} frames/s", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.refresh()
            self._bar.close()
