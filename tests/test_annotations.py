"""Annotation parsing (Home-1 / Home-2 / generic layouts), frame labels and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from vicokd.data import frame_labels, load_annotations
from vicokd.data.annotations import sequence_labels
from vicokd.errors import DataError


def record(session: str, clip: str, views: int, tricks: list, part: int = 1, order=None) -> dict:
    keys = order or range(1, views + 1)
    rec = {f"video_url_{k}": f"{session}/{clip}-View{k}-Part{part}.mp4" for k in keys}
    rec["tricks"] = tricks
    return rec


def write(root: Path, name: str, data) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_home1_layout_views_ordered_and_classes_union(tmp_path):
    train = [record("01", "00", 5, [{"start": 1.0, "end": 2.0, "labels": ["Sitdown", "UsePhone"]}],
                    order=[3, 1, 5, 2, 4])]
    test = [record("02", "07", 5, [{"start": 0.0, "end": 1.0, "labels": ["Enter"]}])]
    write(tmp_path, "train.json", train)
    write(tmp_path, "test.json", test)
    clips, classes = load_annotations(tmp_path, "train")
    assert classes == ["Enter", "Sitdown", "UsePhone"]  # sorted union over train and test
    (clip,) = clips
    assert [p.name for p in clip.videos] == [f"00-View{k}-Part1.mp4" for k in range(1, 6)]
    assert clip.videos[0] == tmp_path / "01" / "00-View1-Part1.mp4"
    assert (clip.session, clip.clip_id, clip.part, clip.key) == ("01", "00", 1, "01_00_Part1")
    assert clip.labels == ("Sitdown", "UsePhone")  # every label of a segment counts


def test_home2_layout_file_names(tmp_path):
    write(tmp_path, "train_data.json", [record("s1", "3", 2, [])])
    write(tmp_path, "test_data.json", [record("s1", "4", 2, [{"start": 0, "end": 1, "labels": ["A"]}])])
    clips, classes = load_annotations(tmp_path, "test")
    assert classes == ["A"] and clips[0].num_views == 2
    clips, _ = load_annotations(tmp_path, "train")
    assert clips[0].segments == ()  # an empty tricks list is allowed


def test_same_id_in_two_sessions_does_not_collide(tmp_path):
    write(tmp_path, "train.json", [record("01", "00", 2, []), record("02", "00", 2, [])])
    write(tmp_path, "test.json", [])
    clips, _ = load_annotations(tmp_path, "train")
    assert len({c.key for c in clips}) == 2


def test_sessions_differing_only_in_non_ascii_letters_say_why_they_collide(tmp_path):
    """`séance` and `sèance` become one clip name (a name keeps A-Z a-z 0-9 _ . -): one line naming both records,
    both sessions and what to do (issue 34); the same record twice keeps the short message."""
    write(tmp_path, "train.json", [record("séance", "00", 2, []), record("sèance", "00", 2, [])])
    write(tmp_path, "test.json", [])
    with pytest.raises(DataError, match=r"train\.json\[1\]: clip identity 's-ance_00_Part1' repeats train\.json\[0\]: "
                                        r"session 'séance' clip '00' and session 'sèance' clip '00' differ only in "
                                        r"characters a clip name cannot hold .* rename one of the two"):
        load_annotations(tmp_path, "train")
    write(tmp_path, "train.json", [record("01", "00", 2, []), record("01", "00", 2, [])])
    with pytest.raises(DataError, match=r"train\.json\[1\]: clip identity '01_00_Part1' repeats train\.json\[0\]$"):
        load_annotations(tmp_path, "train")


def test_fixed_class_list_rejects_unknown_label(tmp_path):
    write(tmp_path, "train.json", [record("01", "00", 2, [{"start": 0, "end": 1, "labels": ["Dance"]}])])
    write(tmp_path, "test.json", [])
    with pytest.raises(DataError, match=r"train.json\[0\].tricks\[0\].labels: unknown label 'Dance'"):
        load_annotations(tmp_path, "train", classes=["Enter", "Exit"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"video_url_1": "a.mp4", "tricks": []', r"malformed JSON at line 1, column \d+"),
        ("[\n {\"tricks\": []}\n]", r"train.json\[0\]: clip has zero views"),
        ([{"video_url_1": "01/a-View1-Part1.mp4", "tricks": [{"start": 5, "end": 2, "labels": ["A"]}]}],
         r"train.json\[0\].tricks\[0\]: invalid interval start=5 end=2"),
        ([{"video_url_1": "01/a-View1-Part1.mp4", "tricks": [{"start": 1, "labels": ["A"]}]}],
         r"tricks\[0\]: missing field 'end'"),
        ([{"video_url_1": "01/a-View1-Part1.mp4"}], r"missing field 'tricks'"),
        ({"video_url_1": "x"}, r"expected a JSON list"),
    ],
)
def test_bad_annotations_one_line_errors(tmp_path, content, message):
    write(tmp_path, "train.json", content)
    with pytest.raises(DataError, match=message) as info:
        load_annotations(tmp_path, "train")
    assert "\n" not in str(info.value)


def test_missing_split_file(tmp_path):
    write(tmp_path, "train.json", [])
    with pytest.raises(DataError, match="no test annotation file"):
        load_annotations(tmp_path, "test")


def test_frame_labels_hand_computed():
    classes = ["A", "B", "C"]
    tricks = [
        {"start": 0.0, "end": 1.0, "labels": ["A"]},  # rows round(0)=0 .. round(2.5)=2 (banker's: 2)
        {"start": 1.3, "end": 2.1, "labels": ["B", "C"]},  # rows round(3.25)=3 .. round(5.25)=5
        {"start": 3.0, "end": 99.0, "labels": ["A"]},  # rows 8 .. clipped to L-1 = 9
    ]
    labels = frame_labels(tricks, 10, classes)
    expected = np.zeros((10, 3), np.float32)
    expected[0:3, 0] = 1
    expected[3:6, 1] = 1
    expected[3:6, 2] = 1
    expected[8:10, 0] = 1
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(sequence_labels(tricks, classes), [1, 1, 1])
    assert frame_labels([], 4, classes).sum() == 0


def test_frame_labels_other_fps_and_unknown_label():
    labels = frame_labels([{"start": 1.0, "end": 1.0, "labels": ["A"]}], 10, ["A"], fps=5.0)
    assert labels[:, 0].tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    with pytest.raises(DataError, match="'Z' is not in the class list"):
        frame_labels([{"start": 0, "end": 1, "labels": ["Z"]}], 4, ["A"])


@pytest.mark.parametrize("spelling", ["standup", "Standup ", " STANDUP", "Stand up"])
def test_labels_differing_only_in_case_or_spaces_are_refused_naming_the_record(tmp_path, spelling):
    """One rule for label identity: exact names; a near miss is one line naming the later record."""
    write(tmp_path, "train.json", [record("01", "00", 2, [{"start": 0, "end": 1, "labels": ["Standup"]}]),
                                   record("01", "01", 2, [{"start": 0, "end": 1, "labels": ["Sitdown"]}])])
    write(tmp_path, "test.json", [record("02", "00", 2, [{"start": 2, "end": 3, "labels": ["Sitdown", spelling]}])])
    with pytest.raises(DataError) as error:
        load_annotations(tmp_path, "train")
    message = str(error.value)
    assert message.startswith("test.json[0].tricks[0].labels: label")
    assert f"{spelling!r} differs from 'Standup' (train.json[0].tricks[0].labels)" in message
    assert "\n" not in message
    # against a configured class list (data.classes), the near miss is named as such
    write(tmp_path, "train.json", [record("01", "00", 2, [{"start": 0, "end": 1, "labels": [spelling]}])])
    with pytest.raises(DataError, match=r"differs from the class 'Standup' only in case or spaces"):
        load_annotations(tmp_path, "train", classes=["Sitdown", "Standup"])
    with pytest.raises(DataError, match=r"differs from the class 'Standup' only in case or spaces"):
        frame_labels([{"start": 0, "end": 1, "labels": [spelling]}], 5, ["Sitdown", "Standup"], 2.5)


def test_distinct_names_stay_distinct_classes(tmp_path):
    write(tmp_path, "train.json", [record("01", "00", 2, [{"start": 0, "end": 1, "labels": ["TurnOnLamp"]}]),
                                   record("01", "01", 2, [{"start": 0, "end": 1, "labels": ["TurnOffLamp"]}])])
    write(tmp_path, "test.json", [])
    assert load_annotations(tmp_path, "train")[1] == ["TurnOffLamp", "TurnOnLamp"]
