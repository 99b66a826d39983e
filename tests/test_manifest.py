"""The SQLite manifest (issue 20): transactions, readers beside a writer, processes, bad files,
and folders written with manifest.json read as they are and migrated on the next write."""

from __future__ import annotations

import dataclasses
import pickle
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from flowkit.config import ExtractConfig
from flowkit.errors import ExtractionError, NotOutputFolderError, ShardError
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.store.manifest import (FAILED, LEGACY_MANIFEST_NAME, MANIFEST_NAME, OK, PENDING,
                                    Manifest, ManifestEntry)
from flowkit.store.reader import open_shards
from flowkit.store.summary import summarize
from flowkit.video.decode import DecodeConfig

LEGACY = Path(__file__).parent / "data" / "legacy_manifest"


def _entries(count: int, shard_size: int = 2, status: str = PENDING) -> list[ManifestEntry]:
    return [ManifestEntry(f"v{i:03d}.mp4", f"/videos/v{i:03d}.mp4", i % 3,
                          f"shard-{i // shard_size:05d}.h5", status) for i in range(count)]


def _rows(manifest: Manifest) -> list[tuple]:
    return [dataclasses.astuple(entry) for entry in manifest]


# -- one manifest ---------------------------------------------------------------------------------

def test_entries_keep_their_first_planned_position_when_replaced(tmp_path):
    with Manifest.open(tmp_path) as manifest:
        manifest.put_many(_entries(5))
        manifest.put(dataclasses.replace(manifest["v001.mp4"], status=OK, num_frames=4,
                                         flow_stats={"bound": 20.0, "components": 8}))
        assert [e.video_id for e in manifest] == [f"v{i:03d}.mp4" for i in range(5)]
    again = Manifest.read(tmp_path)
    assert again["v001.mp4"].status == OK and again["v001.mp4"].num_frames == 4
    assert again["v001.mp4"].flow_stats == {"bound": 20.0, "components": 8}
    assert again.shards() == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    assert again.shards_with(OK) == ["shard-00000.h5"] and again.count(PENDING) == 4
    assert [e.video_id for e in again.in_shard("shard-00001.h5")] == ["v002.mp4", "v003.mp4"]
    assert "v004.mp4" in again and "v005.mp4" not in again and again.get("nope") is None
    assert len(again) == 5 and again.video_ids() == {e.video_id for e in _entries(5)}


def test_iteration_pages_through_more_rows_than_a_page(tmp_path):
    with Manifest.open(tmp_path) as manifest:
        manifest.put_many(_entries(10_000, shard_size=100))
    assert [e.video_id for e in Manifest.read(tmp_path)] == [e.video_id for e in _entries(10_000)]


def test_a_transaction_records_all_or_nothing(tmp_path):
    with Manifest.open(tmp_path) as manifest:
        manifest.put_many(_entries(2))
        with pytest.raises(RuntimeError), manifest.transaction():
            manifest.put_many(_entries(4, status=FAILED))
            assert manifest.count(FAILED) == 4  # seen inside the transaction
            raise RuntimeError("stop")
        assert manifest.count(FAILED) == 0 and len(manifest) == 2
    assert _rows(Manifest.read(tmp_path)) == [dataclasses.astuple(e) for e in _entries(2)]


def test_a_reader_sees_the_last_commit_while_a_writer_is_inside_a_transaction(tmp_path):
    with Manifest.open(tmp_path) as writer:
        writer.put_many(_entries(4))
        reader = Manifest.read(tmp_path)
        with writer.transaction():
            writer.put_many(dataclasses.replace(e, status=OK) for e in writer.in_shard(
                "shard-00000.h5"))
            assert reader.count(OK) == 0 and len(reader) == 4
        assert reader.count(OK) == 2


def test_an_unfinished_iteration_holds_no_lock_a_writer_waits_on(tmp_path):
    with Manifest.open(tmp_path) as manifest:
        manifest.put_many(_entries(10_000, shard_size=100))
    first = next(iter(Manifest.read(tmp_path)))
    started = time.monotonic()
    with Manifest.open(tmp_path) as manifest:
        manifest.put(dataclasses.replace(first, status=FAILED, error="x"))
    assert time.monotonic() - started < 5  # a held read lock would block for the busy timeout


