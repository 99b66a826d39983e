"""The extraction pipeline: videos -> shards of RGB frames and flow, plus the manifest.

The parent process plans which shard each video goes to (the plan lives in the manifest),
hands whole shards to joblib workers, and records each finished shard in the manifest. A
worker streams a video frame by frame: decode -> JPEG -> flow in batches of pairs -> HDF5.
Per-video failures are recorded, never raised; a killed run resumes where the manifest says.
An error writing the output (disk full, read-only, I/O error) is not a video's fault: it stops
the run as an OutputError, with the temporary files removed. Workers die with the parent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import queue
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from flowkit.config import CONFIG_NAME, NO_FLOW, ExtractConfig, saved_output_settings
from flowkit.errors import ConfigError, DecodeError, ExtractionError, FlowkitError, OutputError
from flowkit.flow import FlowBackend, check_backend, get_backend
from flowkit.store.flowstats import FlowStats, flow_stats
from flowkit.extract.flow_stream import open_flow_stream
from flowkit.extract.inputs import VideoSource
from flowkit.extract.lifecycle import die_with_parent, ignore_interrupts
from flowkit.extract.lock import FolderLock
from flowkit.store.manifest import FAILED, MANIFEST_NAME, OK, PENDING, Manifest, ManifestEntry
from flowkit.extract.prefetch import prefetch
from flowkit.extract.progress import ProgressBar
from flowkit.store.writer import TMP_SUFFIX, ShardWriter, VideoWriter
from flowkit.store.verify import DAMAGED, verify
from flowkit.versions import library_versions
from flowkit.video.decode import iter_frames, probe
from flowkit.writing import writing

SHARD_PATTERN = "shard-{:05d}.h5"
SHARD_NAME = re.compile(r"shard-(\d+)\.h5")
MAX_AUTO_VIDEOS_PER_SHARD = 100
AUTO_MIN_SHARDS = 16
PROGRESS_INTERVAL_S = 0.5  # how often a worker reports decoded frames

ProgressFn = Callable[[int, int], None]  # (videos finished, frames decoded) since last call


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


def auto_videos_per_shard(num_videos: int) -> int:
    """Enough shards to keep workers busy on small sets, at most 100 videos a shard."""
    return max(1, min(MAX_AUTO_VIDEOS_PER_SHARD, math.ceil(num_videos / AUTO_MIN_SHARDS)))


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
        manifest = _load_manifest(out_dir)
        repaired = _replan_damaged(out_dir, manifest, videos_per_shard) if repair else []
        if retry_failed:
            _replan_failed(manifest, videos_per_shard)
        _plan(manifest, sources, videos_per_shard)
        _write_manifest(manifest, out_dir)

        todo = [shard for shard in manifest.shards() if _needs_work(manifest, out_dir, shard)]
        work = {shard: [e for e in manifest if e.shard == shard] for shard in todo}
        processed = sum(len(entries) for entries in work.values())
        bar = ProgressBar(total=processed, enabled=progress)
        frames = 0
        run_shards = _run_shards
        if dask is not None:
            from flowkit.extract.cluster import run_shards_on_dask
            run_shards = functools.partial(run_shards_on_dask, dask)
        servers = _flow_servers(config, devices, threads) if served and work else \
            contextlib.nullcontext()
        try:
            with servers as make_backend:
                if make_backend is not None:
                    run_shards = functools.partial(_run_shards, make_backend=make_backend)
                for entries in run_shards(work, out_dir, config, workers, threads, devices,
                                          bar.update):
                    for entry in entries:
                        manifest.put(entry)
                        frames += entry.num_frames or 0
                    _write_manifest(manifest, out_dir)
        finally:
            bar.close()
    return ExtractReport(
        out_dir=out_dir, total=len(manifest), ok=len(manifest.with_status(OK)),
        failed=manifest.with_status(FAILED), warned=manifest.with_warning(),
        skipped=len(manifest) - processed, processed=processed, frames=frames,
        seconds=time.perf_counter() - started, repaired=repaired)


# -- planning ---------------------------------------------------------------------------------

def output_files(out_dir: Path) -> list[Path]:
    """What a flowkit run writes in ``out_dir`` (shards, manifest, config), present or not."""
    return [*out_dir.glob("shard-*.h5"), out_dir / MANIFEST_NAME, out_dir / CONFIG_NAME]


def _remove_outputs(out_dir: Path) -> None:
    for path in output_files(out_dir):
        path.unlink(missing_ok=True)


def remove_temporaries(out_dir: Path) -> None:
    """Leftovers of a killed run: never whole, never read, safe to drop while we hold the lock."""
    for path in out_dir.glob("*" + TMP_SUFFIX):
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


def _write_manifest(manifest: Manifest, out_dir: Path) -> None:
    path = out_dir / MANIFEST_NAME
    with writing(path):
        manifest.write(path)


def _check_or_save_config(out_dir: Path, config: ExtractConfig) -> None:
    path = out_dir / CONFIG_NAME
    if path.exists():
        previous = saved_output_settings(path)
        if previous != config.output_settings():
            changed = setting_differences(previous, config.output_settings())
            raise ConfigError(f"{out_dir} holds output made with other settings ({changed}); "
                              "rerun with the same options to resume, or use --overwrite")
    config.save(path)


def setting_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    """The settings that differ, as "key: old -> new" (nested keys dotted), comma-separated."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = setting_differences(a, b, f"{prefix}{key}.")
            changes.extend([inner] if inner else [])
        elif a != b:
            changes.append(f"{prefix}{key}: {a} -> {b}")
    return ", ".join(changes)


