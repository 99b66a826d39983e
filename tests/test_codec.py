"""Flow quantisation and JPEG frame coding."""

import numpy as np
import pytest

from flowkit.errors import ConfigError, ShardError
from flowkit.store.codec import decode_jpeg, dequantize_flow, encode_jpeg, quantize_flow


def test_quantize_follows_the_documented_formula():
    """q = round(255 (clip(f, -B, B) + B) / 2B), half-up: 0 px -> 128, -B -> 0, +B -> 255."""
    flow = np.array([-25.0, -20.0, -0.1, 0.0, 0.1, 10.0, 20.0, 31.0], dtype=np.float32)
    assert quantize_flow(flow, 20.0).tolist() == [0, 0, 127, 128, 128, 191, 255, 255]


def test_dequantize_error_is_at_most_half_a_step():
    """Within the bound, quantise-then-dequantise moves a value by at most B/255."""
    flow = np.linspace(-20, 20, 10001, dtype=np.float32)
    back = dequantize_flow(quantize_flow(flow, 20.0), 20.0)
    assert back.dtype == np.float32
    assert np.abs(back - flow).max() <= 20.0 / 255 + 1e-5


def test_dequantize_maps_extremes_to_the_bound():
    """0 and 255 decode to -B and +B exactly."""
    assert dequantize_flow(np.array([0, 255], np.uint8), 15.0).tolist() == [-15.0, 15.0]


def test_nonpositive_bound_is_refused():
    """A bound of 0 or below raises ConfigError."""
    with pytest.raises(ConfigError, match="bound"):
        quantize_flow(np.zeros(3, np.float32), 0.0)


def test_jpeg_round_trip_keeps_rgb_order_and_is_close():
    """A red-left, blue-right frame decodes with the same channel order, close in value."""
    frame = np.zeros((32, 48, 3), np.uint8)
    frame[:, :24, 0] = 200
    frame[:, 24:, 2] = 200
    back = decode_jpeg(encode_jpeg(frame, 95))
    assert back.shape == frame.shape
    assert np.abs(back.astype(int) - frame).mean() < 3
    assert back[16, 4, 0] > 180 and back[16, 44, 2] > 180 and back[16, 4, 2] < 20


def test_corrupt_jpeg_bytes_raise_shard_error():
    """Bytes that are not a JPEG raise ShardError, not a None image."""
    with pytest.raises(ShardError, match="JPEG"):
        decode_jpeg(np.frombuffer(b"not a jpeg at all", np.uint8))
