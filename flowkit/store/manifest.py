"""The manifest: every video of an output folder, its shard and its fate, in one SQLite file.

It doubles as the extraction plan: a video is assigned to its shard when first seen, so a
resumed run writes every video into the same shard an uninterrupted run would have.

Why SQLite (docs/format.md, manifest): a finished shard is one transaction that touches only
its own videos, so bookkeeping costs the same at 1,000 videos as at 650,000 (the JSON manifest
it replaces was rewritten whole after every shard); planning and resuming query indices on
status and shard instead of scanning; a transaction is atomic and durable, so a run killed at
any moment leaves the manifest as it was before or after the shard, never half; and the file
is a real database anyone can query (``sqlite3 manifest.sqlite``). It uses SQLite's rollback
journal, not WAL: a WAL database cannot be read from several hosts of a network file system,
nor from read-only media, both common homes of a finished dataset.

Folders written before (``manifest.json``) are read as they are and migrated to SQLite by the
next run, merge or import that writes into them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator

from flowkit.errors import NotOutputFolderError, ShardError
from flowkit.store.flowstats import NUM_BINS

MANIFEST_NAME = "manifest.sqlite"
LEGACY_MANIFEST_NAME = "manifest.json"  # written by flowkit before the SQLite manifest
MANIFEST_SCHEMA_VERSION = 2  # 1: manifest.json
_LEGACY_SCHEMA_VERSION = 1

PENDING, OK, FAILED = "pending", "ok", "failed"

_FIELDS = ("video_id", "source", "label", "shard", "status", "num_frames", "num_flows", "error",
           "warning", "flow_stats")
_COLUMNS = ", ".join(_FIELDS)
# Flow statistics as columns of their own, computed by SQLite from flow_stats on every write,
# so that `flowkit info` adds them up (and finds the most clipped videos) in SQL at any size.
_FLOW_COLUMNS = ",\n".join(
    f"    {name} {kind} GENERATED ALWAYS AS ({expression}) STORED" for name, kind, expression in [
        ("flow_bound", "REAL", "json_extract(flow_stats, '$.bound')"),
        ("flow_components", "INTEGER", "json_extract(flow_stats, '$.components')"),
        ("flow_clipped", "INTEGER", "json_extract(flow_stats, '$.clipped')"),
        ("flow_max_magnitude", "REAL", "json_extract(flow_stats, '$.max_magnitude')"),
        ("flow_bins", "INTEGER", "json_array_length(flow_stats, '$.histogram')"),
        *[(f"flow_bin{i}", "INTEGER", f"json_extract(flow_stats, '$.histogram[{i}]')")
          for i in range(NUM_BINS)]])
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    position INTEGER PRIMARY KEY,  -- the order videos were first planned in
    video_id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    label INTEGER,
    shard TEXT NOT NULL,
    status TEXT NOT NULL,
    num_frames INTEGER,
    num_flows INTEGER,
    error TEXT,
    warning TEXT,
    flow_stats TEXT,  -- JSON (FlowStats.to_json); the columns below are read from it
{_FLOW_COLUMNS}
);
CREATE INDEX IF NOT EXISTS videos_by_shard ON videos (shard);
CREATE INDEX IF NOT EXISTS videos_by_status ON videos (status);
INSERT OR IGNORE INTO meta VALUES ('schema_version', '{MANIFEST_SCHEMA_VERSION}');
"""
_UPSERT = (f"INSERT INTO videos ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))}) "
           "ON CONFLICT (video_id) DO UPDATE SET "
           + ", ".join(f"{field} = excluded.{field}" for field in _FIELDS[1:]))
# SQLite's words for the output's faults, as the errno flowkit.writing turns into advice
_OUTPUT_ERRORS = (("disk is full", errno.ENOSPC), ("readonly", errno.EROFS),
                  ("disk I/O error", errno.EIO))
_PAGE = 4096  # rows a query reads when iterating
# The writer's page cache: planning 650k videos in one transaction, in any input order, keeps
# its index pages in memory instead of spilling them (at 650k: 2.3 GB written, not 130 MB).
# Readers (one per DataLoader worker) keep SQLite's default.
_WRITER_CACHE_KIB = 256 * 1024
_BUSY_TIMEOUT_S = 60.0  # readers wait out a writer's commit (milliseconds, one per shard)


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    """What is known of one video: where it came from, where it went, and how it ended.

    ``warning`` is set on an ok video stored incompletely (a decode error or truncation kept
    under ``on_decode_error="keep"``): the error that ended it. Manifests written before the
    field existed read as None. ``flow_stats`` is the video's flow statistics
    (:meth:`flowkit.store.flowstats.FlowStats.to_json`), None when unknown (no flow, or written
    before they were recorded).
    """

    video_id: str
    source: str
    label: int | None
    shard: str
    status: str = PENDING
    num_frames: int | None = None
    num_flows: int | None = None
    error: str | None = None
    warning: str | None = None
    flow_stats: dict[str, Any] | None = None