def _flow_servers(config: ExtractConfig, devices: list[str], threads: int
                  ) -> contextlib.AbstractContextManager[Callable[[str], FlowBackend]]:
    """One flow server per device, each holding the run's backend (with a worker's share of
    CPU threads: the workers run beside it)."""
    from flowkit.extract.flow_server import backend_factory, flow_servers

    return flow_servers(backend_factory(config.flow, config.flow_params), devices,
                        config.batch_size, threads=threads)


def _load_manifest(out_dir: Path) -> Manifest:
    path = out_dir / MANIFEST_NAME
    return Manifest.read(path) if path.exists() else Manifest()


def _next_shard_number(manifest: Manifest) -> int:
    numbers = [int(match.group(1)) for name in manifest.shards()
               if (match := SHARD_NAME.fullmatch(name))]
    return max(numbers, default=-1) + 1


def _plan(manifest: Manifest, sources: Sequence[VideoSource], videos_per_shard: int | None) -> None:
    """Put videos not yet in the manifest into new shards, in input order."""
    new = [ManifestEntry(source.video_id, str(source.path), source.label, shard="")
           for source in sources if source.video_id not in manifest]
    assign_new_shards(manifest, new, videos_per_shard)


def _replan_failed(manifest: Manifest, videos_per_shard: int | None) -> None:
    """Put failed videos into new shards, as pending, so that they are tried again."""
    assign_new_shards(manifest, manifest.with_status(FAILED), videos_per_shard)


def _replan_damaged(out_dir: Path, manifest: Manifest, videos_per_shard: int | None
                    ) -> list[str]:
    """Put the videos verify finds damaged into new shards, as pending; return their ids."""
    if not (out_dir / MANIFEST_NAME).exists():
        return []
    damaged = list(dict.fromkeys(problem.video_id for problem in verify(out_dir)
                                 if problem.kind == DAMAGED and problem.video_id in manifest))
    assign_new_shards(manifest, [manifest[video_id] for video_id in damaged], videos_per_shard)
    return damaged


