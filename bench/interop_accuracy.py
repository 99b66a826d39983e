"""How exactly `flowkit export` flow comes back: JPEG (the default) vs PNG flow planes.

Extracts the same videos twice with the same backend, flow stored as uint8 (the default) and
as float16 (the float flow, to within float16), exports the uint8 shards as MMAction2 rawframe
folders with `--flow-format jpeg` and `png`, and reads the flow images back as MMAction2 does
(RawFrameDecode: mmcv.imfrombytes(flag="grayscale"), i.e. cv2.imdecode IMREAD_GRAYSCALE; mmcv
itself when installed) and through `flowkit import`. Reports, per format, the error against
the shard's stored uint8 flow (in quantisation steps) and against the float flow (in pixels,
the float flow clipped to +-B as quantisation does), where the largest errors sit (at motion
edges or not), the same planes as JPEG at quality 100, and the bytes per flow.

Data: the motion laboratory (`flowkit synth --task motion`, 8 classes, 64x64, 16 frames) and
four 128x96 translating-texture videos (`flowkit synth`).

    python bench/interop_accuracy.py [--flow tvl1] [--videos-per-class 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from common import machine, require_all_ok
from flowkit.config import ExtractConfig
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.interop import export_rawframes, import_rawframes, video_folder
from flowkit.store.codec import dequantize_flow, encode_jpeg
from flowkit.store.reader import open_shards
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig
from flowkit.video.motion_lab import MotionLabConfig, make_motion_dataset
from flowkit.video.synth import SynthConfig, make_synthetic_videos

BOUND = 20.0
STEP = 2 * BOUND / 255


def _reader():
    """MMAction2's grayscale read of a flow file (mmcv when installed, else the cv2 call it
    makes), and its name."""
    try:
        import mmcv

        return (lambda data: mmcv.imfrombytes(data, flag="grayscale"),
                f"mmcv {mmcv.__version__} imfrombytes(flag='grayscale')")
    except ImportError:
        return (lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE),
                "cv2.imdecode(IMREAD_GRAYSCALE), as mmcv.imfrombytes(flag='grayscale')")


def _extract(videos: Path, out: Path, flow: str, flow_dtype: str) -> Path:
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow=flow,
                           storage=StorageConfig(flow_dtype=flow_dtype, bound=BOUND))
    report = extract(collect_videos([videos / "labels.txt"]), out, config, workers=1,
                     progress=False)
    require_all_ok(report)
    return out


def _edges(stored: np.ndarray) -> np.ndarray:
    """Pixels within 4 px (half a JPEG block) of a motion edge, where a 3x3 neighbourhood of
    the stored plane spans more than 4 steps (0.6 px at bound 20)."""
    small, near = np.ones((3, 3), np.uint8), np.ones((9, 9), np.uint8)
    masks = []
    for plane in np.moveaxis(stored, -1, 0):
        edge = (cv2.dilate(plane, small) - cv2.erode(plane, small) > 4).astype(np.uint8)
        masks.append(cv2.dilate(edge, near) > 0)
    return np.stack(masks, axis=-1)


class Errors:
    """Accumulated errors of read-back uint8 flow against stored uint8 and float flow."""

    def __init__(self) -> None:
        self.steps: list[np.ndarray] = []    # |read - stored| in steps
        self.pixels: list[np.ndarray] = []   # |dequantised read - clipped float| in px
        self.edges: list[np.ndarray] = []
        self.bytes = 0
        self.flows = 0

    def add(self, read: np.ndarray, stored: np.ndarray, float_flow: np.ndarray) -> None:
        self.steps.append(np.abs(read.astype(np.int16) - stored.astype(np.int16)).ravel())
        truth = np.clip(float_flow.astype(np.float32), -BOUND, BOUND)
        self.pixels.append(np.abs(dequantize_flow(read, BOUND) - truth).ravel())
        self.edges.append(_edges(stored).ravel())

    def row(self, name: str) -> str:
        steps, pixels = np.concatenate(self.steps), np.concatenate(self.pixels)
        edges = np.concatenate(self.edges)
        near = steps[edges].max() if edges.any() else 0
        far = steps[~edges].max() if (~edges).any() else 0
        size = f"{self.bytes / self.flows:,.0f}" if self.flows else "-"
        return (f"| {name} | {steps.max()} ({steps.max() * STEP:.2f} px) | "
                f"{np.mean(steps != 0) * 100:.2f} % | {steps.mean() * STEP:.4f} | "
                f"{pixels.max():.3f} | {pixels.mean():.4f} | {near} / {far} | {size} |")


def measure(name: str, videos: Path, work: Path, flow: str) -> tuple[list[str], str]:
    """Rows of the table for one data set, and a note on its imports."""
    read, _ = _reader()
    uint8 = _extract(videos, work / f"{name}_u8", flow, "uint8")
    half = _extract(videos, work / f"{name}_f16", flow, "float16")
    exports = {fmt: export_rawframes(uint8, work / f"{name}_{fmt}", "mmaction2",
                                     flow_format=fmt) for fmt in ("jpeg", "png")}
    imports = {fmt: import_rawframes([folder], work / f"{name}_{fmt}_back", None)
               for fmt, folder in exports.items()}
    for report in imports.values():
        require_all_ok(report)
    errors = {key: Errors() for key in ("stored", "jpeg", "jpeg-100", "png")}
    identical_imports = {fmt: True for fmt in exports}
    with open_shards(uint8) as shards, open_shards(half) as floats:
        backs = {fmt: open_shards(imports[fmt].out_dir) for fmt in exports}
        for video_id in shards.videos:
            stored = shards[video_id].flows.quantized(slice(None))
            float_flow = floats[video_id].flows[:]
            for k in range(len(stored)):
                errors["stored"].add(stored[k], stored[k], float_flow[k])
                for fmt, folder in exports.items():
                    ext = "jpg" if fmt == "jpeg" else "png"
                    files = [folder / video_folder(video_id) / f"{axis}_{k + 1:05d}.{ext}"
                             for axis in "xy"]
                    data = [path.read_bytes() for path in files]
                    back = np.stack([read(item) for item in data], axis=-1)
                    errors[fmt].add(back, stored[k], float_flow[k])
                    errors[fmt].bytes += sum(map(len, data))
                    errors[fmt].flows += 1
                    imported = backs[fmt][video_id].flows.quantized(k)
                    identical_imports[fmt] &= bool(np.array_equal(imported, back))
                best = [encode_jpeg(np.ascontiguousarray(stored[k][..., axis]), 100)
                        for axis in (0, 1)]
                errors["jpeg-100"].add(np.stack([read(item.tobytes()) for item in best], -1),
                                       stored[k], float_flow[k])
                errors["jpeg-100"].bytes += sum(item.size for item in best)
                errors["jpeg-100"].flows += 1
        for back in backs.values():
            back.close()
    shard_bytes = sum(path.stat().st_size for path in uint8.glob("*.h5"))
    rows = [errors["stored"].row(f"{name}: shard uint8 (quantisation only)"),
            errors["jpeg"].row(f"{name}: export jpeg (quality 95, the default)"),
            errors["jpeg-100"].row(f"{name}: same planes as JPEG quality 100"),
            errors["png"].row(f"{name}: export png")]
    note = (f"{name}: import of the jpeg export reads what MMAction2 reads: "
             f"{identical_imports['jpeg']}; import of the png export is the stored uint8 "
             f"exactly: {identical_imports['png']}; shard files {shard_bytes:,} bytes "
             f"(RGB and flow) for {errors['png'].flows} flows")
    return rows, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", default="tvl1", help="flow backend (default tvl1)")
    parser.add_argument("--videos-per-class", type=int, default=2,
                        help="motion laboratory videos per class (default 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_motion_dataset(work / "lab", MotionLabConfig(videos_per_class=args.videos_per_class))
        make_synthetic_videos(work / "translate", SynthConfig(num_videos=4, num_frames=4,
                                                              width=128, height=96))
        results = [measure("lab", work / "lab", work, args.flow),
                   measure("translate", work / "translate", work, args.flow)]
    _, reader = _reader()
    print(f"{machine()}; flow {args.flow}, bound {BOUND:g} (step {STEP:.4f} px); "
          f"read with {reader}\n")
    print("| flow read back | max error vs stored uint8, steps | values changed | "
          "mean error vs stored, px | max error vs float flow, px | mean vs float, px | "
          "max within 4 px of a motion edge / elsewhere, steps | bytes per flow (x+y) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for rows, _ in results:
        print("\n".join(rows))
    print()
    for _, note in results:
        print(note)


if __name__ == "__main__":
    main()
