"""Rawframe folders -> shards (``flowkit import``), keeping the JPEG files' bytes as they are
(lossless PNG flow planes are stored as the uint8 values they hold)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from flowkit.errors import ConfigError, FlowkitError, InputError, OutputError, ShardError
from flowkit.extract.inputs import require_unique_ids
from flowkit.lock import FolderLock
from flowkit.extract.plan import assign_new_shards
from flowkit.extract.shard import settings_attributes
from flowkit.interop.layouts import (
    EXPORT_INFO_NAME,
    IMPORTED_BACKEND,
    LAYOUTS,
    LIST_NAME,
    RawframeLayout,
    format_of,
    get_layout,
)
from flowkit.store.flowstats import FlowStats, quantized_flow_stats
from flowkit.store.folder import CONFIG_NAME, output_files, remove_temporaries
from flowkit.store.manifest import FAILED, OK, Manifest, ManifestEntry
from flowkit.store.writer import ShardWriter, StorageConfig, VideoWriter


@dataclasses.dataclass(frozen=True)
class ImportReport:
    """What an import did: counts, failures with their reasons, and notes on flow counts."""

    out_dir: Path
    total: int
    ok: int
    failed: list[ManifestEntry]
    notes: list[str]

    @property
    def all_ok(self) -> bool:
        return not self.failed


@dataclasses.dataclass(frozen=True)
class _Folder:
    """A rawframe folder to import: its path, the id it gets, and its label."""

    path: Path
    video_id: str
    label: int | None


@dataclasses.dataclass(frozen=True)
class _Scan:
    """The checked files of one folder; ``dropped`` flows were extra (a repeated last flow);
    ``flow_stats`` of the decoded flow, None when the JPEGs were not decoded or hold no flow."""

    frames: list[Path]
    xs: list[Path]
    ys: list[Path]
    num_frames: int
    height: int
    width: int
    dropped: int
    flow_stats: FlowStats | None


def import_rawframes(folders: Sequence[Path | str], out_dir: Path | str, layout: str | None,
                     bound: float | None = None, *, flow_step: int | None = None,
                     labels: Path | str | None = None, videos_per_shard: int | None = None,
                     check_decode: bool = True, overwrite: bool = False) -> ImportReport:
    """Pack rawframe folders into shards + manifest.sqlite + extract_config.json in ``out_dir``.

    Each of ``folders`` is one video's folder (it holds rawframe files itself; id = its name)
    or a root searched recursively for such folders (id = path relative to the root). JPEG
    bytes are stored as they are (RGB as ``rgb="jpeg"``, flow as ``flow_dtype="jpeg"``); flow
    planes written as PNG (``flowkit export --flow-format png``) are stored as the uint8 values
    they hold (``flow_dtype="uint8"``), so the round trip is exact. Shards record ``flow_backend="imported"`` and the layout in ``flow_params``.

    A root holding ``flowkit_export.json`` (written by
    [`export_rawframes`][flowkit.interop.export_rawframes]) supplies the defaults for ``layout``,
    ``bound`` and ``flow_step``, the original video ids, the source's flow backend, and (when
    ``labels`` is not given) labels from its ``rawframes_list.txt``.

    Per video: indices must run without gaps from the layout's first index; x and y counts
    must match; flows must number floor((frames - 1) / step), or one more (tools that repeat
    the last flow: the extra one is dropped and noted); every JPEG must decode (with
    ``check_decode``, else only its start/end markers are checked) at the size of the first
    image (every flow file of an import must be JPEG, or every one PNG). The flow decoded by that check gives each video's flow statistics
    (:func:`flowkit.store.flowstats.quantized_flow_stats`); without ``check_decode`` they are
    unknown. A video failing a check is recorded as failed with the reason; the others go on.

    Args:
        layout: "mmaction2" or "denseflow"; None takes the one flowkit_export.json records.
        bound: flow bound B the JPEGs were quantised with (JPEG folders do not record it).
        flow_step: frames between the two frames of a flow (default 1).
        labels: MMAction2 annotation list (``video_dir num_frames label``); dirs are matched
            against the folder paths relative to their root. A label of -1 means unknown.
        overwrite: replace flowkit output already in ``out_dir`` (else refuse).

    Raises:
        ConfigError: bad layout/bound/step, no bound known, or ``out_dir`` holds output.
        InputError: a folder is missing, holds no rawframes, two give the same id, or some
            folders hold JPEG flow and others PNG.
    """
    out_dir = Path(out_dir)
    infos = [_read_export_info(Path(f)) for f in folders]
    known = [info for info in infos if info]
    if layout is None and not known:
        raise ConfigError("the layout is not recorded in rawframe folders without "
                          f"{EXPORT_INFO_NAME}: give it (--layout {' or '.join(LAYOUTS)})")
    spec = get_layout(layout if layout is not None else known[0].get("layout", ""))
    for info, folder in zip(infos, folders):
        if info and info.get("layout") != spec.name:
            raise ConfigError(f"{folder} was exported with layout {info.get('layout')!r}, "
                              f"not {spec.name!r}")
    source_info = known[0] if known else {}
    bound = bound if bound is not None else source_info.get("bound")
    if bound is None:
        raise ConfigError("the flow bound is not recorded in JPEG folders: give it (--bound), "
                          "e.g. 20 for TSN/denseflow defaults")
    flow_step = flow_step or source_info.get("flow_step") or 1
    if flow_step < 1:
        raise ConfigError(f"flow step must be >= 1, got {flow_step}")
    label_map = _read_labels(Path(labels)) if labels is not None else None
    found = _find_folders([Path(f) for f in folders], infos, spec, label_map)
    if not found:
        raise InputError(f"no {spec.name} rawframe folders (img_*.jpg, {spec.flow_x}*, "
                         f"{spec.flow_y}* .jpg or .png files) in {', '.join(map(str, folders))}")

    scans: dict[str, _Scan | Exception] = {}
    has_rgb = has_flow = False
    by_format: dict[str, Path] = {}  # flow image format -> the first folder holding only it
    for folder in found:
        files = _list_files(folder.path, spec)
        has_rgb, has_flow = has_rgb or bool(files["rgb"]), has_flow or bool(files["x"])
        suffixes = {path.suffix for _, path in files["x"] + files["y"]}
        if len(suffixes) == 1:
            by_format.setdefault(format_of(suffixes.pop()[1:]), folder.path)
    if len(by_format) > 1:
        raise InputError(f"{by_format['jpeg']} holds JPEG flow images and {by_format['png']} "
                         "PNG ones; import them separately")
    flow_format = next(iter(by_format), "jpeg")
    notes: list[str] = []
    for folder in found:
        try:
            scans[folder.video_id] = _scan(folder.path, spec, flow_step, has_rgb, has_flow,
                                           check_decode, bound, flow_format)
        except FlowkitError as exc:
            scans[folder.video_id] = exc
    for folder in found:
        scan = scans[folder.video_id]
        if isinstance(scan, _Scan) and scan.dropped:
            notes.append(f"{folder.video_id}: {folder.path} has {len(scan.xs) + scan.dropped} "
                         f"flows for {scan.num_frames} frames; the last {scan.dropped} "
                         "(a repeated flow) was dropped")

    lossless = flow_format == "png"  # stored as uint8 values, deflated like extracted flow
    storage = StorageConfig(rgb="jpeg" if has_rgb else "none",
                            flow_dtype="uint8" if lossless else "jpeg", bound=bound,
                            jpeg_quality=_quality(source_info),
                            compression="gzip" if lossless else "none")
    config = _import_config(spec, source_info, folders, flow_step, storage, has_flow)
    out_dir.mkdir(parents=True, exist_ok=True)
    with FolderLock(out_dir):
        _clear_output(out_dir, overwrite)
        (out_dir / CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n")
        with Manifest.open(out_dir) as manifest:
            assign_new_shards(manifest, [ManifestEntry(folder.video_id,
                                                       str(folder.path.resolve()), folder.label,
                                                       shard="") for folder in found],
                              videos_per_shard)
            attrs = settings_attributes(config)
            for shard_name in manifest.shards():
                manifest.put_many(_write_shard(out_dir / shard_name, manifest.in_shard(shard_name),
                                               scans, storage, attrs, flow_step))
            return ImportReport(out_dir=out_dir, total=len(manifest), ok=manifest.count(OK),
                                failed=manifest.with_status(FAILED), notes=notes)


def _read_export_info(root: Path) -> dict[str, Any]:
    path = root / EXPORT_INFO_NAME
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None
    return info if isinstance(info, dict) else {}


def _read_labels(path: Path) -> dict[str, int | None]:
    """``video_dir num_frames label`` per line -> {video_dir: label}; -1 becomes None."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read label list ({exc})") from None
    labels: dict[str, int | None] = {}
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        try:
            if len(tokens) < 3:
                raise ValueError
            int(tokens[1])
            label = int(tokens[2])
        except ValueError:
            raise InputError(f"{path}:{number}: expected 'video_dir num_frames label', "
                             f"got {line.strip()!r}") from None
        labels[tokens[0].strip("/")] = None if label < 0 else label
    return labels


