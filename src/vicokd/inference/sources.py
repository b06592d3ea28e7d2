"""Live sources for `vicokd stream`: one reader thread per view, giving its grid frames.

Each view is read by a :class:`GridReader` thread: anything PyAV opens (a file, an RTSP/HTTP URL,
a capture device with ``input_format``, e.g. ``v4l2``), decoded front to back; with ``follow`` a
file still being written (MPEG-TS, Matroska, …) is read as it grows; grid frame j is the frame
nearest to j / ``data.fps`` seconds on the source's clock (``data.grid``, the rule of ``prepare``
and ``predict``: :mod:`vicokd.data.frame_grid`), resized to ``data.image_size`` exactly as they
do. ``realtime`` paces a file at its own clock. A source that cannot be opened at the start is
an error, unless ``allow_missing`` runs the other views (with a warning).
A reader puts ``(grid index, uint8 (H, W, 3) frame)`` items on its ``frames`` queue and
:data:`SOURCE_ENDED` last; any object with ``frames``, ``start()``, ``error`` and ``source`` can
stand in for one (tests and benchmarks feed frames from memory).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np

from vicokd.data.frame_grid import GridPicker, GridRule
from vicokd.data.media import frame_time as _frame_time
from vicokd.data.media import rgb_converter, video_stream
from vicokd.errors import DataError
from vicokd.models.checkpoint import CheckpointMeta

__all__ = ["POLL_S", "SOURCE_ENDED", "GridReader", "stream_sources"]

POLL_S = 0.05  # how often a reader polls a growing file, and how long a stalled view is waited for
SOURCE_ENDED = object()  # what a reader puts last in its `frames` queue (custom readers too)


class GridReader(threading.Thread):
    """Decode one source into ``(grid index, uint8 (H, W, 3) frame)`` items on :attr:`frames`.

    Grid frames are chosen by a :class:`~vicokd.data.frame_grid.GridPicker` under `rule`
    (``data.grid``); :attr:`opened` is set once the source is open (or failed to open:
    :attr:`error` then says why), :attr:`notes` holds the picker's timing notes when it ends.
    """

    def __init__(self, source: str, size: tuple[int, int], fps: float, realtime: bool = False,
                 input_format: str | None = None, follow: float = 0.0, rule: GridRule = "timestamps") -> None:
        super().__init__(name=f"vicokd-stream-{source}", daemon=True)
        self.source, self.size, self.fps, self.realtime, self.rule = source, size, fps, realtime, rule
        self.input_format = input_format  # FFmpeg's demuxer for a capture device, e.g. "v4l2"
        self.follow = follow  # > 0: a growing file, read until it has not grown for this many seconds
        self.frames: queue.Queue = queue.Queue(maxsize=256)
        self.error: str | None = None
        self.opened = threading.Event()
        self.open_failed = False
        self.notes: list[str] = []
        self._picker: GridPicker | None = None

    def _picker_for(self, rate: float) -> GridPicker:
        if self._picker is None:
            self._picker = GridPicker(self.rule, rate, self.fps, rgb_converter(self.size))
        return self._picker

    def _give(self, items: list[tuple[int, np.ndarray]]) -> None:
        for item in items:
            self.frames.put(item)

    def _decode(self, done: int) -> list[tuple[float | None, Any]]:
        """Decode the source as it is now. Followed files: return (time, frame) of frames n ≥ `done`;
        otherwise every grid frame is given as it is decided (paced by the video's clock with `realtime`)."""
        with av.open(self.source, format=self.input_format) as container:
            stream = video_stream(container, self.source)  # not a video (a still image): cannot be opened
            self.opened.set()
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise DataError(f"{self.source}: the video stream has no frame rate")
            picker = self._picker_for(float(rate))
            if self.follow:  # a growing file: decode what is there (the caller holds back its end)
                return [(_frame_time(f, stream), f) for n, f in enumerate(container.decode(stream)) if n >= done]
            started = time.monotonic()
            for frame in container.decode(stream):
                items = picker.push(_frame_time(frame, stream), frame)
                if self.realtime:  # a file played at its own rate
                    time.sleep(max(0.0, started + picker.clock.last - time.monotonic()))
                self._give(items)
        return []

    def _follow(self) -> None:
        """Read a file that is still being written: decode it again whenever it grows, from the first
        frame not yet given; its newest frame is held back (it may be cut) until the file grows
        again or has not grown for `follow` seconds."""
        done, held = 0, None
        while True:
            size = Path(self.source).stat().st_size
            new = self._decode(done)
            picker = self._picker
            for moment, frame in new[:-1]:
                self._give(picker.push(moment, frame))
                done += 1
            held = new[-1] if new else held
            idle_since = time.monotonic()
            while Path(self.source).stat().st_size == size:
                if time.monotonic() - idle_since > self.follow:
                    if held is not None:
                        self._give(picker.push(*held))
                    return
                time.sleep(POLL_S)

    def run(self) -> None:
        try:
            if self.follow:
                self._follow()
            else:
                self._decode(0)
            if self._picker is not None:
                self._give(self._picker.finish())
                self.notes = self._picker.clock.notes(self.source, self.rule, self._picker.nominal_fps, self.fps)
        except (OSError, av.error.FFmpegError, DataError, IndexError) as exc:
            self.open_failed = not self.opened.is_set()
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.error = text if text.startswith(f"{self.source}: ") else f"{self.source}: {text}"
        finally:
            self.opened.set()
            self.frames.put(SOURCE_ENDED)


def stream_sources(sources: Sequence[str | Path], meta: CheckpointMeta, realtime: bool = False,
                   input_format: str | None = None, follow: float = 0.0,
                   grid: GridRule | None = None) -> list[GridReader]:
    """One :class:`GridReader` per source, at the checkpoint's frame size, grid rate and grid rule
    (`grid` replaces the rule)."""
    data = meta.config.data
    return [GridReader(str(source), tuple(data.image_size), data.fps, realtime, input_format, follow,
                       grid or data.grid) for source in sources]
