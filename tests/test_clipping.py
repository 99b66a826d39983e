"""Clipping made visible: flow statistics recorded at extraction and import, shown by
``flowkit info`` (text and JSON) and the preview legend; folders without them read as unknown."""

from __future__ import annotations

import json
import math
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from flowkit.cli.main import main
from flowkit.config import ExtractConfig
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.flow import get_backend
from flowkit.interop.export import export_rawframes
from flowkit.interop.pack import import_rawframes
from flowkit.preview import legend_panel
from flowkit.store.flowstats import (ATTR_PREFIX, MAGNITUDE_EDGES, FlowStats, bin_labels,
                                     flow_stats, quantized_flow_stats)
from flowkit.store.manifest import MANIFEST_NAME, Manifest
from flowkit.store.reader import open_shards
from flowkit.store.summary import LINE_WIDTH
from flowkit.store.writer import StorageConfig, group_name
from helpers import make_legacy_manifest
from flowkit.video.decode import DecodeConfig, iter_frames
from flowkit.video.synth import moving_texture, write_video

DX = 3.0  # px per frame: beyond a bound of 2, well within 20
VIDEO = "right/fast.mkv"


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    """A 64x48 lossless video of 5 frames sliding 3 px right per frame, extracted with
    Farneback flow at bound 2 and 20 (uint8) and 2 (float16); and its float flow, computed
    here independently of extraction."""
    root = tmp_path_factory.mktemp("clipping")
    write_video(root / "videos" / VIDEO, moving_texture(64, 48, DX, 0.0, 5), 25.0, "ffv1")
    out = {}
    for name, storage in (("b2", StorageConfig(bound=2.0)), ("b20", StorageConfig(bound=20.0)),
                          ("f16", StorageConfig(bound=2.0, flow_dtype="float16"))):
        out[name] = root / name
        extract(collect_videos([root / "videos"]), out[name],
                ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback",
                              storage=storage), workers=1, progress=False)
    frames = np.stack(list(iter_frames(root / "videos" / VIDEO, DecodeConfig(short_side=None))))
    out["flow"] = get_backend("farneback")(frames[:-1], frames[1:])
    out["root"] = root
    return out


