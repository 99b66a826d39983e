"""Tests of flowkit.data.sampling: TSN segment starts, dense clips, flow stacks."""

from __future__ import annotations

import numpy as np
import pytest

from flowkit.data.sampling import (ClipSampler, FrameIndices, SegmentSampler, VideoExtent,
                                   flow_stack_indices)
from flowkit.errors import ConfigError


def test_train_segments_one_start_per_part():
    """30 frames, span 1, 3 segments: parts [0,10), [10,20), [20,30) each hold one start."""
    sampler = SegmentSampler(num_segments=3, train=True)
    rng = np.random.default_rng(0)
    for _ in range(200):
        starts = sampler.starts(30, 1, rng)
        assert starts.shape == (3,) and starts.dtype == np.int64
        assert [s // 10 for s in starts] == [0, 1, 2]


def test_train_segments_cover_valid_range_with_span():
    """31 frames, span 6 (5 flows): starts in [0, 25] and over many draws reach 0 and 25."""
    sampler = SegmentSampler(num_segments=2, train=True)
    rng = np.random.default_rng(1)
    seen = np.concatenate([sampler.starts(31, 6, rng) for _ in range(500)])
    assert seen.min() == 0 and seen.max() == 25
    assert set(np.unique(seen)) == set(range(26))


def test_test_segments_are_centred_and_deterministic():
    """30 frames, span 1, 3 segments at test: centres [5, 15, 25], without any rng."""
    sampler = SegmentSampler(num_segments=3, train=False)
    assert sampler.starts(30, 1).tolist() == [5, 15, 25]
    assert sampler.starts(30, 1, np.random.default_rng(3)).tolist() == [5, 15, 25]


def test_test_segments_with_flow_span():
    """26 frames, span 6: valid starts 0..20 in 3 parts of 7 give centres [3, 10, 17]."""
    assert SegmentSampler(3, train=False).starts(26, 6).tolist() == [3, 10, 17]


def test_same_seed_same_segments():
    """Two generators with seed 7 give identical training starts; seed 8 differs somewhere."""
    sampler = SegmentSampler(num_segments=8)
    a = [sampler.starts(100, 1, np.random.default_rng(7)) for _ in range(3)]
    b = [sampler.starts(100, 1, np.random.default_rng(7)) for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(sampler.starts(100, 1, np.random.default_rng(8)), a[0])


@pytest.mark.parametrize("train", [True, False])
def test_fewer_valid_starts_than_segments_spread_and_repeat(train):
    """2 frames, span 1, 3 segments -> [0, 0, 1]; 5 frames, 8 segments -> [0,0,1,1,2,3,3,4]."""
    rng = np.random.default_rng(0)
    assert SegmentSampler(3, train).starts(2, 1, rng).tolist() == [0, 0, 1]
    assert SegmentSampler(8, train).starts(5, 1, rng).tolist() == [0, 0, 1, 1, 2, 3, 3, 4]


@pytest.mark.parametrize("train", [True, False])
def test_one_frame_and_shorter_than_span_start_at_zero(train):
    """1 frame with span 1, and 3 frames with span 6: all starts 0."""
    rng = np.random.default_rng(0)
    assert SegmentSampler(3, train).starts(1, 1, rng).tolist() == [0, 0, 0]
    assert SegmentSampler(3, train).starts(3, 6, rng).tolist() == [0, 0, 0]


def test_training_without_rng_is_a_config_error():
    """train=True with rng=None raises ConfigError instead of using global randomness."""
    with pytest.raises(ConfigError):
        SegmentSampler(3).starts(30, 1)


def test_invalid_settings_raise_config_error():
    """num_segments 0, span 0, num_frames 0 and clip_len 0 all raise ConfigError."""
    with pytest.raises(ConfigError):
        SegmentSampler(0)
    with pytest.raises(ConfigError):
        SegmentSampler(3, train=False).starts(10, 0)
    with pytest.raises(ConfigError):
        SegmentSampler(3, train=False).starts(0, 1)
    with pytest.raises(ConfigError):
        ClipSampler(clip_len=0)


def test_clip_indices_shape_and_stride():
    """clip_len 16, stride 2, 2 clips over 100 frames: (2, 16) int64, steps of 2, within range."""
    sampler = ClipSampler(clip_len=16, frame_stride=2, num_clips=2, train=True)
    rng = np.random.default_rng(0)
    for _ in range(100):
        idx = sampler.frame_indices(100, rng)
        assert idx.shape == (2, 16) and idx.dtype == np.int64
        assert (np.diff(idx, axis=1) == 2).all()
        assert idx.min() >= 0 and idx.max() <= 99
        assert idx[0, 0] <= 35 and 35 <= idx[1, 0] <= 69  # valid starts 0..69 in 2 parts


def test_clip_test_mode_is_centred():
    """100 frames, span 31: 1 test clip starts at 35; 3 clips (parts 23, 23, 24) at [11, 34, 58]."""
    assert ClipSampler(16, 2, 1, train=False).frame_indices(100)[:, 0].tolist() == [35]
    assert ClipSampler(16, 2, 3, train=False).frame_indices(100)[:, 0].tolist() == [11, 34, 58]


def test_clip_same_seed_same_indices():
    """Seed 5 twice gives identical clip indices."""
    sampler = ClipSampler(8, 4, 2)
    assert np.array_equal(sampler.frame_indices(200, np.random.default_rng(5)),
                          sampler.frame_indices(200, np.random.default_rng(5)))


@pytest.mark.parametrize("train", [True, False])
def test_short_clip_wraps_around(train):
    """5 frames, clip_len 4, stride 2 -> [0, 2, 4, 1]; 1 frame, clip_len 3 -> [0, 0, 0]."""
    rng = np.random.default_rng(0)
    assert ClipSampler(4, 2, 1, train).frame_indices(5, rng).tolist() == [[0, 2, 4, 1]]
    assert ClipSampler(3, 1, 2, train).frame_indices(1, rng).tolist() == [[0, 0, 0], [0, 0, 0]]


def test_flow_stack_indices_and_clamp():
    """Starts [0, 3], L 5, 6 flows -> [[0..4], [3, 4, 5, 5, 5]] (last flow repeated)."""
    idx = flow_stack_indices(np.array([0, 3]), 5, 6)
    assert idx.dtype == np.int64
    assert idx.tolist() == [[0, 1, 2, 3, 4], [3, 4, 5, 5, 5]]


def test_segments_and_flow_stacks_fit_exactly():
    """26 frames (25 flows), L 5: every sampled stack lies within flows 0..24, never clamped."""
    rng = np.random.default_rng(2)
    for _ in range(100):
        starts = SegmentSampler(3).starts(26, 6, rng)
        idx = flow_stack_indices(starts, 5, 25)
        assert np.array_equal(idx, starts[:, None] + np.arange(5))
        assert idx.max() <= 24


def test_flow_stack_of_one_flow_video_repeats_it():
    """A 2-frame video (1 flow) with L 5: starts [0, 0, 0] and all indices 0."""
    starts = SegmentSampler(3, train=False).starts(2, 6)
    assert flow_stack_indices(starts, 5, 1).tolist() == [[0] * 5] * 3
    with pytest.raises(ConfigError):
        flow_stack_indices(starts, 5, 0)


def test_segment_defaults_follow_tsn_3_to_train_25_to_test():
    """Without num_segments, training takes 3 segments and testing 25, as TSN does."""
    assert SegmentSampler().num_segments == 3
    assert SegmentSampler(train=False).num_segments == 25
    assert SegmentSampler(num_segments=7, train=False).num_segments == 7
    assert len(SegmentSampler(train=False).starts(100, 1)) == 25


def test_segment_sampler_gives_frames_and_stacks_from_one_call():
    """One call per item: RGB-only items spread over frames; with flow, frame s_k opens stack k."""
    rgb_only = SegmentSampler(3, train=False)(VideoExtent(30))
    assert isinstance(rgb_only, FrameIndices) and not rgb_only.clips
    assert rgb_only.frames.tolist() == [[5], [15], [25]] and rgb_only.flows.shape == (3, 0)
    with_flow = SegmentSampler(3, train=False, flow_length=5)(VideoExtent(26, 25))
    assert with_flow.frames[:, 0].tolist() == [3, 10, 17]
    assert with_flow.flows.tolist() == [list(range(s, s + 5)) for s in (3, 10, 17)]


def test_segment_frames_follow_the_flow_step():
    """With --step 2, flow position p is frame 2p: frames are twice the stack starts."""
    indices = SegmentSampler(2, train=False, flow_length=2)(VideoExtent(21, 10, 2))
    assert indices.frames[:, 0].tolist() == (2 * indices.flows[:, 0]).tolist()


def test_clip_sampler_pairs_each_frame_with_its_flow():
    """Clips read flow t with frame t (the last flow for the last frame); none for RGB only."""
    indices = ClipSampler(4, 3, 1, train=False)(VideoExtent(10, 9))
    assert indices.clips and indices.frames.tolist() == [[0, 3, 6, 9]]
    assert indices.flows.tolist() == [[0, 3, 6, 8]]
    assert ClipSampler(4, 3, 1, train=False)(VideoExtent(10)).flows.shape == (1, 0)


def test_centre_rgb_frame_opens_the_stacks_middle_flow():
    """rgb_frame="centre": the first frame of flow s_k + L // 2 (2 frames after the stack's
    start for L = 5; with step 2 and L = 4, frame 2 * (s_k + 2)); the stacks are unchanged."""
    video = VideoExtent(26, 25)
    first = SegmentSampler(3, train=False, flow_length=5)(video)
    centre = SegmentSampler(3, train=False, flow_length=5, rgb_frame="centre")(video)
    assert centre.flows.tolist() == first.flows.tolist()
    assert centre.frames[:, 0].tolist() == [5, 12, 19] == (first.frames[:, 0] + 2).tolist()
    even = SegmentSampler(2, train=False, flow_length=4,
                          rgb_frame="centre")(VideoExtent(21, 10, 2))
    assert even.frames[:, 0].tolist() == (2 * even.flows[:, 2]).tolist()
    rng = np.random.default_rng(0)
    drawn = SegmentSampler(3, flow_length=5, rgb_frame="centre")(video, rng)
    assert drawn.frames[:, 0].tolist() == drawn.flows[:, 2].tolist()


def test_centre_rgb_frame_of_a_short_video_follows_the_repeated_flows():
    """A stack clamped to the last flow: the centre frame is that of the flow read (here flow
    2 of a 3-flow video, frame 2), never past the last frame."""
    indices = SegmentSampler(1, train=False, flow_length=5, rgb_frame="centre")(VideoExtent(4, 3))
    assert indices.flows.tolist() == [[0, 1, 2, 2, 2]] and indices.frames.tolist() == [[2]]


def test_unknown_rgb_frame_is_a_config_error():
    with pytest.raises(ConfigError, match="rgb_frame must be one of first, centre"):
        SegmentSampler(rgb_frame="middle")
