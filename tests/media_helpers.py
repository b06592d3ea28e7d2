"""Make small MultiSensor-Home-layout datasets inside tests: real mp4 files with audio tracks.

Every source frame i of view k is one flat colour that encodes i and k, so a decoded frame can
be traced back to the source frame it came from.
"""

from __future__ import annotations

import json
from pathlib import Path

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
