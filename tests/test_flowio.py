"""Flow files (Middlebury .flo, KITTI 16-bit .png, .npy) read and written, RGB image reading,
and masking of unknown ground truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from flowkit.errors import ConfigError, InputError
from flowkit.flow.files import (read_flo, read_flow, read_kitti_png, read_rgb_image, write_flo,
                                write_flow, write_kitti_png)
from flowkit.flow.metrics import endpoint_error, valid_flow_mask
from helpers import shared_data_dir


def _random_flow(height: int = 5, width: int = 7) -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 3.0, (height, width, 2)).astype(np.float32)


def test_round_trip_is_exact(tmp_path: Path) -> None:
    """write_flo then read_flo returns the same float32 values, unknown markers included."""
    flow = _random_flow()
    flow[2, 3] = 1e10  # Middlebury's unknown-flow marker survives
    write_flo(tmp_path / "a.flo", flow)
    back = read_flo(tmp_path / "a.flo")
    assert back.dtype == np.float32 and back.shape == (5, 7, 2)
    np.testing.assert_array_equal(back, flow)


def test_written_layout(tmp_path: Path) -> None:
    """The file is b'PIEH', int32 width 7, int32 height 5, then u, v interleaved row-major."""
    flow = _random_flow()
    write_flo(tmp_path / "a.flo", flow)
    data = (tmp_path / "a.flo").read_bytes()
    assert data[:4] == b"PIEH"
    assert np.frombuffer(data[4:12], "<i4").tolist() == [7, 5]
    assert len(data) == 12 + 5 * 7 * 2 * 4
    values = np.frombuffer(data[12:], "<f4")
    assert values[0] == flow[0, 0, 0] and values[1] == flow[0, 0, 1] and values[2] == flow[0, 1, 0]


def test_float64_flow_is_stored_as_float32(tmp_path: Path) -> None:
    """A float64 flow is written as float32 (file size 12 + 8 bytes per pixel)."""
    write_flo(tmp_path / "a.flo", np.full((2, 3, 2), 0.5))
    assert (tmp_path / "a.flo").stat().st_size == 12 + 2 * 3 * 8
    np.testing.assert_array_equal(read_flo(tmp_path / "a.flo"), np.full((2, 3, 2), 0.5))


def test_bad_magic_raises_input_error(tmp_path: Path) -> None:
    """A file not starting with 202021.25 raises InputError naming the file and the magic."""
    path = tmp_path / "bad.flo"
    write_flo(path, _random_flow())
    data = bytearray(path.read_bytes())
    data[:4] = b"XXXX"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bad\.flo.*magic"):
        read_flo(path)


@pytest.mark.parametrize("keep", [0, 8, 12, 12 + 5 * 7 * 8 - 4])
def test_truncated_file_raises_input_error(tmp_path: Path, keep: int) -> None:
    """A .flo cut to fewer bytes than its header promises raises InputError saying truncated."""
    path = tmp_path / "cut.flo"
    write_flo(path, _random_flow())
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(InputError, match=r"cut\.flo.*truncated"):
        read_flo(path)


def test_trailing_bytes_raise_input_error(tmp_path: Path) -> None:
    """A .flo longer than its header says raises InputError (header and data disagree)."""
    path = tmp_path / "long.flo"
    write_flo(path, _random_flow())
    path.write_bytes(path.read_bytes() + b"\0\0\0\0")
    with pytest.raises(InputError, match="trailing bytes"):
        read_flo(path)


def test_opencv_reads_our_files_and_we_read_opencvs_bit_for_bit(tmp_path: Path) -> None:
    """write_flo writes the bytes cv2.writeOpticalFlow writes; read_flo reads what
    cv2.readOpticalFlow reads, unknown markers and NaN included."""
    flow = _random_flow(13, 17)
    flow[2, 3], flow[4, 5, 1] = 1e10, np.nan
    write_flo(tmp_path / "ours.flo", flow)
    assert cv2.writeOpticalFlow(str(tmp_path / "opencv.flo"), flow)
    assert (tmp_path / "ours.flo").read_bytes() == (tmp_path / "opencv.flo").read_bytes()
    np.testing.assert_array_equal(read_flo(tmp_path / "opencv.flo"), flow)
    np.testing.assert_array_equal(cv2.readOpticalFlow(str(tmp_path / "ours.flo")), flow)


@pytest.mark.parametrize("width, height, match", [
    (-1, 5, "invalid size -1x5"),  # cv2.readOpticalFlow: segmentation fault
    (0, 5, "invalid size 0x5"),
    (100000, 100000, r"truncated: 12 bytes, its 100000x100000 header needs 80000000012"),
])  # the last: cv2.readOpticalFlow tries to allocate 80 GB
def test_a_hostile_header_is_one_line_before_any_allocation(tmp_path: Path, width, height,
                                                            match) -> None:
    """Headers that crash or mislead OpenCV's reader are refused naming the file."""
    path = tmp_path / "head.flo"
    path.write_bytes(b"PIEH" + np.array([width, height], "<i4").tobytes())
    with pytest.raises(InputError, match=rf"head\.flo .*{match}"):
        read_flo(path)


