"""Flow fields as colour images (the Middlebury colour wheel) and preview grids of them.

The colour coding is the one of Baker et al., "A Database and Evaluation Methodology for
Optical Flow" (Middlebury, colorcode.cpp): hue gives the direction, saturation the magnitude
relative to a maximum; zero flow is white, flow at the maximum is a fully saturated wheel
colour, and flow beyond it is that colour darkened to 75%. Unknown flow is black.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from flowkit.errors import ConfigError, InputError
from flowkit.flow.metrics import valid_flow_mask

# Number of hues in each transition of the wheel: red-yellow, yellow-green, green-cyan,
# cyan-blue, blue-magenta, magenta-red (chosen by Baker et al. to be perceptually even).
_SEGMENTS = (15, 6, 4, 11, 13, 6)
GAP_VALUE = 128  # grey between preview tiles: distinct from zero flow (white) and no flow (black)


def color_wheel() -> np.ndarray:
    """The Middlebury colour wheel: (55, 3) int64 RGB values in 0..255, starting at red."""
    ry, yg, gc, cb, bm, mr = _SEGMENTS

    def ramp(n: int) -> np.ndarray:
        return (255 * np.arange(n)) // n  # the reference's integer division

    def full(n: int, value: int) -> np.ndarray:
        return np.full(n, value)

    return np.concatenate([
        np.stack([full(ry, 255), ramp(ry), full(ry, 0)], axis=1),        # red -> yellow
        np.stack([255 - ramp(yg), full(yg, 255), full(yg, 0)], axis=1),  # yellow -> green
        np.stack([full(gc, 0), full(gc, 255), ramp(gc)], axis=1),        # green -> cyan
        np.stack([full(cb, 0), 255 - ramp(cb), full(cb, 255)], axis=1),  # cyan -> blue
        np.stack([ramp(bm), full(bm, 0), full(bm, 255)], axis=1),        # blue -> magenta
        np.stack([full(mr, 255), full(mr, 0), 255 - ramp(mr)], axis=1),  # magenta -> red
    ])


def max_flow_magnitude(flow: np.ndarray) -> float:
    """Largest vector length over the known pixels of (H, W, 2) ``flow``; 0.0 if none is known."""
    flow = _check_flow(flow, "flow")
    known = valid_flow_mask(flow)
    if not known.any():
        return 0.0
    return float(np.hypot(flow[..., 0][known], flow[..., 1][known]).max())


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code (H, W, 2) flow as an (H, W, 3) uint8 RGB image with the Middlebury wheel.

    Args:
        flow: u (right) and v (down) per pixel; unknown pixels (|value| >= 1e9 or non-finite)
            become black.
        max_magnitude: flow length shown fully saturated; None uses the largest known length
            in ``flow`` (1 when all flow is zero). Give one value to compare several images.

    Raises:
        InputError: ``flow`` is not (H, W, 2).
        ConfigError: ``max_magnitude`` is not a positive finite number.
    """
    flow = _check_flow(flow, "flow")
    if max_magnitude is None:
        max_magnitude = max_flow_magnitude(flow) or 1.0
    elif not (np.isfinite(max_magnitude) and max_magnitude > 0):
        raise ConfigError(f"max_magnitude must be a positive finite number, got {max_magnitude!r}")
    known = valid_flow_mask(flow)
    # "+ 0.0" turns -0.0 into 0.0, so a flow and its flipped copy land on the same side of the
    # wheel's seam at angle pi.
    u = np.where(known, flow[..., 0], 0.0).astype(np.float64) / max_magnitude + 0.0
    v = np.where(known, flow[..., 1], 0.0).astype(np.float64) / max_magnitude + 0.0
    image = _wheel_colors(u, v)
    image[~known] = 0
    return image


