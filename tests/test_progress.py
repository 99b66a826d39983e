"""The extraction progress bar: it counts flow pairs reported within videos, estimates the total
from the videos begun, gives a time left that holds on a homogeneous set, and prints its final
state once."""

from __future__ import annotations

import io
import queue
import random
import re
import time

import pytest

from flowkit.config import ExtractConfig
from flowkit.extract import shard as shard_module
from flowkit.extract.pool import _QueueListener
from flowkit.extract.progress import ProgressBar, ProgressCounts
from flowkit.extract.shard import extract_shard
from flowkit.store.manifest import ManifestEntry
from flowkit.video.decode import DecodeConfig
from flowkit.video.synth import moving_texture, write_video


def _lines(text: str) -> list[str]:
    """What a log shows: every carriage return and newline starts a line."""
    return [line for line in re.split(r"[\r\n]", text) if line.strip()]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_final_state_is_printed_once(capsys):
    """Updates far enough apart that tqdm prints each: the 3/3 line still appears once (it
    was printed by the last update, by close()'s refresh and by tqdm's close)."""
    bar = ProgressBar(videos=3)
    for _ in range(3):
        time.sleep(0.12)  # longer than tqdm's mininterval (0.1 s)
        bar.update(ProgressCounts(begun=1, planned=10))
        bar.update(ProgressCounts(videos=1, frames=11, units=10))
    bar.close()
    bar.close()  # a second close prints nothing
    lines = _lines(capsys.readouterr().err)
    assert sum("3/3 videos" in line for line in lines) == 1, lines
    assert lines[-1].startswith("100%") and "30/30 pairs" in lines[-1], lines
    assert "frames/s" in lines[-1] and "left" not in lines[-1]
    assert any("2/3 videos" in line for line in lines)  # earlier states still shown


def test_no_bar_without_work_or_when_disabled(capsys):
    """Nothing to do (a resumed run that is complete), or --quiet: no output at all."""
    for bar in (ProgressBar(videos=0), ProgressBar(videos=5, enabled=False)):
        bar.update(ProgressCounts())
        bar.close()
    assert capsys.readouterr().err == ""


def test_the_total_is_the_begun_videos_plan_plus_their_average_for_the_rest():
    bar = ProgressBar(videos=4, enabled=False)
    assert bar.estimated_total() is None and bar.seconds_left() is None
    bar.update(ProgressCounts(begun=1, planned=100))
    assert bar.estimated_total() == 400
    bar.update(ProgressCounts(begun=1, planned=50))
    assert bar.estimated_total() == 300  # 150 planned + 2 x 75
    # the first video fails after 10 pairs: its plan drops to what it did
    bar.update(ProgressCounts(videos=1, units=10, planned=10 - 100))
    assert bar.estimated_total() == 120  # 60 planned + 2 x 30
    bar.update(ProgressCounts(begun=2, planned=80))
    assert bar.estimated_total() == 140  # every video begun: the plan itself


def _simulated_run(seed: int) -> tuple[list[tuple[float, ProgressCounts]], float]:
    """A homogeneous set (8 videos of 900-1100 pairs) on 2 workers whose speed varies by
    +-20% from video to video, reporting every 5 pairs; (time, counts) events and the end."""
    rng = random.Random(seed)
    events = []
    free_at = [2.0, 2.5]  # workers start after a few seconds of start-up
    for _ in range(8):
        pairs, rate = rng.randint(900, 1100), 10 * rng.uniform(0.8, 1.2)
        worker = free_at.index(min(free_at))  # the next video goes to the first worker free
        start = free_at[worker]
        events.append((start, ProgressCounts(begun=1, planned=pairs)))
        for done in range(5, pairs + 5, 5):
            events.append((start + min(done, pairs) / rate,
                           ProgressCounts(units=min(done, pairs) - (done - 5), frames=5)))
        free_at[worker] = start + pairs / rate
        events.append((free_at[worker], ProgressCounts(videos=1)))
    return sorted(events, key=lambda event: event[0]), max(free_at)


@pytest.mark.parametrize("seed", range(5))
def test_the_estimated_end_is_within_20_percent_after_the_first_minute(seed):
    """From the first minute on, at every report, the end the bar predicts (elapsed + time
    left) is within 20% of the run's true length."""
    events, end = _simulated_run(seed)
    clock = FakeClock()
    bar = ProgressBar(videos=8, enabled=False, clock=clock)
    errors = []
    for at, counts in events:
        clock.now = at
        bar.update(counts)
        if 60 <= at < end:
            errors.append(abs(at + bar.seconds_left() - end) / end)
    assert len(errors) > 500
    assert max(errors) < 0.2, max(errors)


def test_the_bar_shows_pairs_of_total_time_left_and_videos():
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(videos=4, clock=clock, file=out)
    clock.now = 10.0
    bar.update(ProgressCounts(begun=2, planned=200))
    bar.update(ProgressCounts(units=50, frames=52))
    bar.close()
    [line] = _lines(out.getvalue())[-1:]
    assert re.search(r"50/400 pairs, 0:10 elapsed, 1:10 left, 5\.0 pairs/s, 0/4 videos", line), \
        line


def test_pairs_are_reported_while_a_video_is_extracted(tmp_path, monkeypatch):
    """A worker reports pairs as they are computed, not only at the end of each video: the
    count it begins with (the pre-decode check's) is exact, and the pairs add up to it."""
    video = tmp_path / "video.mkv"
    write_video(video, moving_texture(64, 48, 1.0, 0.0, 20), fps=25, codec="ffv1")
    monkeypatch.setattr(shard_module, "PROGRESS_INTERVAL_S", 0.0)
    reports: list[ProgressCounts] = []
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback", batch_size=2)
    entry = ManifestEntry(video_id=video.name, source=str(video), label=0, shard="shard-0.h5")
    [done] = extract_shard(tmp_path / "shard-0.h5", [entry], config, reports.append)
    begun = [r for r in reports if r.begun]
    assert [r.planned for r in begun] == [done.num_flows] == [19]
    pairs = [r.units for r in reports if r.units]
    assert sum(pairs) == done.num_flows and len(pairs) >= done.num_flows // 2
    assert sum(r.planned for r in reports) == done.num_flows  # no correction needed
    assert sum(r.frames for r in reports) == done.num_frames
    assert [r.videos for r in reports][-1] == 1 and sum(r.videos for r in reports) == 1


def test_a_video_that_fails_its_check_counts_as_begun_with_nothing_planned(tmp_path):
    reports: list[ProgressCounts] = []
    config = ExtractConfig(flow="farneback")
    missing = tmp_path / "missing.mp4"
    entry = ManifestEntry(video_id="missing", source=str(missing), label=0, shard="shard-0.h5")
    extract_shard(tmp_path / "shard-0.h5", [entry], config, reports.append)
    assert sum(r.begun for r in reports) == 1 and sum(r.planned for r in reports) == 0
    assert sum(r.videos for r in reports) == 1


def test_the_listener_passes_on_counts_still_queued_when_stopped():
    """Counts the workers queued just before the last shard finished reach the bar: stop()
    drains the queue instead of dropping what its thread had not read yet."""
    counts = ProgressCounts(videos=1, frames=5, units=4)
    updates: queue.Queue = queue.Queue()
    seen = []
    listener = _QueueListener(updates, seen.append)
    for _ in range(2000):
        updates.put(counts)
    listener.stop()
    assert len(seen) == 2000 and updates.empty() and seen[0] == counts
