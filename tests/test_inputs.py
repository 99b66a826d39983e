"""Collecting videos from files, folders and list files, with stable ids."""

from pathlib import Path

import pytest

from flowkit.errors import InputError
from flowkit.extract.inputs import collect_videos, read_list_file


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_ids_are_relative_paths_sorted_and_filtered(tmp_path):
    """A folder yields its videos recursively, ids relative to it, other extensions skipped."""
    _touch(tmp_path / "b" / "v2.AVI")
    _touch(tmp_path / "a" / "v1.mp4")
    _touch(tmp_path / "a" / "notes.txt")
    videos = collect_videos([tmp_path])
    assert [v.video_id for v in videos] == ["a/v1.mp4", "b/v2.AVI"]
    assert all(v.path.is_absolute() and v.label is None for v in videos)
    assert [v.video_id for v in collect_videos([tmp_path], extensions=["avi"])] == ["b/v2.AVI"]


def test_ucf101_trainlist_and_testlist_parse(tmp_path):
    """trainlist lines carry a label after the path; testlist lines carry none."""
    train = tmp_path / "lists" / "trainlist01.txt"
    train.parent.mkdir()
    train.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
                     "YoYo/v_YoYo_g25_c05.avi 101\n\n")
    test = tmp_path / "lists" / "testlist01.txt"
    test.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n")
    (tmp_path / "UCF-101").mkdir()  # a missing --list-root is refused (test_lifecycle)
    videos = collect_videos([train, test], list_root=tmp_path / "UCF-101")
    assert [(v.video_id, v.label) for v in videos] == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 1),
        ("YoYo/v_YoYo_g25_c05.avi", 101),
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", None)]
    assert videos[0].path == (tmp_path / "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi")


def test_list_paths_default_to_the_list_folder_and_may_hold_spaces(tmp_path):
    """Without list_root, paths are relative to the list file; spaces in names survive."""
    listing = tmp_path / "videos.txt"
    listing.write_text("# comment\nmy clips/first clip.mp4 3\n")
    (video,) = read_list_file(listing)
    assert (video.video_id, video.label) == ("my clips/first clip.mp4", 3)
    assert video.path == tmp_path / "my clips" / "first clip.mp4"


def test_malformed_list_line_names_file_and_line(tmp_path):
    """A trailing token that is not an integer label is an InputError at file:line."""
    listing = tmp_path / "bad.txt"
    listing.write_text("ok.mp4 1\nclip.mp4 walking\n")
    with pytest.raises(InputError, match=r"bad\.txt:2"):
        read_list_file(listing)


def test_missing_input_is_an_error(tmp_path):
    """A path on the command line that does not exist raises InputError naming it."""
    with pytest.raises(InputError, match="nope"):
        collect_videos([tmp_path / "nope"])


def test_colliding_ids_from_two_roots_are_refused(tmp_path):
    """Two folders holding the same relative path would share an id: refused."""
    _touch(tmp_path / "one" / "clip.mp4")
    _touch(tmp_path / "two" / "clip.mp4")
    with pytest.raises(InputError, match="clip.mp4"):
        collect_videos([tmp_path / "one", tmp_path / "two"])


def test_single_file_id_is_its_name(tmp_path):
    """A video file given directly has its file name as id."""
    path = _touch(tmp_path / "deep" / "clip.mkv")
    assert [v.video_id for v in collect_videos([path])] == ["clip.mkv"]


def test_a_video_listed_twice_is_refused(tmp_path):
    """The same path twice in a list file is an InputError naming the file, line and video;
    the same video from two inputs names the video."""
    listing = tmp_path / "list.txt"
    listing.write_text("a.mp4 1\nb.mp4 2\na.mp4 1\n")
    with pytest.raises(InputError, match=r"list.txt:3: a.mp4 is listed again \(first at line 1\)"):
        collect_videos([listing])
    listing.write_text("a.mp4 1\n")
    with pytest.raises(InputError, match=r"^a.mp4 is given by more than one input \(1 video"):
        collect_videos([listing, listing])


def test_a_byte_order_mark_is_not_part_of_the_first_path(tmp_path):
    """A list file saved with a UTF-8 byte-order mark (Windows editors) used to give its
    first video an id starting with U+FEFF, a path that does not exist (recorded failed)."""
    listing = tmp_path / "videos.txt"
    listing.write_text("\ufeffwalk/a.avi 0\nrun/b.avi 1\n", encoding="utf-8")
    videos = read_list_file(listing)
    assert [(v.video_id, v.label) for v in videos] == [("walk/a.avi", 0), ("run/b.avi", 1)]
    assert videos[0].path == tmp_path / "walk" / "a.avi"
