"""Parsing UCF101, HMDB51 and CSV split files into video id -> 0-based label."""

import pytest

from flowkit.data.splits import (read_class_index, read_class_names, read_csv_split,
                                 read_hmdb51_split, read_split, read_ucf101_split)
from flowkit.errors import InputError


def test_ucf101_trainlist_and_testlist(tmp_path):
    """trainlist labels become 0-based; testlist labels come from the folder via classInd."""
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 ApplyLipstick\r\n")
    (tmp_path / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nApplyLipstick/v_ApplyLipstick_g08_c01.avi 2\n")
    (tmp_path / "testlist01.txt").write_text("ApplyLipstick/v_ApplyLipstick_g01_c01.avi\n")
    assert read_class_index(tmp_path / "classInd.txt") == {"ApplyEyeMakeup": 0, "ApplyLipstick": 1}
    assert read_ucf101_split(tmp_path / "trainlist01.txt") == {
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi": 0,
        "ApplyLipstick/v_ApplyLipstick_g08_c01.avi": 1}
    assert read_ucf101_split(tmp_path / "testlist01.txt") == {
        "ApplyLipstick/v_ApplyLipstick_g01_c01.avi": 1}


def test_ucf101_unknown_class_folder_is_an_error(tmp_path):
    """A testlist path whose folder is not in classInd.txt names the file and line."""
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n")
    (tmp_path / "testlist01.txt").write_text("YoYo/v_YoYo_g01_c01.avi\n")
    with pytest.raises(InputError, match=r"testlist01\.txt:1"):
        read_ucf101_split(tmp_path / "testlist01.txt")


def test_hmdb51_markers_select_train_and_test(tmp_path):
    """1 marks training, 2 testing, 0 unused; labels follow the sorted class names."""
    (tmp_path / "wave_test_split1.txt").write_text("w1.avi 1 \nw2.avi 2 \nw3.avi 0 \n")
    (tmp_path / "brush_hair_test_split1.txt").write_text("b1.avi 2\nb2.avi 1\n")
    (tmp_path / "wave_test_split2.txt").write_text("w1.avi 2\n")
    assert read_hmdb51_split(tmp_path, 1, "train") == {"brush_hair/b2.avi": 0, "wave/w1.avi": 1}
    assert read_hmdb51_split(tmp_path, 1, "test") == {"brush_hair/b1.avi": 0, "wave/w2.avi": 1}
    assert read_hmdb51_split(tmp_path, 2, "test") == {"wave/w1.avi": 0}


def test_csv_split_with_and_without_header(tmp_path):
    """A CSV of video_id,label with an optional header row."""
    (tmp_path / "a.csv").write_text("video_id,label\nx/a.mp4,3\nx/b.mp4,0\n")
    (tmp_path / "b.csv").write_text("x/a.mp4,3\n")
    assert read_csv_split(tmp_path / "a.csv") == {"x/a.mp4": 3, "x/b.mp4": 0}
    assert read_csv_split(tmp_path / "b.csv") == {"x/a.mp4": 3}
    (tmp_path / "c.csv").write_text("x/a.mp4,3\nx/b.mp4,walk\n")
    with pytest.raises(InputError, match=r"c\.csv:2"):
        read_csv_split(tmp_path / "c.csv")


def test_read_split_tells_the_formats_apart(tmp_path):
    """CSV by suffix, HMDB51 by its file name (train or test part), anything else UCF101."""
    (tmp_path / "classInd.txt").write_text("1 walk\n2 run\n")
    (tmp_path / "trainlist01.txt").write_text("run/b.avi 2\n")
    (tmp_path / "split.csv").write_text("video_id,label\nwalk/a.avi,0\n")
    hmdb = tmp_path / "hmdb"
    hmdb.mkdir()
    (hmdb / "run_test_split1.txt").write_text("r1.avi 1\nr2.avi 2\n")
    (hmdb / "walk_test_split1.txt").write_text("w1.avi 2\nw2.avi 0\n")
    assert read_split(tmp_path / "trainlist01.txt") == {"run/b.avi": 1}
    assert read_split(tmp_path / "split.csv") == {"walk/a.avi": 0}
    assert read_split(hmdb / "run_test_split1.txt", "train") == {"run/r1.avi": 0}
    assert read_split(hmdb / "walk_test_split1.txt", "test") == {"run/r2.avi": 0,
                                                                 "walk/w1.avi": 1}
    assert read_class_names(tmp_path / "trainlist01.txt") == ["walk", "run"]
    assert read_class_names(tmp_path / "split.csv") == ["walk", "run"]
    assert read_class_names(hmdb / "run_test_split1.txt") == ["run", "walk"]
    with pytest.raises(InputError, match="split file not found"):
        read_split(tmp_path / "nope.txt")


BOM = "\ufeff"


def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path):
    """Split files and classInd.txt saved by Windows editors start with a UTF-8 byte-order
    mark; it used to become part of the first video id (then "not stored", and dropped by
    --skip-missing) or to make classInd's first line malformed."""
    (tmp_path / "classInd.txt").write_text(BOM + "1 walk\r\n2 run\r\n", encoding="utf-8")
    (tmp_path / "trainlist01.txt").write_text(BOM + "walk/a.avi 1\nrun/b.avi 2\n",
                                              encoding="utf-8")
    (tmp_path / "testlist01.txt").write_text(BOM + "run/c.avi\n", encoding="utf-8")
    (tmp_path / "plain.csv").write_text(BOM + "walk/a.avi,0\n", encoding="utf-8")
    (tmp_path / "header.csv").write_text(BOM + "video_id,label\nwalk/a.avi,0\n",
                                         encoding="utf-8")
    hmdb = tmp_path / "hmdb"
    hmdb.mkdir()
    (hmdb / "wave_test_split1.txt").write_text(BOM + "w1.avi 1\n", encoding="utf-8")
    assert read_class_index(tmp_path / "classInd.txt") == {"walk": 0, "run": 1}
    assert read_class_names(tmp_path / "trainlist01.txt") == ["walk", "run"]
    assert read_split(tmp_path / "trainlist01.txt") == {"walk/a.avi": 0, "run/b.avi": 1}
    assert read_split(tmp_path / "testlist01.txt") == {"run/c.avi": 1}
    assert read_split(tmp_path / "plain.csv") == {"walk/a.avi": 0}
    assert read_split(tmp_path / "header.csv") == {"walk/a.avi": 0}
    assert read_split(hmdb / "wave_test_split1.txt", "train") == {"wave/w1.avi": 0}


