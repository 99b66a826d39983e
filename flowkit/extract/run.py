"""The extraction run: videos -> shards of RGB frames and flow, plus the manifest.

The parent process plans which shard each video goes to (:mod:`flowkit.extract.plan`; the plan
lives in the manifest), hands whole shards to a runner (local worker processes,
:mod:`flowkit.extract.pool`, or a Dask cluster, :mod:`flowkit.extract.cluster`), and records
each finished shard in the manifest. A worker streams a video frame by frame
(:mod:`flowkit.extract.shard`). Per-video failures are recorded, never raised; a killed run
resumes where the manifest says. An error writing the output (disk full, read-only, I/O error)
is not a video's fault: it stops the run as an OutputError, with the temporary files removed.
Workers die with the parent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

from flowkit.config import NO_FLOW, ExtractConfig, saved_output_settings, setting_differences
from flowkit.errors import ConfigError, FlowkitError
from flowkit.extract.inputs import VideoSource
from flowkit.lock import FolderLock
from flowkit.extract.plan import plan_new_videos, replan_damaged, replan_failed, shards_to_run
from flowkit.extract.pool import run_shards
from flowkit.extract.progress import ProgressBar
from flowkit.flow import FlowBackend, check_backend
from flowkit.store.folder import CONFIG_NAME, output_files, remove_temporaries
from flowkit.store.manifest import FAILED, MANIFEST_NAME, OK, Manifest, ManifestEntry
from flowkit.writing import writing

RECORD_INTERVAL_S = 1.0  # finished shards are recorded together at most this often


@dataclasses.dataclass(frozen=True)
class ExtractReport:
    """What a run did: counts over the whole folder, failures, and this run's throughput."""

    out_dir: Path
    total: int
    ok: int
    failed: list[ManifestEntry]
    warned: list[ManifestEntry]  # stored ok, but cut short by a decode error (kept)
    skipped: int           # videos already done before this run
    processed: int         # videos this run worked on
    frames: int            # frames this run decoded
    seconds: float
    repaired: list[str] = dataclasses.field(default_factory=list)  # ids re-extracted (--repair)

    @property
    def all_ok(self) -> bool:
        return not self.failed


