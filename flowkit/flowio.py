"""Reading and writing single flow fields (Middlebury .flo) and single RGB images.

The .flo format is the lingua franca of optical flow benchmarks (Middlebury, Sintel, KITTI
tools): float32 magic 202021.25 (the bytes "PIEH"), int32 width, int32 height, then
height * width * 2 float32 values, u and v interleaved, row-major, all little-endian.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from flowkit.errors import InputError

FLO_MAGIC = np.float32(202021.25)
_HEADER_BYTES = 12


def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury .flo file.

    Returns:
        (H, W, 2) float32 flow, channel 0 u (right), channel 1 v (down). Unknown pixels keep the
        file's marker values (|value| >= 1e9); see :func:`flowkit.metrics.valid_flow_mask`.

    Raises:
        InputError: the file cannot be read, has the wrong magic, or its size does not match
            its header.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read flow file {path}: {error.strerror or error}") from error
    if len(data) < _HEADER_BYTES:
        raise InputError(
            f"flow file {path} is truncated: {len(data)} bytes, shorter than the 12-byte header"
        )
    magic = np.frombuffer(data, dtype="<f4", count=1)[0]
    if magic != FLO_MAGIC:
        raise InputError(
            f"{path} is not a .flo file: magic is {data[:4]!r}, expected b'PIEH' (202021.25)"
        )
    width, height = (int(value) for value in np.frombuffer(data, dtype="<i4", count=2, offset=4))
    if width <= 0 or height <= 0:
        raise InputError(f"flow file {path} has an invalid size {width}x{height} in its header")
    expected = _HEADER_BYTES + height * width * 2 * 4
    if len(data) != expected:
        cause = "is truncated" if len(data) < expected else "has trailing bytes"
        raise InputError(
            f"flow file {path} {cause}: {len(data)} bytes, its {width}x{height} header "
            f"needs {expected}"
        )
    flow = np.frombuffer(data, dtype="<f4", offset=_HEADER_BYTES).reshape(height, width, 2)
    return flow.astype(np.float32)  # native byte order, writable copy


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write (H, W, 2) flow (any float dtype, stored as float32) as a Middlebury .flo file.

    Raises:
        InputError: ``flow`` is not (H, W, 2) with H, W > 0, or the file cannot be written.
    """
    path = Path(path)
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[0] == 0 or flow.shape[1] == 0:
        raise InputError(f"cannot write {path}: flow must be (H, W, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    header = FLO_MAGIC.astype("<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    try:
        path.write_bytes(header + np.ascontiguousarray(flow, dtype="<f4").tobytes())
    except OSError as error:
        raise InputError(f"cannot write flow file {path}: {error.strerror or error}") from error


def read_rgb_image(path: str | Path) -> np.ndarray:
    """Read an image file (PNG, JPEG, ...) as (H, W, 3) uint8 RGB.

    Grayscale images are expanded to three channels and 16-bit images reduced to 8 bits, so the
    result always feeds a flow backend directly.

    Raises:
        InputError: the file cannot be read or is not a decodable image.
    """
    path = Path(path)
    try:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as error:
        raise InputError(f"cannot read image {path}: {error.strerror or error}") from error
    # imdecode on the bytes, rather than imread on the path, tells "missing" from "not an
    # image" and handles non-ASCII paths on every platform.
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise InputError(f"cannot decode image {path}: not an image format OpenCV reads")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