@pytest.mark.parametrize("name, text, video, first, again, labels", [
    ("trainlist01.txt", "walk/a.avi 1\nrun/b.avi 2\nwalk/a.avi 1\n", "walk/a.avi", 1, 3, ""),
    ("trainlist01.txt", "walk/a.avi 1\n\nwalk/a.avi 2\n", "walk/a.avi", 1, 3,
     " with label 1, here 2"),
    ("testlist01.txt", "run/b.avi\nrun/b.avi\n", "run/b.avi", 1, 2, ""),
    ("split.csv", "video_id,label\nwalk/a.avi,0\nrun/b.avi,1\nwalk/a.avi,1\n", "walk/a.avi",
     2, 4, " with label 0, here 1"),
    ("split.csv", "walk/a.avi,0\nwalk/a.avi,0\n", "walk/a.avi", 1, 2, ""),
    ("wave_test_split1.txt", "w1.avi 1\nw2.avi 2\nw1.avi 2\n", "w1.avi", 1, 3,
     " with label 1, here 2"),
])
def test_a_video_listed_twice_names_both_lines(tmp_path, name, text, video, first, again,
                                               labels):
    """A repeated video is refused whatever its labels: it used to count twice per epoch
    (same label) or to take its last label silently (different labels)."""
    (tmp_path / "classInd.txt").write_text("1 walk\n2 run\n")
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        read_split(path, "test")
    assert str(caught.value) == (f"{path}:{again}: {video} is listed again (first at "
                                 f"{path}:{first}{labels}); list each video once")
