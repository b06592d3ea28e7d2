"""`prepare` → cache → dataset → collate, on real mp4 files in the MultiSensor-Home layout."""

import json
import pickle
import shutil

import numpy as np
import pytest
import torch

from vicokd.cli import main
from vicokd.config import DataConfig
from vicokd.data import dataset as dataset_module
from vicokd.data.cache import clip_dir, load_fbank, load_frames, read_index
from vicokd.data.dataset import MultiViewClips, collate
from vicokd.data.person_scores import write_person_scores
from vicokd.data.prepare import prepare
from vicokd.errors import DataError
from vicokd.models.model import normalize_video

from media_helpers import SIZE, frame_colour, make_dataset, make_video

CONFIG = DataConfig(image_size=SIZE, num_frames=6)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("home1")
    make_dataset(root)
    return root


@pytest.fixture(scope="module")
def cache(dataset_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "c"
    prepare(dataset_root, out, CONFIG, workers=1, progress=False)
    return out


def test_cache_round_trip(cache):
    index = read_index(cache)
    assert index.classes == ["Drink", "Enter", "Sitdown", "UsePhone"]
    assert index.splits == {"train": ["01_00_Part1", "02_00_Part1"], "test": ["01_05_Part1"]}
    meta = index.clips["01_00_Part1"]
    assert meta.length == 10 and meta.num_views == 3 and meta.audio_present == [True] * 3
    frames = load_frames(cache, "01_00_Part1")
    assert frames.shape == (3, 10, 3, *SIZE) and frames.dtype == np.uint8  # channel-first (cache v2)
    for view in range(3):
        for j in (0, 5, 9):
            centre = frames[view, j, :, 10:-10, 10:-10].reshape(3, -1).mean(1)
            assert np.abs(centre - frame_colour(4 * j, view + 1)).max() < 6
    fbank = load_fbank(cache, "01_00_Part1")
    assert fbank.dtype == np.float16 and fbank.shape[:2] == (3, 10) and fbank.shape[3] == 128
    assert fbank.shape[2] < 64  # real rows only, no padding to 1024


def test_dataset_uniform_sample(cache):
    data = MultiViewClips(cache, "test", 6, "uniform")
    item = data[0]
    assert item["key"] == "01_05_Part1"
    assert item["video"].shape == (3, 6, 3, *SIZE) and item["video"].dtype == torch.uint8
    assert item["frame_index"].tolist() == [0, 1, 3, 5, 6, 8]  # floor(i * 10 / 6)
    assert item["audio"].shape[:2] == (3, 6)
    # classes [Drink, Enter, Sitdown, UsePhone]; segment 0.4-2.0 s -> grid rows 1..5
    assert item["labels"].tolist() == [0, 1, 1, 0]
    assert item["frame_labels"][:, 1].tolist() == [0, 1, 1, 1, 0, 0]
    red = item["video"][0, 2, 0, 10:-10, 10:-10].float().mean()  # grid 3 = source frame 12
    assert abs(red.item() - frame_colour(12, 1)[0]) < 6


def test_open_maps_are_reused_and_not_pickled(cache):
    data = MultiViewClips(cache, "train", 4, "jitter")
    first = data[0]
    assert len(data._arrays) == 2  # frames and fbank of the clip, opened once
    again = data[0]
    assert len(data._arrays) == 2 and torch.equal(first["video"], again["video"])
    copy = pickle.loads(pickle.dumps(data))  # what a spawned DataLoader worker receives
    assert copy._arrays == {} and len(pickle.dumps(data)) < 100_000
    assert torch.equal(copy[0]["video"], first["video"]) and torch.equal(copy[0]["audio"], first["audio"])



def test_open_maps_are_bounded_least_recently_used_first(cache, monkeypatch):
    monkeypatch.setattr(dataset_module, "MAX_OPEN_MAPS", 2)
    data = MultiViewClips(cache, "train", 4, val_fraction=0.0)
    first, second = data.keys[:2]
    expected = data[1]["video"]
    data._arrays.clear()
    data._array(first, "frames"), data._array(second, "frames")
    data._array(first, "frames")  # used again: now the most recent
    data._array(first, "fbank")  # a third map closes the least recently used one
    assert list(data._arrays) == [(first, "frames"), (first, "fbank")]
    assert torch.equal(data[1]["video"], expected) and len(data._arrays) == 2  # reopened when needed


def test_jitter_depends_on_seed_epoch_index_only(cache):
    data = MultiViewClips(cache, "train", 6, "jitter", val_fraction=0.0)
    a = data[(3, 1)]["frame_index"]
    b = data[(3, 1)]["frame_index"]
    assert a.tolist() == b.tolist()
    draws = {tuple(data[(e, 1)]["frame_index"].tolist()) for e in range(20)}
    assert len(draws) > 1  # epochs differ


def test_person_scores_are_indexed_by_the_sampled_grid_frame(cache, tmp_path):
    index = read_index(cache)
    scores = {key: np.arange(meta.num_views * meta.length, dtype=np.float32).reshape(meta.num_views, meta.length)
              for key, meta in index.clips.items()}
    path = tmp_path / "scores.npz"
    write_person_scores(path, scores, detector="test")
    for mode in ("uniform", "jitter"):
        data = MultiViewClips(cache, "train", 6, mode, person_scores=path, val_fraction=0.0)
        for item in (data[0], data[(4, 1)]):
            expected = scores[item["key"]][:, item["frame_index"].numpy()]
            np.testing.assert_array_equal(item["person"].numpy(), expected)


def test_missing_scores_for_a_clip(cache, tmp_path):
    path = tmp_path / "scores.npz"
    write_person_scores(path, {"01_00_Part1": np.zeros((3, 10))}, detector="test")
    with pytest.raises(DataError, match="no person scores for clip '02_00_Part1'"):
        MultiViewClips(cache, "train", 6, person_scores=path, val_fraction=0.0)


def test_validation_carved_from_train(cache):
    train = MultiViewClips(cache, "train", 6, val_fraction=0.5)
    val = MultiViewClips(cache, "val", 6, val_fraction=0.5)
    assert len(train) == 1 and len(val) == 1 and set(train.keys).isdisjoint(val.keys)


def test_collate_and_normalize(cache):
    data = MultiViewClips(cache, "train", 6, val_fraction=0.0)
    batch = collate([data[0], data[1]])
    assert batch["video"].shape == (2, 3, 6, 3, *SIZE)
    assert batch["index"].tolist() == [0, 1] and batch["key"] == data.keys
    video = normalize_video(batch["video"], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    expected = (batch["video"][0, 0, 0, 0, 0, 0].float() / 255 - 0.5) / 0.25
    assert video.dtype == torch.float32 and torch.isclose(video[0, 0, 0, 0, 0, 0], expected)


def test_home2_layout_and_cli(tmp_path, capsys):
    root = tmp_path / "home2"
    make_dataset(root, views=2, layout="home2")
    assert main(["prepare", str(root), "--out", str(tmp_path / "cache"), "--size", "48x32", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "prepared 3 clips (3 new), 6 views, 60 frames" in out
    assert load_frames(tmp_path / "cache", "02_00_Part1").shape == (2, 10, 3, 32, 48)


def test_view_without_audio_and_unequal_lengths(tmp_path, capsys):
    root = tmp_path / "d"
    make_dataset(root)
    make_video(root / "01" / "00-View2-Part1.mp4", 40, 2, audio=False)
    make_video(root / "01" / "00-View3-Part1.mp4", 33, 3)  # ceil(33 / 4) = 9 grid frames
    index = prepare(root, tmp_path / "c", CONFIG, workers=1, progress=False)
    meta = index.clips["01_00_Part1"]
    assert meta.audio_present == [True, False, True]
    assert meta.view_lengths == [10, 10, 9] and meta.length == 9
    assert not load_fbank(tmp_path / "c", "01_00_Part1")[1].any()
    assert "views have different lengths [10, 10, 9]" in capsys.readouterr().err


def test_bad_clip_keeps_finished_work_and_resumes(tmp_path, capsys):
    root = tmp_path / "d"
    make_dataset(root)
    moved = root / "02" / "00-View2-Part1.mp4"
    shutil.move(moved, tmp_path / "aside.mp4")
    code = main(["prepare", str(root), "--out", str(tmp_path / "c"), "--size", "64x48", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "02/00-View2-Part1.mp4: video file not found" in err and "1 of 3 clips failed" in err
    assert "Traceback" not in err
    finished = clip_dir(tmp_path / "c", "01_00_Part1") / "frames.npy"
    stamp = finished.stat().st_mtime_ns
    assert not clip_dir(tmp_path / "c", "02_00_Part1").exists()
    shutil.move(tmp_path / "aside.mp4", moved)
    assert main(["prepare", str(root), "--out", str(tmp_path / "c"), "--size", "64x48"]) == 0
    assert "(1 new)" in capsys.readouterr().out
    assert finished.stat().st_mtime_ns == stamp  # finished clip was not redone
    assert read_index(tmp_path / "c").clips.keys() == {"01_00_Part1", "02_00_Part1", "01_05_Part1"}


def test_segment_after_the_end_of_the_video(tmp_path):
    root = tmp_path / "d"
    make_dataset(root)
    records = json.loads((root / "test.json").read_text())
    records[0]["tricks"].append({"start": 9.5, "end": 11.0, "labels": ["Enter"]})
    (root / "test.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"test.json\[0\].tricks\[1\]: segment starts at 9.5 s, after the end"):
        prepare(root, tmp_path / "c", CONFIG, workers=1, progress=False)


def test_cache_with_other_settings_is_refused(cache, dataset_root):
    with pytest.raises(DataError, match="prepared with other settings"):
        prepare(dataset_root, cache, DataConfig(image_size=(32, 32)), workers=1, progress=False)


def test_version_1_cache_is_refused_in_one_line(cache, dataset_root, tmp_path, capsys):
    """A cache of the v1 layout (frames (V, L, H, W, 3), index version 1) must be prepared again."""
    old = tmp_path / "v1"
    shutil.copytree(cache, old)
    index = json.loads((old / "index.json").read_text())
    (old / "index.json").write_text(json.dumps({**index, "version": 1}))
    for key in index["splits"]["train"]:
        path = clip_dir(old, key) / "frames.npy"
        np.save(path, np.ascontiguousarray(np.load(path).transpose(0, 1, 3, 4, 2)))
    expected = f"{old / 'index.json'}: cache version 1, this vicokd reads version 2"
    for refuse in (lambda: read_index(old), lambda: MultiViewClips(old, "train", 6)):
        with pytest.raises(DataError) as caught:
            refuse()
        assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)
        assert str(caught.value).endswith("re-run `vicokd prepare` with a new --out folder")
    # re-running prepare into the old folder is refused too (not resumed into a mixed cache)
    assert main(["prepare", str(dataset_root), "--out", str(old), "--size", "64x48", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {expected}") and "\n" not in err
    with pytest.raises(DataError, match=r"frames.npy: frames have shape \(3, 10, 48, 64, 3\), expected "
                                        r"\(V, L, 3, H, W\)"):
        load_frames(old, "01_00_Part1")
