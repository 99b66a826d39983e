"""Export to and import from MMAction2 / denseflow rawframe folders, and the round trip."""

from __future__ import annotations

import json
import shutil

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from flowkit.cli.main import EXIT_SOME_FAILED, EXIT_USAGE, main
from flowkit.config import ExtractConfig
from flowkit.errors import ConfigError, InputError, OutputError
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.interop import export_rawframes, import_rawframes, video_folder
from flowkit.interop.layouts import EXPORT_INFO_NAME
from flowkit.store.codec import decode_jpeg, encode_jpeg, quantize_flow
from flowkit.store.manifest import MANIFEST_NAME, Manifest
from flowkit.store.reader import open_shards
from flowkit.store.verify import verify
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig

# tiny_videos in manifest order; labels 0..3 in this order.
IDS = ["right/right_0.mkv", "left/left_1.mkv", "down/down_2.mkv", "up/up_3.mkv"]


def _extract(videos, out, flow_dtype: str, rgb: str = "jpeg"):
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback",
                           storage=StorageConfig(flow_dtype=flow_dtype, rgb=rgb))
    report = extract(collect_videos([videos / "labels.txt"]), out, config, workers=1,
                     progress=False)
    assert report.all_ok
    return out


@pytest.fixture(scope="module")
def jpeg_shards(tiny_videos, tmp_path_factory):
    """Shards of the four tiny videos, RGB and flow stored as JPEG, labels 0-3."""
    return _extract(tiny_videos, tmp_path_factory.mktemp("jpeg_shards"), "jpeg")


def _same_jpeg_data(left, right) -> None:
    with open_shards(left) as a, open_shards(right) as b:
        assert sorted(a.videos) == sorted(b.videos)
        for vid in a.videos:
            va, vb = a[vid], b[vid]
            assert len(va.frames) == len(vb.frames) and len(va.flows) == len(vb.flows)
            for k in range(len(va.frames)):
                assert va.frames.jpeg_bytes(k) == vb.frames.jpeg_bytes(k)
            for k in range(len(va.flows)):
                assert va.flows.jpeg_bytes(k) == vb.flows.jpeg_bytes(k)
            np.testing.assert_array_equal(va.flows.quantized(slice(None)),
                                          vb.flows.quantized(slice(None)))
            assert a.info(vid)["label"] == b.info(vid)["label"]


def test_mmaction2_export_names_are_1_based_with_a_list(jpeg_shards, tmp_path):
    """mmaction2: img_00001..img_00005, x/y_00001..00004 per video folder; list lines."""
    out = export_rawframes(jpeg_shards, tmp_path / "mm", "mmaction2")
    folder = out / "right" / "right_0"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ([f"img_{i:05d}.jpg" for i in range(1, 6)]
                     + [f"x_{i:05d}.jpg" for i in range(1, 5)]
                     + [f"y_{i:05d}.jpg" for i in range(1, 5)])
    lines = (out / "rawframes_list.txt").read_text().splitlines()
    assert lines == [f"{vid.rsplit('.', 1)[0]} 5 {label}" for label, vid in enumerate(IDS)]
    info = json.loads((out / "flowkit_export.json").read_text())
    assert (info["layout"], info["bound"], info["flow_step"]) == ("mmaction2", 20.0, 1)
    assert info["videos"]["right/right_0"] == "right/right_0.mkv"


