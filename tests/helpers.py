"""Plain helper functions shared by tests: synthetic frame pairs with known motion, shared data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import av
import numpy as np
import pytest

from flowkit.flow.files import read_flo, read_rgb_image

from flowkit.store.manifest import LEGACY_MANIFEST_NAME, MANIFEST_NAME, Manifest


def shared_data_dir() -> Path | None:
    """The read-only real-data folder ``../shared/data`` next to the project root, or None.

    Tests that need it skip with a clear reason when this returns None, so a checkout without
    the folder still passes.
    """
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return path if path.is_dir() else None


def rubberwhale() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Middlebury RubberWhale frames 10 and 11 (388x584 RGB) and their true flow; skips
    the calling test when the shared data folder is absent."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data folder ../shared/data is absent (Middlebury RubberWhale)")
    folder = data / "middlebury"
    return (read_rgb_image(folder / "RubberWhale-frame10.png"),
            read_rgb_image(folder / "RubberWhale-frame11.png"),
            read_flo(folder / "RubberWhale-flow10.flo"))


def translated_texture_pair(
    width: int, height: int, dx: float, dy: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two (H, W, 3) uint8 RGB frames of a smooth texture, the second moved by (dx, dy).

    The texture is periodic, Gaussian-filtered white noise (sigma 3 px), and the move is an exact
    Fourier phase shift, so sub-pixel motion needs no interpolation: the true flow is (dx, dy)
    at every pixel (pixel (x, y) of the first frame is at (x + dx, y + dy) in the second), up to
    the wrap-around at the borders and uint8 rounding. The three channels carry different
    contrasts of the same texture so colour conversion matters but motion is the same.
    """
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((height, width))
    fy = np.fft.fftfreq(height)[:, None]  # cycles per pixel
    fx = np.fft.rfftfreq(width)[None, :]
    sigma = 3.0
    spectrum = np.fft.rfft2(noise) * np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    # second(x, y) = first(x - dx, y - dy): a pixel moves by +(dx, dy).
    shifted = spectrum * np.exp(-2j * np.pi * (fx * dx + fy * dy))
    first = np.fft.irfft2(spectrum, s=(height, width))
    second = np.fft.irfft2(shifted, s=(height, width))
    low, high = min(first.min(), second.min()), max(first.max(), second.max())
    gains = np.array([1.0, 0.8, 0.6])  # per-channel contrast around mid-grey
    frames = []
    for gray in (first, second):
        unit = (gray - low) / (high - low) - 0.5  # in [-0.5, 0.5]
        rgb = 127.5 + 255.0 * unit[..., None] * gains
        frames.append(np.clip(np.round(rgb), 0, 255).astype(np.uint8))
    return frames[0], frames[1]


def faststart_copy(source: Path, target: Path) -> Path:
    """``target``: the video stream of ``source`` remuxed into an mp4 with its index (moov)
    first, as ``ffmpeg -movflags +faststart`` writes it, so a cut copy still opens."""
    with av.open(str(source)) as reading, \
            av.open(str(target), "w", container_options={"movflags": "+faststart"}) as writing:
        stream = writing.add_stream_from_template(reading.streams.video[0])
        for packet in reading.demux(reading.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                writing.mux(packet)
    return target


def assert_close_to_library(ours: np.ndarray, theirs: np.ndarray, ulps: float) -> None:
    """``ours`` equals a float32 result of another library (OpenCV, ...) to within ``ulps``
    float32 steps at the largest magnitude of ``theirs``.

    Two correct float32 implementations that round in a different order (one fused
    multiply-add or two roundings, a + (b - a) * w or (1 - w) * a + w * b) drift apart by a few
    such steps, and a library's next release may change its order: OpenCV 5.1's resize by a
    factor of 2 did. Exactness against a given release is not ours to guarantee; exactness
    of our code against itself is, and is tested as such.
    """
    theirs = np.asarray(theirs)
    step = float(np.spacing(np.float32(np.abs(theirs).max())))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=ulps * step)


def make_legacy_manifest(folder: Path, missing: str | None = None) -> None:
    """Turn ``folder``'s manifest into a manifest.json as flowkit wrote before the SQLite
    manifest, without the field ``missing`` (one added later) in any entry."""
    items = [dataclasses.asdict(entry) for entry in Manifest.read(folder)]
    for item in items:
        item.pop(missing, None)
    (folder / LEGACY_MANIFEST_NAME).write_text(json.dumps({"schema_version": 1, "videos": items}))
    (folder / MANIFEST_NAME).unlink()
