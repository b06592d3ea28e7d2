"""Make small MultiSensor-Home-layout datasets inside tests: real mp4 files with audio tracks.

Every source frame i of view k is one flat colour that encodes i and k, so a decoded frame can
be traced back to the source frame it came from. :func:`write_timed` writes frames at given
presentation times (variable rates, resets), each a pattern of its index's bits.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vicokd.data.video_io import write_mp4

FPS = 10.0  # grid interval round(10 / 2.5) = 4
SIZE = (48, 64)  # (H, W)
SAMPLE_RATE = 16000


def frame_colour(index: int, view: int) -> np.ndarray:
    return np.array([(index * 5) % 250, 40 * view, 200 - (index * 3) % 150], dtype=np.uint8)


def make_video(path: Path, num_frames: int, view: int, *, audio: bool = True, tone_hz: float = 440.0,
               burst: tuple[float, float] | None = None) -> None:
    frames = np.empty((num_frames, *SIZE, 3), dtype=np.uint8)
    for i in range(num_frames):
        frames[i] = frame_colour(i, view)
    wave = None
    if audio:
        t = np.arange(int(num_frames / FPS * SAMPLE_RATE)) / SAMPLE_RATE
        wave = 0.05 * np.sin(2 * np.pi * tone_hz * t)
        if burst is not None:
            inside = (t >= burst[0]) & (t < burst[1])
            wave[inside] += 0.8 * np.sin(2 * np.pi * 1000 * t[inside])
        wave = wave.astype(np.float32)
    write_mp4(path, frames, FPS, wave, SAMPLE_RATE)


def record(session: str, clip: str, views: int, tricks: list) -> dict:
    rec = {f"video_url_{k}": f"{session}/{clip}-View{k}-Part1.mp4" for k in range(1, views + 1)}
    rec["tricks"] = tricks
    return rec


def make_dataset(root: Path, *, views: int = 3, frames: int = 40, layout: str = "home1") -> dict[str, list[dict]]:
    """Two train clips and one test clip; 4 s each at 10 fps (10 grid frames)."""
    splits = {
        "train": [record("01", "00", views, [{"start": 0.0, "end": 1.0, "labels": ["Sitdown"]},
                                              {"start": 2.0, "end": 3.0, "labels": ["UsePhone", "Drink"]}]),
                  record("02", "00", views, [{"start": 1.0, "end": 3.6, "labels": ["Enter"]}])],
        "test": [record("01", "05", views, [{"start": 0.4, "end": 2.0, "labels": ["Sitdown", "Enter"]}])],
    }
    for records in splits.values():
        for rec in records:
            for k in range(1, views + 1):
                make_video(root / rec[f"video_url_{k}"], frames, k, burst=(1.0, 1.4))
    names = {"home1": ("train.json", "test.json"), "home2": ("train_data.json", "test_data.json")}[layout]
    for name, split in zip(names, ("train", "test")):
        (root / name).write_text(json.dumps(splits[split]))
    return splits


def pattern(index: int) -> np.ndarray:
    """A (32, 32, 3) image of 4 × 4 black or white cells: the 16 bits of `index`."""
    bits = (index >> np.arange(16)) & 1
    cells = np.kron(bits.reshape(4, 4), np.ones((8, 8), np.int64)) * 255
    return np.repeat(cells[:, :, None], 3, axis=2).astype(np.uint8)


def source_index(image: np.ndarray) -> int:
    """The source frame a decoded image came from (inverse of :func:`pattern`, robust to H.264 noise)."""
    cells = image[..., 0].reshape(4, 8, 4, 8).mean(axis=(1, 3)) > 128
    return int((cells.reshape(-1) << np.arange(16)).sum())


def write_timed(path: Path, times: list[float], container_format: str = "mp4", rate: float = 25) -> Path:
    """H.264 file whose frame i (pattern(i)) has presentation time times[i] seconds (90 kHz clock)."""
    time_base = Fraction(1, 90000)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        stream.options = {"threads": "1"}
        for i, moment in enumerate(times):
            frame = av.VideoFrame.from_ndarray(pattern(i), format="rgb24")
            frame.pts, frame.time_base = round(moment / time_base), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