def _find_folders(roots: list[Path], infos: list[dict[str, Any]], spec: RawframeLayout,
                  label_map: dict[str, int | None] | None) -> list[_Folder]:
    found: list[_Folder] = []
    for root, info in zip(roots, infos):
        if not root.is_dir():
            raise InputError(f"{root}: no such folder")
        labels = label_map
        if labels is None and info and (root / LIST_NAME).is_file():
            labels = _read_labels(root / LIST_NAME)
        ids = info.get("videos", {}) if info else {}
        if _holds_rawframes(root, spec):
            pairs = [(root, root.name)]
        else:
            pairs = [(path, path.relative_to(root).as_posix()) for path in _walk(root, spec)]
        for path, relative in pairs:
            label = (labels or {}).get(relative)
            found.append(_Folder(path, ids.get(relative, relative), label))
    require_unique_ids((folder.video_id, folder.path) for folder in found)
    return found


def _holds_rawframes(folder: Path, spec: RawframeLayout) -> bool:
    patterns = spec.patterns().values()
    with os.scandir(folder) as entries:
        return any(entry.is_file() and any(p.fullmatch(entry.name) for p in patterns)
                   for entry in entries)


def _walk(root: Path, spec: RawframeLayout) -> Iterator[Path]:
    for folder, _, _ in sorted(os.walk(root, followlinks=True), key=lambda item: item[0]):
        if _holds_rawframes(Path(folder), spec):
            yield Path(folder)