def assign_new_shards(manifest: Manifest, entries: list[ManifestEntry],
                      videos_per_shard: int | None) -> None:
    """Add ``entries`` as pending, ``videos_per_shard`` to a shard, after the existing shards."""
    per_shard = videos_per_shard or auto_videos_per_shard(len(entries))
    first = _next_shard_number(manifest)
    for position, entry in enumerate(entries):
        manifest.put(dataclasses.replace(
            entry, shard=SHARD_PATTERN.format(first + position // per_shard), status=PENDING,
            num_frames=None, num_flows=None, error=None, warning=None, flow_stats=None))


def _needs_work(manifest: Manifest, out_dir: Path, shard: str) -> bool:
    entries = [entry for entry in manifest if entry.shard == shard]
    return any(e.status == PENDING for e in entries) or not (out_dir / shard).exists()


# -- running ----------------------------------------------------------------------------------

def _run_shards(work: dict[str, list[ManifestEntry]], out_dir: Path, config: ExtractConfig,
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

    def __call__(self, videos: int, frames: int) -> None:
        self._updates.put((videos, frames))


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
                self._on_progress(*self._updates.get(timeout=0.1))
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
                    self._on_progress(*self._updates.get_nowait())
                except queue.Empty:
                    return


# -- one shard, one video -------------------------------------------------------------------------

def extract_shard(path: Path, entries: Sequence[ManifestEntry], config: ExtractConfig,
                  on_progress: ProgressFn | None = None, threads: int | None = None,
                  device: str | None = None, tmp_tag: str = "",
                  make_backend: Callable[[str], FlowBackend] | None = None
                  ) -> list[ManifestEntry]:
    """Write one shard with the videos of ``entries``; return their updated entries.

    Flow runs on ``device`` (default: ``config.device``). ``tmp_tag`` names the temporary file
    uniquely (see :class:`ShardWriter`). A video that fails (bad file, decode
    error, backend error) is left out of the shard and returned as failed with its error; the
    others are unaffected. Under ``config.on_decode_error == "keep"`` a decode error after at
    least one frame keeps the frames before it: the video is ok, with the error as its warning. An
    error writing the shard stops it: OutputError. ``make_backend(device)`` gives the
    backend instead of building it here (a flow server's client); a lost flow server stops the
    shard: FlowServerError.
    """
    on_progress = on_progress or (lambda videos, frames: None)
    done = []
    with _flow_backend(config, device or config.device, make_backend) as backend, \
            _library_threads(threads), \
            ShardWriter(path, config.storage, shard_attributes(config), tmp_tag) as shard:
        for entry in entries:
            flow_attrs = {"bound": config.storage.bound, "step": config.flow_step,
                          "backend": config.flow}
            try:
                with shard.video(entry.video_id, flow_attrs) as video:
                    kept = extract_video(Path(entry.source), entry.label, config, backend, video,
                                         lambda frames: on_progress(0, frames))
                done.append(dataclasses.replace(
                    entry, status=OK, num_frames=video.num_frames, num_flows=video.num_flows,
                    error=None, warning=_error_text(kept, entry.source) if kept else None,
                    flow_stats=video.flow_stats.to_json() if video.flow_stats else None))
            except (OutputError, ExtractionError):
                raise  # the output's (or a lost flow server's) fault, not the video's: stop
            except Exception as exc:  # noqa: BLE001  one bad video must never stop a run
                done.append(dataclasses.replace(entry, status=FAILED, num_frames=None,
                                                num_flows=None, warning=None, flow_stats=None,
                                                error=_error_text(exc, entry.source)))
            on_progress(1, 0)
    return [dataclasses.replace(e, shard=path.name) for e in done]


@contextlib.contextmanager
def _flow_backend(config: ExtractConfig, device: str,
                  make_backend: Callable[[str], FlowBackend] | None
                  ) -> Iterator[FlowBackend | None]:
    """The shard's backend: none, ``make_backend``'s (closed after), or built here."""
    if config.flow == NO_FLOW:
        yield None
    elif make_backend is None:
        yield get_backend(config.flow, config.flow_params, device=device)
    else:
        backend = make_backend(device)
        try:
            yield backend
        finally:
            close = getattr(backend, "close", None)
            if close is not None:
                close()


def _error_text(exc: Exception, source: str) -> str:
    """One line naming the file and the cause."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, FlowkitError):
        text = f"{type(exc).__name__}: {text}"
    return text if source in text else f"{source}: {text}"


@contextlib.contextmanager
def _library_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` OpenCV (and, when loaded, PyTorch) CPU threads inside the block,
    restoring the caller's settings after."""
    if threads is None:
        yield
        return
    import cv2

    torch = sys.modules.get("torch")
    previous = cv2.getNumThreads(), torch.get_num_threads() if torch else None
    cv2.setNumThreads(threads)
    if torch:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        cv2.setNumThreads(previous[0])
        if torch:
            torch.set_num_threads(previous[1])


def extract_video(path: Path, label: int | None, config: ExtractConfig,
                  backend: FlowBackend | None, video: VideoWriter,
                  on_frames: Callable[[int], None] = lambda n: None) -> DecodeError | None:
    """Stream one video into ``video``: every frame, and flow between frames ``step`` apart.

    Only ``batch_size`` frame pairs (and as many decoded frames ahead, decoded in a thread
    while flow runs) are held in memory at once (with a flow server: its in-flight bound).
    Returns the decode error that ended the video early when ``config.on_decode_error`` is
    "keep" (the frames before it, and the flows between them, are stored), else None. The float
    flow's clipping and length statistics (``flowkit.store.flowstats``, against the storage bound) go
    to ``video.flow_stats``.

    Raises:
        DecodeError: the video cannot be decoded, or fails part-way under "fail", or no frame
            decodes.
    """
    info = probe(path)
    step, batch = config.flow_step, config.batch_size
    anchor: np.ndarray | None = None
    bound = config.storage.bound
    pairs = None
    if backend is not None:
        video.flow_stats = FlowStats(bound)

        def store(flow: np.ndarray) -> None:
            video.flow_stats += flow_stats(flow, bound)  # before quantisation clips it
            video.append_flow(flow)

        pairs = open_flow_stream(backend, store, batch)
    frame = None
    kept: DecodeError | None = None
    reported, reported_at = 0, time.monotonic()
    try:
        for index, frame in enumerate(prefetch(iter_frames(path, config.decode), depth=batch)):
            video.append_frame(frame)
            if pairs is not None and index % step == 0:
                if anchor is not None:
                    pairs.add(anchor, frame)
                anchor = frame
            if time.monotonic() - reported_at >= PROGRESS_INTERVAL_S:
                on_frames(index + 1 - reported)
                reported, reported_at = index + 1, time.monotonic()
    except DecodeError as error:
        if config.on_decode_error != "keep" or frame is None:
            raise
        kept = error
    if pairs is not None:
        pairs.finish()
    on_frames(video.num_frames - reported)
    if frame is None:
        raise DecodeError(f"{path}: no frames decoded")
    height, width = frame.shape[:2]
    video.finish({
        "source": str(path), "label": -1 if label is None else label,
        "height": height, "width": width,
        "fps": config.decode.fps or info.fps or 0.0, "source_fps": info.fps or 0.0,
        "source_width": info.width, "source_height": info.height,
        "rotation": info.rotation, "codec": info.codec,
        "header_frames": info.header_frames or 0,
    })
    return kept


def shard_attributes(config: ExtractConfig) -> dict[str, Any]:
    """Root attributes of every shard: all parameters, flattened, plus versions and the config."""
    return settings_attributes(config.to_dict())


def settings_attributes(settings: dict[str, Any]) -> dict[str, Any]:
    """Shard root attributes from saved settings (ExtractConfig.to_dict(), or an import's)."""
    decode, storage = settings["decode"], settings["storage"]
    return {
        "flow_backend": settings["flow"],
        "flow_params": settings.get("flow_params") or {},
        "flow_step": settings["flow_step"],
        "flow_dtype": storage["flow_dtype"],
        "bound": storage["bound"],
        "rgb_format": storage["rgb"],
        "jpeg_quality": storage["jpeg_quality"],
        "compression": storage["compression"],
        "short_side": decode.get("short_side") or 0,
        "size": list(decode["size"]) if decode.get("size") else [],
        "fps": decode.get("fps") or 0.0,
        "versions": library_versions(),
        "config": settings,
    }
