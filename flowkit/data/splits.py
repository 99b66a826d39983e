"""Train/test splits: which videos, with which 0-based labels.

A split is a plain ``dict[str, int]`` from video id (the path relative to the extraction root,
as in the manifest) to a 0-based class label. The official files of UCF101 and HMDB51 and a
plain CSV are read here ([`read_split`][flowkit.data.read_split] tells them apart); without a split
a Dataset uses the labels stored in the manifest.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from flowkit.errors import InputError

HMDB51_TRAIN, HMDB51_TEST, HMDB51_UNUSED = 1, 2, 0
#: UTF-8, with or without the byte-order mark that Windows editors put at the start: read as
#: plain UTF-8, the mark would become part of the first video id (then "not stored")
ENCODING = "utf-8-sig"


def _lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = Path(path).read_text(encoding=ENCODING)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read split file ({exc})") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]


class _Listed:
    """The line and label each video of one split file was first listed with: a video listed
    twice is refused, whatever its labels (two labels cannot both be right, and a repeated
    line would count the video twice in every epoch)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._first: dict[str, tuple[int, object]] = {}

    def add(self, video_id: str, number: int, label: object) -> None:
        first, first_label = self._first.setdefault(video_id, (number, label))
        if first != number:
            labels = "" if first_label == label else f" with label {first_label}, here {label}"
            raise InputError(f"{self.path}:{number}: {video_id} is listed again (first at "
                             f"{self.path}:{first}{labels}); list each video once")


def read_class_index(path: Path) -> dict[str, int]:
    """UCF101's classInd.txt (``1 ApplyEyeMakeup`` per line) -> class name to 0-based label."""
    classes = {}
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise InputError(f"{path}:{number}: expected 'index ClassName', got {line!r}")
        classes[parts[1]] = int(parts[0]) - 1
    return classes


def read_ucf101_split(list_file: Path, class_index: Path | None = None) -> dict[str, int]:
    """UCF101 ``trainlistNN.txt`` or ``testlistNN.txt`` -> video id to 0-based label.

    trainlists carry the 1-based class after the path; testlists carry none, so the class is
    the video's folder, looked up in ``class_index`` (default: classInd.txt beside the list).
    """
    list_file = Path(list_file)
    classes = read_class_index(class_index or list_file.with_name("classInd.txt"))
    split = {}
    listed = _Listed(list_file)
    for number, line in _lines(list_file):
        parts = line.split()
        video_id = parts[0]
        if len(parts) > 1:
            if not parts[1].isdigit():
                raise InputError(f"{list_file}:{number}: expected 'path [label]', got {line!r}")
            split[video_id] = int(parts[1]) - 1
        else:
            folder = video_id.split("/")[0]
            if folder not in classes:
                raise InputError(f"{list_file}:{number}: class folder {folder!r} is not in "
                                 "classInd.txt")
            split[video_id] = classes[folder]
        listed.add(video_id, number, split[video_id] + 1)
    return split


def read_hmdb51_split(split_dir: Path, split: int, subset: str,
                      classes: list[str] | None = None) -> dict[str, int]:
    """HMDB51 ``<class>_test_split<N>.txt`` files -> video id ``<class>/<video>`` to label.

    Each line is ``video.avi M`` with M = 1 (train), 2 (test) or 0 (unused). Labels are the
    position of the class in ``classes`` (default: the class names found, sorted, which is the
    official order).
    """
    if subset not in ("train", "test"):
        raise InputError(f"subset must be 'train' or 'test', got {subset!r}")
    files = sorted(Path(split_dir).glob(f"*_test_split{split}.txt"))
    if not files:
        raise InputError(f"{split_dir}: no *_test_split{split}.txt files")
    names = [f.name[: -len(f"_test_split{split}.txt")] for f in files]
    order = {name: label for label, name in enumerate(classes or sorted(names))}
    wanted = HMDB51_TRAIN if subset == "train" else HMDB51_TEST
    result = {}
    for path, name in zip(files, names):
        if name not in order:
            raise InputError(f"{path}: class {name!r} is not among the given classes")
        listed = _Listed(path)
        for number, line in _lines(path):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise InputError(f"{path}:{number}: expected 'video.avi 0|1|2', got {line!r}")
            listed.add(parts[0], number, parts[1])
            if int(parts[1]) == wanted:
                result[f"{name}/{parts[0]}"] = order[name]
    return result


def read_csv_split(path: Path) -> dict[str, int]:
    """A CSV of ``video_id,label`` rows (an optional header row is skipped)."""
    result = {}
    try:
        with open(path, newline="", encoding=ENCODING) as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read split file ({exc})") from None
    listed = _Listed(Path(path))
    for number, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise InputError(f"{path}:{number}: expected 'video_id,label', got {row!r}")
        video_id, label = row[0].strip(), row[1].strip()
        if not label.lstrip("-").isdigit():
            if number == 1:
                continue  # header
            raise InputError(f"{path}:{number}: label {label!r} is not an integer")
        listed.add(video_id, number, int(label))
        result[video_id] = int(label)
    return result


_HMDB51_FILE = re.compile(r"(?P<name>.+)_test_split(?P<split>\d+)\.txt")


def read_split(path: Path | str, subset: str = "train") -> dict[str, int]:
    """Any split file this module reads, told apart by its name.

    - ``*.csv``: ``video_id,label`` rows ([`read_csv_split`][flowkit.data.read_csv_split]);
      ``subset`` is not used.
    - ``<class>_test_split<N>.txt``: HMDB51; the ``subset`` ("train" or "test") of split N of
      every class file in that folder ([`read_hmdb51_split`][flowkit.data.read_hmdb51_split]).
    - any other file: a UCF101 trainlist or testlist, classInd.txt beside it
      ([`read_ucf101_split`][flowkit.data.read_ucf101_split]); ``subset`` is not used.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: split file not found")
    if path.suffix.lower() == ".csv":
        return read_csv_split(path)
    match = _HMDB51_FILE.fullmatch(path.name)
    if match:
        return read_hmdb51_split(path.parent, int(match.group("split")), subset)
    return read_ucf101_split(path)


def read_class_names(path: Path | str) -> list[str] | None:
    """Class names by 0-based label for the split file ``path``, where its format names them.

    UCF101 lists and CSVs: classInd.txt beside the file (None for a CSV without one); HMDB51:
    the class files' names, sorted (the official order).
    """
    path = Path(path)
    match = _HMDB51_FILE.fullmatch(path.name)
    if match:
        suffix = f"_test_split{match.group('split')}.txt"
        return sorted(f.name[:-len(suffix)] for f in path.parent.glob(f"*{suffix}"))
    class_index = path.with_name("classInd.txt")
    if path.suffix.lower() == ".csv" and not class_index.is_file():
        return None
    classes = read_class_index(class_index)
    names = sorted(classes, key=classes.__getitem__)
    if [classes[name] for name in names] != list(range(len(names))):
        raise InputError(f"{class_index}: class indices must be 1..{len(names)} without gaps")
    return names
