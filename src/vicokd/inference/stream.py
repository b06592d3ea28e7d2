"""`vicokd stream`: a distilled student on live multi-view sources, frame by frame.

Each view is read by a :class:`~vicokd.inference.sources.GridReader` thread (anything PyAV opens,
its grid frames on the checkpoint's grid rule).

The :class:`StreamRunner` takes one grid tick j at a time:

1. it waits for frame j of every view, at most ``stall`` seconds; a view that delivers nothing in
   time is dropped from the windows with a warning, and rejoins (another warning) once its frames
   arrive again; a view whose source ends while another goes on is left out of the windows past
   its end with ``predict``'s warning (:func:`vicokd.inference.predict.view_end_warning`); a
   model trained on V views runs on fewer;
2. the new frames of the views go through the visual encoder in one batch (per-frame features,
   kept in a rolling window of the last T frames per view);
3. every ``stride`` ticks the rest of the model runs on the window (the views that have all its
   frames) and gives the calibrated probabilities of its frames; the frames not written yet are
   written as JSON lines, with ``start`` / ``end`` events of action segments (a class is active
   on a frame when p ≥ its threshold; ``end`` carries the segment's mean p as confidence).

When every source has ended, or on Ctrl-C, the frames left are written from a last window over
the newest T frames (or, for a stream shorter than T, the uniform sampling of ``predict``) and
open segments are ended. Segments follow predict's rule, ``min_gap`` and ``min_duration`` included
(events of a segment are written once they are certain: a start after ``min_duration``, an end
after ``min_gap``). With ``stride = T`` and a length that is a multiple of T, the windows,
probabilities and segments are those of ``vicokd predict --stride T`` with the same settings.

The runner takes a :class:`~vicokd.inference.student.LoadedStudent` and runs its ``parts`` (one
interface for PyTorch and ONNX): with ``vicokd stream --onnx DIR`` the two parts are the
``encoder.onnx`` and ``window.onnx`` of a ``vicokd export`` directory, run by onnxruntime, with its
``decisions.json``.

Output lines (JSON): ``{"type": "frame", "frame": j, "t": seconds, "views": [...], "probs": {...}}``,
``{"type": "start" | "end", "class", "frame", "t", "confidence"}``, and a first
``{"type": "settings", ...}`` line (classes, thresholds and their source, T, stride, fps).
"""

from __future__ import annotations

import json
import queue
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
import torch

from vicokd.data.sampling import sample_indices
from vicokd.errors import VicokdError
from vicokd.inference.decisions import DEFAULT_MIN_DURATION, DEFAULT_MIN_GAP, Decisions, SegmentEvent
from vicokd.inference.predict import view_count_warning, view_end_warning
from vicokd.inference.sources import POLL_S, SOURCE_ENDED
from vicokd.inference.student import LoadedStudent

__all__ = ["DEFAULT_STALL_S", "StreamRunner", "StreamSummary"]

DEFAULT_STALL_S = 2.0


@dataclass
class _View:
    reader: Any  # a GridReader or anything with .frames (queue), .start(), .error, .source
    features: deque = field(default_factory=deque)  # (grid index, features (W,)) of the last T frames
    waiting: dict[int, np.ndarray] = field(default_factory=dict)  # frames that came ahead of the tick
    active: bool = True
    ended: bool = False
    length: int = 0  # grid frames delivered so far (the last one's index + 1)
    end_told: bool = False  # its end before the other views was warned about (or it never opened)


@dataclass(frozen=True)
class StreamSummary:
    frames: int
    events: int
    seconds: float
    warnings: list[str]
    interrupted: bool

    def format(self) -> str:
        state = "stopped by Ctrl-C" if self.interrupted else "sources ended"
        return (f"stream: {self.frames} grid frames, {self.events} segment events, {self.seconds:.1f} s "
                f"({state}; {len(self.warnings)} warnings)")


