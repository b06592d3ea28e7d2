"""`vicokd predict`: segment rules, sliding windows mapped back to the grid, a tiny student end to end, errors."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from run_helpers import IMAGE_SIZE, NUM_FRAMES, fake_teacher
from vicokd.calibration import Calibration
from vicokd.cli import main
from vicokd.data import frame_labels
from vicokd.data.media import read_grid_frames
from vicokd.errors import VicokdError
from vicokd.inference import decisions as decisions_lib
from vicokd.inference.decisions import segments_from_probs
from vicokd.inference.predict import predict_clip, view_end_warning, window_indices
from vicokd.inference.student import load_student
from vicokd.models.checkpoint import read_meta
from vicokd.models.model import normalize_video

from media_helpers import make_video


@pytest.fixture(scope="module")
def student(tiny_student, tmp_path_factory):
    workspace, checkpoint = tiny_student
    base = tmp_path_factory.mktemp("predict")
    videos = [workspace / "data" / "01" / f"05-View{k}-Part1.mp4" for k in (1, 2, 3)]  # 40 frames at 10 fps: L = 10
    short = []
    for k in (1, 2, 3):  # 4 grid frames each: L = 4 < T
        short.append(base / "short" / f"view{k}.mp4")
        make_video(short[-1], 16, k, audio=False)
    return SimpleNamespace(base=base, checkpoint=checkpoint, videos=videos, short=short)


# ------------------------------------------------------------------------------ segments


def test_segments_threshold_merge_and_min_duration():
    classes = ["A", "B", "C"]
    probs = np.zeros((12, 3))
    probs[[1, 2, 3], 0] = [0.5, 0.9, 0.7]  # p == threshold counts as active
    probs[4, 0] = 0.4  # one missed frame: gap 3 → 5 is 0.8 s
    probs[[5, 6], 0] = [0.8, 0.6]
    probs[9, 0] = 0.95  # alone, 1.2 s after frame 6
    probs[:, 1] = 0.49  # never active
    probs[[0, 1], 2] = 0.7

    raw = segments_from_probs(probs, classes, fps=2.5, threshold=0.5, min_gap=0.0, min_duration=0.0)
    assert [(s.label, s.start, s.end) for s in raw] == [  # by start, then class order
        ("C", 0.0, 0.4), ("A", 0.4, 1.2), ("A", 2.0, 2.4), ("A", 3.6, 3.6)]
    # without merging and filtering, the segments map back to exactly the active grid frames
    assert np.array_equal(frame_labels([{"start": s.start, "end": s.end, "labels": [s.label]} for s in raw],
                                       12, classes), (probs >= 0.5).astype(np.float32))

    merged = segments_from_probs(probs, classes, fps=2.5, threshold=0.5, min_gap=0.8, min_duration=0.0)
    assert [(s.label, s.start, s.end) for s in merged] == [("C", 0.0, 0.4), ("A", 0.4, 2.4), ("A", 3.6, 3.6)]
    bridged = merged[1]
    assert bridged.score == pytest.approx(np.mean([0.5, 0.9, 0.7, 0.4, 0.8, 0.6])) and bridged.peak == 0.9
    assert bridged.duration == pytest.approx(2.0)

    kept = segments_from_probs(probs, classes, fps=2.5, threshold=0.5, min_gap=0.8, min_duration=0.4)
    assert [(s.label, s.start, s.end) for s in kept] == [("C", 0.0, 0.4), ("A", 0.4, 2.4)]
    assert segments_from_probs(probs, classes, fps=2.5, min_gap=1.2, min_duration=2.5)[0].end == pytest.approx(3.6)
    assert segments_from_probs(probs, classes, threshold=0.96) == []


def test_segments_bad_input():
    with pytest.raises(VicokdError, match=r"do not match \(L, C\) with C = 2"):
        segments_from_probs(np.zeros((5, 3)), ["A", "B"])
    with pytest.raises(VicokdError, match="threshold in"):
        segments_from_probs(np.zeros((5, 2)), ["A", "B"], threshold=1.5)
    with pytest.raises(VicokdError, match="min gap >= 0"):
        segments_from_probs(np.zeros((5, 2)), ["A", "B"], min_gap=-1)


# ------------------------------------------------------------------------------ windows


def test_window_indices_cover_every_grid_frame():
    (short,) = window_indices(4, 6)  # L < T: the uniform sampling of evaluation, repeats allowed
    assert short.tolist() == [0, 0, 1, 2, 2, 3]
    assert window_indices(6, 6)[0].tolist() == list(range(6))
    long = window_indices(10, 6)  # stride T // 2 = 3, the last window ends at L − 1
    assert [w.tolist() for w in long] == [list(range(0, 6)), list(range(3, 9)), list(range(4, 10))]
    assert [w[0] for w in window_indices(20, 6, stride=5)] == [0, 5, 10, 14]
    assert [w[0] for w in window_indices(13, 6, stride=7)] == [0, 7]
    for length in (1, 5, 6, 7, 31):
        covered = np.concatenate(window_indices(length, 6, stride=4))
        assert set(covered.tolist()) == set(range(length))
    with pytest.raises(VicokdError, match="--stride 0"):
        window_indices(10, 6, stride=0)


class ColourModel(nn.Module):
    """Logits from each frame's mean red value: shows which grid frame sat at each window position."""

    def __init__(self, num_classes: int, data) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.mean, self.std = data.mean, data.std  # it takes uint8 video, as every model does

    def forward(self, batch):
        red = normalize_video(batch["video"], self.mean, self.std)[:, :, :, 0].mean(dim=(-1, -2))  # (B, V, T)
        view = red[..., None] + torch.arange(self.num_classes)  # (B, V, T, C)
        return SimpleNamespace(view_frame_logits=view, frame_logits=view[:, 0], seq_logits=view[:, 0].mean(1))


