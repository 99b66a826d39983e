"""Tests of flowkit.data.transforms: one box / flip per item, flow values follow the geometry."""

from __future__ import annotations

import numpy as np
import pytest

from flowkit.data.transforms import (
    CenterCrop,
    Compose,
    HorizontalFlip,
    MultiScaleCrop,
    Normalize,
    RandomResizedCrop,
    Resize,
    TenCrop,
    ThreeCrop,
    clip_test_transform,
    clip_train_transform,
    tsn_test_transform,
    tsn_train_transform,
)
from flowkit.errors import ConfigError


def _position_sample(n: int = 2, length: int = 3, h: int = 48, w: int = 64) -> dict:
    """rgb R = x, G = y, B = frame index; flow u = x, v = y (pixels), plus a label."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.zeros((n, h, w, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1] = x, y
    rgb[..., 2] = np.arange(n)[:, None, None]
    flow = np.broadcast_to(np.stack([x, y], axis=-1).astype(np.float32),
                           (n, length, h, w, 2)).copy()
    return {"rgb": rgb, "flow": flow, "label": 7}


def _constant_flow(u: float, v: float, n: int = 2, length: int = 3, h: int = 48,
                   w: int = 64) -> dict:
    """A uniform translation field (u, v) in pixels and a zero RGB of the same size."""
    flow = np.empty((n, length, h, w, 2), dtype=np.float32)
    flow[..., 0], flow[..., 1] = u, v
    return {"rgb": np.zeros((n, h, w, 3), dtype=np.uint8), "flow": flow}


def test_flip_negates_rightward_translation():
    """u = +2, v = 1 everywhere flipped: mean u = -2, v stays 1."""
    out = HorizontalFlip(p=1.0)(_constant_flow(2.0, 1.0), np.random.default_rng(0))
    assert out["flow"][..., 0].mean() == -2.0
    assert (out["flow"][..., 1] == 1.0).all()


def test_flip_mirrors_non_symmetric_field():
    """u = x flipped: u[..., x] == -(W-1-x), v = y unchanged, rgb R[..., x] == W-1-x."""
    sample = _position_sample(w=64)
    out = HorizontalFlip(p=1.0)(sample, np.random.default_rng(0))
    x = np.arange(64)
    assert (out["flow"][..., 0] == -(63 - x)).all()
    assert np.array_equal(out["flow"][..., 1], sample["flow"][..., 1])
    assert (out["rgb"][..., 0] == 63 - x).all()
    assert out["label"] == 7


def test_flip_does_not_mutate_and_p_zero_is_identity():
    """Inputs unchanged after a flip; p=0 returns equal copies; output is C-contiguous."""
    sample = _position_sample()
    before = {k: v.copy() for k, v in sample.items() if k != "label"}
    flipped = HorizontalFlip(p=1.0)(sample, np.random.default_rng(0))
    assert all(np.array_equal(sample[k], before[k]) for k in before)
    assert flipped["flow"].flags.c_contiguous and flipped["rgb"].flags.c_contiguous
    kept = HorizontalFlip(p=0.0)(sample, np.random.default_rng(0))
    assert np.array_equal(kept["flow"], sample["flow"]) and kept["flow"] is not sample["flow"]


def test_multiscale_crop_same_box_for_rgb_and_flow_without_resize():
    """Scale 1 crop of 48x64 to 48: rgb (R, G) == flow (u, v) at every pixel, for 30 seeds."""
    transform = MultiScaleCrop(size=48, scales=(1.0,))
    lefts = set()
    for seed in range(30):
        out = transform(_position_sample(), np.random.default_rng(seed))
        assert out["rgb"].shape == (2, 48, 48, 3) and out["rgb"].dtype == np.uint8
        assert out["flow"].shape == (2, 3, 48, 48, 2)
        assert np.array_equal(out["rgb"][..., 0], out["flow"][:, 0, ..., 0])
        assert np.array_equal(out["rgb"][..., 1], out["flow"][:, 2, ..., 1])
        lefts.add(int(out["rgb"][0, 0, 0, 0]))
    assert lefts == {0, 4, 8, 12, 16}  # 16 px slack, steps of 4


def test_multiscale_crop_scales_flow_values():
    """u = v = 1 on 64x64, a 32x32 crop resized to 64: u = v = 2."""
    out = MultiScaleCrop(size=64, scales=(0.5,), max_distort=0)(
        _constant_flow(1.0, 1.0, h=64, w=64), np.random.default_rng(0))
    assert out["flow"].shape == (2, 3, 64, 64, 2)
    assert np.allclose(out["flow"], 2.0)


def test_multiscale_crop_scales_u_and_v_separately():
    """Scales (1, .5), distortion 1: (u, v) in {1, 2}^2 over 60 seeds, and (1, 2), (2, 1) occur."""
    transform = MultiScaleCrop(size=64, scales=(1.0, 0.5), max_distort=1)
    seen = set()
    for seed in range(60):
        flow = transform(_constant_flow(1.0, 1.0, h=64, w=64), np.random.default_rng(seed))["flow"]
        u, v = float(flow[..., 0].mean()), float(flow[..., 1].mean())
        assert np.allclose(flow[..., 0], u) and np.allclose(flow[..., 1], v)
        seen.add((round(u, 4), round(v, 4)))
    assert seen <= {(1.0, 1.0), (2.0, 2.0), (1.0, 2.0), (2.0, 1.0)}
    assert {(1.0, 2.0), (2.0, 1.0)} <= seen


def test_resized_crop_keeps_rgb_and_flow_aligned():
    """RandomResizedCrop(32), 10 seeds: flow u / sx, v / sy equal rgb R, G within 0.75."""
    sample = _position_sample(h=48, w=64)
    for seed in range(10):
        out = RandomResizedCrop(size=32)(sample, np.random.default_rng(seed))
        scale = RandomResizedCrop(size=32)(_constant_flow(1.0, 1.0), np.random.default_rng(seed))
        sx, sy = scale["flow"][0, 0, 0, 0]  # same seed, same box: u = 1 becomes u = sx
        assert out["rgb"].dtype == np.uint8 and out["flow"].shape == (2, 3, 32, 32, 2)
        # 0.5 from rounding to uint8 plus cv2's fixed-point uint8 weights; a 1 px shift gives > 1
        assert np.abs(out["flow"][:, 1, ..., 0] / sx - out["rgb"][..., 0]).max() <= 0.75
        assert np.abs(out["flow"][:, 1, ..., 1] / sy - out["rgb"][..., 1]).max() <= 0.75


def test_resize_short_side_scales_values():
    """48x64 with u = v = 3 resized to short side 24: 24x32, u = v = 1.5."""
    out = Resize(24)(_constant_flow(3.0, 3.0, h=48, w=64))
    assert out["rgb"].shape == (2, 24, 32, 3) and out["flow"].shape == (2, 3, 24, 32, 2)
    assert np.allclose(out["flow"], 1.5)


def test_center_and_three_crop_positions():
    """48x64 to 48: centre crop starts at x=8; three crops at x = 0, 8, 16, crop-major (3N)."""
    sample = _position_sample(n=2)
    centre = CenterCrop(48)(sample)
    assert centre["rgb"][0, 0, 0, 0] == 8 and centre["flow"][0, 0, 0, 0, 0] == 8.0
    three = ThreeCrop(48)(sample)
    assert three["rgb"].shape == (6, 48, 48, 3) and three["flow"].shape == (6, 3, 48, 48, 2)
    assert three["rgb"][:, 0, 0, 0].tolist() == [0, 0, 8, 8, 16, 16]
    assert three["rgb"][:, 0, 0, 2].tolist() == [0, 1, 0, 1, 0, 1]
    assert three["flow"][:, 0, 0, 0, 0].tolist() == [0, 0, 8, 8, 16, 16]


def test_ten_crop_has_ten_n_items_and_flipped_half_negates_u():
    """TenCrop(32) of N=2: 20 items; items 10..19 mirror items 0..9 with u negated."""
    sample = _position_sample(n=2, h=48, w=64)
    out = TenCrop(32)(sample)
    assert out["rgb"].shape == (20, 32, 32, 3) and out["flow"].shape == (20, 3, 32, 32, 2)
    assert out["rgb"][:10, 0, 0, 0].tolist() == [0, 0, 32, 32, 0, 0, 32, 32, 16, 16]
    mirrored = out["flow"][:10, ..., ::-1, :].copy()
    mirrored[..., 0] *= -1
    assert np.array_equal(out["flow"][10:], mirrored)
    assert np.array_equal(out["rgb"][10:], out["rgb"][:10, ..., ::-1, :])
    constant = TenCrop(32)(_constant_flow(2.0, 0.0))["flow"]
    assert constant[:10, ..., 0].mean() == 2.0 and constant[10:, ..., 0].mean() == -2.0


def test_crop_larger_than_frame_is_config_error():
    """CenterCrop(64) of 48x64 frames raises ConfigError; so do mismatched rgb/flow sizes."""
    with pytest.raises(ConfigError):
        CenterCrop(64)(_position_sample(h=48, w=64))
    bad = {"rgb": np.zeros((1, 48, 64, 3), np.uint8),
           "flow": np.zeros((1, 1, 24, 32, 2), np.float32)}
    with pytest.raises(ConfigError):
        Resize(24)(bad)


def test_normalize_numbers():
    """RGB 255 -> (1-.485)/.229 = 2.2489, 0 -> -2.1179; flow 10 px: pixels 10, bound(20) 0.5."""
    sample = {"rgb": np.array([255, 0], np.uint8).reshape(1, 1, 2, 1).repeat(3, -1),
              "flow": np.full((1, 1, 1, 2, 2), 10.0, np.float32)}
    out = Normalize()(sample)
    assert out["rgb"].dtype == np.float32
    assert np.allclose(out["rgb"][0, 0, :, 0], [2.2489, -2.1179], atol=1e-4)
    assert np.allclose(out["rgb"][0, 0, 0],
                       [(1 - .485) / .229, (1 - .456) / .224, (1 - .406) / .225])
    assert (out["flow"] == 10.0).all() and out["flow"] is not sample["flow"]
    bounded = Normalize(flow="bound", bound=20.0)(sample)["flow"]
    assert bounded.dtype == np.float32 and np.allclose(bounded, 0.5)
    with pytest.raises(ConfigError):
        Normalize(flow="minmax")


def test_tsn_train_same_seed_same_output_and_shapes():
    """tsn_train_transform(32) twice with seed 3: equal outputs, rgb (2,32,32,3) float32."""
    sample = _position_sample()
    a = tsn_train_transform(32)(sample, np.random.default_rng(3))
    b = tsn_train_transform(32)(sample, np.random.default_rng(3))
    assert np.array_equal(a["rgb"], b["rgb"]) and np.array_equal(a["flow"], b["flow"])
    assert a["rgb"].shape == (2, 32, 32, 3) and a["rgb"].dtype == np.float32
    assert a["flow"].shape == (2, 3, 32, 32, 2) and a["flow"].dtype == np.float32
    assert a["label"] == 7


@pytest.mark.parametrize("crops", [1, 3, 10])
def test_test_pipelines_shapes(crops):
    """tsn/clip test transforms at size 32 with 1/3/10 crops give crops * N items of 32x32."""
    sample = _position_sample(n=2)
    for make in (tsn_test_transform, clip_test_transform):
        out = make(32, crops=crops)(sample)
        assert out["rgb"].shape == (crops * 2, 32, 32, 3)
        assert out["flow"].shape == (crops * 2, 3, 32, 32, 2)
    with pytest.raises(ConfigError):
        tsn_test_transform(32, crops=5)


def test_clip_train_rgb_only_and_determinism():
    """clip_train_transform(16) on rgb only: same seed same output, shape (2, 16, 16, 3)."""
    sample = {"rgb": _position_sample()["rgb"]}
    a = clip_train_transform(16)(sample, np.random.default_rng(9))
    b = Compose(list(clip_train_transform(16).transforms))(sample, np.random.default_rng(9))
    assert a.keys() == {"rgb"} and a["rgb"].shape == (2, 16, 16, 3)
    assert np.array_equal(a["rgb"], b["rgb"])


# -- quantised (uint8) flow ------------------------------------------------------------------

def _quantized(sample: dict, bound: float = 20.0) -> dict:
    """The sample with its flow quantised to uint8 steps, as shards store it."""
    from flowkit.store.codec import quantize_flow
    return {**sample, "flow": quantize_flow(sample["flow"], bound), "flow_bound": bound}


def test_quantized_flip_negates_u_and_mirrors():
    """255 - q dequantises to -u: flipped then normalised equals normalised then negated and
    mirrored (to float32 rounding); a rightward translation becomes a leftward one."""
    sample = _quantized(_position_sample(w=64), bound=80.0)
    flipped = Normalize()(HorizontalFlip(p=1.0)(sample, np.random.default_rng(0)))
    plain = Normalize()(sample)
    np.testing.assert_allclose(flipped["flow"][..., 0], -plain["flow"][..., ::-1, 0],
                               rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(flipped["flow"][..., 1], plain["flow"][..., ::-1, 1])
    right = Normalize()(HorizontalFlip(p=1.0)(_quantized(_constant_flow(2.0, 1.0)),
                                              np.random.default_rng(0)))
    assert right["flow"][..., 0].mean() < -1.9 and "flow_bound" not in right


def test_quantized_resize_records_scale_and_stays_within_a_step():
    """A resize leaves uint8 values as steps, multiplies flow_scale by (sx, sy); normalised,
    it is within one step (2B / 255 px) times the factor of the float pipeline (rounding to a
    step plus OpenCV's fixed-point uint8 interpolation: 0.67 step measured here)."""
    bound = 20.0
    float_sample = _position_sample(h=48, w=64)
    float_sample["flow"] = float_sample["flow"] / 4 - 6  # within +-bound
    quantized = _quantized(float_sample, bound)
    resize = Resize(short_side=36)  # (48, 64) -> (36, 48): factors 0.75, 0.75
    out = resize(quantized)
    assert out["flow"].dtype == np.uint8
    np.testing.assert_array_equal(out["flow_scale"], np.float32([48 / 64, 36 / 48]))
    from flowkit.store.codec import dequantize_flow
    reference = resize({**float_sample, "flow": dequantize_flow(quantized["flow"], bound)})
    got = Normalize()(out)["flow"]
    assert np.abs(got - Normalize()(reference)["flow"]).max() <= 0.75 * 2 * bound / 255 + 1e-5


def test_quantized_tsn_pipeline_matches_float_pipeline():
    """tsn_train_transform on quantised flow, then Normalize: same RGB bit for bit, flow within
    a step times the largest resize factor of the float pipeline, same draws."""
    from flowkit.store.codec import dequantize_flow
    sample = _quantized(_position_sample(n=2, length=2, h=256, w=340))
    sample["flow"] = sample["flow"] // 2 + 64  # moderate values, still uint8 steps
    float_sample = {**sample, "flow": dequantize_flow(sample["flow"], 20.0)}
    del float_sample["flow_bound"]
    for seed in range(6):
        expected = tsn_train_transform(224)(float_sample, np.random.default_rng(seed))
        staged = tsn_train_transform(224, normalize=None)(sample, np.random.default_rng(seed))
        assert staged["rgb"].dtype == np.uint8 and staged["flow"].dtype == np.uint8
        got = Normalize()(staged)
        np.testing.assert_array_equal(got["rgb"], expected["rgb"])
        assert np.abs(got["flow"] - expected["flow"]).max() <= 224 / 168 * 40 / 255 + 1e-5


def test_quantized_flow_needs_its_bound():
    sample = _quantized(_constant_flow(1.0, 1.0))
    del sample["flow_bound"]
    with pytest.raises(ConfigError, match="flow_bound"):
        CenterCrop(16)(sample)


def test_normalize_refuses_float_rgb():
    with pytest.raises(ConfigError, match="uint8 RGB"):
        Normalize()({"rgb": np.zeros((1, 4, 4, 3), np.float32)})
