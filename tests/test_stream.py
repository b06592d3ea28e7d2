"""`vicokd stream`: the same windows, probabilities and segments as `predict`; stalled views; Ctrl-C."""

import io
import json
import queue
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from run_helpers import NUM_FRAMES
from vicokd.cli import main
from vicokd.inference.predict import predict_clip
from vicokd.inference.sources import SOURCE_ENDED, stream_sources
from vicokd.inference.stream import StreamRunner
from vicokd.inference.student import load_student

from media_helpers import make_video, write_timed


@pytest.fixture(scope="module")
def student(tiny_student, tmp_path_factory):
    checkpoint = tiny_student[1]
    base = tmp_path_factory.mktemp("stream")
    videos = []
    for k in (1, 2, 3):  # 48 frames at 10 fps: 12 grid frames, two windows of T = 6
        videos.append(base / "videos" / f"view{k}.mp4")
        make_video(videos[-1], 48, k, audio=False)
    return SimpleNamespace(base=base, checkpoint=checkpoint, videos=videos)


def lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_stream(loaded, readers, **options):
    out = io.StringIO()
    summary = StreamRunner(loaded, readers, out, warn=lambda line: None, **options).run()
    return summary, lines(out.getvalue())


@pytest.mark.parametrize("segment_rule", [{}, {"min_gap": 0.0, "min_duration": 0.0},
                                          {"min_gap": 2.0, "min_duration": 1.2, "threshold": 0.45}])
def test_stream_gives_predict_s_probabilities_and_segments(student, segment_rule):
    """Stream's segments follow predict's rule, min gap and min duration included (defaults: predict's)."""
    loaded = load_student(student.checkpoint)
    model, meta = loaded.model, loaded.meta
    summary, items = run_stream(loaded, stream_sources(student.videos, meta), stride=NUM_FRAMES, **segment_rule)
    prediction = predict_clip(model, meta, student.videos, stride=NUM_FRAMES, **segment_rule)
    frames = [item for item in items if item["type"] == "frame"]
    assert summary.frames == 12 and [f["frame"] for f in frames] == list(range(12))
    probs = np.array([[f["probs"][name] for name in meta.classes] for f in frames])
    np.testing.assert_allclose(probs, prediction.frame_probs, atol=1e-5)
    assert prediction.segments  # the rule is exercised
    starts = [(e["class"], e["t"]) for e in items if e["type"] == "start"]
    ends = [(e["class"], e["t"]) for e in items if e["type"] == "end"]
    assert sorted(starts) == sorted((s.label, round(s.start, 6)) for s in prediction.segments)
    assert sorted(ends) == sorted((s.label, round(s.end, 6)) for s in prediction.segments)
    streamed = sorted((e["class"], e["frame"], e["confidence"]) for e in items if e["type"] == "end")
    predicted = sorted((s.label, round(s.end * meta.config.data.fps), s.score) for s in prediction.segments)
    assert [row[:2] for row in streamed] == [row[:2] for row in predicted]
    assert [row[2] for row in streamed] == pytest.approx([row[2] for row in predicted], abs=1e-5)  # mean p
    settings = items[0]
    if "threshold" in segment_rule:
        return
    assert settings["type"] == "settings" and settings["threshold_source"] == "calibrated on validation"
    assert settings["thresholds"] == pytest.approx(meta.calibration["thresholds"])  # stored ones by default


def test_threshold_overrides_and_a_short_stream_is_predicts_uniform_window(student, tmp_path):
    loaded = load_student(student.checkpoint)
    model, meta = loaded.model, loaded.meta
    short = []
    for k in (1, 2, 3):  # 16 frames: 4 grid frames < T
        short.append(tmp_path / f"short{k}.mp4")
        make_video(short[-1], 16, k, audio=False)
    _, items = run_stream(loaded, stream_sources(short, meta), threshold=0.0)
    assert items[0]["threshold_source"] == "--threshold" and set(items[0]["thresholds"].values()) == {0.0}
    frames = [item for item in items if item["type"] == "frame"]
    prediction = predict_clip(model, meta, short, threshold=0.0)
    probs = np.array([[f["probs"][name] for name in meta.classes] for f in frames])
    np.testing.assert_allclose(probs, prediction.frame_probs, atol=1e-5)
    # threshold 0: every class is active from the first frame to the last, one segment each
    assert len([i for i in items if i["type"] == "start"]) == len(meta.classes)
    assert all(e["frame"] == 3 for e in items if e["type"] == "end")


