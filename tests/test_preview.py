"""Previews that explain themselves: captions, the legend, clipping, and the page height."""

from __future__ import annotations

import re

import numpy as np
import pytest

from flowkit.config import ExtractConfig
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.flow.viz import color_legend, flow_to_color, text_block, text_width, wrap_text
from flowkit.preview import (MIN_TEXT_WIDTH, MIN_TILE, Panel, clipped_fraction, compose,
                             describe_transform, legend_panel, picked_frames, sample_panels,
                             shown_magnitude, video_panel)
from flowkit.store.reader import open_shards
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig


@pytest.fixture(scope="module")
def shards(tiny_videos, tmp_path_factory):
    """The four 64x48 tiny videos (1 px per frame) with Farneback flow, stored within +-0.5 px
    (so that part of it is clipped), and the same with float16 flow."""
    out = {}
    for name, storage in (("clipped", StorageConfig(bound=0.5)),
                          ("float16", StorageConfig(flow_dtype="float16"))):
        folder = tmp_path_factory.mktemp(name)
        extract(collect_videos([tiny_videos / "labels.txt"]), folder,
                ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback",
                              storage=storage), workers=1, progress=False)
        out[name] = folder
    return out


def test_video_panel_names_video_class_label_and_frames(shards):
    with open_shards(shards["clipped"]) as reader:
        video = reader["left/left_1.mkv"]
        assert picked_frames(video, 3) == [0, 2, 3]
        panel = video_panel(video, 3, max_magnitude=1.0)
    assert panel.caption.startswith("left/left_1.mkv  class left (label 1)  frames 0, 2, 3;")
    # 64x48 tiles are enlarged 3x (nearest pixel) to reach MIN_TILE = 128 on the short side.
    assert panel.image.shape == (3 * (2 * 48 + 4), 3 * (3 * 64 + 2 * 4), 3)
    assert 3 * 48 >= MIN_TILE


def test_sample_panel_says_it_is_a_training_sample(shards):
    from flowkit.data.transforms import CenterCrop

    (panel,) = sample_panels(shards["clipped"], ["up/up_3.mkv"], CenterCrop(32), count=2, seed=5)
    assert re.fullmatch(r"up/up_3\.mkv  training sample: centre 32 px crop \(seed 5\),\n"
                        r"frames \d, \d", panel.caption)
    assert panel.image.shape == (4 * (2 * 32 + 4), 4 * (2 * 32 + 4), 3)


def _sample_frames(panel: Panel) -> list[int]:
    return [int(i) for i in panel.caption.rsplit("frames ", 1)[1].split(", ")]


def test_sample_panels_draw_segments_and_flips_per_video(shards):
    """Each video gets its own random segments and flip (a bug before: every video drew from
    the same generator, so all rows showed the same frames and the same flip)."""
    from flowkit.data.transforms import HorizontalFlip

    videos = ["right/right_0.mkv", "left/left_1.mkv", "down/down_2.mkv", "up/up_3.mkv"]
    flips, segments = [], []
    with open_shards(shards["clipped"]) as reader:
        for seed in range(4):
            panels = sample_panels(shards["clipped"], videos, HorizontalFlip(0.5), count=1,
                                   seed=seed)
            segments.append([_sample_frames(panel) for panel in panels])
            flipped = []
            for video_id, panel in zip(videos, panels):
                (index,) = _sample_frames(panel)
                frame = np.repeat(np.repeat(reader[video_id].frames[index], 3, 0), 3, 1)
                top = panel.image[:frame.shape[0], :frame.shape[1]]  # 64x48, enlarged 3x
                assert (top == frame).all() or (top == frame[:, ::-1]).all()
                flipped.append(bool((top == frame[:, ::-1]).all()))
            flips.append(flipped)
    assert any(len(set(row)) > 1 for row in flips)  # some videos flipped, others not
    assert any(len({tuple(s) for s in row}) > 1 for row in segments)
    # The same seed draws the same samples; a video listed twice is drawn once.
    again = sample_panels(shards["clipped"], videos[:2] + videos[:1], HorizontalFlip(0.5),
                          count=1, seed=0)
    assert [_sample_frames(panel) for panel in again] == segments[0][:2] + segments[0][:1]
    assert (again[0].image == again[2].image).all()


