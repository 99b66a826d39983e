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
    step, offset = dequantization_constants(bound)
    return quantized.astype(np.float32) * step - offset


def dequantization_constants(bound: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``step`` = 2B / 255 and ``offset`` = B, pixels = q * step - offset, for one bound
    or an array of them; computed in float64 first, so every caller gets the same bits."""
    bound = np.asarray(bound, dtype=np.float64)
    return (2.0 * bound / 255.0).astype(np.float32), bound.astype(np.float32)


def encode_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG bytes as a 1-D uint8 array (baseline, libjpeg) of an image.

    Args:
        image: (H, W, 3) uint8 RGB (stored 4:2:0) or (H, W) uint8 grayscale (a flow component,
            as denseflow and MMAction2 write x_00001.jpg / y_00001.jpg).
    """
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(pixels),
                              [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ShardError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buffer.reshape(-1)


def encode_png(image: np.ndarray) -> np.ndarray:
    """Lossless PNG bytes as a 1-D uint8 array of an (H, W) uint8 grayscale image (a flow
    component quantised as stored: the lossless alternative to :func:`encode_jpeg` on export)."""
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:
        raise ShardError(f"PNG encoding failed for an image of shape {image.shape}")
    return buffer.reshape(-1)


def decode_jpeg(data: np.ndarray | bytes, gray: bool = False) -> np.ndarray:
    """JPEG bytes (1-D uint8 array or bytes) -> (H, W, 3) uint8 RGB, or (H, W) when ``gray``."""
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    image = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if image is None:
        raise ShardError("stored JPEG bytes do not decode (corrupt frame data)")
    return image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
