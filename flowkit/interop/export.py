"""Shards -> rawframe folders, keeping stored JPEG bytes as they are."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np

from flowkit.errors import ConfigError, InputError
from flowkit.interop.layouts import (
    EXPORT_INFO_NAME,
    FLOW_LIST_NAME,
    LIST_NAME,
    RawframeLayout,
    extension,
    get_layout,
    video_folder,
)
from flowkit.store.codec import encode_jpeg, encode_png, quantize_flow
from flowkit.store.reader import Video, open_shards
from flowkit.writing import write_text_atomic

FLOW_JPEG_QUALITY = 95          # grayscale flow JPEGs written from uint8/float16 flow
_CHUNK = 64                     # flows read at once when encoding


def export_rawframes(root: Path | str, out_dir: Path | str, layout: str = "mmaction2",
                     videos: Sequence[str] | None = None, *, jpeg_quality: int = 95,
                     flow_format: str = "jpeg", overwrite: bool = False) -> Path:
    """Write the videos stored ok in the shard folder ``root`` as rawframe folders in ``out_dir``.

    RGB stored as JPEG is written byte for byte; raw RGB is encoded at ``jpeg_quality``. With
    ``flow_format="jpeg"`` (what denseflow writes) flow stored as JPEG is written byte for byte
    and uint8 flow planes (and float16 flow, quantised with the stored bound) are encoded as
    grayscale JPEG at quality 95, which changes some values by several quantisation steps at
    motion boundaries (docs/interop.md). ``flow_format="png"`` writes the planes as lossless
    grayscale PNG (``x_00001.png``): reading them gives exactly the uint8 values the shards
    hold (JPEG-stored flow: its decoded values). Also writes ``flowkit_export.json`` and MMAction2's
    annotation lists (``video_dir total_frames label``, label -1 when unknown):
    ``rawframes_list.txt`` counts frames, for RGB pipelines; ``rawframes_list_flow.txt`` (when
    the shards hold flow) counts flows, one fewer, for Flow pipelines: MMAction2 reads flow
    files 1..total_frames, so a list counting frames sends it to a file that is not there.

    Args:
        videos: ids to export (default: every video stored ok).
        flow_format: "jpeg" or "png", the image format of the flow planes.
        overwrite: replace image files already in a video's folder (else refuse).

    Returns:
        ``out_dir``.

    Raises:
        ConfigError: unknown layout or flow format, two ids giving the same folder, or a folder already holds
            rawframes (without ``overwrite``).
        InputError: a requested id is not stored ok in ``root``.
        ShardError: ``root`` is not a readable output folder.
    """
    spec = get_layout(layout)
    extension(flow_format)  # refuses an unknown format before anything is written
    out_dir = Path(out_dir)
    with open_shards(root) as reader:
        ids = list(reader.videos if videos is None else videos)
        for video_id in ids:
            if video_id not in reader:
                raise InputError(f"{root}: no video {video_id!r} stored ok")
        folders = _unique_folders(ids, out_dir)
        shard_info: dict[str, Any] = {}
        if ids:
            shard_info = reader.shard_attrs(reader[ids[0]].entry.shard)
        out_dir.mkdir(parents=True, exist_ok=True)
        lines, flow_lines = [], []
        for video_id, folder in folders.items():
            video = reader[video_id]
            target = out_dir / folder
            _prepare_folder(target, spec, overwrite)
            _export_video(video, reader.shard_attrs(video.entry.shard), target, spec,
                          jpeg_quality, flow_format)
            label = -1 if video.entry.label is None else video.entry.label
            lines.append(f"{folder} {video.entry.num_frames} {label}\n")
            if video.has_flows:
                flow_lines.append(f"{folder} {video.entry.num_flows} {label}\n")
    write_text_atomic(out_dir / LIST_NAME, "".join(lines))
    if flow_lines:
        write_text_atomic(out_dir / FLOW_LIST_NAME, "".join(flow_lines))
    info = _export_info(root, spec, shard_info, jpeg_quality, flow_format, folders)
    write_text_atomic(out_dir / EXPORT_INFO_NAME, json.dumps(info, indent=1) + "\n")
    return out_dir


def _unique_folders(ids: Sequence[str], out_dir: Path) -> dict[str, str]:
    folders: dict[str, str] = {}
    by_folder: dict[str, str] = {}
    for video_id in ids:
        folder = video_folder(video_id)
        parts = PurePosixPath(folder).parts
        if not parts or ".." in parts or PurePosixPath(folder).is_absolute():
            raise ConfigError(f"video id {video_id!r} does not name a folder inside {out_dir}")
        other = by_folder.setdefault(folder, video_id)
        if other != video_id:
            raise ConfigError(f"videos {other!r} and {video_id!r} would both be exported to "
                              f"folder {folder!r}; export them separately (videos=...)")
        folders[video_id] = folder
    return folders


def _prepare_folder(target: Path, spec: RawframeLayout, overwrite: bool) -> None:
    target.mkdir(parents=True, exist_ok=True)
    patterns = spec.patterns().values()
    existing = [p for p in target.iterdir() if any(r.fullmatch(p.name) for r in patterns)]
    if existing and not overwrite:
        raise ConfigError(f"{target} already holds rawframes ({existing[0].name}, ...); "
                          "use --overwrite to replace them")
    for path in existing:
        path.unlink()


def _export_video(video: Video, shard: dict[str, Any], target: Path, spec: RawframeLayout,
                  jpeg_quality: int, flow_format: str) -> None:
    if video.has_frames:
        stored_jpeg = shard.get("rgb_format") == "jpeg"
        for index in range(len(video.frames)):
            data = (video.frames.jpeg_bytes(index) if stored_jpeg
                    else encode_jpeg(video.frames[index], jpeg_quality).tobytes())
            (target / spec.file_name(spec.rgb, index)).write_bytes(data)
    if not video.has_flows:
        return
    dtype, bound = shard.get("flow_dtype"), float(shard["bound"])
    for start in range(0, len(video.flows), _CHUNK):
        indices = range(start, min(start + _CHUNK, len(video.flows)))
        if dtype == "jpeg" and flow_format == "jpeg":
            planes = [video.flows.jpeg_bytes(k) for k in indices]
        else:
            stored = video.flows.quantized(slice(indices.start, indices.stop))
            if stored.dtype != np.uint8:  # float16: quantise as uint8 storage would
                stored = quantize_flow(stored.astype(np.float32), bound)
            planes = [tuple(_encode_plane(q[..., axis], flow_format) for axis in (0, 1))
                      for q in stored]
        for k, (x, y) in zip(indices, planes):
            (target / spec.file_name(spec.flow_x, k, flow_format)).write_bytes(x)
            (target / spec.file_name(spec.flow_y, k, flow_format)).write_bytes(y)


def _encode_plane(plane: np.ndarray, flow_format: str) -> bytes:
    plane = np.ascontiguousarray(plane)
    if flow_format == "png":
        return encode_png(plane).tobytes()
    return encode_jpeg(plane, FLOW_JPEG_QUALITY).tobytes()


def _export_info(root: Path | str, spec: RawframeLayout, shard: dict[str, Any],
                 jpeg_quality: int, flow_format: str, folders: dict[str, str]
                 ) -> dict[str, Any]:
    rgb_format, flow_dtype = shard.get("rgb_format", "none"), shard.get("flow_dtype")
    flow_params = shard.get("flow_params", {})
    ext = extension(flow_format)
    if flow_format == "png":
        flow_images = f"lossless PNG of the stored {flow_dtype} values"
    elif flow_dtype == "jpeg":
        flow_images = "stored bytes"
    else:
        flow_images = f"encoded from {flow_dtype} at quality {FLOW_JPEG_QUALITY}"
    return {
        "format": "flowkit-rawframes", "version": 1,
        "layout": spec.name, "first_index": spec.first,
        "names": {"rgb": f"{spec.rgb}{{:05d}}.jpg", "flow_x": f"{spec.flow_x}{{:05d}}.{ext}",
                  "flow_y": f"{spec.flow_y}{{:05d}}.{ext}"},
        "flow_format": flow_format,
        "bound": shard.get("bound"), "flow_step": shard.get("flow_step", 1),
        "flow_backend": shard.get("flow_backend"),
        "flow_params": json.loads(flow_params) if isinstance(flow_params, str) else flow_params,
        "source_flow_dtype": flow_dtype,
        "flow_images": flow_images,
        "flow_jpeg_quality": (None if flow_format == "png" else shard.get("jpeg_quality")
                              if flow_dtype == "jpeg" else FLOW_JPEG_QUALITY),
        "rgb_jpeg": ("stored bytes" if rgb_format == "jpeg"
                     else f"encoded from {rgb_format} at quality {jpeg_quality}"),
        "rgb_jpeg_quality": shard.get("jpeg_quality") if rgb_format == "jpeg" else jpeg_quality,
        "labels": f"{LIST_NAME}: video_dir num_frames label, label -1 when unknown",
        "source": str(Path(root).resolve()),
        "source_config": shard.get("config"),
        "videos": {folder: video_id for video_id, folder in folders.items()},
    }


# -- import -----------------------------------------------------------------------------------