def test_describe_transform_says_what_the_options_do():
    from flowkit.data.transforms import CenterCrop, clip_train_transform, tsn_train_transform

    assert (describe_transform(tsn_train_transform(56, normalize=None, flip=False))
            == "random multi-scale 56 px crop, no flip")
    assert (describe_transform(tsn_train_transform(224, normalize=None))
            == "random multi-scale 224 px crop, random horizontal flip")
    assert (describe_transform(clip_train_transform(112, normalize=None, flip=False))
            == "random resized 112 px crop, no flip")
    assert describe_transform(CenterCrop(32)) == "centre 32 px crop"


def test_clipped_fraction_counts_stored_values_at_the_bound(shards):
    with open_shards(shards["clipped"]) as reader:
        video = reader["right/right_0.mkv"]
        stored = video.flows.quantized(slice(None))
        expected = np.mean((stored == 0) | (stored == 255))
        assert 0.2 < expected < 1.0  # 1 px motion, stored within +-0.5 px
        assert clipped_fraction(video) == pytest.approx(expected)
        legend = legend_panel([reader[v] for v in reader], 2.0)
    assert "stored within +-0.5 px; clipped at the bound:" in legend.caption
    assert "full colour 2 px (the rim)" in legend.caption
    assert not legend.shrinks
    np.testing.assert_array_equal(legend.image, color_legend(2.0))
    with open_shards(shards["float16"]) as reader:
        assert clipped_fraction(reader["right/right_0.mkv"]) is None
        # float16 keeps flow unclipped; the share beyond the bound is recorded at extraction
        assert ("flow stored as float16, unclipped; beyond +-20 px: 0.00%"
                in legend_panel([reader["right/right_0.mkv"]], 1).caption)


def test_color_legend_rim_is_the_colour_of_flow_at_the_given_length():
    disc = color_legend(3.0, diameter=101)
    centre, right_rim = disc[50, 50], disc[50, 100]
    assert tuple(centre) == (255, 255, 255)  # zero flow is white
    expected = flow_to_color(np.array([[[3.0, 0.0]]], dtype=np.float32), 3.0)[0, 0]
    np.testing.assert_array_equal(right_rim, expected)
    assert tuple(disc[0, 0]) == (128, 128, 128)  # outside the disc


def test_compose_fits_the_height_by_shrinking_pictures_not_captions_or_legend():
    tall = [Panel(f"video {i}", np.zeros((800, 300, 3), np.uint8)) for i in range(4)]
    legend = Panel("legend line 1\nline 2", np.zeros((121, 121, 3), np.uint8), shrinks=False)
    page = compose([*tall, legend], max_height=1000)
    assert page.shape[0] <= 1000
    captions = 4 * text_block("video 0").shape[0] + text_block("legend line 1\nline 2").shape[0]
    assert page.shape[0] >= captions + 121
    assert compose(tall[:1], max_height=2000).shape[0] == text_block("v").shape[0] + 800


def test_compose_wraps_captions_to_the_widest_picture():
    """The page is as wide as its widest picture: long captions wrap at spaces instead of
    widening it (a bug before: a caption line twice the pictures' width left half the page
    empty), and never narrower than MIN_TEXT_WIDTH."""
    words = " ".join(f"word{i}" for i in range(120))
    wide = Panel(words, np.zeros((50, 700, 3), np.uint8))
    narrow = Panel(words, np.zeros((50, 300, 3), np.uint8))
    page = compose([wide, narrow, Panel("legend " + words, np.zeros((121, 121, 3), np.uint8),
                                        shrinks=False)])
    assert page.shape[1] == 700
    assert 300 < compose([narrow]).shape[1] <= MIN_TEXT_WIDTH
    assert text_block(words).shape[1] > 3 * 700  # unwrapped, the caption is one long line
    assert compose([wide]).shape[0] > 50 + 3 * text_block("x").shape[0]
    # Wrapping loses no word and keeps their order.
    wrapped = wrap_text(words, 700 - 8)
    assert wrapped.split() == words.split()
    assert max(text_width(line) for line in wrapped.split("\n")) <= 700 - 8


def test_shown_magnitude_is_the_largest_flow_shown(shards):
    with open_shards(shards["float16"]) as reader:
        videos = [reader[v] for v in reader]
        largest = max(np.hypot(*np.moveaxis(v.flows[i], -1, 0)).max()
                      for v in videos for i in picked_frames(v, 2) if i < len(v.flows))
        assert shown_magnitude(videos, 2) == pytest.approx(largest)
