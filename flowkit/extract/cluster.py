"""Extraction on a dask.distributed cluster: one task per shard, the manifest kept by the client.

The parent process (the Dask client) plans as for a local run, submits every shard to the
scheduler and records each finished shard in the manifest as it completes. Fault isolation is
the same as locally (a bad video fails alone, inside :func:`flowkit.extract.shard.extract_shard`);
a worker that dies mid-task is Dask's to handle: the scheduler reruns its shard on another
worker. Each try writes under its own temporary name (``shard-N.h5.<tag>.tmp``) and renames
only a whole file, so neither a dead worker's half file nor a try still running on a worker the
scheduler gave up on can be taken for, or corrupt, the finished shard.

Workers write the shards themselves: every worker must see the output folder (and the videos)
at the same path as the client, on a shared file system. That is checked before any shard runs.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

from flowkit.config import NO_FLOW, ExtractConfig
from flowkit.errors import ConfigError, ExtractionError
from flowkit.extract.progress import ProgressCounts, ProgressFn
from flowkit.extract.shard import extract_shard
from flowkit.store.folder import remove_temporaries
from flowkit.store.manifest import ManifestEntry
from flowkit.store.writer import TMP_SUFFIX

CONNECT_TIMEOUT_S = 30


def run_shards_on_dask(address: str, work: dict[str, list[ManifestEntry]], out_dir: Path,
                       config: ExtractConfig, workers: int, threads: int, devices: list[str],
                       on_progress: ProgressFn) -> Iterator[list[ManifestEntry]]:
    """Yield the finished manifest entries of each shard as its task completes on the cluster
    at ``address``. The call shape of :func:`flowkit.extract.pool.run_shards`, less ``workers``,
    which the cluster decides; progress is counted per finished shard
    (:func:`_shard_counts`).

    Raises:
        ConfigError: ``distributed`` is not installed, several ``devices`` were given, or a
            worker cannot read and write ``out_dir``.
        ExtractionError: the scheduler cannot be reached, has no workers, or a shard killed
            more workers than the scheduler allows (``distributed.scheduler.allowed-failures``).
    """
    if not work:
        return
    if len(devices) > 1:
        raise ConfigError("--devices cannot be used with --dask: give each Dask worker its own "
                          "GPU (e.g. dask-cuda) and use --device cuda")
    try:
        from distributed import Client, KilledWorker, as_completed
    except ImportError:
        raise ConfigError("--dask needs the distributed package: pip install flowkit[dask]"
                          ) from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ExtractionError(f"cannot reach the Dask scheduler at {address} "
                              f"({' '.join(str(exc).split())})") from None
    with client:
        check_workers_see(client, out_dir)
        futures = [client.submit(_extract_shard_task, out_dir / shard, entries, config, threads,
                                 devices[0], key=f"flowkit-{shard}-{uuid.uuid4().hex}",
                                 pure=False)
                   for shard, entries in work.items()]
        shards = {future.key: shard for future, shard in zip(futures, work)}
        try:
            for future in as_completed(futures, loop=client.loop):
                entries = future.result()
                on_progress(_shard_counts(entries, config))
                yield entries
        except KilledWorker as exc:
            raise ExtractionError(
                f"{shards[exc.task]} killed {exc.allowed_failures + 1} Dask workers (out of "
                "memory, or a crash in a native library); finished shards are kept: rerun the "
                "same command to resume") from None
        finally:
            client.cancel(futures)
            remove_temporaries(out_dir)  # dead tries' half files; a live one's rename then fails


def _shard_counts(entries: Sequence[ManifestEntry], config: ExtractConfig) -> ProgressCounts:
    """A finished shard's videos, frames and units (flows, or frames without flow) at once."""
    frames = sum(entry.num_frames or 0 for entry in entries)
    units = frames if config.flow == NO_FLOW else sum(entry.num_flows or 0 for entry in entries)
    return ProgressCounts(videos=len(entries), frames=frames, units=units, begun=len(entries),
                          planned=units)


def _extract_shard_task(path: Path, entries: Sequence[ManifestEntry], config: ExtractConfig,
                        threads: int, device: str) -> list[ManifestEntry]:
    """One try of one shard on a worker, under a temporary name no other try uses."""
    return extract_shard(path, entries, config, None, threads, device,
                         tmp_tag=uuid.uuid4().hex[:12])


def check_workers_see(client: Any, out_dir: Path) -> None:
    """Fail unless every worker of ``client``'s cluster reads a file the client writes in
    ``out_dir`` (the same folder, not one of the same name) and can write there too."""
    token = uuid.uuid4().hex
    probe = out_dir / f".flowkit-dask-{token}{TMP_SUFFIX}"
    probe.write_text(token)
    try:
        answers = client.run(_probe_folder, str(probe), token, on_error="return")
    finally:
        probe.unlink(missing_ok=True)
    if not answers:
        raise ExtractionError(f"the Dask scheduler at {client.scheduler.address} has no workers")
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            answer = f"{type(answer).__name__}: {' '.join(str(answer).split())}"
        if answer is not None:
            raise ConfigError(f"Dask worker {worker} cannot use {out_dir} ({answer}); every "
                              "worker must see the output folder at the same path (a shared "
                              "file system)")


def _probe_folder(probe: str, token: str) -> str | None:
    """On a worker: why the client's probe file is not readable or the folder not writable,
    or None when both work."""
    path = Path(probe)
    try:
        if path.read_text() != token:
            return f"{path} holds something else"
        own = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
        own.write_text(token)
        own.unlink()
    except OSError as exc:
        return " ".join(str(exc).split())
    return None
