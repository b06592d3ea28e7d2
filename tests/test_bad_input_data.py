"""Issue 15, data layer: nothing silent, nothing stale, nothing lost.

Truncated or damaged videos and audio (item 2), stale caches (item 3), `prepare` workers that
outlive their parent (item 5), paths outside the dataset root (item 7), a short view blamed on
the annotation (item 9) and prepare's memory against the clip length (item 10). Every case
that reaches the CLI checks the exit code, a one-line message naming the file or field, no
traceback, and that finished clips are byte-identical afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest

from vicokd.cli import main
from vicokd.config import DataConfig
from vicokd.data import cache_writer as cache_module
from vicokd.data import media
from vicokd.data.annotations import frame_labels, load_annotations, sequence_labels
from vicokd.data.cache import clip_dir, read_index
from vicokd.data.cache_temps import remove_stale_temps
from vicokd.data.cache_writer import decode_clip
from vicokd.data.dataset import MultiViewClips
from vicokd.data.media import (
    ShortMediaWarning,
    grid_fbank,
    iter_grid_fbank,
    read_audio,
    read_grid_frames,
)
from vicokd.data.prepare import prepare
from vicokd.data.video_io import write_mp4
from vicokd.errors import DataError

from media_helpers import FPS, SAMPLE_RATE, SIZE, make_dataset, make_video

CONFIG = DataConfig(image_size=SIZE, num_frames=6)
PREPARE = ["--size", f"{SIZE[1]}x{SIZE[0]}", "--workers", "1"]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def assert_one_line_error(err: str, *needles: str) -> str:
    """The CLI's stderr ends with one `error:` line holding every needle, and has no traceback."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors, err
    for needle in needles:
        assert needle in errors[-1], (needle, errors[-1])
    return errors[-1]


def snapshot(cache: Path) -> dict[str, bytes]:
    """The bytes of every file of every finished clip."""
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted((cache / "clips").glob("[!.]*/*"))}


# ----------------------------------------------------------------------------- item 2: damaged media


