"""The time grid (data.grid): grid frame j is the frame nearest to j / 2.5 s, at any frame rate.

Made files at 1, 6, 24, 25, 29.97 and 30 fps, a rate change inside a file and a timestamp reset;
every source frame shows a pattern of its index's bits, so a decoded grid frame names its source.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vicokd.config import DataConfig
from vicokd.data.cache import load_fbank
from vicokd.data.frame_grid import GridPicker, VideoClock, is_grid_multiple, timestamp_grid_length
from vicokd.data.media import iter_grid_frames, probe_video, read_grid_frames
from vicokd.data.prepare import prepare
from vicokd.data.video_io import write_mp4
from vicokd.errors import DataError

from media_helpers import source_index, write_timed

SIZE = (32, 32)  # the size of write_timed's patterns
GRID = 2.5


def constant_rate(path: Path, fps: float, seconds: float) -> tuple[Path, np.ndarray]:
    rate = Fraction(fps).limit_denominator(1001)
    count = math.ceil(seconds * rate)
    times = np.arange(count) / float(rate)
    return write_timed(path, list(times), rate=fps), times


def nearest(times: np.ndarray, target: float) -> int:
    """Index of the time nearest to `target`, the earlier on a tie (the rule, written directly)."""
    gaps = np.abs(times - target)
    return int(np.flatnonzero(gaps <= gaps.min() + 1e-9)[0])


# ------------------------------------------------------------------------------ the rule


def test_picker_hand_computed_cases() -> None:
    # frames at 0, 0.3, 0.5, 1.0 s: grid times 0, 0.4, 0.8 -> frames 0 (exact), 1 (0.3 vs 0.5: tie
    # at 0.1 each, the earlier), 2 (0.5 vs 1.0: 0.3 against 0.2 -> frame 3); end 1.0 + 0.5 = 1.5 s,
    # so grid frames at 1.2 (frame 3) and none at 1.6: 4 grid frames
    picker = GridPicker("timestamps", 25.0)
    given = []
    for i, moment in enumerate([0.0, 0.3, 0.5, 1.0]):
        given += picker.push(moment, i)
    given += picker.finish()
    assert given == [(0, 0), (1, 1), (2, 3), (3, 3)]
    # the interval rule counts frames: every round(10 / 2.5) = 4th, ceil(10 / 4) = 3 grid frames
    interval = GridPicker("interval", 10.0)
    given = [item for i in range(10) for item in interval.push(i / 10, i)] + interval.finish()
    assert given == [(0, 0), (1, 4), (2, 8)]
    assert interval.finish(5) == [(3, 9), (4, 9)]  # a longer clip repeats the last frame


def test_clock_continues_across_a_reset_and_sees_a_rate_change() -> None:
    clock = VideoClock(5.0)
    moments = [clock.time(t) for t in (10.0, 10.2, 10.4, 3.0, 3.04, None)]
    assert moments == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.64, 0.68])
    assert len(clock.resets) == 1 and clock.variable_rate and clock.end == pytest.approx(0.72)
    notes = clock.notes("cam.ts", "timestamps", 5.0)
    assert notes[0].startswith("cam.ts: 1 timestamp reset(s); the first at frame 3") and len(notes) == 2
    assert is_grid_multiple(25.0) and is_grid_multiple(30000 / 1001 * 1.001) and not is_grid_multiple(6.0)
    assert timestamp_grid_length(10.0) == 25 and timestamp_grid_length(10.01) == 26 and timestamp_grid_length(0) == 0


@pytest.mark.parametrize("fps", [1.0, 6.0, 24.0, 25.0, 29.97, 30.0])
def test_grid_frames_are_the_frames_nearest_to_their_time(tmp_path: Path, fps: float) -> None:
    seconds = 6.0
    path, times = constant_rate(tmp_path / f"v{fps:g}.mp4", fps, seconds)
    info = probe_video(path)
    end = len(times) / fps
    assert info.grid_length(GRID) == math.ceil(end * GRID - 1e-6)
    warnings: list[str] = []
    frames = read_grid_frames(path, SIZE, warnings=warnings)
    assert warnings == []
    picked = [source_index(image) for image in frames]
    assert picked == [nearest(times, j / GRID) for j in range(len(frames))]
    # every grid time is within half a source frame of its frame's time, and within the last frame's
    # duration after it: the reported time j / 2.5 is the video's clock to within one frame
    for j, i in enumerate(picked):
        assert abs(times[i] - j / GRID) <= (0.5 if j / GRID <= times[-1] else 1.0) / fps + 1e-6
    # the sequential iterator (prepare's path) and the seek path agree
    assert [source_index(x) for x in iter_grid_frames(path, SIZE)] == picked
    assert [source_index(x) for x in read_grid_frames(path, SIZE, indices=[3, 1])] == [picked[3], picked[1]]


@pytest.mark.parametrize("fps", [25.0, 30.0, 10.0])
def test_interval_rule_gives_the_same_frames_at_multiples_of_the_grid_rate(tmp_path: Path, fps: float) -> None:
    path, _ = constant_rate(tmp_path / "v.mp4", fps, 4.0)
    by_time = [source_index(x) for x in read_grid_frames(path, SIZE, rule="timestamps")]
    by_count = [source_index(x) for x in read_grid_frames(path, SIZE, rule="interval")]
    assert by_time == by_count == [j * round(fps / GRID) for j in range(len(by_time))]


def test_interval_rule_off_the_clock_is_a_warning(tmp_path: Path) -> None:
    path, _ = constant_rate(tmp_path / "v6.mp4", 6.0, 10.0)
    warnings: list[str] = []
    frames = read_grid_frames(path, SIZE, rule="interval", warnings=warnings)
    assert len(frames) == 30  # the reference rule: every 2nd frame, 12 s of grid for 10 s of video
    assert len(warnings) == 1 and "6 fps is not a multiple of 2.5" in warnings[0]
    assert "use data.grid=timestamps" in warnings[0] and "\n" not in warnings[0]
    assert len(read_grid_frames(path, SIZE)) == 25  # the time grid: 10 s


def test_a_rate_change_inside_a_file(tmp_path: Path) -> None:
    times = [i / 5 for i in range(30)] + [6 + i / 25 for i in range(150)]  # 6 s at 5 fps, then 6 s at 25 fps
    path = write_timed(tmp_path / "vfr.mp4", times)
    info = probe_video(path)
    assert info.grid_length(GRID) == 30 and info.end == pytest.approx(12.0)  # before: 28 s reported
    warnings: list[str] = []
    picked = [source_index(x) for x in read_grid_frames(path, SIZE, warnings=warnings)]
    assert picked == [nearest(np.array(times), j / GRID) for j in range(30)]
    assert warnings == [f"{path}: variable frame rate (5-25 fps); grid frames are chosen by timestamp"]
    interval: list[str] = []
    read_grid_frames(path, SIZE, rule="interval", warnings=interval)
    assert "its frame rate changes (5-25 fps)" in interval[-1]


def test_a_timestamp_reset_continues_the_clock(tmp_path: Path) -> None:
    first = write_timed(tmp_path / "a.ts", [i / 5 for i in range(30)], "mpegts")  # 6 s at 5 fps
    second = write_timed(tmp_path / "b.ts", [i / 25 for i in range(150)], "mpegts")  # 6 s at 25 fps, from 0 again
    joined = tmp_path / "reset.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    info = probe_video(joined)
    assert len(info.clock.resets) == 1 and info.grid_length(GRID) == 30
    warnings: list[str] = []
    frames = read_grid_frames(joined, SIZE, warnings=warnings)
    # the patterns restart with the second file: its frame k is at 6 + k / 25 s on the joined clock
    assert [source_index(x) for x in frames] == [2 * j for j in range(15)] + [10 * k for k in range(15)]
    assert any("1 timestamp reset(s); the first at frame 30" in line for line in warnings)


# ------------------------------------------------------------------------------ prepare


def six_fps_dataset(root: Path) -> None:
    """One test clip of two views, 10 s at 6 fps with audio; an action from 8 s to 9.6 s."""
    rng = np.random.default_rng(0)
    for k in (1, 2):
        path = root / "01" / f"00-View{k}-Part1.mp4"
        frames = np.stack([np.full((32, 32, 3), (i * 4) % 250, np.uint8) for i in range(60)])
        write_mp4(path, frames, 6.0, (0.05 * rng.standard_normal(160000)).astype(np.float32))
    record = {"video_url_1": "01/00-View1-Part1.mp4", "video_url_2": "01/00-View2-Part1.mp4",
              "tricks": [{"start": 8.0, "end": 9.6, "labels": ["Drink"]}]}
    for name in ("train.json", "test.json"):
        (root / name).write_text(json.dumps([record]))


def test_prepare_grids_a_6_fps_recording_on_its_own_clock(tmp_path: Path) -> None:
    six_fps_dataset(tmp_path / "data")
    index = prepare(tmp_path / "data", tmp_path / "cache", DataConfig(image_size=(32, 32)), workers=1, progress=False)
    (meta,) = index.clips.values()
    assert meta.length == 25  # 10 s; the interval rule made it 30 grid frames (12 s)
    assert index.data["grid"] == "timestamps"
    # the fbank chunks cover the 10 s: 0.4 s each (38 rows), none of them silence past the end
    fbank = load_fbank(tmp_path / "cache", meta.key)
    assert fbank.shape[:3] == (2, 25, 38) and float(np.abs(np.diff(fbank[0, -1].astype(np.float32), axis=0)).max()) > 0
    with pytest.raises(DataError, match="prepared with other settings"):  # another rule is another cache
        prepare(tmp_path / "data", tmp_path / "cache", DataConfig(image_size=(32, 32), grid="interval"),
                workers=1, progress=False)