def test_missing_flo_raises_input_error(tmp_path: Path) -> None:
    """Reading a missing .flo raises InputError naming the file."""
    with pytest.raises(InputError, match="nothere.flo"):
        read_flo(tmp_path / "nothere.flo")


def test_write_flo_rejects_wrong_shape(tmp_path: Path) -> None:
    """write_flo refuses an array that is not (H, W, 2)."""
    with pytest.raises(InputError, match=r"\(H, W, 2\)"):
        write_flo(tmp_path / "a.flo", np.zeros((4, 4, 3), np.float32))


def test_read_rgb_image_returns_rgb_order(tmp_path: Path) -> None:
    """A PNG holding a pure red pixel reads back as (255, 0, 0), i.e. RGB not BGR."""
    bgr = np.zeros((2, 3, 3), dtype=np.uint8)
    bgr[0, 0] = (0, 0, 255)  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    rgb = read_rgb_image(tmp_path / "red.png")
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [255, 0, 0]


def test_read_rgb_image_expands_grayscale(tmp_path: Path) -> None:
    """A grayscale PNG reads back as (H, W, 3) with equal channels."""
    cv2.imwrite(str(tmp_path / "gray.png"), np.full((2, 3), 77, dtype=np.uint8))
    assert read_rgb_image(tmp_path / "gray.png").tolist() == [[[77, 77, 77]] * 3] * 2


@pytest.mark.parametrize("content", [b"", b"not an image"])
def test_read_rgb_image_unreadable_raises_input_error(tmp_path: Path, content: bytes) -> None:
    """An empty or non-image file raises InputError naming the file."""
    path = tmp_path / "junk.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"junk\.png"):
        read_rgb_image(path)


def test_valid_flow_mask_marks_unknown_values() -> None:
    """Pixels with |u| or |v| >= 1e9, or NaN, are invalid; others valid."""
    truth = np.zeros((1, 5, 2), dtype=np.float32)
    truth[0, 1, 0] = 1e10
    truth[0, 2, 1] = -1e9
    truth[0, 3, 0] = np.nan
    truth[0, 4, 1] = 9.9e8
    assert valid_flow_mask(truth).tolist() == [[True, False, False, False, True]]


def test_endpoint_error_ignores_unknown_pixels() -> None:
    """EPE of errors (3, 4) and (0, 0) is 2.5; a third pixel with unknown truth does not count."""
    truth = np.array([[[1.0, 1.0], [2.0, -1.0], [1e10, 1e10]]], dtype=np.float32)
    flow = np.array([[[4.0, 5.0], [2.0, -1.0], [0.0, 0.0]]], dtype=np.float32)
    assert endpoint_error(flow, truth) == pytest.approx(2.5)
    assert endpoint_error(flow, truth, valid=np.array([[True, False, False]])) == pytest.approx(5.0)


def test_endpoint_error_without_valid_pixels_raises() -> None:
    """EPE over a mask with no valid pixel raises InputError instead of returning NaN."""
    with pytest.raises(InputError, match="no valid pixel"):
        endpoint_error(np.zeros((2, 2, 2)), np.full((2, 2, 2), 1e10))