def test_a_manifest_read_in_another_process_reconnects(tmp_path):
    with Manifest.open(tmp_path) as manifest:
        manifest.put_many(_entries(3))
    reader = Manifest.read(tmp_path)
    assert len(reader) == 3  # connected here
    copy = pickle.loads(pickle.dumps(reader))
    assert _rows(copy) == _rows(reader)
    with pytest.raises(TypeError, match="in-memory"):
        pickle.dumps(Manifest(_entries(1)))


def test_a_read_manifest_refuses_writes(tmp_path):
    Manifest(_entries(1)).write(tmp_path / MANIFEST_NAME)
    with pytest.raises(ShardError, match="opened for reading"):
        Manifest.read(tmp_path).put(_entries(1)[0])


def test_write_saves_a_whole_copy_atomically(tmp_path):
    Manifest(_entries(3)).write(tmp_path / MANIFEST_NAME)
    assert _rows(Manifest.read(tmp_path)) == [dataclasses.astuple(e) for e in _entries(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME]


def test_a_manifest_that_does_not_fit_on_the_disk_is_an_output_error(tiny_videos, tmp_path,
                                                                      monkeypatch):
    """SQLite's "database or disk is full" while the first run writes the folder's manifest
    (a disk of a few KB): OutputError saying what to do, exit 3, no temporary left (it was a
    sqlite3.OperationalError traceback)."""
    from flowkit.errors import OutputError

    real_connect = sqlite3.connect

    def connect(target, *args, **kwargs):
        db = real_connect(target, *args, **kwargs)
        if str(target).endswith(".tmp"):  # the copy Manifest.write makes: one page fits
            db.execute("PRAGMA max_page_count = 1")
        return db

    monkeypatch.setattr(sqlite3, "connect", connect)
    out = tmp_path / "out"
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback")
    with pytest.raises(OutputError) as caught:
        extract(collect_videos([tiny_videos]), out, config, workers=1, progress=False)
    assert str(caught.value).startswith(f"{out / MANIFEST_NAME}: cannot write: no space left "
                                        "on the device")
    assert not (out / MANIFEST_NAME).exists() and not list(out.glob("*.tmp"))


@pytest.mark.parametrize("content, message", [
    (b"not a database at all, just bytes" * 40, "unreadable manifest"),
    (None, "manifest schema '9' is not 2"),
])
def test_a_bad_manifest_is_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / MANIFEST_NAME
    if content is None:
        Manifest(_entries(1)).write(path)
        with sqlite3.connect(path) as db:
            db.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    else:
        path.write_bytes(content)
    for opening in (Manifest.read, Manifest.open):
        with pytest.raises(ShardError, match=message) as caught:
            len(opening(tmp_path))
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_folder_without_a_manifest_is_not_an_output_folder(tmp_path):
    with pytest.raises(NotOutputFolderError, match="no manifest here"):
        Manifest.read(tmp_path)


# -- folders made with manifest.json -------------------------------------------------------------

def _legacy_entries() -> list[tuple]:
    import json

    return [tuple(item.values()) for item in
            json.loads((LEGACY / LEGACY_MANIFEST_NAME).read_text())["videos"]]


def test_a_legacy_folder_is_read_as_it_is():
    """The fixture made by flowkit before the SQLite manifest (tests/data/README.md)."""
    before = sorted(p.name for p in LEGACY.iterdir())
    assert _rows(Manifest.read(LEGACY)) == _legacy_entries()
    reader = open_shards(LEGACY)
    assert len(reader) == 3 and reader.frames(reader.videos[0]).shape == (4, 24, 32, 3)
    summary = summarize(LEGACY)
    assert (summary.count(OK), len(summary.failures)) == (3, 1)
    assert sorted(p.name for p in LEGACY.iterdir()) == before  # nothing written


def test_a_legacy_folder_is_migrated_by_the_next_run_and_resumes(tmp_path):
    folder = tmp_path / "legacy"
    shutil.copytree(LEGACY, folder)
    frames = {v: open_shards(folder).frames(v) for v in open_shards(folder).videos}
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback")
    report = extract([], folder, config, workers=1, progress=False)
    assert (report.total, report.ok, report.processed, len(report.failed)) == (4, 3, 0, 1)
    assert (folder / MANIFEST_NAME).exists() and not (folder / LEGACY_MANIFEST_NAME).exists()
    assert _rows(Manifest.read(folder)) == _legacy_entries()
    for video_id, before in frames.items():
        np.testing.assert_array_equal(open_shards(folder).frames(video_id), before)


def test_a_migration_killed_before_the_legacy_file_is_removed_completes(tmp_path):
    """The SQLite file appears whole (a rename) before manifest.json goes: a folder holding
    both is read from SQLite, and the next write removes the JSON."""
    folder = tmp_path / "legacy"
    shutil.copytree(LEGACY, folder)
    Manifest.read(folder).write(folder / MANIFEST_NAME)  # the migration's first half
    assert _rows(Manifest.read(folder)) == _legacy_entries()
    Manifest.open(folder).close()
    assert not (folder / LEGACY_MANIFEST_NAME).exists()


_ENTRY = {"video_id": "a.mp4", "source": "/videos/a.mp4", "label": 0, "shard": "shard-00000.h5"}


@pytest.mark.parametrize("document, message", [
    ([], "not a flowkit manifest (an array, not a JSON object)"),
    (3, "not a flowkit manifest (a number, not a JSON object)"),
    ("videos", "not a flowkit manifest (a string, not a JSON object)"),
    (None, "not a flowkit manifest (null, not a JSON object)"),
    ({"schema_version": 1, "videos": "abc"}, 'malformed manifest ("videos" is a string, not an '
                                             "array)"),
    ({"schema_version": 1}, 'malformed manifest ("videos" is null, not an array)'),
    ({"schema_version": 1, "videos": [3]}, "malformed manifest entry 0 (a number, not an "
                                           "object)"),
    ({"schema_version": 1, "videos": [{**_ENTRY, "video_id": ["a"]}]},
     'malformed manifest entry 0 (video_id is ["a"], expected a string)'),
    ({"schema_version": 1, "videos": [_ENTRY, {**_ENTRY, "status": None}]},
     "malformed manifest entry 1 (status is null, expected 'pending', 'ok' or 'failed')"),
    ({"schema_version": 1, "videos": [{**_ENTRY, "label": {"x": 1}}]},
     'malformed manifest entry 0 (label is {"x": 1}, expected an integer or null)'),
    ({"schema_version": 1, "videos": [{**_ENTRY, "num_frames": "12"}]},
     'malformed manifest entry 0 (num_frames is "12", expected an integer or null)'),
    ({"schema_version": 1, "videos": [_ENTRY, _ENTRY]},
     "malformed manifest entry 1 (video 'a.mp4' is listed twice)")])
def test_a_legacy_manifest_that_is_json_but_no_manifest_is_one_line_naming_the_file(
        tiny_videos, tmp_path, document, message):
    """manifest.json holding valid JSON that is not a manifest (not an object, entries of
    the wrong types): a ShardError naming the file, for reading and for a run migrating it,
    and one line with exit 3 from `flowkit info` and `flowkit extract` (an entry of the wrong
    type was a sqlite3 traceback)."""
    import json

    from click.testing import CliRunner

    from flowkit.cli.main import EXIT_ERROR, main

    path = tmp_path / LEGACY_MANIFEST_NAME
    path.write_text(json.dumps(document))
    for opening in (Manifest.read, Manifest.open):
        with pytest.raises(ShardError) as caught:
            opening(tmp_path)
        assert str(caught.value) == f"{path}: {message}"
    for command in (["info", str(tmp_path)],
                    ["extract", str(tiny_videos), "--out", str(tmp_path), "--quiet"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == EXIT_ERROR, result.output
        assert result.output == f"flowkit: error: {path}: {message}\n"
    assert not (tmp_path / MANIFEST_NAME).exists()


# -- a run beside its readers ---------------------------------------------------------------------

def test_readers_during_a_run_see_whole_shards_only(tiny_videos, tmp_path):
    """open_shards while `flowkit extract` records shard after shard: every video listed is
    readable, and the count only grows."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "flowkit", "extract", str(tiny_videos), "--out", str(out),
               "--short-side", "0", "--videos-per-shard", "1", "--workers", "1", "--quiet"]
    process = subprocess.Popen(command)
    seen, errors = [], []

    def watch() -> None:
        while process.poll() is None:
            try:
                reader = open_shards(out)
                for video_id in reader.videos:
                    assert reader.frames(video_id).shape == (5, 48, 64, 3)
                seen.append(len(reader))
            except NotOutputFolderError:
                continue  # the run has not created the manifest yet
            except Exception as exc:  # noqa: BLE001  inspected below
                errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert process.wait(timeout=120) == 0
    watcher.join()
    assert errors == [] and seen == sorted(seen)
    assert len(open_shards(out)) == 4 and collect_videos([tiny_videos])


def test_finished_shards_are_recorded_together_and_on_the_way_out(tiny_videos, tmp_path,
                                                                 monkeypatch):
    """The first finished shard is recorded at once, the next ones together (here: at the end,
    the interval being an hour); a run stopped by an error still records what finished."""
    import flowkit.extract.run as run_module

    monkeypatch.setattr(run_module, "RECORD_INTERVAL_S", 3600.0)
    recorded = []
    real_put_many = Manifest.put_many

    def put_many(self, entries):
        entries = list(entries)
        if entries and entries[0].status != PENDING:
            recorded.append(len(entries))
        real_put_many(self, entries)

    monkeypatch.setattr(Manifest, "put_many", put_many)
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback")
    sources = collect_videos([tiny_videos])
    report = extract(sources, tmp_path / "all", config, workers=1, videos_per_shard=1,
                     progress=False)
    assert report.ok == 4 and recorded == [1, 3]

    real_run_shards = run_module.run_shards

    def two_then_a_dead_worker(*args, **kwargs):
        yield from list(real_run_shards(*args, **kwargs))[:2]
        raise ExtractionError("a worker process died")

    monkeypatch.setattr(run_module, "run_shards", two_then_a_dead_worker)
    recorded.clear()
    with pytest.raises(ExtractionError):
        extract(sources, tmp_path / "stopped", config, workers=1, videos_per_shard=1,
                progress=False)
    assert recorded == [1, 1]
    assert [e.status for e in Manifest.read(tmp_path / "stopped")] == [OK, OK, PENDING, PENDING]


def test_the_reader_index_holds_the_ok_videos_compactly(tmp_path):
    from flowkit.store.index import VideoIndex

    entries = [dataclasses.replace(e, status=OK if i % 3 else FAILED, num_frames=i, num_flows=i - 1,
                                   label=None if i == 4 else i % 3)
               for i, e in enumerate(_entries(3000, shard_size=100))]
    with Manifest.open(tmp_path) as manifest:
        manifest.put_many(entries)
    index = VideoIndex.of(Manifest.read(tmp_path))
    ok = [e for e in entries if e.status == OK]
    assert len(index) == 2000 and list(index.video_ids()) == [e.video_id for e in ok]
    assert [index.find(e.video_id) for e in ok[::97]] == list(range(0, 2000, 97))
    assert index.find(entries[0].video_id) is None and index.find("zzz") is None
    row = index.find("v004.mp4")
    assert (index.shard(row), index.labels[row], index.num_frames[row]) == ("shard-00000.h5", -1, 4)
    assert len(pickle.dumps(index)) < 2000 * (len("v000.mp4") + 60)


def test_a_missing_folder_is_not_an_output_folder(tmp_path):
    with pytest.raises(NotOutputFolderError, match="no manifest here"):
        Manifest.read(tmp_path / "absent")