def _list_files(folder: Path, spec: RawframeLayout) -> dict[str, list[tuple[int, Path]]]:
    files: dict[str, list[tuple[int, Path]]] = {kind: [] for kind in ("rgb", "x", "y")}
    patterns = spec.patterns()
    for path in folder.iterdir():
        for kind, pattern in patterns.items():
            if match := pattern.fullmatch(path.name):
                files[kind].append((int(match.group(1)), path))
    return {kind: sorted(items) for kind, items in files.items()}


def _scan(folder: Path, spec: RawframeLayout, step: int, has_rgb: bool, has_flow: bool,
          check_decode: bool, bound: float, flow_format: str) -> _Scan:
    """Check one folder's files and, when decoding them, count the statistics of their flow
    (quantised with ``bound``; images in ``flow_format``). Raises InputError naming the folder
    and the problem."""
    files = _list_files(folder, spec)
    for kind in ("x", "y"):
        other = next((path for _, path in files[kind] if format_of(path.suffix[1:])
                      != flow_format), None)
        if other is not None:
            raise InputError(f"{other}: flow images of one import must all be "
                             f"{flow_format.upper()}, as the others are")
    for kind, prefix in (("rgb", spec.rgb), ("x", spec.flow_x), ("y", spec.flow_y)):
        for expected, (index, path) in enumerate(files[kind], start=spec.first):
            if index != expected:
                raise InputError(f"{folder}: {spec.file_name(prefix, expected - spec.first)} "
                                 f"is missing ({prefix}* files must be numbered from "
                                 f"{spec.first} without gaps)")
    frames = [path for _, path in files["rgb"]]
    xs, ys = [path for _, path in files["x"]], [path for _, path in files["y"]]
    if len(xs) != len(ys):
        raise InputError(f"{folder}: {len(xs)} {spec.flow_x}* files but {len(ys)} "
                         f"{spec.flow_y}* files; x and y must come in pairs")
    if has_rgb and not frames:
        raise InputError(f"{folder}: no {spec.rgb}* files (other folders have RGB frames)")
    num_frames = len(frames) if has_rgb else len(xs) * step + 1
    expected = (num_frames - 1) // step if has_flow else 0
    dropped = 0
    if len(xs) == expected + 1 and expected > 0:
        dropped = 1  # tools that give N flows for N frames repeat the last one
    elif len(xs) != expected:
        raise InputError(f"{folder}: {len(xs)} flows for {num_frames} frames; step {step} "
                         f"needs {expected} (or {expected + 1} from tools that repeat the last)")
    xs, ys = xs[:len(xs) - dropped], ys[:len(ys) - dropped]
    first = frames[0] if frames else xs[0] if xs else None
    if first is None:
        raise InputError(f"{folder}: no rawframe files")
    height, width = _decode(first, color=bool(frames)).shape[:2]
    for path in frames:
        _check_image(path, (height, width), color=True, full=check_decode)
    stats = FlowStats(bound) if check_decode and has_flow else None
    for x, y in zip(xs, ys):
        planes = [_check_image(path, (height, width), color=False, full=check_decode)
                  for path in (x, y)]
        if stats is not None:
            stats += quantized_flow_stats(np.stack(planes, axis=-1), bound)
    return _Scan(frames, xs, ys, num_frames, height, width, dropped, stats)