class FakeSource:
    """A live source: grid frame j at j·`period` seconds; the frames in `gap` never come (it stalled)."""

    def __init__(self, frames, period=0.0, gap=()):
        self.frames, self.error, self.source = queue.Queue(), None, "fake"
        self._items, self._period, self._gap = frames, period, set(gap)

    def start(self):
        def feed():
            started = time.monotonic()
            for j, frame in enumerate(self._items):
                time.sleep(max(0.0, started + j * self._period - time.monotonic()))
                if j not in self._gap:
                    self.frames.put((j, frame))
            self.frames.put(SOURCE_ENDED)
        threading.Thread(target=feed, daemon=True).start()


def test_a_stalled_view_is_left_out_and_comes_back(student):
    loaded = load_student(student.checkpoint)
    meta = loaded.meta
    h, w = meta.config.data.image_size
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 255, (12, h, w, 3), dtype=np.uint8) for _ in range(3)]
    readers = [FakeSource(list(clips[0]), 0.1), FakeSource(list(clips[1]), 0.1, gap=(3, 4, 5)),
               FakeSource(list(clips[2]), 0.1)]
    warnings = []
    out = io.StringIO()
    summary = StreamRunner(loaded, readers, out, stall=0.35, warn=warnings.append).run()
    frames = [item for item in lines(out.getvalue()) if item["type"] == "frame"]
    assert summary.frames == 12 and [f["frame"] for f in frames] == list(range(12))
    assert warnings == ["view 2 stalled at 1.2 s: left out of the windows", "view 2 is back at 2.4 s"]
    assert frames[5]["views"] == [0, 2]  # the first window lacks frames 3-5 of view 2
    assert frames[11]["views"] == [0, 1, 2]  # by the second window it has all its frames again


def test_ctrl_c_flushes_the_frames_and_ends_open_segments(student, monkeypatch):
    loaded = load_student(student.checkpoint)
    meta = loaded.meta
    h, w = meta.config.data.image_size
    clip = list(np.random.default_rng(1).integers(0, 255, (12, h, w, 3), dtype=np.uint8))
    runner = StreamRunner(loaded, [FakeSource(clip)], io.StringIO(), threshold=0.0, warn=lambda line: None)
    original = runner._tick

    def tick(j):
        if j == 8:
            raise KeyboardInterrupt
        return original(j)

    monkeypatch.setattr(runner, "_tick", tick)
    summary = runner.run()
    items = lines(runner.out.getvalue())
    assert summary.interrupted and summary.frames == 8
    assert [i["frame"] for i in items if i["type"] == "frame"] == list(range(8))
    ends = [i for i in items if i["type"] == "end"]
    assert len(ends) == len(meta.classes) and all(e["frame"] == 7 for e in ends)