def _mmaction2_frame_indices(total: int, clip_len: int, num_clips: int, interval: int,
                             test_mode: bool, rng: np.random.Generator) -> np.ndarray:
    """The 1-based file indices MMAction2 1.2's SampleFrames (out_of_bound_opt "loop",
    keep_tail_frames False) gives RawFrameDecode for a list entry of ``total`` frames."""
    if test_mode:
        span = (clip_len - 1) * interval + 1
        max_offset = max(total - span, 0)
        offsets = (np.round(np.arange(num_clips) * max_offset / (num_clips - 1)).astype(int)
                   if num_clips > 1 else np.array([max_offset // 2]))
    else:
        span = clip_len * interval
        average = (total - span + 1) // num_clips
        if average > 0:
            offsets = np.arange(num_clips) * average + rng.integers(average, size=num_clips)
        elif total > max(num_clips, span):
            offsets = np.sort(rng.integers(total - span + 1, size=num_clips))
        elif average == 0:
            offsets = np.around(np.arange(num_clips) * (total - span + 1.0) / num_clips)
        else:
            offsets = np.zeros(num_clips, dtype=int)
    indices = offsets[:, None] + np.arange(clip_len)[None, :] * interval
    return np.mod(indices, total).astype(int).reshape(-1) + 1  # RawframeDataset start_index 1


# (clip_len, num_clips, frame_interval, test_mode) of the TSN and I3D configs MMAction2 ships.
_MMACTION2_PIPELINES = [(1, 3, 1, False), (1, 25, 1, True), (5, 3, 1, False), (5, 3, 1, True),
                        (5, 25, 1, True), (32, 1, 2, False), (32, 10, 2, True)]


@pytest.mark.parametrize("pipeline", _MMACTION2_PIPELINES)
def test_mmaction2_sampling_finds_every_file_with_the_lists_we_export(jpeg_shards, tmp_path,
                                                                      pipeline):
    """RGB pipelines read img_ files by rawframes_list.txt, Flow pipelines x_/y_ files by
    rawframes_list_flow.txt; every index MMAction2 can draw names a file that is there. With the
    frame count (the old single list) the Flow test pipeline asked for a file one past the end."""
    out = export_rawframes(jpeg_shards, tmp_path / "mm", "mmaction2")
    clip_len, num_clips, interval, test_mode = pipeline
    rng = np.random.default_rng(0)
    for list_name, prefixes in (("rawframes_list.txt", ["img_"]),
                                ("rawframes_list_flow.txt", ["x_", "y_"])):
        for line in (out / list_name).read_text().splitlines():
            folder, total, _ = line.split()
            for _ in range(1 if test_mode else 20):
                for index in _mmaction2_frame_indices(int(total), clip_len, num_clips, interval,
                                                      test_mode, rng):
                    for prefix in prefixes:
                        assert (out / folder / f"{prefix}{index:05d}.jpg").is_file()
    frames_as_total = _mmaction2_frame_indices(5, 5, 3, 1, True, rng)
    assert not all((out / "up" / "up_3" / f"x_{i:05d}.jpg").is_file() for i in frames_as_total)


def test_flow_list_counts_flows_and_is_absent_without_flow(jpeg_shards, tiny_videos, tmp_path):
    out = export_rawframes(jpeg_shards, tmp_path / "mm", "mmaction2")
    lines = (out / "rawframes_list_flow.txt").read_text().splitlines()
    assert lines == [f"{vid.rsplit('.', 1)[0]} 4 {label}" for label, vid in enumerate(IDS)]
    rgb_only = tmp_path / "rgb_only"
    extract(collect_videos([tiny_videos / "labels.txt"]), rgb_only,
            ExtractConfig(decode=DecodeConfig(short_side=None), flow="none"), workers=1,
            progress=False)
    out = export_rawframes(rgb_only, tmp_path / "rgb_frames", "mmaction2")
    assert (out / "rawframes_list.txt").is_file()
    assert not (out / "rawframes_list_flow.txt").exists()


def test_denseflow_export_names_are_0_based_and_bytes_are_stored_ones(jpeg_shards, tmp_path):
    """denseflow: img_00000.., flow_x_00000..; files are the stored JPEG bytes exactly."""
    out = export_rawframes(jpeg_shards, tmp_path / "df", "denseflow", videos=["up/up_3.mkv"])
    folder = out / "up" / "up_3"
    assert sorted(p.name for p in folder.glob("img_*")) == [f"img_{i:05d}.jpg" for i in range(5)]
    assert len(list(folder.glob("flow_x_*"))) == len(list(folder.glob("flow_y_*"))) == 4
    with open_shards(jpeg_shards) as reader:
        video = reader["up/up_3.mkv"]
        assert (folder / "img_00004.jpg").read_bytes() == video.frames.jpeg_bytes(4)
        x, y = video.flows.jpeg_bytes(3)
        assert (folder / "flow_x_00003.jpg").read_bytes() == x
        assert (folder / "flow_y_00003.jpg").read_bytes() == y
    assert (out / "rawframes_list.txt").read_text().splitlines() == ["up/up_3 5 3"]


@pytest.mark.parametrize("layout", ["mmaction2", "denseflow"])
def test_export_then_import_gives_back_identical_bytes_ids_and_labels(jpeg_shards, tmp_path,
                                                                      layout):
    """Round trip: same ids, labels, JPEG bytes, quantised flow; import records its settings."""
    frames = export_rawframes(jpeg_shards, tmp_path / "frames", layout)
    report = import_rawframes([frames], tmp_path / "back", layout)
    assert (report.ok, report.failed, report.notes) == (4, [], [])
    _same_jpeg_data(jpeg_shards, tmp_path / "back")
    assert verify(tmp_path / "back") == []
    config = json.loads((tmp_path / "back" / "extract_config.json").read_text())
    assert config["flow"] == "imported"
    assert config["flow_params"]["layout"] == layout
    assert config["flow_params"]["source_backend"] == "farneback"
    assert config["storage"]["flow_dtype"] == "jpeg" and config["storage"]["bound"] == 20.0
    with open_shards(tmp_path / "back") as reader:
        attrs = reader.shard_attrs(reader["up/up_3.mkv"].entry.shard)
        assert (attrs["flow_backend"], attrs["bound"], attrs["flow_dtype"]) == (
            "imported", 20.0, "jpeg")


def test_uint8_flow_exports_to_jpegs_within_a_few_levels(tiny_videos, tmp_path):
    """uint8-stored flow becomes grayscale JPEGs whose decoded values are close to the stored."""
    shards = _extract(tiny_videos, tmp_path / "u8", "uint8")
    out = export_rawframes(shards, tmp_path / "frames", "mmaction2", videos=["left/left_1.mkv"])
    with open_shards(shards) as reader:
        stored = reader["left/left_1.mkv"].flows.quantized(slice(None))
    for k in range(len(stored)):
        for axis, prefix in enumerate("xy"):
            image = cv2.imread(str(out / "left" / "left_1" / f"{prefix}_{k + 1:05d}.jpg"),
                               cv2.IMREAD_UNCHANGED)
            assert image.ndim == 2
            diff = np.abs(image.astype(int) - stored[k, ..., axis].astype(int))
            assert diff.max() <= 4, (k, prefix, diff.max())


def test_raw_rgb_and_float16_flow_are_encoded(tiny_videos, tmp_path):
    """Raw RGB becomes colour JPEGs; float16 flow is quantised with the stored bound."""
    shards = _extract(tiny_videos, tmp_path / "f16", "float16", rgb="raw")
    out = export_rawframes(shards, tmp_path / "frames", "denseflow", videos=[IDS[0]])
    folder = out / "right" / "right_0"
    with open_shards(shards) as reader:
        video = reader[IDS[0]]
        jpeg = (folder / "img_00002.jpg").read_bytes()
        assert jpeg == encode_jpeg(video.frames[2], 95).tobytes()
        assert decode_jpeg(jpeg).shape == (48, 64, 3)
        expected = quantize_flow(video.flows[1], 20.0)
    image = cv2.imread(str(folder / "flow_y_00001.jpg"), cv2.IMREAD_UNCHANGED)
    assert np.abs(image.astype(int) - expected[..., 1].astype(int)).max() <= 4
    with pytest.raises(InputError, match="no video"):
        export_rawframes(shards, tmp_path / "x", "denseflow", videos=["missing.mkv"])


def test_foreign_folders_need_a_bound_and_take_labels_from_a_list(jpeg_shards, tmp_path):
    """Without flowkit_export.json the bound must be given; --labels sets labels by folder."""
    frames = export_rawframes(jpeg_shards, tmp_path / "frames", "denseflow")
    (frames / "flowkit_export.json").unlink()
    (frames / "rawframes_list.txt").unlink()
    with pytest.raises(ConfigError, match="bound"):
        import_rawframes([frames], tmp_path / "back", "denseflow")
    labels = tmp_path / "labels.txt"
    labels.write_text("up/up_3 5 7\nleft/left_1 5 -1\n")
    report = import_rawframes([frames], tmp_path / "back", "denseflow", 15.0, labels=labels)
    assert report.ok == 4
    entries = {e.video_id: e for e in Manifest.read(tmp_path / "back" / MANIFEST_NAME)}
    assert set(entries) == {"down/down_2", "left/left_1", "right/right_0", "up/up_3"}
    assert (entries["up/up_3"].label, entries["left/left_1"].label,
            entries["down/down_2"].label) == (7, None, None)
    with h5py.File(tmp_path / "back" / entries["up/up_3"].shard) as f:
        assert f.attrs["bound"] == 15.0
    # One video's folder given directly: its id is the folder name.
    single = import_rawframes([frames / "up" / "up_3"], tmp_path / "one", "denseflow", 20.0)
    assert [e.video_id for e in Manifest.read(tmp_path / "one" / MANIFEST_NAME)] == ["up_3"]
    assert single.ok == 1


def test_corrupt_jpeg_and_unpaired_flow_fail_only_their_video(jpeg_shards, tmp_path):
    """A truncated image and an x/y count mismatch fail those videos, naming the folder."""
    frames = export_rawframes(jpeg_shards, tmp_path / "frames", "mmaction2")
    bad = frames / "left" / "left_1" / "img_00003.jpg"
    bad.write_bytes(bad.read_bytes()[:100])
    (frames / "up" / "up_3" / "y_00004.jpg").unlink()
    report = import_rawframes([frames], tmp_path / "back", "mmaction2")
    assert report.ok == 2
    errors = {e.video_id: e.error for e in report.failed}
    assert set(errors) == {"left/left_1.mkv", "up/up_3.mkv"}
    assert "img_00003.jpg" in errors["left/left_1.mkv"] and "corrupt" in errors["left/left_1.mkv"]
    assert str(frames / "up" / "up_3") in errors["up/up_3.mkv"]
    assert "4 x_* files but 3 y_* files" in errors["up/up_3.mkv"]
    with open_shards(tmp_path / "back") as reader:
        assert sorted(reader.videos) == ["down/down_2.mkv", "right/right_0.mkv"]
    assert verify(tmp_path / "back") == []


def test_an_output_error_stops_the_import_instead_of_failing_videos(jpeg_shards, tmp_path,
                                                                   monkeypatch):
    """A full disk while packing is not the videos' fault: the import stops with the
    OutputError (it used to record every video after it as failed, and keep the shard)."""
    import errno
    import os

    from flowkit.store import writer

    frames = export_rawframes(jpeg_shards, tmp_path / "frames", "mmaction2")

    def full(self, item):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer._GrowingDataset, "_append", full)
    with pytest.raises(OutputError, match="cannot write: no space left on the device"):
        import_rawframes([frames], tmp_path / "back", "mmaction2")
    assert not list((tmp_path / "back").glob("*.h5*"))


def test_a_repeated_last_flow_is_dropped_and_noted(jpeg_shards, tmp_path):
    """N flows for N frames (tools that repeat the last): N-1 kept, the count recorded."""
    frames = export_rawframes(jpeg_shards, tmp_path / "frames", "mmaction2",
                              videos=["right/right_0.mkv"])
    folder = frames / "right" / "right_0"
    for prefix in "xy":
        shutil.copy(folder / f"{prefix}_00004.jpg", folder / f"{prefix}_00005.jpg")
    report = import_rawframes([frames], tmp_path / "back", "mmaction2")
    assert report.ok == 1 and len(report.notes) == 1 and "dropped" in report.notes[0]
    with open_shards(tmp_path / "back") as reader:
        video = reader["right/right_0.mkv"]
        assert len(video.flows) == 4 and video.attrs["source_num_flows"] == 5


def test_cli_export_and_import_round_trip(jpeg_shards, tmp_path):
    """flowkit export / import: exit 0 and a round trip; a corrupt video gives exit 1."""
    runner = CliRunner()
    frames, back = tmp_path / "frames", tmp_path / "back"
    result = runner.invoke(main, ["export", str(jpeg_shards), "--out", str(frames),
                                  "--layout", "denseflow"])
    assert result.exit_code == 0, result.output
    assert "4 videos in denseflow layout" in result.output
    result = runner.invoke(main, ["import", str(frames), "--layout", "denseflow",
                                  "--bound", "20", "--out", str(back)])
    assert result.exit_code == 0, result.output
    assert "4 videos, 4 ok, 0 failed" in result.output
    _same_jpeg_data(jpeg_shards, back)
    result = runner.invoke(main, ["import", str(frames), "--layout", "denseflow",
                                  "--out", str(back)])
    assert result.exit_code == EXIT_USAGE and "already holds flowkit output" in result.output
    (frames / "down" / "down_2" / "flow_x_00001.jpg").write_bytes(b"not a jpeg")
    result = runner.invoke(main, ["import", str(frames), "--layout", "denseflow",
                                  "--out", str(back), "--overwrite"])
    assert result.exit_code == EXIT_SOME_FAILED
    assert "failed: down/down_2.mkv" in result.output and "flow_x_00001.jpg" in result.output


def test_an_imported_folder_can_be_inspected_but_not_extracted_into(jpeg_shards, tmp_path,
                                                                     tiny_videos):
    """info and verify work on imported shards; extract into them is a usage error (exit 2)."""
    runner = CliRunner()
    export_rawframes(jpeg_shards, tmp_path / "frames", layout="mmaction2")
    import_rawframes([tmp_path / "frames"], tmp_path / "back", "mmaction2")
    result = runner.invoke(main, ["info", str(tmp_path / "back")])
    assert result.exit_code == 0, result.output
    assert "4 videos, 4 ok" in result.output and 'flow="imported"' in result.output
    assert json.loads(runner.invoke(main, ["info", str(tmp_path / "back"), "--json"]).output)[
        "config"]["flow"] == "imported"
    result = runner.invoke(main, ["extract", str(tiny_videos), "--out", str(tmp_path / "back"),
                                  "--short-side", "0", "-q"])
    assert result.exit_code == EXIT_USAGE and "other settings" in result.output


def test_import_takes_the_layout_from_flowkit_export_json(jpeg_shards, tmp_path):
    """`flowkit import FOLDER --out DIR` needs no --layout where flowkit export recorded it (as
    --bound); without flowkit_export.json it is a one-line usage error asking for --layout."""
    frames = export_rawframes(jpeg_shards, tmp_path / "frames", "denseflow")
    result = CliRunner().invoke(main, ["import", str(frames), "--out", str(tmp_path / "back")])
    assert result.exit_code == 0, result.output
    assert "4 videos, 4 ok, 0 failed" in result.output
    (frames / EXPORT_INFO_NAME).unlink()
    result = CliRunner().invoke(main, ["import", str(frames), "--bound", "20",
                                       "--out", str(tmp_path / "again")])
    assert result.exit_code == EXIT_USAGE and not (tmp_path / "again").exists()
    assert result.stderr.splitlines() == [
        "flowkit: error: the layout is not recorded in rawframe folders without "
        f"{EXPORT_INFO_NAME}: give it (--layout mmaction2 or denseflow)"]


@pytest.fixture(scope="module")
def uint8_shards(tiny_videos, tmp_path_factory):
    """Shards of the four tiny videos, RGB as JPEG, flow as uint8 (the default storage)."""
    return _extract(tiny_videos, tmp_path_factory.mktemp("uint8_shards"), "uint8")


def _read_planes(folder, prefixes, k: int, ext: str) -> np.ndarray:
    """Flow file k (0-based) read as MMAction2's RawFrameDecode reads it (grayscale)."""
    return np.stack([cv2.imread(str(folder / f"{prefix}{k:05d}.{ext}"), cv2.IMREAD_GRAYSCALE)
                     for prefix in prefixes], axis=-1)


@pytest.mark.parametrize("layout", ["mmaction2", "denseflow"])
def test_png_flow_export_and_import_give_back_the_stored_uint8_exactly(uint8_shards, tmp_path,
                                                                       layout):
    """--flow-format png: x/y planes as PNG files that read back as the stored uint8 values,
    every one (JPEG at quality 95 moves some); the import stores them as uint8, equal to the
    source, with the RGB JPEG bytes unchanged; flowkit_export.json names the .png files."""
    out = export_rawframes(uint8_shards, tmp_path / "png", layout, flow_format="png")
    jpeg = export_rawframes(uint8_shards, tmp_path / "jpeg", layout)
    first = 1 if layout == "mmaction2" else 0
    prefixes = ("x_", "y_") if layout == "mmaction2" else ("flow_x_", "flow_y_")
    moved = 0
    with open_shards(uint8_shards) as reader:
        for vid in IDS:
            folder = video_folder(vid)
            stored = reader[vid].flows.quantized(slice(None))
            assert sorted(p.name for p in (out / folder).glob("*.png")) == sorted(
                f"{prefix}{k + first:05d}.png" for prefix in prefixes for k in range(4))
            assert not list((out / folder).glob(f"{prefixes[0]}*.jpg"))
            for k in range(len(stored)):
                np.testing.assert_array_equal(
                    _read_planes(out / folder, prefixes, k + first, "png"), stored[k])
                moved += int(np.count_nonzero(
                    _read_planes(jpeg / folder, prefixes, k + first, "jpg") != stored[k]))
    assert moved > 0  # the JPEG export is lossy on these very videos
    info = json.loads((out / EXPORT_INFO_NAME).read_text())
    assert (info["flow_format"], info["flow_jpeg_quality"]) == ("png", None)
    assert info["names"]["flow_x"] == f"{prefixes[0]}{{:05d}}.png"
    report = import_rawframes([out], tmp_path / "back", None)
    assert (report.ok, report.failed, report.notes) == (4, [], [])
    assert verify(tmp_path / "back") == []
    with open_shards(uint8_shards) as source, open_shards(tmp_path / "back") as back:
        assert back.shard_attrs(back[IDS[0]].entry.shard)["flow_dtype"] == "uint8"
        for vid in IDS:
            np.testing.assert_array_equal(back[vid].flows.quantized(slice(None)),
                                          source[vid].flows.quantized(slice(None)))
            assert [back[vid].frames.jpeg_bytes(k) for k in range(5)] == [
                source[vid].frames.jpeg_bytes(k) for k in range(5)]
            assert back.info(vid)["label"] == source.info(vid)["label"]


def test_png_export_of_jpeg_stored_flow_holds_its_decoded_values(jpeg_shards, tmp_path):
    """Flow stored as JPEG exports as PNG of its decoded planes (what a reader of the shards
    gets), not as its JPEG bytes; an export over a JPEG one with overwrite leaves no .jpg
    flow behind."""
    export_rawframes(jpeg_shards, tmp_path / "out", "mmaction2", videos=[IDS[1]])
    out = export_rawframes(jpeg_shards, tmp_path / "out", "mmaction2", videos=[IDS[1]],
                           flow_format="png", overwrite=True)
    folder = out / video_folder(IDS[1])
    assert not list(folder.glob("x_*.jpg")) and len(list(folder.glob("x_*.png"))) == 4
    with open_shards(jpeg_shards) as reader:
        stored = reader[IDS[1]].flows.quantized(slice(None))
    for k in range(4):
        np.testing.assert_array_equal(_read_planes(folder, ("x_", "y_"), k + 1, "png"),
                                      stored[k])


def test_an_import_refuses_jpeg_and_png_flow_together(jpeg_shards, tmp_path):
    """JPEG flow folders and PNG flow folders in one import: one line naming one of each; a
    folder mixing both fails only itself; a truncated PNG fails its video naming the file."""
    jpeg = export_rawframes(jpeg_shards, tmp_path / "jpeg", "mmaction2", videos=[IDS[0]])
    png = export_rawframes(jpeg_shards, tmp_path / "png", "mmaction2", videos=[IDS[1]],
                           flow_format="png")
    with pytest.raises(InputError, match="holds JPEG flow images and .* PNG ones"):
        import_rawframes([jpeg, png], tmp_path / "back", None)
    both = export_rawframes(jpeg_shards, tmp_path / "both", "mmaction2", flow_format="png")
    shutil.copy(jpeg / "right" / "right_0" / "x_00001.jpg", both / "left" / "left_1")
    (both / "up" / "up_3" / "y_00002.png").write_bytes(
        (both / "up" / "up_3" / "y_00002.png").read_bytes()[:-20])
    report = import_rawframes([both], tmp_path / "back2", None)
    failed = {entry.video_id: entry.error for entry in report.failed}
    assert report.ok == 2 and set(failed) == {IDS[1], IDS[3]}
    assert "x_00001.jpg: flow images of one import must all be PNG" in failed[IDS[1]]
    assert "y_00002.png: corrupt or truncated PNG" in failed[IDS[3]]
    with pytest.raises(ConfigError, match="flow image format must be one of jpeg, png"):
        export_rawframes(jpeg_shards, tmp_path / "bad", "mmaction2", flow_format="webp")


def test_cli_export_flow_format_png(uint8_shards, tmp_path):
    """flowkit export --flow-format png writes .png flow planes; its help says why."""
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(uint8_shards), "--out", str(tmp_path / "f"),
                                  "--flow-format", "png", "--video", IDS[0]])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "f" / "right" / "right_0").glob("x_*.png"))) == 4
    help_text = " ".join(runner.invoke(main, ["export", "--help"]).output.split())
    assert "png (lossless" in help_text and "{}_{:05d}.png" in help_text
