"""The extraction progress bar: it counts flow pairs (frames when no flow is computed), the work
that takes the time, so that it moves within a long video, with the videos alongside and a
time left that holds on a set of similar videos.

Workers report :class:`ProgressCounts`. The total is not known up front (counting every video's
frames first would cost a decoding pass over the whole dataset before the first flow): each
video's count is reported when it begins (exact after the pre-decode check, else the header's
estimate), and the videos not begun yet are assumed to average the same.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
from typing import Callable, TextIO

RATE_WINDOW_S = 60.0  # the time left follows the rate over this last stretch of the run


@dataclasses.dataclass(frozen=True)
class ProgressCounts:
    """What a worker did since its previous report.

    Attributes:
        videos: videos finished (stored or failed).
        frames: frames decoded and stored.
        units: units of work done: flows computed when the run computes flow, else frames.
        begun: videos begun.
        planned: change in the units the begun videos will take: a video's count when it
            begins, and at its end the difference between what it did and that count (a failed
            video drops what it did not do).
    """

    videos: int = 0
    frames: int = 0
    units: int = 0
    begun: int = 0
    planned: int = 0


ProgressFn = Callable[[ProgressCounts], None]


def _clock_text(seconds: float) -> str:
    """h:mm:ss or m:ss."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """A tqdm bar over ``unit``s (flow pairs, or frames) for ``videos`` videos;
    :meth:`update` may be called from any thread.

    Time left is (estimated total - done) / the rate over the last ``RATE_WINDOW_S`` (since the
    start before that): long enough that workers' bursts of reports average out, short enough
    to follow a machine whose other jobs come and go. The final state is printed
    once, by :meth:`close`: the update that completes the run does not print it (tqdm would,
    and then close() again), so that a log, where every carriage return makes a line, ends with
    one 100% line.
    """

    def __init__(self, videos: int, unit: str = "pair", enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic, file: TextIO | None = None) -> None:
        self._videos, self._unit, self._clock = videos, unit, clock
        self._started = clock()
        self._lock = threading.Lock()
        self._done = self._frames = self._units = self._begun = self._planned = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(
            self._started, 0)])  # (time, units done), at most one a second, over the window
        self._bar = None
        if enabled and videos > 0:  # nothing to do (all done before): no bar
            from tqdm import tqdm

            self._bar = tqdm(total=None, dynamic_ncols=True, file=file,
                             bar_format="{n_fmt} " + unit + "s{postfix}")
            self._bar.set_postfix_str(self._status(), refresh=True)

    def update(self, counts: ProgressCounts) -> None:
        with self._lock:
            self._done += counts.videos
            self._frames += counts.frames
            self._units += counts.units
            self._begun += counts.begun
            self._planned += counts.planned
            self._sample()
            if self._bar is None:
                return
            total = self.estimated_total()
            if total is not None and self._bar.total is None:
                self._bar.bar_format = ("{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                        + self._unit + "s{postfix}")
            self._bar.total = total
            self._bar.set_postfix_str(self._status(), refresh=False)
            if self._done >= self._videos:
                self._bar.n = self._units  # the end: close() prints the final line
            else:
                self._bar.update(self._units - self._bar.n)

    def estimated_total(self) -> int | None:
        """Units the whole run will take: those planned by the videos begun, plus their
        average for each video not begun; None before any video has begun."""
        if self._begun == 0:
            return None
        if self._begun >= self._videos:
            return max(self._planned, self._units)
        average = self._planned / self._begun
        return max(math.ceil(self._planned + average * (self._videos - self._begun)),
                   self._units)

    def _sample(self) -> None:
        now = self._clock()
        if now - self._samples[-1][0] >= 1.0:
            self._samples.append((now, self._units))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()  # keep one sample at least a window old

    def seconds_left(self) -> float | None:
        """The estimated time to the end at the recent rate; None while unknown."""
        total = self.estimated_total()
        since, units_then = self._samples[0]
        span, done = self._clock() - since, self._units - units_then
        if total is None or done <= 0 or span <= 0:
            return None
        return (total - self._units) * span / done

    def _status(self) -> str:
        elapsed = max(self._clock() - self._started, 1e-9)
        left = self.seconds_left()
        parts = [f"{_clock_text(elapsed)} elapsed"]
        if self._done < self._videos:
            parts.append(f"{_clock_text(left)} left" if left is not None else "? left")
        parts += [f"{self._units / elapsed:.1f} {self._unit}s/s",
                  f"{self._done}/{self._videos} videos", f"{self._frames / elapsed:.1f} frames/s"]
        return ", ".join(parts)

    def close(self) -> None:
        """Print the final line (with tqdm's leave=True) and end the bar; once."""
        with self._lock:
            if self._bar is not None:
                if self._bar.total is None or self._done >= self._videos:
                    self._bar.total = self._bar.n = self._units  # what was done, exactly
                    if self._bar.total == 0:
                        self._bar.bar_format = "{n_fmt} " + self._unit + "s{postfix}"
                self._bar.set_postfix_str(self._status(), refresh=False)
                self._bar.close()
                self._bar = None