def _expected_logits(videos, length, config):
    """Per view and grid frame: mean normalised red value (V, L)."""
    frames = np.stack([read_grid_frames(v, tuple(config.data.image_size), config.data.fps, length=length)
                       for v in videos])
    video = normalize_video(torch.from_numpy(frames).permute(0, 1, 4, 2, 3), config.model.visual.mean,
                            config.model.visual.std)
    return video[:, :, 0].mean(dim=(-1, -2)).double()


@pytest.mark.parametrize("clip", ["videos", "short"])
def test_windows_map_back_to_their_grid_frames(student, clip):
    meta = load_student(student.checkpoint).meta
    videos = getattr(student, clip)
    classes = list(meta.classes)
    prediction = predict_clip(ColourModel(len(classes), meta.config.model.visual), meta, videos, batch_size=2)
    length = 10 if clip == "videos" else 4
    assert prediction.frame_probs.shape == (length, len(classes))
    assert prediction.view_frame_probs.shape == (3, length, len(classes))
    assert len(prediction.windows) == (3 if clip == "videos" else 1)
    red = _expected_logits(videos, length, meta.config)  # (V, L)
    calibration = Calibration.from_json(meta.calibration)  # probabilities are sigmoid(a_c z + b_c)
    per_class = red[..., None] + torch.arange(len(classes))
    np.testing.assert_allclose(prediction.view_frame_probs, calibration.probabilities(per_class, classes).numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(prediction.frame_probs, calibration.probabilities(per_class[0], classes).numpy(),
                               atol=1e-6)
    window_seq = [calibration.probabilities(red[0, w].mean() + torch.arange(len(classes)), classes)
                  for w in prediction.windows]
    np.testing.assert_allclose(prediction.clip_probs, torch.stack(window_seq).amax(0).numpy(), atol=1e-6)
    assert prediction.view_lengths == [length] * 3 and prediction.warnings == []
    assert prediction.window_views == [[0, 1, 2]] * len(prediction.windows)


@pytest.mark.parametrize(("frames", "views"), [
    ((40, 40, 24), [[0, 1, 2], [0, 1], [0, 1]]),  # view 3 has 6 grid frames: the first window only
    ((40, 24, 40), [[0, 1, 2], [0, 2], [0, 2]]),
    ((12, 12, 16), [[2]]),  # L = 4 < T: one uniform window, which only view 3 has all of
])
def test_a_view_that_ends_early_is_left_out_of_the_windows_past_its_end(student, tmp_path, frames, views):
    """A camera that stops: the windows past its end run on the other views, with one warning (issue 34:
    predict used to cut every view at the shortest; stream left the view out, and the two now agree)."""
    videos = []
    for k, count in enumerate(frames, start=1):
        videos.append(tmp_path / f"view{k}.mp4")
        make_video(videos[-1], count, k, audio=False)
    meta = load_student(student.checkpoint).meta
    classes = list(meta.classes)
    prediction = predict_clip(ColourModel(len(classes), meta.config.model.visual), meta, videos)
    lengths = [count // 4 for count in frames]  # 10 fps video, grid at 2.5 fps
    assert prediction.view_lengths == lengths and prediction.length == max(lengths)
    assert prediction.window_views == views
    assert prediction.warnings == [view_end_warning(v, n, 2.5) for v, n in enumerate(lengths) if n < max(lengths)]
    calibration = Calibration.from_json(meta.calibration)
    for v, length in enumerate(lengths):  # each view's probabilities where it ran, NaN elsewhere
        seen = sorted({int(j) for w, used in zip(prediction.windows, views) if v in used for j in w})
        red = _expected_logits([videos[v]], length, meta.config)[0, seen]
        expected = calibration.probabilities(red[:, None] + torch.arange(len(classes)), classes).numpy()
        np.testing.assert_allclose(prediction.view_frame_probs[v, seen], expected, atol=1e-6)
        assert np.isnan(np.delete(prediction.view_frame_probs[v], seen, axis=0)).all()
    written = prediction.to_json()
    assert written["windows"]["views"] == views
    assert all(value is None for row in written["view_frame_probs"][2][lengths[2]:] for value in row)


# ------------------------------------------------------------------------------ tiny student


def test_student_prediction_matches_the_model_on_its_windows(student):
    loaded = load_student(student.checkpoint)
    model, meta = loaded.model, loaded.meta
    prediction = predict_clip(model, meta, student.videos, min_duration=0.0)
    classes = list(meta.classes)
    assert prediction.frame_probs.shape == (10, len(classes)) and prediction.clip_probs.shape == (len(classes),)
    assert ((prediction.frame_probs >= 0) & (prediction.frame_probs <= 1)).all()
    frames = np.stack([read_grid_frames(v, IMAGE_SIZE, 2.5, indices=range(NUM_FRAMES)) for v in student.videos])
    video = normalize_video(torch.from_numpy(frames).permute(0, 1, 4, 2, 3)[None], meta.config.model.visual.mean,
                            meta.config.model.visual.std)
    calibration = Calibration.from_json(meta.calibration)  # fitted on validation at the end of training
    with torch.no_grad():
        first = calibration.probabilities(model({"video": video}).frame_logits[0], classes).numpy()
    # grid frames 0-2 are seen by the first window only (windows start at 0, 3, 4)
    np.testing.assert_allclose(prediction.frame_probs[:3], first[:3], atol=1e-5)
    thresholds = [meta.calibration["thresholds"][name] for name in classes]  # the stored ones, by default
    assert prediction.settings["threshold_source"] == "calibrated on validation"
    assert prediction.segments == segments_from_probs(prediction.frame_probs, classes, 2.5, thresholds,
                                                      min_duration=0.0)
    two_views = predict_clip(model, meta, student.videos[:2])  # any number of views runs (documented)
    assert two_views.view_frame_probs.shape == (2, 10, len(classes))


def test_cli_writes_json_and_png(student, tmp_path, capsys):
    out, png = tmp_path / "pred.json", tmp_path / "pred.png"
    code = main(["predict", "--ckpt", str(student.checkpoint), *map(str, student.videos), "--json", str(out),
                 "--png", str(png), "--threshold", "0.3", "--min-gap", "0", "--min-duration", "0", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert "3 views, 10 grid frames (4.0 s at 2.5 FPS), 3 window(s) of T = 6" in printed
    assert all(name in printed for name in report["classes"])
    assert np.array(report["frame_probs"]).shape == (10, len(report["classes"]))
    assert np.array(report["view_frame_probs"]).shape == (3, 10, len(report["classes"]))
    assert report["times"] == [pytest.approx(j / 2.5) for j in range(10)]
    assert report["settings"] == {"thresholds": dict.fromkeys(report["classes"], 0.3),
                                  "threshold_source": "--threshold", "calibrated": True,
                                  "min_gap": 0.0, "min_duration": 0.0, "stride": 3}
    assert report["windows"] == {"count": 3, "frames": 6, "rule": "sliding", "stride": 3, "views": [[0, 1, 2]] * 3}
    expected = segments_from_probs(np.array(report["frame_probs"]), report["classes"], 2.5, 0.3, 0.0, 0.0)
    assert [(s["label"], s["start"], s["end"]) for s in report["segments"]] == [
        (s.label, s.start, s.end) for s in expected]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = png.with_suffix(".csv").read_text().splitlines()
    assert rows[0] == "time_s," + ",".join(report["classes"]) and len(rows) == 11


def test_help_states_the_library_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default {decisions_lib.DEFAULT_THRESHOLD:g})" in text
    assert f"(default {decisions_lib.DEFAULT_MIN_GAP:g})" in text
    assert f"(default {decisions_lib.DEFAULT_MIN_DURATION:g})" in text
    assert "example:" in text


def test_clear_errors(student, tmp_path, capsys):
    ckpt, videos = str(student.checkpoint), list(map(str, student.videos))

    def fails(args, message):
        assert main(["predict", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err

    fails(["--ckpt", str(fake_teacher(student.checkpoint, tmp_path / "teacher.safetensors")), *videos],
          "this is a teacher checkpoint; predict and export take a visual-only student")
    fails(["--ckpt", ckpt, videos[0], str(tmp_path / "missing.mp4")], "missing.mp4: video file not found")
    (tmp_path / "text.mp4").write_text("not a video")
    fails(["--ckpt", ckpt, str(tmp_path / "text.mp4")], "text.mp4: unreadable video")
    # a PNG renamed .mp4 is not a 1-frame video (issue 34): predict, like prepare, says what it is
    from PIL import Image
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "still.png")
    (tmp_path / "still.png").rename(tmp_path / "still.mp4")
    fails(["--ckpt", ckpt, *videos[:2], str(tmp_path / "still.mp4")],
          "still.mp4: a still image (png), not a video, whatever its name says")
    fails(["--ckpt", str(tmp_path / "none.safetensors"), *videos], "checkpoint not found")
    fails(["--ckpt", ckpt, *videos, "--threshold", "2"], "threshold in [0, 1]")
    fails(["--ckpt", ckpt, *videos, "--stride", "0"], "--stride 0: must be at least 1")
    fails(["--ckpt", ckpt, *videos, "--batch-size", "0"], "--batch-size 0: must be at least 1")
    fails(["--ckpt", ckpt, *videos, "--device", "nonsense"], "--device nonsense:")


def test_fewer_views_than_trained_is_a_warning(student):
    loaded = load_student(student.checkpoint)
    model, meta = loaded.model, loaded.meta
    assert read_meta(student.checkpoint).views == 3
    assert predict_clip(model, meta, student.videos).warnings == []
    warnings = predict_clip(model, meta, student.videos[:2]).warnings
    assert warnings == ["2 views given; the model was trained on clips of 3 views (it runs on any number, "
                        "but was not tuned for 2)"]


def test_segment_f1_on_the_cache_equals_predict_on_the_videos(student):
    from vicokd.data.cache import read_clip_meta, read_index
    from vicokd.inference.predict import SEGMENT_IOU, segment_f1
    from vicokd.metrics import matched_segments

    loaded = load_student(student.checkpoint)
    model, meta = loaded.model, loaded.meta
    cache = meta.config.data.cache
    # the test clip whose videos are student.videos
    scores = segment_f1(model, meta, read_index(cache), ["01_05_Part1"])
    prediction = predict_clip(model, meta, student.videos)
    truth = read_clip_meta(cache, "01_05_Part1").segments
    for name, value in scores.items():
        mine = [(s.start, s.end + 1 / 2.5, s.score) for s in prediction.segments if s.label == name]
        true = [(t["start"], t["end"]) for t in truth if name in t["labels"]]
        if not true:
            assert value is None
            continue
        assert value == pytest.approx(2 * matched_segments(mine, true, SEGMENT_IOU) / (len(mine) + len(true)))


def test_evaluate_reports_frame_and_segment_f1_of_a_student(student, capsys):
    assert main(["evaluate", "--ckpt", str(student.checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "frame F1" in out and "segment F1" in out and "at the thresholds chosen on validation" in out
    report = json.loads((student.checkpoint.parent.parent / "eval" / "test-av.json").read_text())
    scored = [v for v in report["per_class_segment_f1"].values() if v is not None]
    assert report["segment_f1"] == pytest.approx(sum(scored) / len(scored))