def noisy_video(path: Path, frames: int = 50, fps: float = FPS, audio_seconds: float | None = None) -> None:
    """Incompressible frames (big packets, so a cut lands inside the stream), optional audio."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (frames, *SIZE, 3), dtype=np.uint8)
    wave = None
    if audio_seconds is not None:
        t = np.arange(int(audio_seconds * SAMPLE_RATE)) / SAMPLE_RATE
        wave = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    write_mp4(path, images, fps, wave, SAMPLE_RATE)


def faststart(path: Path) -> bytes:
    """`path` remuxed with its header (moov) first, as web-ready mp4 files are; returns the bytes."""
    out = path.with_name(path.stem + "-faststart.mp4")
    with av.open(str(path)) as source, av.open(str(out), "w", format="mp4",
                                               options={"movflags": "+faststart"}) as target:
        streams = {s.index: target.add_stream_from_template(s) for s in source.streams}
        for packet in source.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                target.mux(packet)
    data = out.read_bytes()
    out.unlink()
    assert data.find(b"moov") < data.find(b"mdat")
    return data


def cut_after_packet(path: Path, data: bytes, keep: int) -> None:
    """Write the faststart `data` cut right after video packet `keep - 1` (no partial packet)."""
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    position, size = packets[keep - 1]
    path.write_bytes(data[: position + size])


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> dict[str, Path]:
    """50-frame video-only faststart files: whole, cut mid-packet, cut after 22, 48, 49 packets."""
    folder = tmp_path_factory.mktemp("damaged")
    whole = folder / "whole.mp4"
    noisy_video(whole)
    data = faststart(whole)
    whole.write_bytes(data)
    files = {"whole": whole, "half": folder / "half.mp4"}
    files["half"].write_bytes(data[: len(data) // 2])
    for keep in (22, 48, 49):
        files[f"cut{keep}"] = folder / f"cut{keep}.mp4"
        files[f"cut{keep}"].write_bytes(data)
        cut_after_packet(files[f"cut{keep}"], data, keep)
    return files


def test_half_cut_video_is_a_decode_error_not_padding(damaged):
    """The issue's case: PyAV's frame threading hid this error and 35 of 50 frames were copies."""
    with pytest.raises(DataError) as caught:
        read_grid_frames(damaged["half"], SIZE)
    message = str(caught.value)
    assert message.startswith(f"{damaged['half']}: corrupt video: decoding failed after ")
    assert "of 50 frames" in message and "\n" not in message


def test_video_shorter_than_its_header_is_an_error_beyond_the_tolerance(damaged):
    with pytest.raises(DataError) as caught:  # cut on a packet edge: no decode error, 28 frames missing
        read_grid_frames(damaged["cut22"], SIZE)
    assert str(caught.value) == (f"{damaged['cut22']}: truncated or damaged video: decoded 22 of the 50 frames its "
                                 "header declares (2.20 s of 5.00 s); more than 0.5 s is missing, replace or "
                                 "re-encode the file")
    with pytest.raises(DataError, match="decoded 22 of the 50 frames"):  # the seek path counts too
        read_grid_frames(damaged["cut22"], SIZE, indices=[9])


def test_video_a_little_short_is_a_warning_naming_both_lengths(damaged):
    warnings: list[str] = []
    frames = read_grid_frames(damaged["cut48"], SIZE, warnings=warnings)
    assert frames.shape == (13, *SIZE, 3)  # ceil(50 / 4) grid frames; the last one (source 48) is missing
    assert warnings == [f"{damaged['cut48']}: video ends early: decoded 48 of the 50 frames its header declares "
                        "(4.80 s of 5.00 s); the last 1 grid frame(s) repeat its last frame"]
    with av.open(str(damaged["cut48"])) as container:
        *_, last = container.decode(video=0)
    np.testing.assert_array_equal(frames[12], last.to_ndarray(format="rgb24", width=SIZE[1], height=SIZE[0]))
    with pytest.warns(ShortMediaWarning, match="decoded 49 of the 50 frames.*no grid frame is affected"):
        read_grid_frames(damaged["cut49"], SIZE)
    whole: list[str] = []
    read_grid_frames(damaged["whole"], SIZE, warnings=whole)
    assert whole == []


def test_past_the_declared_end_still_repeats_the_last_frame_silently(damaged):
    warnings: list[str] = []
    frames = read_grid_frames(damaged["whole"], SIZE, indices=[13, 15], warnings=warnings)
    np.testing.assert_array_equal(frames[0], frames[1])  # past the end the header declares: asked for
    assert warnings == []


def test_prepare_and_cli_report_a_damaged_view_and_keep_finished_clips(tmp_path, damaged, capsys):
    root = tmp_path / "d"
    make_dataset(root)
    cache = tmp_path / "c"
    assert run_cli(["prepare", str(root), "--out", str(cache), *PREPARE], capsys)[0] == 0
    before = snapshot(cache)
    target = root / "02" / "00-View2-Part1.mp4"
    noisy_video(target, frames=40)
    data = faststart(target)
    target.write_bytes(data[: len(data) // 2])
    code, err = run_cli(["prepare", str(root), "--out", str(cache), *PREPARE], capsys)
    assert code == 2
    assert_one_line_error(err, "02/00-View2-Part1.mp4: corrupt video: decoding failed after", "of 40 frames")
    assert snapshot(cache) == before  # the stale copy of the clip stays until a good video replaces it
    with pytest.raises(DataError, match=r"00-View2-Part1.mp4: changed since clip '02_00_Part1' was cached"):
        MultiViewClips(cache, "train", 6)  # ... and is not trained on


def test_audio_track_shorter_than_its_video(tmp_path):
    root = tmp_path / "d"
    make_dataset(root)
    path = root / "01" / "05-View2-Part1.mp4"  # test clip: 4 s of video
    noisy_video(path, frames=40, audio_seconds=3.7)  # 0.3 s short: a warning, the rest is silence
    warnings: list[str] = []
    meta, warnings = decode_clip(load_annotations(root, "test")[0][0], CONFIG, _empty(tmp_path / "out"))
    assert any(line.startswith(f"{path}: audio track ends early: decoded 3.") and "for 4.00 s of video; the rest "
               "is silence" in line for line in warnings), warnings
    fbank = np.load(tmp_path / "out" / "fbank.npy")
    assert meta["audio_present"] == [True] * 3
    last = fbank[1, -1]  # 3.6-4.0 s: the tone, then silence (every bin at the log floor)
    assert last[:5].max() > last[:5].min() and last[12:].max() == last[12:].min() == last.min()
    noisy_video(path, frames=40, audio_seconds=2.0)  # 2 s of 4: an error
    with pytest.raises(DataError, match=r"05-View2-Part1.mp4: truncated or damaged audio track: decoded 2\.\d\d s "
                                        r"of audio for 4.00 s of video"):
        decode_clip(load_annotations(root, "test")[0][0], CONFIG, _empty(tmp_path / "out2"))


def _empty(path: Path) -> Path:
    path.mkdir()
    return path


# ----------------------------------------------------------------------------- item 9: the right culprit


def test_short_view_is_blamed_not_the_annotation(tmp_path, capsys):
    root = tmp_path / "d"
    make_dataset(root, views=2)
    make_video(root / "01" / "05-View1-Part1.mp4", 200, 1)  # 20 s
    records = json.loads((root / "test.json").read_text())
    records[0]["tricks"].append({"start": 8.0, "end": 12.0, "labels": ["Enter"]})  # fits the 20-s view
    (root / "test.json").write_text(json.dumps(records))
    code, err = run_cli(["prepare", str(root), "--out", str(tmp_path / "c"), *PREPARE], capsys)
    assert code == 2
    line = assert_one_line_error(err, "01/05-View2-Part1.mp4: view 2 of test.json[0] is 4 s long, the other views "
                                      "up to 20 s", "test.json[0].tricks[1] starts at 8 s", "check or replace")
    assert "after the end of the video" not in line


# ----------------------------------------------------------------------------- item 3: stale cache


@pytest.fixture()
def prepared(tmp_path, capsys):
    root, cache = tmp_path / "d", tmp_path / "c"
    make_dataset(root)
    prepare(root, cache, CONFIG, workers=1, progress=False)
    capsys.readouterr()
    return root, cache


def test_replaced_video_is_decoded_again_and_nothing_else(prepared, capsys):
    root, cache = prepared
    keys = ("01_00_Part1", "01_05_Part1")
    untouched = {key: (clip_dir(cache, key) / "frames.npy").stat().st_mtime_ns for key in keys}
    make_video(root / "02" / "00-View3-Part1.mp4", 44, 3)  # 11 grid frames instead of 10
    with pytest.raises(DataError, match=r"02/00-View3-Part1.mp4: changed since clip '02_00_Part1' was cached in "):
        MultiViewClips(cache, "train", 6)  # no silent training on the old copy
    index = prepare(root, cache, CONFIG, workers=1, progress=True)
    captured = capsys.readouterr()
    assert "note: train.json[1] (clip 02_00_Part1): 02/00-View3-Part1.mp4 changed since it was cached" in captured.err
    assert "prepared 3 clips (0 new, 1 redone)" in captured.out
    assert index.clips["02_00_Part1"].view_lengths == [10, 10, 11]
    assert {key: (clip_dir(cache, key) / "frames.npy").stat().st_mtime_ns for key in untouched} == untouched
    assert not [p for p in (cache / "clips").iterdir() if p.name.startswith(".")]  # the old copy is gone
    MultiViewClips(cache, "train", 6)  # fresh again


def test_corrected_annotation_relabels_without_decoding(prepared, capsys):
    root, cache = prepared
    frames = clip_dir(cache, "01_05_Part1") / "frames.npy"
    stamp = frames.stat().st_mtime_ns
    records = json.loads((root / "test.json").read_text())
    records[0]["tricks"] = [{"start": 2.0, "end": 3.0, "labels": ["Drink"]}]
    (root / "test.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"test.json: changed since the cache .* was prepared; re-run `vicokd prepare"):
        MultiViewClips(cache, "test", 6)
    prepare(root, cache, CONFIG, workers=1, progress=True)
    assert "prepared 3 clips (0 new, 1 relabelled)" in capsys.readouterr().out
    assert frames.stat().st_mtime_ns == stamp  # labels only: the frames were not decoded again
    item = MultiViewClips(cache, "test", 6)[0]
    assert item["labels"].tolist() == [1, 0, 0, 0]  # [Drink, Enter, Sitdown, UsePhone]


def test_cache_of_an_older_vicokd_is_redone(prepared, capsys):
    root, cache = prepared
    meta_path = clip_dir(cache, "02_00_Part1") / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["inputs"], meta["source"]
    meta_path.write_text(json.dumps(meta))
    prepare(root, cache, CONFIG, workers=1, progress=True)
    captured = capsys.readouterr()
    assert "(clip 02_00_Part1): it has no input fingerprint" in captured.err and "1 redone" in captured.out
    assert json.loads(meta_path.read_text())["inputs"]["videos"][0]["url"] == "02/00-View1-Part1.mp4"


def test_label_errors_name_the_annotation_file_and_clip(prepared):
    _, cache = prepared
    with pytest.raises(DataError, match=r"^train.json\[3\] \(clip x\).tricks\[1\].labels: segment label 'Z' is not "
                                        r"in the class list \(A, B\)$"):
        sequence_labels([{"start": 0, "end": 1, "labels": ["A"]}, {"start": 0, "end": 1, "labels": ["Z"]}], ["A", "B"],
                        where="train.json[3] (clip x)")
    with pytest.raises(DataError, match=r"^segment label 'Z' is not in the class list"):
        frame_labels([{"start": 0, "end": 1, "labels": ["Z"]}], 4, ["A"])
    meta_path = clip_dir(cache, "01_05_Part1") / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["segments"][0]["labels"] = ["Dance"]  # a cache whose labels do not match its class list
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"^test.json\[0\] \(clip 01_05_Part1\).tricks\[0\].labels: segment label "
                                        r"'Dance' is not in the class list"):
        MultiViewClips(cache, "test", 6)[0]


# ----------------------------------------------------------------------------- item 6 (the cache's part)


def test_damaged_cache_files_are_one_line_errors_and_prepare_redoes_them(prepared, capsys):
    root, cache = prepared
    frames = clip_dir(cache, "02_00_Part1") / "frames.npy"
    frames.write_bytes(frames.read_bytes()[:5000])  # truncated
    with pytest.raises(DataError, match=r"02_00_Part1/frames.npy: damaged cache file .*re-run `vicokd prepare`"):
        MultiViewClips(cache, "train", 6, val_fraction=0.0)[1]
    index = cache / "index.json"
    good = index.read_text()
    for bad in ("{not json", "[]", '{"version": 2, "splits": {}}'):
        index.write_text(bad)
        code, err = run_cli(["prepare", str(root), "--out", str(cache), *PREPARE], capsys)
        assert code == 2
        assert_one_line_error(err, "index.json: damaged cache index")
    index.write_text(good)
    before = {k: v for k, v in snapshot(cache).items() if "02_00_Part1" not in k}
    prepare(root, cache, CONFIG, workers=1, progress=False)
    assert "(clip 02_00_Part1): its frames.npy is damaged; decoding it again" in capsys.readouterr().err
    assert load_frames_shape(cache, "02_00_Part1") == (3, 10, 3, *SIZE)
    assert {k: v for k, v in snapshot(cache).items() if "02_00_Part1" not in k} == before


def load_frames_shape(cache: Path, key: str) -> tuple[int, ...]:
    return tuple(np.load(clip_dir(cache, key) / "frames.npy").shape)


def test_full_disk_while_writing_a_clip(tmp_path, capsys, monkeypatch):
    root, cache = tmp_path / "d", tmp_path / "c"
    make_dataset(root)
    prepare(root, cache, CONFIG, workers=1, progress=False)
    before = snapshot(cache)
    make_video(root / "01" / "05-View1-Part1.mp4", 40, 1, tone_hz=300.0)  # changed: to be decoded again

    def full(self, block):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module._NpyWriter, "write", full)
    code, err = run_cli(["prepare", str(root), "--out", str(cache), *PREPARE], capsys)
    assert code == 2
    assert_one_line_error(err, "01_05_Part1: cannot write the cached clip (No space left on device)")
    assert snapshot(cache) == before  # the old copy stays (and is refused by the dataset as stale)
    assert not [p for p in (cache / "clips").iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- item 7: outside the root


@pytest.mark.parametrize(("url", "problem"), [
    ("/etc/passwd", "absolute video path '/etc/passwd'"),
    ("../../etc/passwd", "video path '../../etc/passwd' leaves the dataset root"),
    ("01/../../outside.mp4", "video path '01/../../outside.mp4' leaves the dataset root"),
])
def test_paths_outside_the_root_are_refused_naming_the_record(tmp_path, capsys, url, problem):
    root = tmp_path / "d"
    make_dataset(root, views=2)
    records = json.loads((root / "train.json").read_text())
    records[1]["video_url_2"] = url
    (root / "train.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"^train.json\[1\].video_url_2: " + problem.replace("(", r"\(")):
        load_annotations(root, "train")
    opened = []
    original = media._open
    media._open = lambda path: opened.append(path) or original(path)
    try:
        code, err = run_cli(["prepare", str(root), "--out", str(tmp_path / "c"), *PREPARE], capsys)
    finally:
        media._open = original
    assert code == 2 and opened == []  # refused before any file is opened
    assert_one_line_error(err, f"train.json[1].video_url_2: {problem}", "data.allow_outside_root=true")


def test_outside_paths_allowed_by_the_switch_and_symlinks_inside_followed(tmp_path, capsys):
    root, elsewhere = tmp_path / "d", tmp_path / "elsewhere"
    make_dataset(root, views=2)
    elsewhere.mkdir()
    shutil.move(root / "02", elsewhere / "02")
    (root / "02").symlink_to(elsewhere / "02")  # a session folder on another disk, linked into the root
    shutil.move(root / "01" / "05-View2-Part1.mp4", elsewhere / "view.mp4")
    assert load_annotations(root, "train")[0][1].videos[0] == root / "02" / "00-View1-Part1.mp4"
    records = json.loads((root / "test.json").read_text())
    records[0]["video_url_2"] = str(elsewhere / "view.mp4")
    (root / "test.json").write_text(json.dumps(records))
    assert run_cli(["prepare", str(root), "--out", str(tmp_path / "c"), *PREPARE], capsys)[0] == 2
    code, _ = run_cli(["prepare", str(root), "--out", str(tmp_path / "c"), *PREPARE,
                       "--set", "data.allow_outside_root=true"], capsys)
    assert code == 0
    assert read_index(tmp_path / "c").clips["01_05_Part1"].videos[1] == str(elsewhere / "view.mp4")
    from vicokd.detect.run import dataset_clips  # `detect` reads the same records under the same switch

    with pytest.raises(DataError, match=r"test.json\[0\].video_url_2: absolute video path"):
        dataset_clips(root)
    assert "01_05_Part1" in {clip.key for clip in dataset_clips(root, allow_outside_root=True)}


def test_inner_dotdot_that_stays_inside_is_fine(tmp_path):
    root = tmp_path / "d"
    make_dataset(root, views=2)
    records = json.loads((root / "train.json").read_text())
    records[0]["video_url_2"] = "02/../01/00-View2-Part1.mp4"
    (root / "train.json").write_text(json.dumps(records))
    assert load_annotations(root, "train")[0][0].videos[1] == root / "02/../01/00-View2-Part1.mp4"


# ----------------------------------------------------------------------------- item 10: bounded memory


def test_chunked_fbank_equals_the_whole_track_computation():
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(int(7.3 * SAMPLE_RATE))).astype(np.float32)
    blocks = np.split(wave, np.sort(rng.integers(0, wave.size, 40)))  # uneven blocks, as a decoder gives
    for chunks, group in ((19, 4), (19, 64), (18, 1), (19, 7)):
        expected = grid_fbank(wave, chunks)
        got = np.concatenate(list(iter_grid_fbank(iter(blocks), wave.size, chunks, group=group)))
        assert np.array_equal(got, expected), (chunks, group)
    short = wave[: wave.size // 2]  # a stream that ends early is padded with silence to `total`
    padded = np.concatenate([short, np.zeros(wave.size - short.size, np.float32)])
    got = np.concatenate(list(iter_grid_fbank([short], wave.size, 19, group=5)))
    assert np.array_equal(got, grid_fbank(padded, 19))


def test_prepare_computes_fbank_in_bounded_groups_and_streams_frames(tmp_path, monkeypatch):
    root = tmp_path / "d"
    make_dataset(root, frames=300)  # 30 s: 75 grid frames per view
    clip = load_annotations(root, "train")[0][0]
    calls = []
    original = media.log_mel_fbank
    monkeypatch.setattr(media, "log_mel_fbank", lambda wave, *a: calls.append(wave.shape[0]) or original(wave, *a))
    monkeypatch.setattr(media, "FBANK_GROUP", 4)
    tracemalloc.start()
    meta, _ = decode_clip(clip, DataConfig(image_size=(96, 128)), _empty(tmp_path / "out"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    frames = np.load(tmp_path / "out" / "frames.npy")
    assert frames.shape == (3, 75, 3, 96, 128) and max(calls) == 4 and sum(calls) == 3 * 75
    # numpy's allocations (tracemalloc sees them; torch's it does not): the frames went to disk as they were
    # decoded, not even one view's (2.8 MB) was held, and no view's whole audio track (1.9 MB as float32)
    assert peak < frames[0].nbytes / 2, (peak, frames[0].nbytes)
    fbank = np.load(tmp_path / "out" / "fbank.npy")
    wave = read_audio(clip.videos[0])[: 300 * SAMPLE_RATE // int(FPS)]
    np.testing.assert_array_equal(fbank[0], grid_fbank(wave, 75)[:, : meta["fbank_rows"]].astype(np.float16))


@pytest.mark.slow  # two spawned processes that import torch
def test_prepare_memory_benchmark_runs(tmp_path):
    from vicokd.bench.prepare_memory import PrepareMemorySize, run_prepare_memory_benchmark

    size = PrepareMemorySize(seconds=(4.0, 12.0), views=2, image_size=(32, 32))
    result = run_prepare_memory_benchmark(size, threads=1, work_dir=tmp_path)
    data = json.loads(json.dumps(result.to_json()))
    assert [row["grid_frames"] for row in data["rows"]] == [10, 30]
    assert all(row["peak_rss_bytes"] > row["rss_before_bytes"] > 0 for row in data["rows"])
    assert len(data["targets"]) == 1 and isinstance(data["targets"][0]["met"], bool)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- item 5: orphaned workers


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc: Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":  # a zombie has ended; only its exit status waits for its parent
            alive.add(pid)
    return alive


@pytest.fixture(scope="module")
def slow_dataset(tmp_path_factory) -> Path:
    """Six 3-view clips of 30 s: a few seconds of work for two workers."""
    root = tmp_path_factory.mktemp("slow")
    make_dataset(root, frames=300)
    records = json.loads((root / "train.json").read_text())
    (root / "03").mkdir()
    for n in range(3):
        record = {f"video_url_{k}": f"03/{n:02d}-View{k}-Part1.mp4" for k in (1, 2, 3)}
        for k in (1, 2, 3):
            shutil.copyfile(root / records[0][f"video_url_{k}"], root / record[f"video_url_{k}"])
        records.append({**record, "tricks": []})
    (root / "train.json").write_text(json.dumps(records))
    return root


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.slow  # ~30 s each on a loaded 2-core machine (each guard alone: test_a_worker_whose_parent_dies_exits)
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "Ctrl-C", "SIGKILL at start-up", "Ctrl-C at start-up"])
def test_workers_end_with_prepare(slow_dataset, tmp_path, how):
    """Kill `prepare` while its workers decode (or while they still import, for "at start-up").

    A worker that gets Ctrl-C while it still imports must not print a traceback: it starts with
    SIGINT blocked (a race CI once hit: one worker decoding, the other importing torch).
    `prepare` starts with SIGINT's default action, as a command in a terminal does: a suite run in
    the background of a non-interactive shell inherits SIGINT ignored, and Python then never
    raises KeyboardInterrupt.
    """
    cache = tmp_path / "c"
    process = subprocess.Popen(
        [sys.executable, "-m", "vicokd", "prepare", str(slow_dataset), "--out", str(cache), *PREPARE[:2],
         "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until both workers are decoding
            workers = {pid for pid in _descendants(process.pid) if b"spawn_main" in _cmdline(pid)}
            busy = [p for p in (cache / "clips").glob(".*") if p.is_dir()] if (cache / "clips").is_dir() else []
            if len(workers) == 2 and (busy or how.endswith("start-up")):
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        assert len(workers) == 2
        everything = _descendants(process.pid)
        if how.startswith("Ctrl-C"):
            os.killpg(process.pid, signal.SIGINT)  # what a terminal sends to the foreground group
        else:
            os.kill(process.pid, getattr(signal, how.split()[0]))
        process.wait(timeout=30)
        # a worker still importing (torch: seconds on a loaded machine) sees its parent gone when its
        # initializer runs; one that is decoding is killed by the kernel at once
        deadline = time.monotonic() + (60 if how.endswith("start-up") else 10)
        while _alive(everything) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(everything) == set(), f"left behind after {how}: {_alive(everything)}"
        if how.startswith("Ctrl-C"):
            _, err = process.communicate()
            assert process.returncode != 0 and b"Traceback" not in err, err
    finally:
        for pid in _alive(_descendants(process.pid) | workers):  # never leave strays behind, even on failure
            os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
        process.communicate()
    finished = {p.name for p in (cache / "clips").glob("[!.]*")}
    before = {name: snapshot(cache).get(f"clips/{name}/frames.npy") for name in finished}
    assert prepare(slow_dataset, cache, CONFIG, workers=1, progress=False)
    assert not [p for p in (cache / "clips").iterdir() if p.name.startswith(".")]  # unfinished folders removed
    assert {name: snapshot(cache).get(f"clips/{name}/frames.npy") for name in finished} == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("guard", ["prctl", "watch thread"])
def test_a_worker_whose_parent_dies_exits(tmp_path, guard):
    """Each guard alone: a process set up as a worker outlives its parent (a shell) by at most a second."""
    setup = ("workers.PARENT_CHECK_S = 1000" if guard == "prctl"  # the watch thread would come too late
             else "workers.PARENT_CHECK_S = 0.1; import types; workers.sys = types.SimpleNamespace(platform='other')")
    code = (f"import os, sys, time; from vicokd.data import workers; {setup}; "
            "workers.die_with_parent(os.getppid()); open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)")
    pid_file = tmp_path / "pid"
    shell = f'{sys.executable} -c "{code}" {pid_file} & while [ ! -s {pid_file} ]; do sleep 0.05; done'
    subprocess.run(["sh", "-c", shell], timeout=60, check=True)  # the shell exits: the worker is orphaned
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive({pid}) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _alive({pid})
    for stray in left:
        os.kill(stray, signal.SIGKILL)
    assert not left, f"the worker outlived its parent ({guard})"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_training_workers_end_when_the_grid_is_killed(tmp_path):
    """`vicokd demo` / `reproduce` train in a pool of workers (pipeline.grid.training_pool); SIGKILL of
    the parent leaves none of them behind (they used to live on, idle, holding the run lock)."""
    pid_file = tmp_path / "workers"
    code = ("import os, sys, time; from vicokd.pipeline.grid import training_pool; pool = training_pool(2); "
            "pids = [pool.submit(os.getpid).result() for _ in range(4)]; "
            "[pool.submit(time.sleep, 60) for _ in range(2)]; "
            "open(sys.argv[1], 'w').write(' '.join(map(str, set(pids)))); time.sleep(120)")
    process = subprocess.Popen([sys.executable, "-c", code, str(pid_file)], start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
            assert process.poll() is None
            time.sleep(0.1)
        workers = {int(pid) for pid in pid_file.read_text().split()}
        assert workers and _alive(workers) == workers
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = _alive(workers)
    finally:
        for pid in _alive(_descendants(process.pid)):
            os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
    for stray in left:
        os.kill(stray, signal.SIGKILL)
    assert not left, f"training workers outlived the grid: {left}"


def test_unfinished_folders_of_dead_processes_are_removed(tmp_path):
    clips = tmp_path / "clips"
    (clips / "01_00_Part1").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = clips / f".01_00_Part1.{int(dead.stdout)}.abc_12"
    live = clips / f".02_00_Part1.{os.getpid()}.xyz"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "frames.npy").write_bytes(b"partial")
    assert remove_stale_temps(tmp_path) == [stale]
    assert sorted(p.name for p in clips.iterdir()) == sorted(["01_00_Part1", live.name])


def test_run_in_workers_hands_back_values_and_errors_in_order_when_serial():
    from vicokd.data.workers import run_in_workers

    def inverse(x: float) -> float:
        return 1 / x

    outcomes = [(index, future.exception() or future.result())
                for index, future in run_in_workers(inverse, [(2.0,), (0.0,), (4.0,)], workers=1)]
    assert [index for index, _ in outcomes] == [0, 1, 2]
    assert outcomes[0][1] == 0.5 and isinstance(outcomes[1][1], ZeroDivisionError) and outcomes[2][1] == 0.25


def test_a_clip_with_fewer_views_is_refused_at_prepare_naming_its_record(tmp_path):
    """Clips of unequal V cannot share a batch: `prepare` says which record, before any decoding (issue 34)."""
    root = tmp_path / "home"
    splits = make_dataset(root, views=3)
    records = splits["train"]
    del records[1]["video_url_3"]
    (root / "train.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"train\.json\[1\] \(clip 02_00_Part1\): 2 views where 2 of the 3 "
                                        r"clips have 3: every clip of a dataset needs the same cameras"):
        prepare(root, tmp_path / "cache", DataConfig(image_size=(32, 32)), workers=1, progress=False)
    assert not (tmp_path / "cache").exists()