def test_rubberwhale_ground_truth() -> None:
    """The shared RubberWhale .flo is 388x584 with 3,622 unknown pixels and |flow| < 5 elsewhere."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data folder ../shared/data is absent; this test reads RubberWhale")
    truth = read_flo(data / "middlebury" / "RubberWhale-flow10.flo")
    valid = valid_flow_mask(truth)
    assert truth.shape == (388, 584, 2)
    assert int((~valid).sum()) == 3622
    assert float(np.abs(truth[valid]).max()) < 5.0


# ---- KITTI 16-bit PNG, .npy, and the choice by extension -------------------------------------

def _png_rgb16(rows: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of (H, W, 3) uint16 ``rows``, built by hand (no OpenCV), channels in the
    file's order R, G, B: what the KITTI devkit reads."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    height, width = rows.shape[:2]
    raw = b"".join(b"\0" + rows[y].astype(">u2").tobytes() for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_kitti_png_round_trip_is_within_a_64th_of_a_pixel(tmp_path: Path) -> None:
    """write_kitti_png then read_kitti_png: every known pixel within 1/64 px (rounding: 1/128),
    valid flags kept; read_flow marks the unknown pixels so that EPE leaves them out."""
    flow = _random_flow(40, 50) * 10
    flow[3, 4] = 1e10  # a .flo unknown marker: written as invalid
    valid = valid_flow_mask(flow)
    valid[5, 6] = False  # and an explicit invalid pixel
    write_kitti_png(tmp_path / "f.png", flow, valid)
    back, back_valid = read_kitti_png(tmp_path / "f.png")
    assert back.dtype == np.float32 and back.shape == (40, 50, 2)
    assert back_valid.tolist() == valid.tolist()
    assert np.abs(back - flow)[valid].max() <= 1 / 128 + 1e-6
    as_flow = read_flow(tmp_path / "f.png")
    assert valid_flow_mask(as_flow).tolist() == valid.tolist()
    assert endpoint_error(as_flow, flow, valid) <= 1 / 64


def test_kitti_png_channels_are_r_u_g_v_b_valid(tmp_path: Path) -> None:
    """The devkit's layout: a PNG built by hand with R = u, G = v, B = valid reads as such, and
    the writer puts u in red (OpenCV's BGR channel 2), v in green, valid in blue."""
    pixels = np.array([[[2 ** 15 + 64, 2 ** 15 - 32, 1], [0, 0, 0]]], np.uint16)  # u 1, v -0.5
    (tmp_path / "hand.png").write_bytes(_png_rgb16(pixels))
    flow, valid = read_kitti_png(tmp_path / "hand.png")
    assert flow[0, 0].tolist() == [1.0, -0.5] and valid.tolist() == [[True, False]]
    write_kitti_png(tmp_path / "mine.png", np.array([[[1.0, -0.5], [1e10, 0.0]]]))
    bgr = cv2.imread(str(tmp_path / "mine.png"), cv2.IMREAD_UNCHANGED)
    assert bgr.dtype == np.uint16 and bgr[..., ::-1].tolist() == pixels.tolist()


def test_kitti_png_saturates_beyond_512_px(tmp_path: Path) -> None:
    """Flow beyond the 16-bit range (+-512 px at 1/64 px) is clipped, not wrapped around."""
    write_kitti_png(tmp_path / "f.png", np.array([[[600.0, -600.0]]]))
    flow, _ = read_kitti_png(tmp_path / "f.png")
    assert flow[0, 0].tolist() == [(65535 - 2 ** 15) / 64, -512.0]


def test_read_kitti_png_refuses_an_8_bit_image(tmp_path: Path) -> None:
    """An ordinary 8-bit PNG is not KITTI flow: InputError naming the file."""
    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InputError, match=r"photo\.png is not a KITTI flow PNG"):
        read_kitti_png(tmp_path / "photo.png")


def test_npy_round_trip_is_exact_and_checks_the_shape(tmp_path: Path) -> None:
    """.npy holds the float32 (H, W, 2) array itself; another shape is refused on reading."""
    flow = _random_flow()
    write_flow(tmp_path / "f.npy", flow.astype(np.float64))
    back = read_flow(tmp_path / "f.npy")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, flow)
    np.save(tmp_path / "other.npy", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError, match=r"other\.npy.*\(4, 4, 3\)"):
        read_flow(tmp_path / "other.npy")


@pytest.mark.parametrize("name", ["f.flo", "f.png", "f.npy", "F.FLO"])
def test_write_flow_and_read_flow_choose_the_format_by_extension(tmp_path: Path, name) -> None:
    """write_flow / read_flow: .flo, .png, .npy (any case), each in its own format."""
    flow = _random_flow()
    write_flow(tmp_path / name, flow)
    data = (tmp_path / name).read_bytes()
    assert data[:4] == {".flo": b"PIEH", ".png": b"\x89PNG", ".npy": b"\x93NUM"}[
        Path(name).suffix.lower()]
    assert np.abs(read_flow(tmp_path / name) - flow).max() <= 1 / 128 + 1e-6


@pytest.mark.parametrize("name", ["f.jpg", "f.flo5", "f"])
def test_other_extensions_are_refused_listing_the_formats(tmp_path: Path, name) -> None:
    """Any other extension raises ConfigError listing .flo, .png and .npy; nothing is written."""
    with pytest.raises(ConfigError, match=r"\.flo \(Middlebury\), \.png \(KITTI.*\.npy"):
        write_flow(tmp_path / name, _random_flow())
    with pytest.raises(ConfigError, match="unknown flow file extension"):
        read_flow(tmp_path / name)
    assert not list(tmp_path.iterdir())