class Manifest:
    """Entries by video id, in the order videos were first planned, kept in SQLite.

    ``Manifest(entries)`` is a new manifest in memory (:meth:`write` saves it);
    :meth:`read` opens a folder's for reading, :meth:`open` for a run that updates it in
    place, one transaction per :meth:`put_many`. A manifest opened from a file reconnects by
    itself in a new process (DataLoader workers), never sharing a connection across a fork.
    """

    def __init__(self, entries: Iterable[ManifestEntry] = ()) -> None:
        self._path: Path | None = None
        self._writable = True
        self._pid = os.getpid()
        self._db: sqlite3.Connection | None = _connect(":memory:")
        self._in_transaction = False
        self.put_many(entries)

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def read(cls, path: Path | str) -> "Manifest":
        """A folder's manifest for reading: ``path`` is the folder or its manifest file.

        A folder written before the SQLite manifest is read from its manifest.json.

        Raises:
            NotOutputFolderError: there is no manifest at ``path``.
            ShardError: the manifest is unreadable or of an unknown schema.
        """
        path = _manifest_path(path)
        legacy = path.with_name(LEGACY_MANIFEST_NAME)
        if path == legacy or (not path.exists() and legacy.exists()):
            return cls(_read_legacy(legacy))
        if not path.exists():
            raise NotOutputFolderError(f"{path}: no manifest here; is this a flowkit output "
                                       "folder?")
        manifest = cls._from_file(path, writable=False)
        manifest._check_schema()
        return manifest

    @classmethod
    def open(cls, path: Path | str) -> "Manifest":
        """A folder's manifest for updating in place (the caller holds the folder's lock);
        created when there is none, migrated from manifest.json when that is what there is.

        Raises:
            ShardError: the manifest is unreadable or of an unknown schema.
            OSError: it cannot be written.
        """
        path = _manifest_path(path)
        legacy = path.with_name(LEGACY_MANIFEST_NAME)
        if not path.exists():  # appears whole, tables and all, for readers beside the run
            cls(_read_legacy(legacy) if legacy.exists() else ()).write(path)
        manifest = cls._from_file(path, writable=True)
        manifest._check_schema()
        legacy.unlink(missing_ok=True)  # migrated (possibly by a run killed before this line)
        return manifest

    @classmethod
    def _from_file(cls, path: Path, writable: bool) -> "Manifest":
        manifest = cls.__new__(cls)
        manifest._path, manifest._writable, manifest._db = path, writable, None
        manifest._pid, manifest._in_transaction = os.getpid(), False
        manifest._connection()  # fail now, not at the first query
        return manifest

    def _connection(self) -> sqlite3.Connection:
        if self._db is not None and self._pid == os.getpid():
            return self._db
        if self._path is None:
            raise ShardError("an in-memory manifest cannot cross into another process; "
                             "write it to a file and read that")
        self._db, self._pid = None, os.getpid()  # forked: never use the parent's connection
        try:
            if self._writable:
                db = _connect(str(self._path))
                db.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
            elif os.access(self._path, os.W_OK):
                # a reader may have to roll back the journal of a run killed mid-commit
                db = _connect(str(self._path))
                db.execute("PRAGMA query_only = ON")
            else:  # read-only media
                db = _connect(f"file:{self._path}?mode=ro", uri=True)
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        except sqlite3.DatabaseError as exc:
            raise ShardError(f"{self._path}: unreadable manifest ({exc})") from None
        self._db = db
        return db

    def _check_schema(self) -> None:
        row = self._query("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != str(MANIFEST_SCHEMA_VERSION):
            raise ShardError(f"{self._path}: manifest schema {row and row[0]!r} is not "
                             f"{MANIFEST_SCHEMA_VERSION}; written by another flowkit version")

    def close(self) -> None:
        """Close the connection (a file-backed manifest reopens on the next query)."""
        if self._db is not None and self._pid == os.getpid() and self._path is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        if self._path is None:
            raise TypeError("an in-memory manifest cannot be pickled; write it to a file")
        return {**self.__dict__, "_db": None}

    # -- reading ----------------------------------------------------------------------------
    def __getitem__(self, video_id: str) -> ManifestEntry:
        entry = self.get(video_id)
        if entry is None:
            raise KeyError(video_id)
        return entry

    def get(self, video_id: str) -> ManifestEntry | None:
        row = self._query(f"SELECT {_COLUMNS} FROM videos WHERE video_id = ?",
                          (video_id,)).fetchone()
        return None if row is None else _entry(row)

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and self._query(
            "SELECT 1 FROM videos WHERE video_id = ?", (video_id,)).fetchone() is not None

    def __iter__(self) -> Iterator[ManifestEntry]:
        return self._entries("")

    def __len__(self) -> int:
        return self._query("SELECT COUNT(*) FROM videos").fetchone()[0]

    def with_status(self, status: str) -> list[ManifestEntry]:
        return list(self._entries("WHERE status = ?", (status,)))

    def count(self, status: str) -> int:
        """How many videos have ``status``."""
        return self._query("SELECT COUNT(*) FROM videos WHERE status = ?",
                           (status,)).fetchone()[0]

    def with_warning(self) -> list[ManifestEntry]:
        """Videos stored with a warning (kept despite a decode error), in manifest order."""
        return list(self._entries("WHERE warning IS NOT NULL AND warning != ''"))

    def in_shard(self, shard: str) -> list[ManifestEntry]:
        """The videos planned into ``shard``, in manifest order."""
        return [entry for _, entry in self.positioned_in_shard(shard)]

    def positioned_in_shard(self, shard: str) -> list[tuple[int, ManifestEntry]]:
        """The videos planned into ``shard`` with their positions in the manifest's order (its
        sort key across shards), in that order."""
        return [(row[0], _entry(row[1:]))
                for row in self.rows(f"position, {_COLUMNS}", "WHERE shard = ?", (shard,))]

    def shards(self) -> list[str]:
        """Shard file names in first-planned order."""
        return [row[0] for row in self._query(
            "SELECT shard FROM videos GROUP BY shard ORDER BY MIN(position)")]

    def shards_with(self, status: str) -> list[str]:
        """The shards holding a video with ``status``, in first-planned order."""
        return [row[0] for row in self._query(
            "SELECT shard FROM videos WHERE status = ? GROUP BY shard ORDER BY MIN(position)",
            (status,))]

    def video_ids(self) -> set[str]:
        return {row[0] for row in self._query("SELECT video_id FROM videos")}

    def query(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        """Rows of a read-only SQL query on the ``videos`` table (``info``, ``verify``)."""
        return self._query(sql, parameters).fetchall()

    def rows(self, columns: str, where: str = "", parameters: tuple = ()) -> Iterator[tuple]:
        """``columns`` of the videos matching ``where``, in manifest order, a page of rows per
        query: no statement stays open between pages, so an iteration left unfinished holds
        no lock a writer would wait on."""
        condition = f"{where} AND position > ?" if where else "WHERE position > ?"
        last = -1
        while page := self._query(f"SELECT position, {columns} FROM videos {condition} "
                                  f"ORDER BY position LIMIT {_PAGE}",
                                  (*parameters, last)).fetchall():
            last = page[-1][0]
            yield from (row[1:] for row in page)

    # -- writing ----------------------------------------------------------------------------
    def put(self, entry: ManifestEntry) -> None:
        """Add an entry or replace the one with the same video id (keeping its position)."""
        self.put_many([entry])

    def put_many(self, entries: Iterable[ManifestEntry]) -> None:
        """Add or replace entries in one transaction: all of them are recorded, or none."""
        rows = [_row(entry) for entry in entries]
        if rows:
            with self.transaction():
                self._connection().executemany(_UPSERT, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Every change inside is recorded at once when the block ends, or (on an exception,
        or a kill at any moment) none is; queries inside see the changes made so far."""
        if not self._writable:
            raise ShardError(f"{self._path}: manifest opened for reading")
        if self._in_transaction:
            yield
            return
        db = self._connection()
        self._in_transaction = True
        try:
            with db:  # commits, or rolls back on an exception
                yield
        except sqlite3.OperationalError as exc:
            raise _write_error(self._path, exc) from None
        finally:
            self._in_transaction = False

    def write(self, path: Path | str) -> None:
        """Save a copy of the whole manifest as ``path``, atomically: a temporary file,
        fsync, then a rename over ``path``."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        try:
            copy = sqlite3.connect(str(tmp))
            try:
                copy.execute("PRAGMA journal_mode = OFF")  # a half temporary is dropped anyway
                self._connection().backup(copy)
            except sqlite3.OperationalError as exc:
                raise _write_error(path, exc) from None
            finally:
                copy.close()
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a half temporary would keep a full disk full
            raise
        _fsync_folder(path.parent)

    # -- internals --------------------------------------------------------------------------
    def _query(self, sql: str, parameters: tuple = ()) -> sqlite3.Cursor:
        try:
            return self._connection().execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            raise ShardError(f"{self._path or 'manifest'}: unreadable manifest ({exc})") from None

    def _entries(self, where: str, parameters: tuple = ()) -> Iterator[ManifestEntry]:
        return map(_entry, self.rows(_COLUMNS, where, parameters))



def _write_error(path: Path | None, exc: sqlite3.OperationalError) -> Exception:
    """What a failed manifest write raises: the output's fault (disk full, read-only, I/O
    error) as the OSError flowkit.writing turns into advice, anything else as ShardError."""
    code = next((code for words, code in _OUTPUT_ERRORS if words in str(exc)), None)
    if code is not None:
        return OSError(code, os.strerror(code))
    return ShardError(f"{path}: cannot update the manifest ({exc})")


def _connect(target: str, uri: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(target, uri=uri, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                         check_same_thread=False)
    db.execute("PRAGMA synchronous = FULL")
    db.isolation_level = ""  # "with db" opens a transaction, commits or rolls back
    if target == ":memory:":
        db.executescript(_SCHEMA)
    return db


def _manifest_path(path: Path | str) -> Path:
    """A folder's manifest file; ``path`` is the folder, or the file itself."""
    path = Path(path)
    return path if path.name in (MANIFEST_NAME, LEGACY_MANIFEST_NAME) else path / MANIFEST_NAME


def _row(entry: ManifestEntry) -> tuple:
    stats = None if entry.flow_stats is None else json.dumps(entry.flow_stats)
    return (entry.video_id, entry.source, entry.label, entry.shard, entry.status,
            entry.num_frames, entry.num_flows, entry.error, entry.warning, stats)


def _entry(row: tuple) -> ManifestEntry:
    *fields, stats = row
    return ManifestEntry(*fields, flow_stats=None if stats is None else json.loads(stats))


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}
# what each field of a manifest.json entry may hold: (types, words for the message)
_LEGACY_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "video_id": ((str,), "a string"), "source": ((str,), "a string"),
    "shard": ((str,), "a string"), "status": ((str,), f"{PENDING!r}, {OK!r} or {FAILED!r}"),
    "label": ((int, type(None)), "an integer or null"),
    "num_frames": ((int, type(None)), "an integer or null"),
    "num_flows": ((int, type(None)), "an integer or null"),
    "error": ((str, type(None)), "a string or null"),
    "warning": ((str, type(None)), "a string or null"),
    "flow_stats": ((dict, type(None)), "an object or null"),
}


def _read_legacy(path: Path) -> list[ManifestEntry]:
    """The entries of a manifest.json (flowkit before the SQLite manifest), checked: a file
    that is JSON but not a manifest is a ShardError naming it, never a traceback."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(document, dict):
        raise ShardError(f"{path}: not a flowkit manifest ({_JSON_KINDS[type(document)]}, "
                         "not a JSON object)")
    if document.get("schema_version") != _LEGACY_SCHEMA_VERSION:
        raise ShardError(f"{path}: manifest schema {document.get('schema_version')!r} is not "
                         f"{_LEGACY_SCHEMA_VERSION}; written by another flowkit version")
    items = document.get("videos")
    if not isinstance(items, list):
        raise ShardError(f"{path}: malformed manifest (\"videos\" is "
                         f"{_JSON_KINDS.get(type(items), 'an object')}, not an array)")
    entries, seen = [], set()
    for index, item in enumerate(items):
        entry = _legacy_entry(path, index, item)
        if entry.video_id in seen:
            raise ShardError(f"{path}: malformed manifest entry {index} (video "
                             f"{entry.video_id!r} is listed twice)")
        seen.add(entry.video_id)
        entries.append(entry)
    return entries


def _legacy_entry(path: Path, index: int, item: Any) -> ManifestEntry:
    """Entry ``index`` of a manifest.json, its fields of the types flowkit wrote."""
    if not isinstance(item, dict):
        raise ShardError(f"{path}: malformed manifest entry {index} "
                         f"({_JSON_KINDS[type(item)]}, not an object)")
    try:
        entry = ManifestEntry(**item)
    except TypeError as exc:  # a field missing, or one flowkit never wrote
        raise ShardError(f"{path}: malformed manifest entry {index} ({exc})") from None
    for field, (types, words) in _LEGACY_FIELDS.items():
        value = getattr(entry, field)
        if (not isinstance(value, types) or isinstance(value, bool)
                or (field == "status" and value not in (PENDING, OK, FAILED))):
            shown = json.dumps(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise ShardError(f"{path}: malformed manifest entry {index} ({field} is {shown}, "
                             f"expected {words})")
    return entry


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