class StreamRunner:
    """Run a `student` (its :attr:`~vicokd.inference.student.LoadedStudent.parts`: PyTorch or ONNX)
    on the grid frames of `readers` (one per view) and write JSON lines to `out`."""

    def __init__(self, student: LoadedStudent, readers: Sequence[Any],
                 out: TextIO, *, stride: int | None = None, threshold: float | None = None,
                 stall: float = DEFAULT_STALL_S, allow_missing: bool = False,
                 min_gap: float = DEFAULT_MIN_GAP, min_duration: float = DEFAULT_MIN_DURATION,
                 warn: Callable[[str], None] | None = None) -> None:
        meta = student.meta
        data = meta.config.data
        self.parts = student.parts
        self.fps, self.num_frames = data.fps, data.num_frames
        self.classes = list(meta.classes)
        self.stride = self.num_frames if stride is None else stride
        if not 1 <= self.stride <= self.num_frames:
            raise VicokdError(f"--stride {self.stride}: must be 1 to T = {self.num_frames} grid frames")
        if stall <= 0:
            raise VicokdError(f"--stall {stall}: must be > 0 seconds")
        self.decisions = Decisions.from_meta(meta, threshold, min_gap=min_gap, min_duration=min_duration)
        self._segments = self.decisions.tracker()
        self.views = [_View(reader) for reader in readers]
        self.out, self.stall, self.allow_missing = out, stall, allow_missing
        self.warnings: list[str] = []
        self._warn = warn or (lambda line: print(f"warning: {line}", file=sys.stderr))
        self._written = 0  # the next grid frame to write
        self._events = 0
        self._view_count_warning = view_count_warning(len(self.views), meta)

    # ----------------------------------------------------------------------------- output
    def _emit(self, item: dict[str, Any]) -> None:
        self.out.write(json.dumps(item) + "\n")
        self.out.flush()

    def _note(self, line: str) -> None:
        self.warnings.append(line)
        self._warn(line)

    def _write_frames(self, first: int, probs: np.ndarray, views: list[int]) -> None:
        """Frames ``first .. first + len(probs) − 1`` with their probabilities (C,) and the segment
        events they complete (:class:`vicokd.inference.decisions.SegmentTracker`, the rule `predict`
        cuts a whole clip with): a segment's ``start`` (its first frame and time) once it lasts
        ``min_duration`` s, its ``end`` (last active frame, mean p over the segment) once a frame
        lies more than ``min_gap`` s past its last active one; a segment that never lasted
        ``min_duration`` gives no events.
        """
        for offset, p in enumerate(probs):
            j = first + offset
            self._emit({"type": "frame", "frame": j, "t": round(j / self.fps, 6), "views": views,
                        "probs": {name: round(float(v), 6) for name, v in zip(self.classes, p)}})
            self._events_out(self._segments.push(j, p))
        self._written = first + len(probs)

    def _events_out(self, events: list[SegmentEvent]) -> None:
        for event in events:
            self._events += 1
            self._emit({"type": event.kind, "class": self.classes[event.class_index], "frame": event.frame,
                        "t": round(event.frame / self.fps, 6), "confidence": round(event.value, 6)})

    # ----------------------------------------------------------------------------- model
    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        """Per-frame encoder features (N, W) of uint8 images (N, H, W, 3)."""
        return self.parts.features(torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous())  # (N, 3, H, W) uint8

    def _window(self, frames: list[int]) -> tuple[np.ndarray, list[int]]:
        """Probabilities (len(frames), C) of a window of grid frames (repeats allowed), from the
        views that have all its frames, and those views (0-based)."""
        views = []
        stacks = []
        for v, view in enumerate(self.views):
            have = dict(view.features)
            if all(j in have for j in frames):
                views.append(v)
                stacks.append(torch.stack([have[j] for j in frames]))
        if not stacks:
            raise VicokdError("stream: no view has the frames of the window")
        logits = self.parts.frame_logits(torch.stack(stacks)[None])  # (1, V', T, W) → (T, C)
        return self.decisions.probabilities(logits).numpy(), views

    # ----------------------------------------------------------------------------- ticks
    def _frame_of(self, view: _View, j: int, deadline: float) -> np.ndarray | None:
        """Frame j of `view`, waiting until `deadline`; None when it has none (stalled or ended)."""
        if j in view.waiting:
            return view.waiting.pop(j)
        while not view.ended:
            try:
                item = view.reader.frames.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if item is SOURCE_ENDED:
                view.ended = True
                for line in getattr(view.reader, "notes", []):
                    self._note(f"view {self.views.index(view) + 1}: {line}")
                if view.reader.error:
                    self._note(f"view {self.views.index(view) + 1}: {view.reader.error}")
                return None
            index, frame = item
            if index == j:
                return frame
            if index > j:  # it skipped ahead (a dropped stretch): keep for later
                view.waiting[index] = frame
                return None
        return None

    def _tick(self, j: int) -> bool | None:
        """Read and encode frame j of every view: True when some view had it, None when none did
        yet (all stalled: try again), False when every source has ended."""
        deadline = time.monotonic() + self.stall
        arrived: list[tuple[_View, np.ndarray]] = []
        for v, view in enumerate(self.views):
            # a stalled view is only polled briefly: the others go on without it
            frame = self._frame_of(view, j, deadline if view.active else time.monotonic() + POLL_S)
            if frame is None:
                if view.active and not view.ended:
                    self._note(f"view {v + 1} stalled at {j / self.fps:.1f} s: left out of the windows")
                view.active = False
                continue
            if not view.active:
                self._note(f"view {v + 1} is back at {j / self.fps:.1f} s")
                view.active = True
            arrived.append((view, frame))
        if arrived:  # one encoder pass over the views' new frames
            for v, view in enumerate(self.views):
                if view.ended and not view.end_told:  # it ended while another view goes on
                    self._note(view_end_warning(v, view.length, self.fps))
                    view.end_told = True
            features = self._encode(np.stack([frame for _, frame in arrived]))
            for (view, _), feature in zip(arrived, features):
                view.features.append((j, feature))
                view.length = j + 1
                while view.features and view.features[0][0] <= j - self.num_frames:
                    view.features.popleft()
            return True
        return False if all(view.ended for view in self.views) else None

    def _finish(self, last: int) -> None:
        """Write the frames left up to `last` and end open segments."""
        if last >= self._written:
            length = last + 1
            if length >= self.num_frames:
                frames = list(range(length - self.num_frames, length))
                probs, views = self._window(frames)
                self._write_frames(self._written, probs[self._written - frames[0]:], views)
            else:  # shorter than a window: predict's uniform sampling, each frame the mean over its copies
                frames = [int(i) for i in sample_indices(length, self.num_frames, "uniform")]
                probs, views = self._window(frames)
                means = np.stack([probs[[k for k, f in enumerate(frames) if f == j]].mean(0) for j in range(length)])
                self._write_frames(self._written, means[self._written:], views)
        self._events_out(self._segments.close())

    def _check_opened(self) -> None:
        """A source that cannot be opened is an error, or with `allow_missing` a view left out (warning)."""
        for v, view in enumerate(self.views):
            opened = getattr(view.reader, "opened", None)
            if opened is None:  # a custom reader: judged by its frames
                continue
            opened.wait()
            if not view.reader.open_failed:
                continue
            if not self.allow_missing:
                raise VicokdError(f"stream: view {v + 1}: {view.reader.error}; the source cannot be opened "
                                  "(--allow-missing runs with the other views)")
            self._note(f"view {v + 1} cannot be opened, left out: {view.reader.error}")
            view.ended, view.active, view.end_told = True, False, True
            while view.reader.frames.get() is not SOURCE_ENDED:
                pass
        if all(view.ended for view in self.views):
            raise VicokdError("stream: no source can be opened")

    def run(self) -> StreamSummary:
        """Read until every source ends (or Ctrl-C); returns what was written."""
        started = time.perf_counter()
        self._emit({"type": "settings", "classes": self.classes, "fps": self.fps, "frames": self.num_frames,
                    "stride": self.stride, **self.decisions.settings(),
                    "sources": [str(view.reader.source) for view in self.views]})
        for view in self.views:
            view.reader.start()
        self._check_opened()
        for line in self._view_count_warning:  # once the sources are known to open, as predict warns
            self._note(line)
        j, interrupted = 0, False
        try:
            while (state := self._tick(j)) is not False:
                if state is None:  # every view stalled: wait on for frame j
                    continue
                if j + 1 >= self.num_frames and (j + 1 - self.num_frames) % self.stride == 0:
                    frames = list(range(j + 1 - self.num_frames, j + 1))
                    probs, views = self._window(frames)
                    self._write_frames(self._written, probs[self._written - frames[0]:], views)
                j += 1
        except KeyboardInterrupt:
            interrupted = True
        self._finish(j - 1)
        return StreamSummary(self._written, self._events, time.perf_counter() - started, self.warnings, interrupted)
