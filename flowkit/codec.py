"""How frames and flow become bytes: flow quantisation with a bound, and JPEG for RGB frames."""

from __future__ import annotations

import cv2
import numpy as np

from flowkit.errors import ConfigError, ShardError


def quantize_flow(flow: np.ndarray, bound: float) -> np.ndarray:
    """Map flow in pixels to uint8: q = round(255 * (clip(f, -B, B) + B) / (2B)).

    Rounding is half-up (floor(x + 0.5)), so 0 px maps to 128 and +-B to 255 / 0.

    Args:
        flow: float array of any shape, in pixels.
        bound: B > 0; values beyond +-B saturate.
    """
    if bound <= 0:
        raise ConfigError(f"flow bound must be positive, got {bound}")
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))
    return np.floor(scaled + 0.5).astype(np.uint8)


def dequantize_flow(quantized: np.ndarray, bound: float) -> np.ndarray:
    """Inverse of :func:`quantize_flow`: uint8 -> float32 pixels in [-B, B] (step 2B/255)."""
    return (quantized.astype(np.float32) * np.float32(2.0 * bound / 255.0) - np.float32(bound))


def encode_jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> JPEG bytes as a 1-D uint8 array (baseline, 4:2:0, libjpeg)."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ShardError(f"JPEG encoding failed for a frame of shape {frame.shape}")
    return buffer.reshape(-1)


def decode_jpeg(data: np.ndarray) -> np.ndarray:
    """JPEG bytes (1-D uint8 array or bytes) -> (H, W, 3) uint8 RGB."""
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ShardError("stored JPEG bytes do not decode (corrupt frame data)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
