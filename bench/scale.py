"""Kinetics scale (issue 20): planning, bookkeeping, resume, `flowkit info`, Datasets and readers
on output folders of 1k to 650k videos, fabricated cheaply.

For each size N (``--videos``), in one folder:

1. planning: ``plan_new_videos`` of N new videos (100 a shard) into an empty manifest, in one
   transaction as ``extract`` does, then ``shards_to_run`` (no shard file exists yet: every shard
   is to run, each with its entries, as at the start of a real run). The ids come in id order,
   as ``collect_videos`` lists a folder; the same planning of them shuffled (a list file in
   random order) is timed too, into a scratch manifest, with its bytes written;
2. bookkeeping per finished shard: ``Manifest.put_many`` of one shard's 100 entries, status ok
   with flow statistics (``FlowStats.to_json()`` form), into the manifest of N videos: seconds,
   CPU seconds (``getrusage``; the seconds also wait for fsync, which other jobs' I/O makes
   noisy) and bytes written (``/proc/self/io`` wchar delta: database and rollback journal).
   Every other shard is first fabricated as ok (``put_many`` in batches of 50,000 rows), then
   up to 20 shards spread over the manifest are recorded one at a time (after ``os.sync()``),
   the sizes taking turns: the state near the end of a run. Median over those shards (at 1k,
   all 10 of its shards).
   Beside it the JSON manifest it replaced, as it wrote itself after every shard:
   ``dataclasses.asdict`` of all N entries, ``json.dumps(indent=1)``, a temporary file, fsync,
   rename (``write_text_atomic``); median of 20 rounds up to 10k, of 5 up to ``--old-max``
   (100k), not run beyond (over the time budget: the line says so, with a linear extrapolation
   marked as one);
3. a no-op resume: ``extract(sources, folder, config, workers=1)`` with the N sources
   (``VideoSource`` objects built directly; their paths do not exist) on the folder where every
   video is ok and the same config is saved. Shard files must exist for ``shards_to_run``: the
   first shard is a real one (its videos are 2-frame 32x32 clips, written by ``ShardWriter``),
   the other N/100 - 1 are **empty placeholder files** (nothing opens them in a resume);
   median of 3 rounds, each followed by
4. ``flowkit info``: ``summarize(folder).to_text()`` (SQL over the manifest's flow statistics);
5. Dataset construction: ``ShardDataset(folder)`` in a fresh process (time, RSS growth). It reads
   the manifest and opens only the first video's shard (the modality check), so the same
   folder with placeholders serves at every N.

Then, with real shards (``--shards`` S, default 6,500: Kinetics-700's 650k videos at 100 a
shard), S videos of 2 frames 32x32 RGB (JPEG, no flow) written by ``ShardWriter`` twice (by
as many processes as there are cores): one video a shard (S shard files) and the same S videos
in 10 shards. In fresh processes (torch imported before the clocks):

5b. ``ShardDataset(folder)`` construction on real shards;
6. per-item read time ``dataset[i]`` (RGB, default TSN sampler: 3 frames), median over
   ``--items`` random items: the first read of each (its shard file opened then, in the
   S-shard folder) and a second pass over the same items (files open);
7. a fresh reader (``open_shards``) touching one frame of every video, hence of every shard:
   shard files open afterwards (``/proc/self/fd`` links ending in .h5) and RSS growth
   (``/proc/self/status`` VmRSS) from after the first video's read (which pays the libraries'
   one-off set-up) to after the last; then the time to close a few of the files left open. The
   process ends with ``os._exit``, so that h5py does not close the rest one by one (each close
   took ~0.2 s with 6,500 files open: half an hour for all of them).

And the fixed cost per video (8.): ``--tiny-videos`` synthetic 2-frame 32x32 videos (FFV1)
extracted in this process (workers=1), one video a shard, Farneback flow (``--tiny-flow``),
native size: CPU seconds per video (``getrusage`` self, user + system) against the CPU seconds
of the same decoding, flow and JPEG encoding done alone, and the write amplification: bytes
written (wchar delta) / bytes of the output folder.

Targets (issue 20) are printed next to the figures. The Kinetics-700 estimate takes documented
flow throughputs (docs/benchmarks.md) and 650k videos x 250 frames (249 pairs each).

    python bench/scale.py [--videos 1000,10000,100000,650000] [--shards 6500]
                          [--tiny-videos 300] [--json PATH] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from common import machine, median, require_all_ok

from flowkit.config import ExtractConfig
from flowkit.extract.inputs import VideoSource, collect_videos
from flowkit.extract.plan import plan_new_videos, shards_to_run
from flowkit.extract.run import extract
from flowkit.extract.shard import shard_attributes
from flowkit.store.flowstats import NUM_BINS, FlowStats, flow_stats
from flowkit.store.folder import CONFIG_NAME, SHARD_PATTERN
from flowkit.store.manifest import OK, Manifest, ManifestEntry
from flowkit.store.summary import summarize
from flowkit.store.writer import ShardWriter
from flowkit.video.decode import DecodeConfig
from flowkit.writing import write_text_atomic

VIDEOS_PER_SHARD = 100
BOOKKEEPING_SHARDS = 20
FABRICATE_BATCH = 50_000
REPEATS = 3  # rounds of the no-op resume and of `flowkit info` (median)
FEW_SHARDS = 10
KINETICS_700 = 650_000
FRAMES_PER_VIDEO = 250  # Kinetics clips: ~10 s at 25 fps
# Documented flow throughputs (docs/benchmarks.md) for the Kinetics-700 estimate, pairs/s.
FLOW_RATES = (("OpenCV TV-L1 at 340x256, 2 workers on the 2-core VM: section Scaling", 2.36),
              ("the GPU TV-L1 target: section Shard compression filter", 400.0))
SIZE = 32  # px: the tiny clips' width and height
TINY_CONFIG = ExtractConfig(flow="none", decode=DecodeConfig(short_side=None))


# -- measuring --------------------------------------------------------------------------------
def written_bytes() -> int:
    """Bytes this process has passed to write() so far (/proc/self/io wchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_shard_files() -> int:
    """Descriptors of this process open on a .h5 file."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").endswith(".h5")
        except OSError:
            pass
    return count


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def spread(items: Sequence[Any], count: int) -> list[Any]:
    """``count`` items evenly spread over ``items`` (all when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[round(k * (len(items) - 1) / (count - 1))] for k in range(count)]


# -- fabricating ------------------------------------------------------------------------------
def video_sources(count: int, shuffled: bool = False) -> list[VideoSource]:
    """Kinetics-like ids in 400 classes, in id order (as ``collect_videos`` lists a folder) or
    shuffled (a list file in random order); the paths need not exist."""
    sources = []
    for i in range(count):
        video_id = f"class{i * 400 // count:03d}/video{i:07d}.mp4"
        sources.append(VideoSource(video_id, Path("/nonexistent/kinetics") / video_id,
                                   i * 400 // count))
    if shuffled:
        random.Random(0).shuffle(sources)
    return sources


def timed_plan(folder: Path, sources: Sequence[VideoSource]) -> tuple[Manifest, float, int]:
    """A new manifest in ``folder`` planning ``sources`` as extract does (one transaction):
    it, the seconds and the bytes written."""
    manifest = Manifest.open(folder)
    before, start = written_bytes(), time.perf_counter()
    with manifest.transaction():
        plan_new_videos(manifest, sources, VIDEOS_PER_SHARD)
    return manifest, time.perf_counter() - start, written_bytes() - before


def kinetics_stats(index: int) -> dict[str, Any]:
    """Flow statistics of a 250-frame 340x256 video (FlowStats.to_json() form), varied a little."""
    pixels = (FRAMES_PER_VIDEO - 1) * 340 * 256
    histogram = [pixels // 4, pixels // 4, pixels // 5, pixels // 8, pixels // 16,
                 pixels // 32, pixels // 64, index % 1000, 0]
    histogram[0] += pixels - sum(histogram)
    assert len(histogram) == NUM_BINS
    return FlowStats(20.0, 2 * pixels, (index * 7919) % 50_000, 20.0 + index % 30,
                     tuple(histogram)).to_json()


def finished(entries: Sequence[ManifestEntry], first_index: int) -> list[ManifestEntry]:
    """The entries as a finished shard records them: ok, counts, flow statistics."""
    return [dataclasses.replace(entry, status=OK, num_frames=FRAMES_PER_VIDEO,
                                num_flows=FRAMES_PER_VIDEO - 1,
                                flow_stats=kinetics_stats(first_index + k))
            for k, entry in enumerate(entries)]


def tiny_frames(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)


def write_tiny_shard(path: Path, entries: Sequence[ManifestEntry], config: ExtractConfig
                     ) -> list[ManifestEntry]:
    """A real shard of ``entries`` as 2-frame 32x32 videos (one flow each when ``config`` has
    flow), written by the library's ShardWriter; their entries as a run records them."""
    frames = tiny_frames(0)
    flow = np.random.default_rng(1).uniform(-5, 5, (SIZE, SIZE, 2)).astype(np.float32)
    with_flow = config.flow != "none"
    done = []
    with ShardWriter(path, config.storage, shard_attributes(config)) as shard:
        for entry in entries:
            with shard.video(entry.video_id, {"bound": config.storage.bound,
                                              "step": config.flow_step,
                                              "backend": config.flow}) as video:
                for frame in frames:
                    video.append_frame(frame)
                if with_flow:
                    video.flow_stats = flow_stats(flow, config.storage.bound)
                    video.append_flow(flow)
                video.finish({"source": entry.source, "height": SIZE, "width": SIZE,
                              "label": -1 if entry.label is None else entry.label})
            done.append(dataclasses.replace(
                entry, shard=path.name, status=OK, num_frames=video.num_frames,
                num_flows=video.num_flows,
                flow_stats=video.flow_stats.to_json() if video.flow_stats else None))
    return done


# -- 1-5: one folder of N videos --------------------------------------------------------------
def old_json_manifest(entries: list[ManifestEntry], folder: Path, rounds: int
                      ) -> tuple[float, float]:
    """Median seconds and bytes of the JSON manifest's per-shard rewrite of all ``entries``."""
    folder.mkdir(exist_ok=True)
    seconds, sizes = [], []
    for _ in range(rounds):
        before, start = written_bytes(), time.perf_counter()
        document = {"schema_version": 1,
                    "videos": [dataclasses.asdict(entry) for entry in entries]}
        write_text_atomic(folder / "manifest.json", json.dumps(document, indent=1) + "\n")
        seconds.append(time.perf_counter() - start)
        sizes.append(written_bytes() - before)
    shutil.rmtree(folder)
    return median(seconds), median(sizes)


@dataclasses.dataclass
class SizeFolder:
    """One folder of N videos between its steps, its manifest open."""

    count: int
    folder: Path
    config: ExtractConfig
    manifest: Manifest
    names: list[str]  # its shards, in planned order
    first_shard: list[ManifestEntry]  # shard names[0]'s entries, to be written for real
    to_record: list[list[ManifestEntry]]  # finished entries of the shards left to record
    row: dict[str, Any]


def plan_folder(root: Path, count: int) -> SizeFolder:
    """Measure planning (1.) into a new folder of ``count`` videos, then fabricate every shard
    as finished except the up to 20 to be recorded by :func:`record_shards`."""
    folder = root / f"videos-{count}"
    folder.mkdir()
    config = ExtractConfig(flow="farneback")
    config.save(folder / CONFIG_NAME)
    row: dict[str, Any] = {"videos": count, "shards": -(-count // VIDEOS_PER_SHARD)}
    scratch = root / f"shuffled-{count}"
    scratch.mkdir()
    shuffled, row["plan_shuffled_s"], row["plan_shuffled_bytes"] = timed_plan(
        scratch, video_sources(count, shuffled=True))
    row["plan_shuffled_manifest_bytes"] = (scratch / "manifest.sqlite").stat().st_size
    shuffled.close()
    shutil.rmtree(scratch)
    manifest, row["plan_s"], row["plan_bytes"] = timed_plan(folder, video_sources(count))
    start = time.perf_counter()
    work = shards_to_run(manifest, folder)
    row["shards_to_run_s"] = time.perf_counter() - start
    names = list(work)
    first_index = {name: k * VIDEOS_PER_SHARD for k, name in enumerate(names)}
    measured = spread(names, BOOKKEEPING_SHARDS)
    start, batch = time.perf_counter(), []
    for name in set(names) - set(measured):
        batch += finished(work[name], first_index[name])
        if len(batch) >= FABRICATE_BATCH:
            manifest.put_many(batch)
            batch = []
    manifest.put_many(batch)
    row["fabricate_s"] = time.perf_counter() - start
    return SizeFolder(count, folder, config, manifest, names, work[names[0]],
                      [finished(work[name], first_index[name]) for name in measured], row)


def record_shards(folders: Sequence[SizeFolder]) -> None:
    """Bookkeeping (2.): record the shards left to record, one at a time, the sizes taking
    turns (so that a slow spell of the shared disk falls on all of them alike)."""
    os.sync()  # the timed commits' fsyncs are not to wait for the fabrication's writeback
    spent: dict[int, dict[str, list[float]]] = {
        f.count: {"s": [], "cpu_s": [], "bytes": []} for f in folders}
    for turn in range(max(len(f.to_record) for f in folders)):
        for f in folders:
            if turn < len(f.to_record):
                before, used, start = written_bytes(), cpu_seconds(), time.perf_counter()
                f.manifest.put_many(f.to_record[turn])  # what extract does per finished shard
                spent[f.count]["s"].append(time.perf_counter() - start)
                spent[f.count]["cpu_s"].append(cpu_seconds() - used)
                spent[f.count]["bytes"].append(written_bytes() - before)
    for f in folders:
        f.row.update({f"bookkeeping_{key}": median(values)
                      for key, values in spent[f.count].items()})
        f.row["bookkeeping_rounds"] = len(f.to_record)


def finish_folder(root: Path, f: SizeFolder, old_max: int) -> dict[str, Any]:
    """The old JSON manifest (2.), then the shard files, a no-op resume (3.) and `flowkit
    info` (4.) of the folder, every video ok."""
    row = f.row
    row["old_json_s"] = row["old_json_bytes"] = None
    row["old_json_rounds"] = 0
    if f.count <= old_max:
        rounds = BOOKKEEPING_SHARDS if f.count <= 10_000 else 5
        row["old_json_s"], row["old_json_bytes"] = old_json_manifest(
            list(f.manifest), root / "old-json", rounds)
        row["old_json_rounds"] = rounds
    f.manifest.put_many(write_tiny_shard(f.folder / f.names[0], f.first_shard, f.config))
    f.manifest.close()
    for name in f.names[1:]:
        (f.folder / name).touch()  # placeholders: a resume only looks for the file
    row["manifest_bytes"] = (f.folder / "manifest.sqlite").stat().st_size

    sources = video_sources(f.count)
    row["resume_rounds_s"], row["info_rounds_s"] = [], []
    for _ in range(REPEATS):
        before, start = written_bytes(), time.perf_counter()
        report = extract(sources, f.folder, f.config, workers=1, progress=False)
        row["resume_rounds_s"].append(time.perf_counter() - start)
        row["resume_bytes"] = written_bytes() - before
        if report.processed or report.ok != f.count:
            raise SystemExit(f"the resume of {f.count} videos was not a no-op: {report}")
        start = time.perf_counter()
        text = summarize(f.folder).to_text()
        row["info_rounds_s"].append(time.perf_counter() - start)
        if f"{f.count} videos, {f.count} ok" not in text:
            raise SystemExit(f"flowkit info of {f.count} videos says: {text.splitlines()[0]}")
    row["resume_s"], row["info_s"] = median(row["resume_rounds_s"]), median(row["info_rounds_s"])
    return row


# -- 5b, 6, 7: real shards, read in fresh processes ------------------------------------------
def make_shard_folders(root: Path, count: int) -> dict[str, Path]:
    """``count`` 2-frame 32x32 RGB videos as one video a shard, and in FEW_SHARDS shards
    (written by as many processes as there are cores)."""
    sources = video_sources(count)
    folders = {}
    for label, per_shard in (("many", 1), ("few", -(-count // min(FEW_SHARDS, count)))):
        folder = root / f"shards-{label}"
        folder.mkdir()
        TINY_CONFIG.save(folder / CONFIG_NAME)
        entries = [ManifestEntry(s.video_id, str(s.path), s.label,
                                 SHARD_PATTERN.format(i // per_shard))
                   for i, s in enumerate(sources)]
        jobs = [(folder / entries[start].shard, entries[start:start + per_shard], TINY_CONFIG)
                for start in range(0, count, per_shard)]
        with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
            done = [entry for shard in pool.starmap(write_tiny_shard, jobs, chunksize=32)
                    for entry in shard]
        with Manifest.open(folder) as manifest:
            manifest.put_many(done)
        folders[label] = folder
    return folders


def run_child(jobs: Sequence[tuple[str, Path]], items: int = 0) -> list[dict[str, Any]]:
    """``child(mode, folder, items)`` for each (mode, folder) of ``jobs``, in one fresh
    process (torch imported before the clocks)."""
    result = subprocess.run([sys.executable, __file__, "--items", str(items), "--child",
                             *(f"{mode}={folder}" for mode, folder in jobs)],
                            capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"bench/scale.py --child failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(mode: str, folder: Path, items: int) -> dict[str, Any]:
    """``touch``: a new reader reads one frame of every video (see :func:`touch_every_video`);
    ``items``: build a ShardDataset, then read ``items`` random items twice; ``construct``:
    build a ShardDataset and read its first item."""
    import gc

    from flowkit.data.dataset import ShardDataset

    gc.collect()
    if mode == "touch":
        return touch_every_video(folder)
    out: dict[str, Any] = {}
    rss, start = rss_mib(), time.perf_counter()
    dataset = ShardDataset(folder)
    out["dataset_s"] = time.perf_counter() - start
    out["dataset_rss_mib"] = rss_mib() - rss
    dataset[0]
    dataset.reader.close()
    if mode == "items":
        chosen = random.Random(0).sample(range(len(dataset)), min(items, len(dataset)))
        for key in ("item_first_ms", "item_again_ms"):
            times = []
            for index in chosen:
                start = time.perf_counter()
                dataset[index]
                times.append(1e3 * (time.perf_counter() - start))
            out[key] = median(times)
        out["items"] = len(chosen)
        dataset.reader.close()
    return out


def touch_every_video(folder: Path) -> dict[str, Any]:
    """A new reader reads frame 0 of every video: seconds, shard files open after, RSS growth
    from after the first video (which pays the libraries' one-off set-up) to after the last;
    then the time to close up to 20 of the files left open (the reader's own h5py handles, when
    it keeps them in a dict ``_files``); the rest are left to the process's end."""
    from flowkit.store.reader import open_shards

    reader = open_shards(folder)
    videos = reader.videos
    reader[videos[0]].frames[0]
    rss, start = rss_mib(), time.perf_counter()
    for video_id in videos[1:]:
        reader[video_id].frames[0]
    out: dict[str, Any] = {"touch_s": time.perf_counter() - start}
    out["open_h5"] = open_shard_files()
    out["rss_growth_mib"] = rss_mib() - rss
    out["shards_touched"] = len({reader[v].entry.shard for v in videos})
    handles = getattr(reader, "_files", None)
    out["close_ms_per_file"] = None
    if isinstance(handles, dict) and handles:
        some = list(handles.values())[:20]
        start = time.perf_counter()
        for handle in some:
            handle.close()
        out["close_ms_per_file"] = 1e3 * (time.perf_counter() - start) / len(some)
    return out


# -- 8: the fixed cost per video --------------------------------------------------------------
@contextlib.contextmanager
def counting_manifest_transactions() -> Iterator[dict[str, float]]:
    """Seconds, CPU seconds and bytes written inside the manifest's outermost transactions
    (every put_many, the plan), counted by a wrapper the bench installs on
    ``Manifest.transaction`` for the block; the library is not changed."""
    original = Manifest.transaction
    spent = {"s": 0.0, "cpu_s": 0.0, "bytes": 0, "transactions": 0}

    @contextlib.contextmanager
    def transaction(self: Manifest) -> Iterator[None]:
        if self._in_transaction:
            with original(self):
                yield
            return
        written, cpu, start = written_bytes(), cpu_seconds(), time.perf_counter()
        try:
            with original(self):
                yield
        finally:
            spent["s"] += time.perf_counter() - start
            spent["cpu_s"] += cpu_seconds() - cpu
            spent["bytes"] += written_bytes() - written
            spent["transactions"] += 1

    Manifest.transaction = transaction  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        Manifest.transaction = original  # type: ignore[method-assign]


def tiny_extraction(root: Path, count: int, flow: str) -> dict[str, Any]:
    """Extract ``count`` tiny synthetic videos, one a shard, in this process (8.)."""
    from flowkit.flow import get_backend
    from flowkit.store.codec import encode_jpeg
    from flowkit.video.decode import iter_frames
    from flowkit.video.synth import SynthConfig, make_synthetic_videos

    make_synthetic_videos(root / "tiny-videos", SynthConfig(
        num_videos=count, num_frames=2, width=SIZE, height=SIZE, codec="ffv1"))
    sources = collect_videos([root / "tiny-videos"])
    config = dataclasses.replace(TINY_CONFIG, flow=flow, flow_params=None)
    out = root / "tiny-out"
    with counting_manifest_transactions() as manifest:
        written, cpu, start = written_bytes(), cpu_seconds(), time.perf_counter()
        report = extract(sources, out, config, workers=1, videos_per_shard=1, progress=False)
        wall, cpu, written = (time.perf_counter() - start, cpu_seconds() - cpu,
                              written_bytes() - written)
    require_all_ok(report)
    backend = get_backend(flow, config.flow_params) if flow != "none" else None
    work = cpu_seconds()
    for source in sources:  # decoding, flow and encoding alone
        frames = list(iter_frames(source.path, config.decode))
        for frame in frames:
            encode_jpeg(frame, config.storage.jpeg_quality)
        if backend is not None:
            backend(np.stack(frames[:-1]), np.stack(frames[1:]))
    work = cpu_seconds() - work
    shards = sum(path.stat().st_size for path in out.glob("*.h5"))
    size = folder_bytes(out)
    return {"videos": count, "flow": flow, "cpu_s_per_video": cpu / count,
            "wall_s_per_video": wall / count, "work_cpu_s_per_video": work / count,
            "manifest_cpu_s_per_video": manifest["cpu_s"] / count,
            "manifest_s_per_video": manifest["s"] / count,
            "manifest_transactions": manifest["transactions"],
            "bytes_written": written, "manifest_bytes_written": manifest["bytes"],
            "output_bytes": size, "shard_bytes": shards,
            "manifest_bytes": (out / "manifest.sqlite").stat().st_size,
            "write_amplification": written / size}


def progress(started: float, what: str) -> None:
    print(f"[{time.perf_counter() - started:.0f} s: {what}]", file=sys.stderr, flush=True)


# -- the report -------------------------------------------------------------------------------
def size_label(count: int) -> str:
    return f"{count // 1000}k" if count >= 1000 and count % 1000 == 0 else str(count)


def print_tables(result: dict[str, Any], old_max: int) -> dict[str, Any]:
    rows = result["sizes"]
    print(f"machine: {result['machine']}")
    print(f"command: {result['command']}")
    print("| per size | " + " | ".join(f"{size_label(r['videos'])} videos" for r in rows) + " |")
    print("| --- |" + " ---: |" * len(rows))

    def line(label: str, values: list[str]) -> None:
        print(f"| {label} | " + " | ".join(values) + " |")

    def old(r: dict[str, Any], key: str, scale: float, digits: int) -> str:
        if r[key] is not None:
            return f"{r[key] * scale:.{digits}f}"
        return "not run" if r["videos"] > old_max else "-"

    def ratio(r: dict[str, Any], key: str) -> str:
        new = r["bookkeeping_s" if key == "old_json_s" else "bookkeeping_bytes"]
        return "-" if r[key] is None else f"{r[key] / new:.0f}x"

    line("planning: plan_new_videos, s", [f"{r['plan_s']:.2f}" for r in rows])
    line("planning: plan_new_videos, MiB written", [f"{r['plan_bytes'] / 2**20:.1f}"
                                                    for r in rows])
    line("planning: shards_to_run, s", [f"{r['shards_to_run_s']:.2f}" for r in rows])
    line("planning, input shuffled: plan_new_videos, s",
         [f"{r['plan_shuffled_s']:.2f}" for r in rows])
    line("planning, input shuffled: MiB written (database MiB)",
         [f"{r['plan_shuffled_bytes'] / 2**20:.1f} "
          f"({r['plan_shuffled_manifest_bytes'] / 2**20:.1f})" for r in rows])
    line("bookkeeping per finished shard, ms", [f"{1e3 * r['bookkeeping_s']:.1f}" for r in rows])
    line("bookkeeping per finished shard, ms CPU",
         [f"{1e3 * r['bookkeeping_cpu_s']:.1f}" for r in rows])
    line("bookkeeping per finished shard, KiB written",
         [f"{r['bookkeeping_bytes'] / 1024:.0f}" for r in rows])
    line("old JSON manifest per shard, ms", [old(r, "old_json_s", 1e3, 0) for r in rows])
    line("old JSON manifest per shard, KiB written",
         [old(r, "old_json_bytes", 1 / 1024, 0) for r in rows])
    line("old / new, time", [ratio(r, "old_json_s") for r in rows])
    line("old / new, bytes", [ratio(r, "old_json_bytes") for r in rows])
    line("no-op resume (extract), s", [f"{r['resume_s']:.2f}" for r in rows])
    line("flowkit info (summarize + to_text), s", [f"{r['info_s']:.2f}" for r in rows])
    line("ShardDataset(folder), s", [f"{r['dataset_s']:.2f}" for r in rows])
    line("ShardDataset(folder), MiB RSS", [f"{r['dataset_rss_mib']:.0f}" for r in rows])
    line("manifest.sqlite, MiB", [f"{r['manifest_bytes'] / 2**20:.1f}" for r in rows])
    line("(fabricating the ok rows, s)", [f"{r['fabricate_s']:.1f}" for r in rows])
    rounds = ", ".join(f"{size_label(r['videos'])}: {r['bookkeeping_rounds']}/"
                       f"{r['old_json_rounds']}" for r in rows)
    print(f"(medians over shards recorded / old JSON rounds: {rounds}; resume and info: "
          f"{REPEATS} rounds)")
    print("no-op resume rounds, s: " + "; ".join(
        f"{size_label(r['videos'])} " + ", ".join(f"{t:.2f}" for t in r["resume_rounds_s"])
        for r in rows))
    last = [r for r in rows if r["old_json_s"] is not None]
    if last and rows[-1]["old_json_s"] is None:
        ref = last[-1]
        for r in rows:
            if r["old_json_s"] is None:
                factor = r["videos"] / ref["videos"]
                print(f"old JSON at {size_label(r['videos'])}: not run (over the time budget); "
                      f"linear extrapolation from {size_label(ref['videos'])}: "
                      f"~{ref['old_json_s'] * factor:.1f} s and "
                      f"~{ref['old_json_bytes'] * factor / 2**20:.0f} MiB per shard")

    targets: dict[str, Any] = {}
    small, big = rows[0], rows[-1]
    ratios = {key: big[f"bookkeeping_{key}"] / small[f"bookkeeping_{key}"]
              for key in ("s", "cpu_s", "bytes")}
    targets.update(bookkeeping_time_ratio=ratios["s"], bookkeeping_cpu_ratio=ratios["cpu_s"],
                   bookkeeping_bytes_ratio=ratios["bytes"])
    print(f"\nbookkeeping per shard, {size_label(big['videos'])} / {size_label(small['videos'])}: "
          f"time {ratios['s']:.2f}x (CPU {ratios['cpu_s']:.2f}x), bytes {ratios['bytes']:.2f}x "
          "(target <= 2x each)")
    factor = KINETICS_700 / big["videos"]
    shards = KINETICS_700 // VIDEOS_PER_SHARD
    total = (big["plan_s"] + big["shards_to_run_s"]) * factor + shards * big["bookkeeping_s"]
    pairs = KINETICS_700 * (FRAMES_PER_VIDEO - 1)
    basis = "measured" if factor == 1 else f"scaled linearly from {size_label(big['videos'])}"
    print(f"Kinetics-700 estimate: {KINETICS_700} videos x {FRAMES_PER_VIDEO} frames = "
          f"{pairs:.3g} flow pairs; planning + shards_to_run ({basis}) + {shards} shards x "
          f"{1e3 * big['bookkeeping_s']:.1f} ms bookkeeping = {total:.0f} s")
    targets["kinetics700_bookkeeping_s"] = total
    targets["kinetics700_share"] = {}
    for label, rate in FLOW_RATES:
        flow_s = pairs / rate
        share = total / flow_s
        targets["kinetics700_share"][label] = share
        print(f"  flow at {rate:g} pairs/s ({label}): {flow_s / 86400:.1f} days; planning + "
              f"bookkeeping {share:.4%} of it (target < 1%)")
    resume = {r["videos"]: r["resume_s"] for r in rows}
    if KINETICS_700 in resume:
        print(f"no-op resume at 650k: {resume[KINETICS_700]:.1f} s (target < 30 s)")
    else:
        print(f"no-op resume at {size_label(big['videos'])}: {big['resume_s']:.2f} s "
              "(650k not run; target < 30 s at 650k)")

    shards_result = result["shards"]
    many, few = shards_result["many"], shards_result["few"]
    count = shards_result["videos"]
    print(f"\n{count} videos of 2 frames {SIZE}x{SIZE} RGB (JPEG): {many['shards_touched']} "
          f"one-video shards vs the same videos in {few['shards_touched']} shards")
    print(f"| reader | {many['shards_touched']} shards | {few['shards_touched']} shards |")
    print("| --- | ---: | ---: |")
    for label, key, scale, digits in (
            ("ShardDataset(folder), s", "dataset_s", 1, 3),
            (f"item read, first touch, median of {many['items']}, ms", "item_first_ms", 1, 2),
            ("item read again (files open), ms", "item_again_ms", 1, 2),
            ("one frame of every video, s", "touch_s", 1, 2),
            ("open .h5 files after that", "open_h5", 1, 0),
            ("RSS growth after that, MiB", "rss_growth_mib", 1, 1),
            ("then closing a shard file (up to 20 timed), ms", "close_ms_per_file", 1, 2)):
        print(f"| {label} | " + " | ".join(
            "-" if side[key] is None else f"{side[key] * scale:.{digits}f}"
            for side in (many, few)) + " |")
    print(f"reader after touching {many['shards_touched']} shards: {many['open_h5']} open shard "
          f"files (target <= 64), {many['rss_growth_mib']:.0f} MiB more (target <= 100 MB); "
          f"the same videos in {few['shards_touched']} shards: {few['open_h5']} files, "
          f"{few['rss_growth_mib']:.0f} MiB more")

    tiny = result["tiny"]
    per_video = {key: 1e3 * tiny[key] for key in ("cpu_s_per_video", "wall_s_per_video",
                                                  "work_cpu_s_per_video",
                                                  "manifest_cpu_s_per_video",
                                                  "manifest_s_per_video")}
    print(f"\n{tiny['videos']} videos of 2 frames {SIZE}x{SIZE}, one a shard, flow "
          f"{tiny['flow']}, workers=1, per video:")
    print(f"| ms a video | CPU | wall |\n| --- | ---: | ---: |\n"
          f"| whole run | {per_video['cpu_s_per_video']:.1f} | "
          f"{per_video['wall_s_per_video']:.1f} |\n"
          f"| of which manifest transactions ({tiny['manifest_transactions']}) | "
          f"{per_video['manifest_cpu_s_per_video']:.1f} | "
          f"{per_video['manifest_s_per_video']:.1f} |\n"
          f"| decoding, flow and JPEG alone (measured apart) | "
          f"{per_video['work_cpu_s_per_video']:.1f} | - |")
    fixed = per_video["cpu_s_per_video"] - per_video["work_cpu_s_per_video"]
    print(f"fixed cost outside decoding, flow and encoding: {fixed:.1f} ms CPU a video")
    print(f"written {tiny['bytes_written']} bytes ({tiny['manifest_bytes_written']} in manifest "
          f"transactions) for a {tiny['output_bytes']}-byte folder ({tiny['shard_bytes']} in "
          f"shards, manifest {tiny['manifest_bytes']}): write amplification "
          f"{tiny['write_amplification']:.2f}x (target <= 2x)")
    targets["write_amplification"] = tiny["write_amplification"]
    targets["reader_open_h5"] = many["open_h5"]
    targets["reader_rss_growth_mib"] = many["rss_growth_mib"]
    targets["resume_s_largest"] = big["resume_s"]
    return targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", default="1000,10000,100000,650000",
                        help="folder sizes, comma-separated")
    parser.add_argument("--shards", type=int, default=6500,
                        help="one-video shards of the reader study")
    parser.add_argument("--tiny-videos", type=int, default=300)
    parser.add_argument("--tiny-flow", default="farneback", choices=("none", "farneback"))
    parser.add_argument("--items", type=int, default=300, help="random items read per folder")
    parser.add_argument("--old-max", type=int, default=100_000,
                        help="largest size at which the old JSON manifest is timed")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", type=Path, help="build the folders here and keep them")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # MODE=FOLDER ...
    args = parser.parse_args()
    if args.child:
        jobs = [job.split("=", 1) for job in args.child]
        print(json.dumps([child(mode, Path(folder), args.items) for mode, folder in jobs]),
              flush=True)
        os._exit(0)  # not h5py's closing of every file still open, one by one (see touch)
    sizes = sorted(int(size) for size in args.videos.split(","))
    started = time.perf_counter()
    keep = contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory()
    with keep as tmp:
        root = Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        if any(root.iterdir()):
            raise SystemExit(f"{root} is not empty")
        result: dict[str, Any] = {
            "machine": machine(), "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
            "load_average_before": os.getloadavg()}
        result["tiny"] = tiny_extraction(root, args.tiny_videos, args.tiny_flow)
        progress(started, f"{args.tiny_videos} tiny videos extracted")
        folders = make_shard_folders(root, args.shards)
        progress(started, f"{args.shards} videos written as shards")
        touched = run_child([("touch", folders["few"]), ("touch", folders["many"])])
        result["shards"] = {"videos": args.shards, "few": touched[0], "many": touched[1]}
        progress(started, "every shard touched")
        planned = []
        for count in sizes:
            planned.append(plan_folder(root, count))
            progress(started, f"{size_label(count)} videos planned and fabricated")
        record_shards(planned)
        progress(started, "finished shards recorded")
        result["sizes"] = []
        for f in planned:
            result["sizes"].append(finish_folder(root, f, args.old_max))
            progress(started, f"{size_label(f.count)} videos: resume and info measured")
        datasets = run_child([("items", folders["many"]), ("items", folders["few"]),
                              *(("construct", f.folder) for f in planned)], args.items)
        result["shards"]["many"].update(datasets[0])
        result["shards"]["few"].update(datasets[1])
        for row, figures in zip(result["sizes"], datasets[2:]):
            row.update(dataset_s=figures["dataset_s"], dataset_rss_mib=figures["dataset_rss_mib"])
        progress(started, "datasets built")
        result["load_average_after"] = os.getloadavg()
        result["seconds"] = time.perf_counter() - started
        result["targets"] = print_tables(result, args.old_max)
        print(f"load average before {result['load_average_before'][0]:.1f}, after "
              f"{result['load_average_after'][0]:.1f}; whole run {result['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
