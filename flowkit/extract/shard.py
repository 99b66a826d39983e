"""One shard, one video: decode -> JPEG -> flow in batches of pairs -> HDF5, in a worker.

A video that fails (bad file, decode error, backend error) is left out of its shard and
recorded as failed; the others go on. An error writing the output, or a lost flow server, is
not a video's fault: it stops the shard. Both runners (:mod:`flowkit.extract.pool`,
:mod:`flowkit.extract.cluster`) call :func:`extract_shard`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from flowkit.config import NO_FLOW, ExtractConfig
from flowkit.errors import DecodeError, ExtractionError, FlowkitError, OutputError
from flowkit.extract.flow_stream import open_flow_stream
from flowkit.extract.prefetch import prefetch
from flowkit.extract.progress import ProgressCounts, ProgressFn
from flowkit.flow import FlowBackend, get_backend
from flowkit.store.flowstats import FlowStats, flow_stats
from flowkit.store.manifest import FAILED, OK, ManifestEntry
from flowkit.store.writer import ShardWriter, VideoWriter
from flowkit.versions import library_versions
from flowkit.video.decode import DecodeConfig, VideoInfo, count_frames, iter_frames, probe

PROGRESS_INTERVAL_S = 0.5  # how often a worker reports what it did


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
    on_progress = on_progress or (lambda counts: None)
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
                                         on_progress)
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
            on_progress(ProgressCounts(videos=1))
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
                  on_progress: ProgressFn = lambda counts: None) -> DecodeError | None:
    """Stream one video into ``video``: every frame, and flow between frames ``step`` apart.

    With ``config.check_decode`` (and flow to compute, and ``on_decode_error`` "fail") the
    video is first decoded to its end without converting a frame (:func:`count_frames`), so
    that one that does not decode fully fails before any flow is spent on it; the count it
    gives is the video's planned work on the progress bar (else the header's estimate).

    Only ``batch_size`` frame pairs (and as many decoded frames ahead, decoded in a thread
    while flow runs) are held in memory at once (with a flow server: its in-flight bound).
    Returns the decode error that ended the video early when ``config.on_decode_error`` is
    "keep" (the frames before it, and the flows between them, are stored), else None. The float
    flow's clipping and length statistics (``flowkit.store.flowstats``, against the storage bound)
    go to ``video.flow_stats``.

    Raises:
        DecodeError: the video cannot be decoded, or fails part-way under "fail", or no frame
            decodes.
    """
    with _VideoProgress(on_progress, flows=backend is not None) as progress:
        info = probe(path)
        checked = backend is not None and config.check_decode \
            and config.on_decode_error == "fail"
        frames = count_frames(path, config.decode) if checked \
            else _estimated_frames(info, config.decode)
        progress.begin(_pairs(frames, config.flow_step) if backend is not None else frames)
        kept, (height, width) = _stream_video(path, config, backend, video, progress)
        video.finish({
            "source": str(path), "label": -1 if label is None else label,
            "height": height, "width": width,
            "fps": config.decode.fps or info.fps or 0.0, "source_fps": info.fps or 0.0,
            "source_width": info.width, "source_height": info.height,
            "rotation": info.rotation, "codec": info.codec,
            "header_frames": info.header_frames or 0,
        })
    return kept


def _stream_video(path: Path, config: ExtractConfig, backend: FlowBackend | None,
                  video: VideoWriter, progress: "_VideoProgress"
                  ) -> tuple[DecodeError | None, tuple[int, int]]:
    """Decode ``path`` into ``video``, its pairs through ``backend``; return the decode error
    kept under "keep" (else None) and the frames' (height, width)."""
    step, batch = config.flow_step, config.batch_size
    anchor: np.ndarray | None = None
    bound = config.storage.bound
    pairs = None
    if backend is not None:
        video.flow_stats = FlowStats(bound)

        def store(flow: np.ndarray) -> None:
            video.flow_stats += flow_stats(flow, bound)  # before quantisation clips it
            video.append_flow(flow)
            progress.flow_done()

        pairs = open_flow_stream(backend, store, batch)
    frame = None
    kept: DecodeError | None = None
    try:
        for index, frame in enumerate(prefetch(iter_frames(path, config.decode), depth=batch)):
            video.append_frame(frame)
            progress.frame_done()
            if pairs is not None and index % step == 0:
                if anchor is not None:
                    pairs.add(anchor, frame)
                anchor = frame
    except DecodeError as error:
        if config.on_decode_error != "keep" or frame is None:
            raise
        kept = error
    if pairs is not None:
        pairs.finish()
    if frame is None:
        raise DecodeError(f"{path}: no frames decoded")
    return kept, frame.shape[:2]


def _pairs(frames: int, step: int) -> int:
    """Flows of a video of ``frames`` frames: between consecutive frames ``step`` apart."""
    return max(math.ceil(frames / step) - 1, 0)


def _estimated_frames(info: VideoInfo, decode: DecodeConfig) -> int:
    """The frames a video will decode to, from its header (which may lie; only for progress)."""
    if decode.fps and info.duration:
        return round(info.duration * decode.fps)
    if info.header_frames:
        return info.header_frames
    return round(info.duration * info.fps) if info.duration and info.fps else 0


class _VideoProgress:
    """One video's progress reports: begun, with its planned units (flows, or frames when none
    are computed); frames and units done, at most every ``PROGRESS_INTERVAL_S``; and at its end
    (stored or failed) the rest, with the planned units corrected to those done."""

    def __init__(self, report: ProgressFn, flows: bool) -> None:
        self._report, self._flows = report, flows
        self._begun = False
        self._planned = self._frames = self._units = self._sent_frames = self._sent_units = 0
        self._sent_at = time.monotonic()

    def begin(self, planned: int) -> None:
        self._begun, self._planned = True, planned
        self._report(ProgressCounts(begun=1, planned=planned))

    def frame_done(self) -> None:
        self._frames += 1
        self._units += not self._flows
        self._maybe_send()

    def flow_done(self) -> None:
        self._units += 1
        self._maybe_send()

    def _maybe_send(self) -> None:
        if time.monotonic() - self._sent_at >= PROGRESS_INTERVAL_S:
            self._send()

    def _send(self, **end: int) -> None:
        self._report(ProgressCounts(frames=self._frames - self._sent_frames,
                                    units=self._units - self._sent_units, **end))
        self._sent_frames, self._sent_units = self._frames, self._units
        self._sent_at = time.monotonic()

    def __enter__(self) -> "_VideoProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self._send(begun=0 if self._begun else 1, planned=self._units - self._planned)


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
