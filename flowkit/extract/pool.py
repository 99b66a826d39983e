"""The local runner: shards written by joblib worker processes, which take turns on the devices.

Progress counts come back from the workers through a queue of a multiprocessing manager; each
worker dies with the run and leaves Ctrl-C to it (:mod:`flowkit.lifecycle`). The Dask
runner (:mod:`flowkit.extract.cluster`) does the same on a cluster.
"""

from __future__ import annotations

import contextlib
import os
import queue
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from flowkit.config import ExtractConfig
from flowkit.errors import ExtractionError
from flowkit.extract.progress import ProgressCounts, ProgressFn
from flowkit.extract.shard import extract_shard
from flowkit.flow.base import FlowBackend
from flowkit.lifecycle import die_with_parent, ignore_interrupts
from flowkit.store.manifest import ManifestEntry


def run_shards(work: dict[str, list[ManifestEntry]], out_dir: Path, config: ExtractConfig,
               workers: int, threads: int, devices: list[str], on_progress: ProgressFn,
               make_backend: Callable[[str], FlowBackend] | None = None
               ) -> Iterator[list[ManifestEntry]]:
    """Yield the finished manifest entries of each shard as shards complete.

    Workers take turns on ``devices``: a shard runs on a device no other running shard holds
    (with more workers than devices, each device is shared by as many workers as evenly).
    ``make_backend`` (picklable) gives a worker its backend for a device (see extract_shard).
    """
    if workers == 1 or len(work) <= 1:
        for shard, entries in work.items():
            yield extract_shard(out_dir / shard, entries, config, on_progress, threads,
                                devices[0], make_backend=make_backend)
        return
    from multiprocessing.managers import SyncManager

    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    n_jobs = min(workers, len(work))
    sync = SyncManager()
    sync.start(die_with_parent, (os.getpid(),))  # its server is a child that must die with us
    with sync:
        updates, free_devices = sync.Queue(), sync.Queue()
        for slot in range(n_jobs):
            free_devices.put(devices[slot % len(devices)])
        listener = _QueueListener(updates, on_progress)
        try:
            jobs = Parallel(n_jobs=n_jobs, return_as="generator_unordered", max_nbytes=None)
            yield from jobs(
                delayed(_extract_shard_on_free_device)(
                    free_devices, out_dir / shard, entries, config, _QueueProgress(updates),
                    threads, os.getpid(), make_backend)
                for shard, entries in work.items())
        except TerminatedWorkerError as exc:
            raise ExtractionError(
                f"a worker process died ({exc.__class__.__name__}: out of memory, or a crash in "
                "a native library); finished shards are kept: rerun the same command to resume"
            ) from None
        finally:
            listener.stop()


def _extract_shard_on_free_device(free_devices: Any, path: Path,
                                  entries: Sequence[ManifestEntry], config: ExtractConfig,
                                  on_progress: ProgressFn, threads: int, parent_pid: int,
                                  make_backend: Callable[[str], FlowBackend] | None = None
                                  ) -> list[ManifestEntry]:
    """:func:`extract_shard` in a worker process, on a device taken from the ``free_devices``
    queue, then returned. The worker ends itself if ``parent_pid`` (the run) dies, and leaves
    Ctrl-C to the run, which stops it (a worker interrupted inside Python's cleanup code would
    print "Exception ignored ..." junk under the run's one line)."""
    ignore_interrupts()
    die_with_parent(parent_pid)
    device = free_devices.get()
    try:
        return extract_shard(path, entries, config, on_progress, threads, device,
                             make_backend=make_backend)
    finally:
        free_devices.put(device)


class _QueueProgress:
    """A picklable progress callback that forwards counts to the parent through a queue."""

    def __init__(self, updates: Any) -> None:
        self._updates = updates

    def __call__(self, counts: ProgressCounts) -> None:
        self._updates.put(counts)


class _QueueListener:
    """Drains progress counts from workers in a thread of the parent."""

    def __init__(self, updates: Any, on_progress: ProgressFn) -> None:
        import threading

        self._updates, self._on_progress = updates, on_progress
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stopped.is_set():
            try:
                self._on_progress(self._updates.get(timeout=0.1))
            except queue.Empty:
                continue
            except (EOFError, OSError):  # the manager went away at shutdown
                return

    def stop(self) -> None:
        """Stop draining, then pass on the counts still queued (the last shard's, often)."""
        self._stopped.set()
        self._thread.join()
        with contextlib.suppress(EOFError, OSError):
            while True:
                try:
                    self._on_progress(self._updates.get_nowait())
                except queue.Empty:
                    return