def _wheel_colors(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Reference computeColor: (H, W) normalised u, v -> (H, W, 3) uint8 RGB."""
    wheel = color_wheel() / 255.0
    ncols = len(wheel)
    radius = np.hypot(u, v)
    angle = np.arctan2(-v, -u) / np.pi  # -1..1, with rightward flow at -1 (red)
    position = (angle + 1.0) / 2.0 * (ncols - 1)
    k0 = position.astype(np.int64)  # truncation, as the reference's (int) cast; position >= 0
    k1 = (k0 + 1) % ncols
    fraction = (position - k0)[..., None]
    color = (1.0 - fraction) * wheel[k0] + fraction * wheel[k1]
    radius = radius[..., None]
    color = np.where(radius <= 1.0, 1.0 - radius * (1.0 - color), color * 0.75)
    return np.floor(255.0 * color).astype(np.uint8)


def preview_grid(
    frames: Sequence[np.ndarray],
    flows: Sequence[np.ndarray | None],
    max_magnitude: float | None = None,
    gap: int = 4,
) -> np.ndarray:
    """Lay out RGB frames in a top row and their flow colour images in a row below.

    Args:
        frames: N (H, W, 3) uint8 RGB frames of one size.
        flows: N (H, W, 2) float flows (flow i starts at frame i), or None for a black tile.
        max_magnitude: flow length shown fully saturated; None uses the largest over all
            flows, so colours are comparable across the grid.
        gap: grey pixels between tiles.

    Returns:
        (2H + gap, N W + (N - 1) gap, 3) uint8 RGB image.

    Raises:
        InputError: lists are empty or differ in length, or an array has the wrong shape/dtype.
        ConfigError: ``gap`` is negative or ``max_magnitude`` is not positive.
    """
    if len(frames) == 0 or len(frames) != len(flows):
        raise InputError(
            f"preview_grid needs as many flows as frames (at least one), "
            f"got {len(frames)} frames and {len(flows)} flows"
        )
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
        raise ConfigError(f"gap must be an integer >= 0, got {gap!r}")
    frames = [_check_frame(frame, i) for i, frame in enumerate(frames)]
    flows = [None if f is None else _check_flow(f, f"flow {i}") for i, f in enumerate(flows)]
    height, width = frames[0].shape[:2]
    for label, array in [(f"frame {i}", a) for i, a in enumerate(frames)] + [
        (f"flow {i}", a) for i, a in enumerate(flows) if a is not None
    ]:
        if array.shape[:2] != (height, width):
            raise InputError(f"{label} is {array.shape[:2]}, frame 0 is {(height, width)}")
    if max_magnitude is None:
        max_magnitude = max((max_flow_magnitude(f) for f in flows if f is not None), default=0.0)
        max_magnitude = max_magnitude or 1.0

    count = len(frames)
    grid = np.full(
        (2 * height + gap, count * width + (count - 1) * gap, 3), GAP_VALUE, dtype=np.uint8
    )
    for i, (frame, flow) in enumerate(zip(frames, flows)):
        left = i * (width + gap)
        grid[:height, left:left + width] = frame
        bottom = grid[height + gap:, left:left + width]
        bottom[...] = 0 if flow is None else flow_to_color(flow, max_magnitude)
    return grid


_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.45
_LINE_HEIGHT = 16  # pixels per text line at _FONT_SCALE, descenders included
TEXT_MARGIN = 4  # pixels of page left and right of a text block's lines


def text_width(line: str) -> int:
    """Width in pixels of one line of text as :func:`text_block` draws it, margins excluded."""
    return cv2.getTextSize(line, _FONT, _FONT_SCALE, 1)[0][0]


def wrap_text(text: str, width: int) -> str:
    """``text`` with each line broken at spaces so that it draws at most ``width`` pixels wide
    (a single word wider than that keeps its own line); continuation lines are indented."""
    wrapped = []
    for line in text.split("\n"):
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}" if current else word
            if current.strip() and text_width(candidate) > width:
                wrapped.append(current)
                current = f"  {word}"
            else:
                current = candidate
        wrapped.append(current)
    return "\n".join(wrapped)


def text_block(text: str, width: int = 0, background: int = 255) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of ``text`` (one line per newline) in black on ``background``,
    at least ``width`` pixels wide and as wide as the longest line."""
    lines = text.split("\n")
    widths = [text_width(line) for line in lines]
    image = np.full((_LINE_HEIGHT * len(lines) + 4, max([width, *widths]) + 2 * TEXT_MARGIN, 3),
                    background, dtype=np.uint8)
    for number, line in enumerate(lines):
        cv2.putText(image, line, (TEXT_MARGIN, _LINE_HEIGHT * (number + 1) - 2), _FONT,
                    _FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def color_legend(max_magnitude: float, diameter: int = 121) -> np.ndarray:
    """The colour wheel as a disc: the colour of flow (u, v) at (u, v) from the centre, the rim
    at ``max_magnitude``; (diameter, diameter, 3) uint8 RGB, grey outside the disc."""
    radius = (diameter - 1) / 2
    offsets = (np.arange(diameter) - radius) / radius
    u, v = np.meshgrid(offsets, offsets)
    flow = np.stack([u, v], axis=-1).astype(np.float32) * max_magnitude
    disc = flow_to_color(flow, max_magnitude)
    disc[np.hypot(u, v) > 1.0] = GAP_VALUE
    return disc


def save_png(path: str | Path, image_rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image as a PNG file (whatever the suffix of ``path``),
    at PNG's strongest compression.

    Raises:
        InputError: the image has the wrong shape/dtype, or the file cannot be written.
    """
    path = Path(path)
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise InputError(
            f"cannot save {path}: image must be (H, W, 3) uint8 RGB, "
            f"got {image_rgb.shape} {image_rgb.dtype}"
        )
    # imencode + write, rather than imwrite, so the error can say why writing failed.
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise InputError(f"cannot save {path}: OpenCV could not encode the image as PNG")
    try:
        path.write_bytes(encoded.tobytes())
    except OSError as error:
        raise InputError(f"cannot save {path}: {error.strerror or error}") from error


def _check_flow(flow: np.ndarray, label: str) -> np.ndarray:
    """``flow`` as an ndarray after checking it is (H, W, 2) floating point."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or not np.issubdtype(flow.dtype, np.floating):
        raise InputError(f"{label} must be an (H, W, 2) float array, got {flow.shape} {flow.dtype}")
    return flow


def _check_frame(frame: np.ndarray, index: int) -> np.ndarray:
    """``frame`` as an ndarray after checking it is (H, W, 3) uint8."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(
            f"frame {index} must be an (H, W, 3) uint8 RGB array, got {frame.shape} {frame.dtype}"
        )
    return frame