def _decode(path: Path, color: bool) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        kind = "PNG" if path.suffix == ".png" else "JPEG"
        raise InputError(f"{path}: not a readable {kind} image")
    if not color and image.ndim != 2:
        raise InputError(f"{path}: flow images must be grayscale, this one has "
                         f"{image.shape[2]} channels")
    if image.dtype != np.uint8:
        raise InputError(f"{path}: flow images must hold 8-bit values, this one {image.dtype}")
    return image


_PNG_START, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def _check_image(path: Path, size: tuple[int, int], color: bool, full: bool
                 ) -> np.ndarray | None:
    """Start/end markers always (they catch truncation, which libjpeg only warns about; PNG:
    signature and IEND chunk); with ``full``, decode it too and return the image."""
    data = path.read_bytes()
    if path.suffix == ".png":
        if not data.startswith(_PNG_START) or not data.endswith(_PNG_END):
            raise InputError(f"{path}: corrupt or truncated PNG (no signature or IEND chunk)")
    elif not data.startswith(b"\xff\xd8") or not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise InputError(f"{path}: corrupt or truncated JPEG (no start/end marker)")
    if full:
        image = _decode(path, color)
        if image.shape[:2] != size:
            raise InputError(f"{path}: {image.shape[1]}x{image.shape[0]} pixels, the first "
                             f"image of its folder is {size[1]}x{size[0]}")
        return image
    return None


def _quality(source_info: dict[str, Any]) -> int:
    """JPEG quality of the imported RGB when the folder was exported by flowkit, else 95
    as a placeholder that StorageConfig accepts (the config records ``jpeg_quality_known``)."""
    quality = source_info.get("rgb_jpeg_quality")
    return int(quality) if isinstance(quality, int) and 1 <= quality <= 100 else 95


