"""Checksums (issue 14): bytes flipped on disk in any stored kind are named by verify, refused by
a checking reader, repaired by extract --repair; shards without checksums still read."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from flowkit.cli.main import main
from flowkit.config import ExtractConfig
from flowkit.errors import ChecksumError, ShardError
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.interop import export_rawframes, import_rawframes
from flowkit.store.checksums import fletcher32
from flowkit.store.manifest import MANIFEST_NAME, Manifest
from flowkit.store.reader import open_shards
from flowkit.store.verify import DAMAGED, UNCHECKED, verify
from flowkit.store.writer import StorageConfig, group_name
from flowkit.video.decode import DecodeConfig

VIDEO = "left/left_1.mkv"  # the video whose bytes get damaged
INDEX = 2                  # and the index of its damaged frame or flow

# id: (storage, dataset damaged, what verify calls an item, check=False returns data: True,
# False (the codec refuses), or None (a JPEG decoder may or may not notice, by its release))
KINDS = {
    "rgb-jpeg": (StorageConfig(), "rgb", "frame", None),
    "rgb-raw-none": (StorageConfig(rgb="raw", compression="none"), "rgb", "frame", True),
    "flow-uint8-gzip": (StorageConfig(), "flow", "flow", False),   # zlib's adler32 refuses
    "flow-uint8-lzf": (StorageConfig(compression="lzf"), "flow", "flow", False),  # HDF5 refuses
    "flow-uint8-none": (StorageConfig(compression="none"), "flow", "flow", True),
    "flow-float16": (StorageConfig(flow_dtype="float16"), "flow", "flow", False),
    "flow-jpeg": (StorageConfig(flow_dtype="jpeg"), "flow", "flow", None),
}


@pytest.fixture
def videos(tiny_videos) -> Path:
    """Four lossless 64x48 videos of 5 frames (right_0, left_1, down_2, up_3; conftest)."""
    return tiny_videos


def _extract(videos: Path, out: Path, storage: StorageConfig) -> Path:
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback",
                           storage=storage)
    report = extract(collect_videos([videos]), out, config, workers=1, progress=False,
                     videos_per_shard=4)
    assert report.all_ok
    return out


def _imported(videos: Path, tmp_path: Path) -> Path:
    """Shards packed by flowkit import from MMAction2 folders of JPEG flow."""
    shards = _extract(videos, tmp_path / "source", StorageConfig(flow_dtype="jpeg"))
    export_rawframes(shards, tmp_path / "folders")
    report = import_rawframes([tmp_path / "folders"], tmp_path / "imported", "mmaction2",
                              videos_per_shard=4)
    assert report.all_ok
    return tmp_path / "imported"


def flip_byte(out: Path, video_id: str, name: str, index: int) -> None:
    """Flip one bit in the middle of item ``index``'s stored bytes (a flow's x plane for JPEG
    flow), found with HDF5's chunk offsets: a numeric chunk's bytes before its fletcher32
    trailer, or the global heap object a JPEG item's chunk points to."""
    path = out / Manifest.read(out / MANIFEST_NAME)[video_id].shard
    with h5py.File(path, "r") as handle:
        dataset = handle["videos"][group_name(video_id)][name]
        info = dataset.id.get_chunk_info_by_coord((index,) + (0,) * (dataset.ndim - 1))
        if dataset.dtype.kind == "O":
            start, size = _heap_object(path, info.byte_offset)
            item = dataset[index] if dataset.ndim == 1 else dataset[index, 0]
            assert path.read_bytes()[start:start + size] == item.tobytes()
        else:
            start, size = info.byte_offset, info.size - 4
    offset = start + size // 2
    with open(path, "r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([value ^ 0x10]))


def _heap_object(path: Path, chunk_offset: int) -> tuple[int, int]:
    """(file offset, size) of the data of the first vlen element stored in the chunk at
    ``chunk_offset``: its heap ID (length u32, collection address u64, object index u32) points
    into a global heap collection ("GCOL", version, 3 reserved, size u64, then objects of
    index u16, references u16, 4 reserved, size u64 and data padded to 8 bytes)."""
    raw = path.read_bytes()
    address = int.from_bytes(raw[chunk_offset + 4:chunk_offset + 12], "little")
    wanted = int.from_bytes(raw[chunk_offset + 12:chunk_offset + 16], "little")
    assert raw[address:address + 4] == b"GCOL"
    position = address + 16
    while True:
        number = int.from_bytes(raw[position:position + 2], "little")
        size = int.from_bytes(raw[position + 8:position + 16], "little")
        if number == wanted:
            return position + 16, size
        assert number != 0, "object not in its collection"
        position += 16 + (size + 7) // 8 * 8


def _read(out: Path, name: str, check: bool, index: int = INDEX) -> np.ndarray:
    with open_shards(out, check=check) as reader:
        video = reader[VIDEO]
        return (video.frames if name == "rgb" else video.flows)[index]


@pytest.mark.parametrize("kind", [*KINDS, "imported-flow-jpeg"])
def test_flipped_bytes_are_named_refused_and_documented(videos, tmp_path, kind):
    if kind == "imported-flow-jpeg":
        out, name, item, silent = _imported(videos, tmp_path), "flow", "flow", None
    else:
        storage, name, item, silent = KINDS[kind]
        out = _extract(videos, tmp_path / "out", storage)
    assert verify(out) == []
    clean = _read(out, name, check=True)
    flip_byte(out, VIDEO, name, INDEX)

    problems = verify(out)
    assert [(p.video_id, p.kind) for p in problems] == [(VIDEO, DAMAGED)]
    assert problems[0].text == f"{item} {INDEX} checksum mismatch (shard-00000.h5)"
    with pytest.raises(ChecksumError, match=rf"shard-00000\.h5: video '{VIDEO}' {item} {INDEX}: "
                                            "checksum mismatch"):
        _read(out, name, check=True)
    np.testing.assert_array_equal(_read(out, name, check=True, index=INDEX - 1),
                                  _read(out, name, check=False, index=INDEX - 1))
    if silent is None:  # a JPEG decoder may or may not notice, by its own release's rules
        try:
            assert _read(out, name, check=False).shape == clean.shape
        except ShardError:
            pass
    elif silent:  # without check, the damaged bytes come back as what they decode to
        assert _read(out, name, check=False).shape == clean.shape
    else:       # a codec that checks its own stream refuses them anyway
        with pytest.raises(ShardError):
            _read(out, name, check=False)


def test_uncompressed_damage_reads_back_as_one_wrong_value(videos, tmp_path):
    """Without check, one flipped byte of raw RGB is one wrong value, exactly."""
    out = _extract(videos, tmp_path / "out", StorageConfig(rgb="raw", compression="none"))
    clean = _read(out, "rgb", check=False)
    flip_byte(out, VIDEO, "rgb", INDEX)
    damaged = _read(out, "rgb", check=False)
    assert np.count_nonzero(damaged != clean) == 1
    assert np.abs(damaged.astype(int) - clean).max() == 16


def test_verify_names_every_damaged_index_and_cli_prints_one_line(videos, tmp_path):
    out = _extract(videos, tmp_path / "out", StorageConfig())
    for index in (1, 3):
        flip_byte(out, VIDEO, "rgb", index)
    flip_byte(out, "right/right_0.mkv", "flow", 0)
    assert [str(p) for p in verify(out)] == [
        f"{VIDEO}: frame 1, 3 checksum mismatch (shard-00000.h5)",
        "right/right_0.mkv: flow 0 checksum mismatch (shard-00000.h5)"]
    result = CliRunner().invoke(main, ["verify", str(out), "-q"])
    assert result.exit_code == 1
    assert f"problem: {VIDEO}: frame 1, 3 checksum mismatch (shard-00000.h5)" in result.output
    assert "2 problem(s)" in result.output


def strip_checksums(out: Path, pattern: str = "shard-*.h5") -> None:
    """Rewrite the shards matching ``pattern`` as schema 1 wrote them: no fletcher32 filter,
    no *_crc32 datasets."""
    for path in out.glob(pattern):
        with h5py.File(path, "r+") as handle:
            handle.attrs["schema_version"] = 1
            for group in handle["videos"].values():
                for name in list(group):
                    dataset = group[name]
                    if name.endswith("_crc32"):
                        del group[name]
                    elif dataset.dtype.kind != "O":
                        data, attrs = dataset[()], dict(dataset.attrs)
                        del group[name]
                        group.create_dataset(name, data=data, chunks=(1, *data.shape[1:]),
                                             compression="gzip", compression_opts=1)
                        group[name].attrs.update(attrs)


def test_shards_without_checksums_read_and_verify_with_a_note(videos, tmp_path):
    out = _extract(videos, tmp_path / "out", StorageConfig(rgb="raw"))
    frames, flows = _read(out, "rgb", False, slice(None)), _read(out, "flow", False, slice(None))
    strip_checksums(out)
    problems = verify(out)
    assert [(p.video_id, p.kind) for p in problems] == [(None, UNCHECKED)]
    assert "shard-00000.h5: no checksums stored" in problems[0].text
    np.testing.assert_array_equal(_read(out, "rgb", True, slice(None)), frames)
    np.testing.assert_array_equal(_read(out, "flow", True, slice(None)), flows)
    result = CliRunner().invoke(main, ["verify", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "note: shard-00000.h5: no checksums stored" in result.output
    assert result.output.endswith("all consistent\n")


@pytest.mark.parametrize("damage", ["truncate", "flip_end"])
def test_damaged_shard_file_is_called_damaged(videos, tmp_path, damage):
    out = _extract(videos, tmp_path / "out", StorageConfig())
    path = out / "shard-00000.h5"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:len(data) * 2 // 3]
    else:
        data[-200:-100] = bytes(value ^ 0xFF for value in data[-200:-100])
    path.write_bytes(bytes(data))
    message = r"shard-00000\.h5: damaged or truncated file \(.*\); rerun flowkit extract --repair"
    with pytest.raises(ShardError, match=message):
        open_shards(out).frames(VIDEO)
    problems = verify(out)
    assert {p.video_id for p in problems} == {"down/down_2.mkv", VIDEO, "right/right_0.mkv",
                                              "up/up_3.mkv"}
    assert all(p.kind == DAMAGED and "damaged or truncated file" in p.text for p in problems)


def test_extract_repair_re_extracts_only_the_damaged_video(videos, tmp_path):
    options = ["--flow", "farneback", "--short-side", "0", "--workers", "1", "-q"]
    out, clean = tmp_path / "out", tmp_path / "clean"
    assert CliRunner().invoke(main, ["extract", str(videos), "--out", str(out), *options]
                              ).exit_code == 0
    shutil.copytree(out, clean)
    flip_byte(out, VIDEO, "rgb", 1)
    assert [p.video_id for p in verify(out)] == [VIDEO]

    result = CliRunner().invoke(main, ["extract", str(videos), "--out", str(out), "--repair",
                                       *options])
    assert result.exit_code == 0, result.output
    assert f"repaired: {VIDEO}" in result.output
    assert "this run: 1 videos" in result.output
    assert verify(out) == []
    repaired, reference = open_shards(out, check=True), open_shards(clean)
    assert repaired.manifest[VIDEO].shard not in {e.shard for e in reference.manifest}
    for video_id in reference.videos:
        np.testing.assert_array_equal(repaired.frames(video_id), reference.frames(video_id))
        np.testing.assert_array_equal(repaired.flows(video_id), reference.flows(video_id))
    again = CliRunner().invoke(main, ["extract", str(videos), "--out", str(out), "--repair",
                                      *options])
    assert "repaired:" not in again.output and "this run: 0 videos" in again.output


def test_fletcher32_equals_hdf5s_on_large_and_odd_chunks(tmp_path):
    """Sums kept in 64 bits give HDF5's folded 32-bit result, also past its 360-word blocks."""
    rng = np.random.default_rng(1)
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        for size in (1, 7, 721, 300_001):
            data = rng.integers(0, 256, (1, size), dtype=np.uint8)
            data[0, :size // 2] = 255  # long runs of the largest words
            dataset = handle.create_dataset(f"d{size}", data=data, chunks=(1, size),
                                            fletcher32=True)
            stored = dataset.id.read_direct_chunk((0, 0))[1]
            assert fletcher32(stored[:-4]) == int.from_bytes(stored[-4:], "little"), size


def test_dataset_passes_check_to_its_reader(videos, tmp_path):
    from flowkit.data import ShardDataset

    out = _extract(videos, tmp_path / "out", StorageConfig())
    for index in range(5):
        flip_byte(out, VIDEO, "rgb", index)
    position = [video_id for video_id, _ in ShardDataset(out).items].index(VIDEO)
    assert ShardDataset(out)[position]["rgb"].shape[-2:] == (48, 64)  # C, H, W
    with pytest.raises(ChecksumError, match=f"video '{VIDEO}' frame"):
        ShardDataset(out, check=True)[position]