def _info(*args) -> str:
    result = CliRunner().invoke(main, ["info", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_flow_stats_counts_components_and_bins_lengths():
    flow = np.array([[[0.0, 0.0], [0.3, -0.4], [3.0, 4.0], [-20.0, 0.0], [100.0, 0.1]]],
                    dtype=np.float32)  # lengths 0, 0.5, 5, 20, 100
    stats = flow_stats(flow, bound=20.0)
    assert (stats.components, stats.clipped) == (10, 2)  # -20 (at the bound) and 100
    assert stats.histogram == (1, 1, 0, 0, 1, 0, 1, 0, 1)
    assert stats.max_magnitude == pytest.approx(100.00005)
    assert stats.clipped_share == 0.2
    total = stats + flow_stats(flow[:, :1], 20.0)
    assert (total.components, total.histogram[0]) == (12, 2)
    assert FlowStats.from_json(stats.to_json()) == stats
    assert FlowStats.from_attrs(stats.to_attrs()) == stats
    assert FlowStats.from_json(None) is None and FlowStats.from_attrs({}) is None
    assert FlowStats(20.0).clipped_share is None
    assert bin_labels()[0] == "<0.5" and bin_labels()[-1] == ">=64"
    # Imported flow has no float flow: saturated stored values (0 and 255) are the clipped ones.
    quantized = np.array([[[0, 128], [255, 127]]], dtype=np.uint8)
    assert quantized_flow_stats(quantized, 20.0).clipped == 2


@pytest.mark.parametrize("name, bound", [("b2", 2.0), ("b20", 20.0), ("f16", 2.0)])
def test_extraction_records_the_stats_of_the_float_flow(fast, name, bound):
    flow = fast["flow"]
    clipped = np.count_nonzero(np.abs(flow) >= bound)
    histogram, _ = np.histogram(np.hypot(flow[..., 0], flow[..., 1]), bins=MAGNITUDE_EDGES)
    entry = Manifest.read(fast[name] / MANIFEST_NAME)[VIDEO]
    stats = FlowStats.from_json(entry.flow_stats)
    assert stats == FlowStats(bound, flow.size, clipped, stats.max_magnitude, tuple(histogram))
    assert stats.max_magnitude == pytest.approx(np.hypot(flow[..., 0], flow[..., 1]).max())
    assert sum(stats.histogram) == stats.components // 2 == 4 * 48 * 64
    with open_shards(fast[name]) as reader:
        assert reader[VIDEO].flow_stats == stats  # the group attributes say the same
    if bound == 2.0:  # u (3 px) beyond the bound nearly everywhere, v (0 px) nowhere
        assert 0.45 < stats.clipped_share <= 0.5
        assert np.count_nonzero(np.abs(flow[..., 0]) >= 2) == clipped
    else:
        assert stats.clipped == 0
    assert sum(stats.histogram[3:5]) > 0.9 * sum(stats.histogram)  # mostly 2-8 px long


def test_info_shows_the_clipped_share_histogram_and_most_clipped_videos(fast):
    stats = FlowStats.from_json(Manifest.read(fast["b2"] / MANIFEST_NAME)[VIDEO].flow_stats)
    text = _info(fast["b2"])
    assert (f"  flow clipped at +-2 px: {stats.clipped_share:.2%} of {stats.components} "
            f"components; largest |flow| {stats.max_magnitude:.3g} px") in text
    pixels = stats.components // 2
    assert f"  |flow| px: <0.5 {stats.histogram[0] / pixels:.1%}, 0.5-1" in text
    assert ">=64 0.0%" in text and max(map(len, text.splitlines())) <= LINE_WIDTH  # wrapped
    assert f"most clipped at +-2 px (share of their flow components):\n  {VIDEO}: " \
           f"{stats.clipped_share:.2%}" in text
    assert (f"  flow beyond +-2 px (float16: stored unclipped): {stats.clipped_share:.2%}"
            in _info(fast["f16"]))
    assert "flow clipped at +-20 px: 0.00%" in _info(fast["b20"])
    assert "most clipped" not in _info(fast["b20"])

    document = json.loads(_info(fast["b2"], "--json"))
    total = document["flow_stats"]
    assert total["videos_known"] == 1 and total["videos_unknown"] == 0
    assert total["clipped"] == stats.clipped and total["histogram"] == list(stats.histogram)
    assert total["clipped_share"] == pytest.approx(stats.clipped_share)
    assert total["magnitude_edges_px"] == [*MAGNITUDE_EDGES[:-1], None]
    video = document["videos"][0]["flow_stats"]
    assert video == {**stats.to_json(), "clipped_share": stats.clipped_share}


def test_folders_without_recorded_stats_are_unknown_and_the_preview_counts(fast, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(fast["b2"], old)
    entry = Manifest.read(old)[VIDEO]
    stats = FlowStats.from_json(entry.flow_stats)
    make_legacy_manifest(old, missing="flow_stats")  # written before the field existed
    with h5py.File(old / entry.shard, "a") as shard:
        attrs = shard["videos"][group_name(VIDEO)].attrs
        for key in [key for key in attrs if key.startswith(ATTR_PREFIX)]:
            del attrs[key]

    assert "flow clipping: unknown" in _info(old)
    document = json.loads(_info(old, "--json"))
    assert document["flow_stats"] is None and document["videos"][0]["flow_stats"] is None
    with open_shards(old) as reader:
        assert reader[VIDEO].flow_stats is None
        stored = reader[VIDEO].flows.quantized(slice(None))
        counted = np.count_nonzero((stored == 0) | (stored == 255)) / stored.size
        legend = legend_panel([reader[VIDEO]], 4.0).caption
    assert f"clipped at the bound: {counted:.2%} of the shown videos' flow values" in legend
    assert counted >= stats.clipped_share  # half a step below B also saturates when stored


def test_preview_uses_recorded_stats_without_reading_flow(fast, monkeypatch):
    from flowkit.store.reader import FlowView

    stats = FlowStats.from_json(Manifest.read(fast["b2"] / MANIFEST_NAME)[VIDEO].flow_stats)
    monkeypatch.setattr(FlowView, "quantized", lambda *a: pytest.fail("read the stored flow"))
    with open_shards(fast["b2"]) as reader:
        legend = legend_panel([reader[VIDEO]], 4.0).caption
    assert (f"stored within +-2 px; clipped at the bound: {stats.clipped_share:.2%} of the "
            f"shown videos' flow values (most: {VIDEO}, {stats.clipped_share:.2%})") in legend
    with open_shards(fast["f16"]) as reader:
        legend = legend_panel([reader[VIDEO]], 4.0).caption
    assert f"flow stored as float16, unclipped; beyond +-2 px: {stats.clipped_share:.2%}" in legend


def test_import_records_stats_of_the_decoded_flow_or_unknown(fast, tmp_path):
    export_rawframes(fast["b2"], tmp_path / "raw")
    import_rawframes([tmp_path / "raw"], tmp_path / "in", "mmaction2")
    with open_shards(tmp_path / "in") as reader:
        video = reader[VIDEO]
        stored = video.flows.quantized(slice(None))
        stats = video.flow_stats
    assert stats.bound == 2.0 and stats.components == stored.size
    assert stats.clipped == np.count_nonzero((stored == 0) | (stored == 255))
    assert sum(stats.histogram) == stored.size // 2
    assert stats.max_magnitude <= 2.0 * math.sqrt(2) + 1e-5  # stored flow ends at the bound
    assert FlowStats.from_json(Manifest.read(tmp_path / "in" / MANIFEST_NAME)[VIDEO]
                               .flow_stats) == stats
    import_rawframes([tmp_path / "raw"], tmp_path / "quick", "mmaction2", check_decode=False)
    assert Manifest.read(tmp_path / "quick" / MANIFEST_NAME)[VIDEO].flow_stats is None