def _import_config(spec: RawframeLayout, source_info: dict[str, Any],
                   folders: Sequence[Path | str], step: int, storage: StorageConfig,
                   has_flow: bool) -> dict[str, Any]:
    """extract_config.json of an import: ExtractConfig's keys, flow ``"imported"``."""
    source_config = source_info.get("source_config") or {}
    decode = source_config.get("decode") or {"short_side": None, "size": None, "fps": None,
                                            "threads": 0}
    return {
        "decode": decode,
        "flow": IMPORTED_BACKEND if has_flow else "none",
        "flow_params": {
            "layout": spec.name,
            "source_backend": source_info.get("flow_backend") or "unknown",
            "source_params": source_info.get("flow_params"),
            "folders": [str(Path(f).resolve()) for f in folders],
            "jpeg_quality_known": "rgb_jpeg_quality" in source_info,
        } if has_flow else None,
        "flow_step": step,
        "storage": dataclasses.asdict(storage),
        "device": "cpu", "batch_size": 1,
    }


def _clear_output(out_dir: Path, overwrite: bool) -> None:
    outputs = output_files(out_dir)
    if not overwrite and any(path.exists() for path in outputs):
        raise ConfigError(f"{out_dir} already holds flowkit output; choose another folder or "
                          "use --overwrite")
    for path in outputs:
        path.unlink(missing_ok=True)
    remove_temporaries(out_dir)


def _write_shard(path: Path, entries: list[ManifestEntry], scans: dict[str, _Scan | Exception],
                 storage: StorageConfig, attrs: dict[str, Any], step: int
                 ) -> list[ManifestEntry]:
    done = []
    with ShardWriter(path, storage, attrs) as shard:
        for entry in entries:
            scan = scans[entry.video_id]
            try:
                if isinstance(scan, Exception):
                    raise scan
                flow_attrs = {"bound": storage.bound, "step": step, "backend": IMPORTED_BACKEND}
                with shard.video(entry.video_id, flow_attrs) as video:
                    _write_video(video, scan, entry)
                done.append(dataclasses.replace(
                    entry, status=OK, num_frames=video.num_frames, num_flows=video.num_flows,
                    error=None, flow_stats=scan.flow_stats.to_json() if scan.flow_stats else None))
            except OutputError:
                raise  # the output's fault, not the video's: the import stops
            except (FlowkitError, OSError) as exc:
                text = " ".join(str(exc).split())
                if entry.source not in text:
                    text = f"{entry.source}: {text}"
                done.append(dataclasses.replace(entry, status=FAILED, error=text))
    return done


def _write_video(video: VideoWriter, scan: _Scan, entry: ManifestEntry) -> None:
    for path in scan.frames:
        video.append_jpeg_frame(path.read_bytes())
    if not scan.frames:
        video.num_frames = scan.num_frames
    for x, y in zip(scan.xs, scan.ys):
        if x.suffix == ".png":
            planes = [_decode(path, color=False) for path in (x, y)]
            if planes[0].shape != planes[1].shape or planes[0].shape != (scan.height, scan.width):
                raise InputError(f"{x}: x and y planes are not both {scan.width}x{scan.height}")
            video.append_quantized_flow(np.stack(planes, axis=-1))
        else:
            video.append_jpeg_flow(x.read_bytes(), y.read_bytes())
    if video.num_frames != scan.num_frames:
        raise ShardError(f"{entry.source}: files changed while importing")
    video.flow_stats = scan.flow_stats
    video.finish({
        "source": entry.source, "label": -1 if entry.label is None else entry.label,
        "height": scan.height, "width": scan.width, "fps": 0.0, "source_fps": 0.0,
        "source_width": scan.width, "source_height": scan.height, "rotation": 0,
        "codec": "jpeg", "header_frames": 0,
        "source_num_flows": len(scan.xs) + scan.dropped,
        "frames_inferred": int(not scan.frames),  # flow-only import: frames = flows * step + 1
    })
