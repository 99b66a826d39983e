"""Turning command-line inputs (video files, folders, list files) into a list of videos.

A video id is the video's path relative to its input root, with '/' separators: the folder
given on the command line, the ``root`` of a list file (default: the list file's folder), or
the parent folder of a single file. Ids therefore stay the same from run to run.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from pathlib import Path
from typing import Iterable, Sequence

from flowkit.errors import InputError

VIDEO_EXTENSIONS = ("avi", "mp4", "mkv", "mov", "webm", "m4v", "mpg", "mpeg", "flv", "wmv", "3gp")
LIST_EXTENSIONS = ("txt", "lst", "list")


@dataclasses.dataclass(frozen=True)
class VideoSource:
    """A video to extract: its stable id, its path on disk, and its label if known."""

    video_id: str
    path: Path
    label: int | None = None


def collect_videos(inputs: Sequence[Path | str], extensions: Iterable[str] = VIDEO_EXTENSIONS,
                   list_root: Path | str | None = None) -> list[VideoSource]:
    """Videos named by ``inputs``, in a stable order.

    Args:
        inputs: video files, folders (searched recursively for ``extensions``), or list files
            (``.txt``/``.lst``/``.list``: one path per line, optionally followed by an
            integer label after whitespace, as in UCF101's trainlist01.txt and testlist01.txt).
        extensions: video file extensions to keep when walking folders (case-insensitive).
        list_root: folder that paths in list files are relative to; default the list's folder.

    Raises:
        InputError: an input or ``list_root`` does not exist, a list file line is malformed or
            repeats a video, or two inputs give the same video id.
    """
    if list_root is not None and not Path(list_root).is_dir():
        raise InputError(f"{list_root}: list root folder does not exist")
    extensions = tuple(ext.lower().lstrip(".") for ext in extensions)
    videos: list[VideoSource] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            videos.extend(_walk_folder(path, extensions))
        elif path.suffix.lower().lstrip(".") in LIST_EXTENSIONS and path.is_file():
            videos.extend(read_list_file(path, list_root))
        elif path.is_file():
            videos.append(VideoSource(path.name, path.resolve()))
        else:
            raise InputError(f"{path}: no such file or folder")
    _check_unique(videos)
    return videos


def _walk_folder(root: Path, extensions: tuple[str, ...]) -> list[VideoSource]:
    """Videos under ``root``, following folder links but entering each real folder once
    (a link to an ancestor would otherwise list every video again at each depth)."""
    found = []
    entered: set[tuple[int, int]] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        identity = _folder_identity(folder)
        if identity in entered:
            subfolders.clear()
            continue
        entered.add(identity)
        subfolders.sort()
        for name in files:
            if name.rsplit(".", 1)[-1].lower() in extensions and "." in name:
                path = Path(folder, name)
                found.append(VideoSource(path.relative_to(root).as_posix(), path.resolve()))
    return sorted(found, key=lambda video: video.video_id)


def _folder_identity(folder: str) -> tuple[int, int]:
    status = os.stat(folder)
    return status.st_dev, status.st_ino


def read_list_file(path: Path, root: Path | str | None = None) -> list[VideoSource]:
    """Parse a list file: ``relative/path.avi [label]`` per line; blank lines and '#' skipped.

    Paths may contain spaces: a last whitespace-separated token that is an integer is the label.
    A listed video that does not exist is kept: extraction records it as failed.
    """
    root = Path(root) if root is not None else path.parent
    try:
        # utf-8-sig: a byte-order mark (Windows editors) is not part of the first path
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read list file ({exc})") from None
    videos = []
    first_line: dict[str, int] = {}  # video id -> line that listed it first
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        label = None
        if len(tokens) > 1:
            try:
                label = int(tokens[-1])
                tokens = tokens[:-1]
            except ValueError:
                raise InputError(f"{path}:{number}: expected 'path [integer label]', "
                                 f"got {line!r}") from None
        listed = Path(" ".join(tokens))
        if listed.is_absolute():
            video = VideoSource(_relative_id(listed, root), listed, label)
        else:
            video = VideoSource(listed.as_posix(), (root / listed).resolve(), label)
        first = first_line.setdefault(video.video_id, number)
        if first != number:
            raise InputError(f"{path}:{number}: {video.video_id} is listed again (first at line "
                             f"{first}); list each video once")
        videos.append(video)
    return videos


def _relative_id(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix().lstrip("/")


def require_unique_ids(items: Iterable[tuple[str, Path]]) -> int:
    """Raise InputError if two different paths give one video id; return the distinct ids."""
    seen: dict[str, Path] = {}
    for video_id, path in items:
        other = seen.setdefault(video_id, path)
        if other != path:
            raise InputError(f"two inputs give the video id {video_id!r} ({other} and "
                             f"{path}); pass their common parent folder instead")
    return len(seen)


def _check_unique(videos: list[VideoSource]) -> None:
    distinct = require_unique_ids((video.video_id, video.path) for video in videos)
    if distinct != len(videos):
        counts = collections.Counter(video.video_id for video in videos)
        repeated = [video_id for video_id, count in counts.items() if count > 1]
        raise InputError(f"{repeated[0]} is given by more than one input ({len(repeated)} "
                         "video(s) repeated); give each video once")