def extract(sources: Sequence[VideoSource], out_dir: Path | str, config: ExtractConfig, *,
            workers: int | None = None, threads: int | None = None,
            videos_per_shard: int | None = None, overwrite: bool = False,
            retry_failed: bool = False, repair: bool = False, progress: bool = True,
            dask: str | None = None, flow_server: bool | None = None) -> ExtractReport:
    """Extract ``sources`` into shards in ``out_dir``, resuming any earlier run there.

    Args:
        workers: worker processes (default: CPU cores, or one per GPU when flow runs on GPUs);
            the arrays written do not depend on it.
        threads: OpenCV and PyTorch CPU threads in each worker (default: CPU cores / workers).
        videos_per_shard: videos per shard file for newly planned videos (default: automatic).
        overwrite: delete this folder's earlier flowkit output first.
        retry_failed: plan videos that failed before again (into new shards).
        repair: run :func:`flowkit.store.verify.verify` first and plan the videos it finds damaged
            again (into new shards; their old groups stay, superseded by the manifest).
        progress: show a progress bar.
        dask: run the shards on the dask.distributed scheduler at this address instead of local
            worker processes (``workers`` then has no effect); see :mod:`flowkit.extract.cluster`.
        flow_server: compute flow in one process per device, fed pairs across videos by the
            workers (:mod:`flowkit.extract.flow_server`); default: on when flow runs on GPUs. The
            arrays written do not depend on it.

    Raises:
        LockError: another run holds ``out_dir``.
        ConfigError: ``out_dir`` holds output made with other settings (and not ``overwrite``),
            or the flow backend cannot run as configured (device, weights).
        OutputError: ``out_dir`` cannot be written (disk full, read-only, permission, I/O
            error); shards finished before are kept and recorded, temporary files removed.
    """
    out_dir = Path(out_dir)
    devices = config.run_devices()
    if config.flow != NO_FLOW:
        check_backend(config.flow, config.flow_params, devices)
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    on_gpus = any(device != "cpu" for device in devices)
    served = (on_gpus if flow_server is None else flow_server) and config.flow != NO_FLOW \
        and dask is None
    workers = workers or (len(devices) if on_gpus and not served else cores)
    threads = threads or max(1, cores // workers)
    started = time.perf_counter()
    with FolderLock(out_dir), _removing_temporaries(out_dir):
        with writing(out_dir):
            if overwrite:
                _remove_outputs(out_dir)
            remove_temporaries(out_dir)
            _check_or_save_config(out_dir, config)
        with writing(out_dir / MANIFEST_NAME):
            manifest = Manifest.open(out_dir)
        with contextlib.closing(manifest):
            report = _plan_and_run(manifest, sources, out_dir, config, workers, threads,
                                   devices, videos_per_shard, retry_failed, repair, progress,
                                   dask, served)
    return dataclasses.replace(report, seconds=time.perf_counter() - started)


def _plan_and_run(manifest: Manifest, sources: Sequence[VideoSource], out_dir: Path,
                  config: ExtractConfig, workers: int, threads: int, devices: list[str],
                  videos_per_shard: int | None, retry_failed: bool, repair: bool,
                  progress: bool, dask: str | None, served: bool) -> ExtractReport:
    """Plan (in one manifest transaction), then run the shards, recording them as they end."""
    with writing(out_dir / MANIFEST_NAME), manifest.transaction():
        repaired = replan_damaged(out_dir, manifest, videos_per_shard, workers) if repair else []
        if retry_failed:
            replan_failed(manifest, videos_per_shard)
        plan_new_videos(manifest, sources, videos_per_shard)

    work = shards_to_run(manifest, out_dir)
    processed = sum(len(entries) for entries in work.values())
    bar = ProgressBar(videos=processed, unit="frame" if config.flow == NO_FLOW else "pair",
                      enabled=progress)
    frames = 0
    runner = run_shards
    if dask is not None:
        from flowkit.extract.cluster import run_shards_on_dask  # dask is optional
        runner = functools.partial(run_shards_on_dask, dask)
    servers = _flow_servers(config, devices, threads) if served and work else \
        contextlib.nullcontext()
    recorder = _Recorder(manifest, out_dir / MANIFEST_NAME)
    try:
        with servers as make_backend, recorder:
            if make_backend is not None:
                runner = functools.partial(run_shards, make_backend=make_backend)
            for entries in runner(work, out_dir, config, workers, threads, devices, bar.update):
                recorder.add(entries)
                frames += sum(entry.num_frames or 0 for entry in entries)
    finally:
        bar.close()
    total = len(manifest)
    return ExtractReport(
        out_dir=out_dir, total=total, ok=manifest.count(OK),
        failed=manifest.with_status(FAILED), warned=manifest.with_warning(),
        skipped=total - processed, processed=processed, frames=frames, seconds=0.0,
        repaired=repaired)


class _Recorder:
    """Finished shards into the manifest, one transaction for all that finished within
    ``RECORD_INTERVAL_S`` (the first at once): shards of a few small videos finish many times
    a second, and a transaction per shard would write more manifest pages than shard bytes.
    What is not recorded yet when the run stops (an error, Ctrl-C) is recorded on the way out;
    after a kill, a rerun writes those shards again."""

    def __init__(self, manifest: Manifest, path: Path) -> None:
        self._manifest, self._path = manifest, path
        self._waiting: list[ManifestEntry] = []
        self._recorded_at = -math.inf

    def add(self, entries: list[ManifestEntry]) -> None:
        self._waiting += entries
        if time.monotonic() - self._recorded_at >= RECORD_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        with writing(self._path):
            self._manifest.put_many(self._waiting)
        self._waiting, self._recorded_at = [], time.monotonic()

    def __enter__(self) -> "_Recorder":
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None:
            self.flush()
        else:  # keep what finished; the error on its way out says what went wrong
            with contextlib.suppress(FlowkitError, OSError):
                self.flush()


def _remove_outputs(out_dir: Path) -> None:
    for path in output_files(out_dir):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _removing_temporaries(out_dir: Path) -> Iterator[None]:
    """On any exception (output error, interruption, dead worker), remove the temporary files of
    workers stopped mid-shard: on a full disk they would keep it full."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            remove_temporaries(out_dir)
        raise


def _check_or_save_config(out_dir: Path, config: ExtractConfig) -> None:
    path = out_dir / CONFIG_NAME
    if path.exists():
        previous = saved_output_settings(path)
        if previous != config.output_settings():
            changed = setting_differences(previous, config.output_settings())
            raise ConfigError(f"{out_dir} holds output made with other settings ({changed}); "
                              "rerun with the same options to resume, or use --overwrite")
    config.save(path)


def _flow_servers(config: ExtractConfig, devices: list[str], threads: int
                  ) -> contextlib.AbstractContextManager[Callable[[str], FlowBackend]]:
    """One flow server per device, each holding the run's backend (with a worker's share of
    CPU threads: the workers run beside it)."""
    from flowkit.extract.flow_server import backend_factory, flow_servers

    return flow_servers(backend_factory(config.flow, config.flow_params), devices,
                        config.batch_size, threads=threads)

