"""The extraction progress bar: one final line, and every count from the workers shown."""

from __future__ import annotations

import queue
import re
import time

from flowkit.extract.pool import _QueueListener
from flowkit.extract.progress import ProgressBar


def _lines(text: str) -> list[str]:
    """What a log shows: every carriage return and newline starts a line."""
    return [line for line in re.split(r"[\r\n]", text) if line.strip()]


def test_the_final_state_is_printed_once(capsys):
    """Updates far enough apart that tqdm prints each: the 3/3 line still appears once (it
    was printed by the last update, by close()'s refresh and by tqdm's close)."""
    bar = ProgressBar(total=3)
    for _ in range(3):
        time.sleep(0.12)  # longer than tqdm's mininterval (0.1 s)
        bar.update(1, 10)
    bar.close()
    bar.close()  # a second close prints nothing
    lines = _lines(capsys.readouterr().err)
    assert sum("3/3" in line for line in lines) == 1, lines
    assert lines[-1].startswith("100%") and "frames/s" in lines[-1]
    assert any("2/3" in line for line in lines)  # earlier states still shown


def test_no_bar_without_work_or_when_disabled(capsys):
    """Nothing to do (a resumed run that is complete), or --quiet: no output at all."""
    for bar in (ProgressBar(total=0), ProgressBar(total=5, enabled=False)):
        bar.update(0, 0)
        bar.close()
    assert capsys.readouterr().err == ""


def test_the_listener_passes_on_counts_still_queued_when_stopped():
    """Counts the workers queued just before the last shard finished reach the bar: stop()
    drains the queue instead of dropping what its thread had not read yet."""
    updates: queue.Queue = queue.Queue()
    seen = []
    listener = _QueueListener(updates, lambda videos, frames: seen.append((videos, frames)))
    for _ in range(2000):
        updates.put((1, 5))
    listener.stop()
    assert len(seen) == 2000 and updates.empty()