def test_cli_writes_json_lines_and_refuses_bad_input(student, tmp_path, capsys):
    out = tmp_path / "events.jsonl"
    assert main(["stream", "--ckpt", str(student.checkpoint), *map(str, student.videos), "--out", str(out)]) == 0
    assert "stream: 12 grid frames" in capsys.readouterr().err
    assert [i["type"] for i in lines(out.read_text())][:2] == ["settings", "frame"]
    assert main(["stream", "--ckpt", str(student.checkpoint), str(tmp_path / "missing.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: stream: view 1: {tmp_path / 'missing.mp4'}: ") and "Traceback" not in err
    assert "the source cannot be opened (--allow-missing runs with the other views)" in err
    assert main(["stream", "--ckpt", str(student.checkpoint), *map(str, student.videos), "--stride", "99"]) == 2
    assert "--stride 99: must be 1 to T = 6" in capsys.readouterr().err


def test_files_played_at_real_time_give_the_same_lines(student, tmp_path):
    paced, fast = tmp_path / "paced.jsonl", tmp_path / "fast.jsonl"
    started = time.monotonic()
    assert main(["stream", "--ckpt", str(student.checkpoint), *map(str, student.videos), "--realtime",
                 "--out", str(paced)]) == 0
    assert time.monotonic() - started >= 4.5  # 48 frames at 10 fps: 4.8 s of video
    assert main(["stream", "--ckpt", str(student.checkpoint), *map(str, student.videos), "--out", str(fast)]) == 0
    assert lines(paced.read_text()) == lines(fast.read_text())


def test_a_growing_file_is_followed_and_each_frame_comes_once(tmp_path):
    """An MPEG-TS file written in two halves: every grid frame arrives once, as the whole file's."""
    import av

    from vicokd.inference.sources import SOURCE_ENDED, GridReader

    images = np.random.default_rng(2).integers(0, 255, (48, 48, 64, 3), dtype=np.uint8)
    full = tmp_path / "full.ts"
    with av.open(str(full), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = full.read_bytes()
    growing = tmp_path / "growing.ts"
    growing.write_bytes(data[: len(data) // 2 // 188 * 188])  # cut at a transport-stream packet

    def items(reader):
        reader.start()
        got = []
        while (item := reader.frames.get(timeout=60)) is not SOURCE_ENDED:
            got.append(item)
            if len(got) == 2:  # it is reading the first half: now the writer adds the rest
                with growing.open("ab") as handle:
                    handle.write(data[len(data) // 2 // 188 * 188:])
        return got

    followed = items(GridReader(str(growing), (48, 64), 2.5, follow=1.0))
    whole = []
    reader = GridReader(str(full), (48, 64), 2.5)
    reader.start()
    while (item := reader.frames.get(timeout=60)) is not SOURCE_ENDED:
        whole.append(item)
    assert [j for j, _ in followed] == list(range(12)) == [j for j, _ in whole]
    for (_, a), (_, b) in zip(followed, whole):
        np.testing.assert_array_equal(a, b)


def test_a_threshold_outside_0_1_is_one_line(student, capsys):
    for command in ("stream", "predict"):
        assert main([command, "--ckpt", str(student.checkpoint), *map(str, student.videos), "--threshold", "2"]) == 2
        err = capsys.readouterr().err
        assert err.strip() == "error: --threshold 2: a probability threshold in [0, 1]", err


def test_a_source_that_cannot_be_opened_is_an_error_unless_allowed(student, tmp_path, capsys):
    missing = str(tmp_path / "missing.mp4")
    command = ["stream", "--ckpt", str(student.checkpoint), *map(str, student.videos[:2]), missing]
    assert main(command) == 2  # before: a warning, exit 0 and a silent 2-view run
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: stream: view 3: {missing}: ") and len(err.splitlines()) == 1
    out = tmp_path / "two.jsonl"
    assert main([*command, "--allow-missing", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"warning: view 3 cannot be opened, left out: {missing}: " in err
    frames = [item for item in lines(out.read_text()) if item["type"] == "frame"]
    assert len(frames) == 12 and all(item["views"] == [0, 1] for item in frames)


@pytest.mark.parametrize("views", [2, 4])
def test_a_view_count_other_than_trained_warns_as_predict_does(student, views):
    """A 3-view model on 2 or 4 sources: stream gives predict's warning, word for word (issue 34)."""
    loaded = load_student(student.checkpoint)
    model, meta = loaded.model, loaded.meta
    videos = [student.videos[k % len(student.videos)] for k in range(views)]
    summary, _ = run_stream(loaded, stream_sources(videos, meta))
    expected = [line for line in predict_clip(model, meta, videos).warnings if "views given" in line]
    assert expected and [line for line in summary.warnings if "views given" in line] == expected


@pytest.mark.parametrize("short_frames", [24, 30, 4])  # view 3 stops after 6, 8 or 1 grid frames of 12
def test_a_view_that_ends_early_gives_predict_s_frames_views_and_warnings(student, tmp_path, short_frames):
    """Side by side (issue 34): stream and predict run the same windows on the same views (a view is
    left out of the windows past its end), give the same probabilities and the same warnings."""
    loaded = load_student(student.checkpoint)
    model, meta = loaded.model, loaded.meta
    short = tmp_path / "view3.mp4"
    make_video(short, short_frames, 3, audio=False)
    videos = [*student.videos[:2], short]
    prediction = predict_clip(model, meta, videos, stride=NUM_FRAMES)
    summary, items = run_stream(loaded, stream_sources(videos, meta))
    assert prediction.view_lengths[2] < 12 and prediction.warnings  # the case is exercised
    assert summary.warnings == prediction.warnings
    frames = [item for item in items if item["type"] == "frame"]
    assert [f["frame"] for f in frames] == list(range(prediction.length))
    window_of = {int(j): used for window, used in zip(prediction.windows, prediction.window_views) for j in window}
    assert [f["views"] for f in frames] == [window_of[j] for j in range(prediction.length)]
    probs = np.array([[f["probs"][name] for name in meta.classes] for f in frames])
    np.testing.assert_allclose(probs, prediction.frame_probs, atol=1e-5)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_rotated_view_gives_the_upright_probabilities(student, tmp_path, degrees):
    """Issue 34: a view stored turned with a display matrix gives predict and stream the probabilities of
    the upright file (it gave those of the turned pixels, as if the matrix were not there)."""
    from skimage import data as photos

    from vicokd.data.video_io import write_mp4

    photo = photos.astronaut()[::4, ::4][:96]  # (96, 128, 3): real pixels, not square
    upright = np.stack([np.roll(photo, 5 * i, axis=1) for i in range(40)])  # 40 frames at 10 fps: 10 grid frames
    stored = np.stack([np.rot90(image, -degrees // 90) for image in upright])
    write_mp4(tmp_path / "upright.mp4", upright, 10, crf=0)
    write_mp4(tmp_path / "turned.mp4", stored, 10, crf=0, display_rotation=degrees)
    write_mp4(tmp_path / "unmarked.mp4", stored, 10, crf=0)  # the turned pixels, no matrix: what was decoded
    loaded = load_student(student.checkpoint)
    model, meta = loaded.model, loaded.meta
    others = [student.videos[0], student.videos[1]]

    def probs(view):
        return predict_clip(model, meta, [*others, tmp_path / view], stride=NUM_FRAMES).frame_probs

    upright_p, turned_p = probs("upright.mp4"), probs("turned.mp4")
    ignored = np.abs(probs("unmarked.mp4") - upright_p).max()
    assert np.abs(turned_p - upright_p).max() < ignored / 5  # chroma subsampling differs a little
    _, items = run_stream(loaded, stream_sources([*others, tmp_path / "turned.mp4"], meta))
    streamed = np.array([[f["probs"][name] for name in meta.classes] for f in items if f["type"] == "frame"])
    np.testing.assert_allclose(streamed[:len(turned_p)], turned_p, atol=1e-5)


def test_a_still_image_named_mp4_is_an_error_naming_it(student, tmp_path, capsys):
    """A PNG renamed .mp4 among the sources is refused in one line, as predict refuses it (issue 34)."""
    from PIL import Image
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "still.png")
    still = tmp_path / "still.png"
    still = still.rename(tmp_path / "still.mp4")
    assert main(["stream", "--ckpt", str(student.checkpoint), *map(str, student.videos[:2]), str(still)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: stream: view 3: {still}: a still image (png), not a video") and \
        len(err.splitlines()) == 1


@pytest.mark.parametrize(("name", "times", "length"), [
    ("6fps", [i / 6 for i in range(60)], 25),  # 10 s at 6 fps; the old interval rule said 12 s
    ("5to25fps", [i / 5 for i in range(30)] + [6 + i / 25 for i in range(150)], 30),  # 12 s; it said 28 s
])
def test_predict_and_stream_report_the_video_s_own_times(student, tmp_path, name, times, length):
    videos = [write_timed(tmp_path / name / f"view{k}.mp4", times) for k in (1, 2, 3)]
    loaded = load_student(student.checkpoint)
    model, meta = loaded.model, loaded.meta
    prediction = predict_clip(model, meta, videos, min_gap=0.0, min_duration=0.0, threshold=0.0)
    assert len(prediction.frame_probs) == length  # grid frame j at j / 2.5 s: the video's duration
    assert max(segment.end for segment in prediction.segments) == pytest.approx((length - 1) / 2.5)
    summary, items = run_stream(loaded, stream_sources(videos, meta))
    frames = [item for item in items if item["type"] == "frame"]
    assert summary.frames == length and frames[-1]["t"] == pytest.approx((length - 1) / 2.5)
    assert frames[-1]["t"] <= times[-1] + 1 / 2.5
