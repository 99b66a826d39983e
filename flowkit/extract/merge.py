"""Joining partition folders (``flowkit extract --num-partitions P --partition I``) into one.

Shard files are hard-linked into the merged folder when it is on the same file system, else
copied byte for byte (or moved, with ``move``); h5py never rewrites them, so the merged folder
holds exactly the bytes each partition wrote. Shards are renumbered (every partition has its own
``shard-00000.h5``) and the manifest entries point at the new names.

A crash mid-merge leaves the merged folder unusable but detectably so, and resumable: the
manifest is written last, atomically, so until the merge ends there is no ``manifest.sqlite``
(``flowkit info``, ``verify`` and ``open_shards`` refuse the folder: "no manifest here").
Rerunning the same merge completes it: the plan comes from the partitions' manifests, which a
merge never changes, and a shard already under its planned name in the merged folder is whole
(it got there by a link or a rename, never by a write in place), so it is kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
from pathlib import Path
from typing import Sequence

from flowkit.config import saved_output_settings, setting_differences
from flowkit.errors import ConfigError
from flowkit.lock import FolderLock
from flowkit.store.folder import CONFIG_NAME, SHARD_PATTERN, output_files, remove_temporaries
from flowkit.store.manifest import (LEGACY_MANIFEST_NAME, MANIFEST_NAME, OK, PENDING, Manifest,
                                    ManifestEntry)
from flowkit.store.writer import TMP_SUFFIX, fsync_path

LINKED, COPIED, MOVED, PRESENT = "linked", "copied", "moved", "present"
# Why os.link may fail where a copy works: another file system, or one without hard links.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


@dataclasses.dataclass(frozen=True)
class MergeReport:
    """What a merge made: video counts and how each shard file got into the folder."""

    out_dir: Path
    videos: int
    ok: int
    failed: int
    shards: dict[str, int]  # LINKED / COPIED / MOVED / PRESENT (kept from an interrupted merge)


@dataclasses.dataclass(frozen=True)
class _Transfer:
    source: Path
    target: Path
    needed: bool  # an ok video is stored in it (else only failed videos were planned there)


def merge(out_dir: Path | str, parts: Sequence[Path | str], move: bool = False) -> MergeReport:
    """Merge the finished partition folders ``parts`` into the new folder ``out_dir``.

    Args:
        move: move the shard files out of the partitions instead of linking or copying them
            (the partitions are unusable afterwards).

    Raises:
        ConfigError: no parts; a part is not an extraction folder, is unfinished (pending
            videos or a missing shard), or was made with other output settings than the first;
            two parts hold the same video; ``out_dir`` holds other flowkit output.
        ShardError: a part's manifest is missing or unreadable.
        LockError: a run is writing into ``out_dir`` or one of the parts.
    """
    out_dir, parts = Path(out_dir), [Path(part) for part in parts]
    if not parts:
        raise ConfigError("no partition folders to merge")
    resolved = [part.resolve() for part in parts]
    if out_dir.resolve() in resolved:
        raise ConfigError(f"{out_dir}: the merged folder cannot be one of the partitions")
    if len(set(resolved)) != len(resolved):
        twice = next(part for part, path in zip(parts, resolved) if resolved.count(path) > 1)
        raise ConfigError(f"{twice}: partition given twice")
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as locks:
        for folder in (out_dir, *parts):
            locks.enter_context(FolderLock(folder))
        manifests = [_finished_manifest(part) for part in parts]
        _check_same_settings(parts)
        _check_disjoint(parts, manifests)
        merged, transfers = _plan(parts, manifests, out_dir)
        _check_out_dir(out_dir, parts[0], transfers)
        remove_temporaries(out_dir)
        _check_sources(transfers)
        if not (out_dir / CONFIG_NAME).exists():
            _copy_whole(parts[0] / CONFIG_NAME, out_dir / CONFIG_NAME)
        counts = {LINKED: 0, COPIED: 0, MOVED: 0, PRESENT: 0}
        for transfer in transfers:
            if transfer.source.exists() or transfer.target.exists():
                counts[_place(transfer.source, transfer.target, move)] += 1
        fsync_path(out_dir)  # the links and renames are on disk before the manifest names them
        merged.write(out_dir / MANIFEST_NAME)
    return MergeReport(out_dir=out_dir, videos=len(merged), ok=len(merged.with_status(OK)),
                       failed=len(merged) - len(merged.with_status(OK)), shards=counts)


def _finished_manifest(part: Path) -> Manifest:
    if not (part / CONFIG_NAME).exists():
        raise ConfigError(f"{part}: no {CONFIG_NAME}; not a flowkit extract output folder")
    manifest = Manifest.read(part / MANIFEST_NAME)
    pending = manifest.with_status(PENDING)
    if pending:
        raise ConfigError(f"{part}: partition unfinished ({len(pending)} videos pending, e.g. "
                          f"{pending[0].video_id}); rerun its extraction to finish it first")
    return manifest


def _check_same_settings(parts: list[Path]) -> None:
    first = saved_output_settings(parts[0] / CONFIG_NAME)
    for part in parts[1:]:
        settings = saved_output_settings(part / CONFIG_NAME)
        if settings != first:
            raise ConfigError(f"{part}: made with other output settings than {parts[0]} "
                              f"({setting_differences(first, settings)}); partitions of one "
                              "dataset must share them")


def _check_disjoint(parts: list[Path], manifests: list[Manifest]) -> None:
    owner: dict[str, Path] = {}
    for part, manifest in zip(parts, manifests):
        for entry in manifest:
            other = owner.setdefault(entry.video_id, part)
            if other != part:
                raise ConfigError(f"{part}: video {entry.video_id!r} is also in {other}; "
                                  "partitions to merge must not overlap")


def _plan(parts: list[Path], manifests: list[Manifest], out_dir: Path
          ) -> tuple[Manifest, list[_Transfer]]:
    """The merged manifest (shards renumbered in part order, then each part's shard order)
    and the shard files to bring over."""
    merged, transfers = Manifest(), []
    for part, manifest in zip(parts, manifests):
        by_shard: dict[str, list[ManifestEntry]] = {}
        for entry in manifest:  # one pass over each part: a merge stays linear in videos
            by_shard.setdefault(entry.shard, []).append(entry)
        for shard, entries in by_shard.items():
            name = SHARD_PATTERN.format(len(transfers))
            transfers.append(_Transfer(part / shard, out_dir / name,
                                       needed=any(e.status == OK for e in entries)))
            merged.put_many(dataclasses.replace(entry, shard=name) for entry in entries)
    return merged, transfers


def _check_out_dir(out_dir: Path, first: Path, transfers: list[_Transfer]) -> None:
    """Refuse a folder holding output, unless it is this merge, interrupted."""
    for name in (MANIFEST_NAME, LEGACY_MANIFEST_NAME):
        if (out_dir / name).exists():
            raise ConfigError(f"{out_dir}: already holds flowkit output ({name}); merge into "
                              "a new folder")
    planned = {transfer.target for transfer in transfers} | {out_dir / CONFIG_NAME}
    others = sorted(path.name for path in output_files(out_dir)
                    if path.exists() and path not in planned)
    if others:
        raise ConfigError(f"{out_dir}: already holds flowkit output ({others[0]}); merge into "
                          "a new folder")
    config = out_dir / CONFIG_NAME
    if config.exists() and config.read_bytes() != (first / CONFIG_NAME).read_bytes():
        raise ConfigError(f"{out_dir}: holds the {CONFIG_NAME} of another merge or run; merge "
                          "into a new folder")


def _check_sources(transfers: list[_Transfer]) -> None:
    for transfer in transfers:
        if transfer.needed and not (transfer.source.exists() or transfer.target.exists()):
            raise ConfigError(f"{transfer.source.parent}: partition unfinished "
                              f"({transfer.source.name} is missing); rerun its extraction")


def _place(source: Path, target: Path, move: bool) -> str:
    """Bring ``source`` to ``target`` whole: it appears there by a link or a rename only."""
    if target.exists():
        return PRESENT
    if move:
        try:
            os.rename(source, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            _copy_whole(source, target)
            source.unlink()
        return MOVED
    try:
        os.link(source, target)
        return LINKED
    except OSError as error:
        if error.errno not in _NO_LINK:
            raise
    _copy_whole(source, target)
    return COPIED


def _copy_whole(source: Path, target: Path) -> None:
    """Copy the bytes of ``source`` to a temporary name, fsync, rename to ``target``."""
    tmp = target.with_name(target.name + TMP_SUFFIX)
    shutil.copyfile(source, tmp)
    fsync_path(tmp)
    os.replace(tmp, target)
