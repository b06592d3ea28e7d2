"""Decisions: how a student's logits become probabilities, per-class decisions and action segments.

One object, :class:`Decisions`, made from a checkpoint's sidecar entry (or an export's
``decisions.json``), is what `predict`, `stream`, `evaluate`, `export` and the transfer
diagnostics of a run decide with:

- probabilities ``p_c = σ(a_c·z_c + b_c)`` with the calibration chosen on validation, else
  ``σ(z_c)`` (:func:`vicokd.calibration.reported_probabilities`);
- frame j is active for class c when ``p[j, c] ≥ θ_c``: θ from ``--threshold`` (one for every
  class), else the calibrated per-class thresholds, else :data:`DEFAULT_THRESHOLD`;
- segments (:class:`SegmentTracker`, frame by frame, the same rule for a whole clip and a
  stream): a run of active frames opens a segment; an active frame at most ``min_gap`` s after
  the segment's last active frame extends it (with the frames between), a later one closes it
  and opens another; a segment counts once it lasts ``min_duration`` s (``end − start``; one
  frame lasts 0 s). Times are grid times, frame j at j / fps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from vicokd.calibration import DEFAULT_THRESHOLD, Calibration, reported_probabilities
from vicokd.errors import VicokdError
from vicokd.models.checkpoint import CheckpointMeta

__all__ = [
    "DEFAULT_MIN_DURATION",
    "DEFAULT_MIN_GAP",
    "DEFAULT_THRESHOLD",
    "ActionSegment",
    "Decisions",
    "SegmentEvent",
    "SegmentTracker",
    "check_segment_settings",
    "segments_from_probs",
]

DEFAULT_MIN_GAP = 0.8  # seconds: bridges one missed grid frame at 2.5 FPS
DEFAULT_MIN_DURATION = 0.4  # seconds: drops single-frame blips (duration 0), keeps two frames at 2.5 FPS
SEGMENT_TOLERANCE = 1e-9  # seconds, for comparing durations that are multiples of 1 / fps


@dataclass(frozen=True)
class ActionSegment:
    """One detected action: class `label` from grid time `start` to `end` (seconds, inclusive).

    `score` is the mean and `peak` the maximum probability of the class over the segment's grid
    frames (gap frames bridged by merging included).
    """

    label: str
    start: float
    end: float
    score: float
    peak: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "start": round(self.start, 6), "end": round(self.end, 6),
                "score": round(self.score, 6), "peak": round(self.peak, 6)}


def check_segment_settings(fps: float, threshold: float, min_gap: float, min_duration: float) -> None:
    """One line naming every setting when fps ≤ 0, θ outside [0, 1] or a negative duration."""
    if fps <= 0 or not 0.0 <= threshold <= 1.0 or min_gap < 0 or min_duration < 0:
        raise VicokdError(f"segments need fps > 0, threshold in [0, 1], min gap >= 0 and min duration >= 0 s; "
                          f"got fps={fps}, threshold={threshold}, min gap={min_gap}, min duration={min_duration}")


@dataclass(frozen=True)
class SegmentEvent:
    """A segment starting (it has lasted ``min_duration``: `frame` is its first frame, `value` the
    probability there) or ending (`frame` its last active frame, `value` its mean probability,
    `segment` the whole of it)."""

    kind: Literal["start", "end"]
    class_index: int
    frame: int
    value: float
    segment: ActionSegment | None = None


@dataclass
class _OpenSegment:
    """A class's segment that may still grow: first and last active frame, and the probability
    of every frame since its first (gaps included)."""

    first: int
    last: int
    values: list[float] = field(default_factory=list)
    started: bool = False  # it has lasted min_duration (its start event was given)


class SegmentTracker:
    """The segment rule of the module docstring, one grid frame at a time.

    ``push(j, p)`` takes frame j's probabilities (C,) (frames in order) and returns the events
    it completes; ``close()`` ends every open segment (the end of a clip or stream).
    """

    def __init__(self, classes: Sequence[str], thresholds: np.ndarray, fps: float,
                 min_gap: float = DEFAULT_MIN_GAP, min_duration: float = DEFAULT_MIN_DURATION) -> None:
        self.classes = list(classes)
        self.thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(self.classes),))
        for value in self.thresholds:
            check_segment_settings(fps, float(value), min_gap, min_duration)
        self.fps, self.min_gap, self.min_duration = fps, min_gap, min_duration
        self._open: dict[int, _OpenSegment] = {}

    def _beyond_gap(self, frame: int, segment: _OpenSegment) -> bool:
        return (frame - segment.last) / self.fps > self.min_gap + SEGMENT_TOLERANCE

    def push(self, frame: int, probs: np.ndarray) -> list[SegmentEvent]:
        events: list[SegmentEvent] = []
        for c in range(len(self.classes)):
            value = float(probs[c])
            segment = self._open.get(c)
            active = value >= self.thresholds[c]
            # an active frame right after the last one continues its run; any other frame more than
            # min_gap past the last active one closes the segment (no later frame can merge into it)
            if segment is not None and (not active or frame > segment.last + 1) and self._beyond_gap(frame, segment):
                events += self._end(c)
                segment = None
            if active:
                if segment is None:
                    segment = self._open[c] = _OpenSegment(frame, frame)
                segment.values.append(value)
                segment.last = frame
                if not segment.started and (frame - segment.first) / self.fps >= self.min_duration - SEGMENT_TOLERANCE:
                    segment.started = True
                    events.append(SegmentEvent("start", c, segment.first, segment.values[0]))
            elif segment is not None:
                segment.values.append(value)
        return events

    def close(self) -> list[SegmentEvent]:
        return [event for c in list(self._open) for event in self._end(c)]  # in the order they opened

    def _end(self, c: int) -> list[SegmentEvent]:
        segment = self._open.pop(c)
        if not segment.started:
            return []
        values = np.asarray(segment.values[: segment.last - segment.first + 1], dtype=np.float64)
        whole = ActionSegment(self.classes[c], segment.first / self.fps, segment.last / self.fps,
                              float(values.mean()), float(values.max()))
        return [SegmentEvent("end", c, segment.last, whole.score, whole)]


def segments_from_probs(
    probs: np.ndarray,
    classes: Sequence[str],
    fps: float = 2.5,
    threshold: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD,
    min_gap: float = DEFAULT_MIN_GAP,
    min_duration: float = DEFAULT_MIN_DURATION,
) -> list[ActionSegment]:
    """Action segments of frame probabilities (L, C) on the grid (:class:`SegmentTracker` over
    every frame; one threshold for every class, or one per class). Sorted by start, then class order."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise VicokdError(f"probabilities of shape {probs.shape} do not match (L, C) with C = {len(classes)} classes")
    tracker = SegmentTracker(classes, np.asarray(threshold, dtype=np.float64), fps, min_gap, min_duration)
    events = [event for j, row in enumerate(probs) for event in tracker.push(j, row)] + tracker.close()
    ends = sorted((e.segment.start, e.class_index, e.segment) for e in events if e.segment is not None)
    return [segment for _, _, segment in ends]


@dataclass(frozen=True)
class Decisions:
    """Probabilities, thresholds and segment rules of one model (module docstring).

    classes: the C class names; calibration: the per-class scaling chosen on validation, or
    None; thresholds: θ (C,); threshold_source: where θ came from.
    """

    classes: tuple[str, ...]
    calibration: Calibration | None
    thresholds: np.ndarray
    threshold_source: str
    fps: float
    min_gap: float = DEFAULT_MIN_GAP
    min_duration: float = DEFAULT_MIN_DURATION

    @classmethod
    def from_meta(cls, meta: CheckpointMeta, threshold: float | None = None, *, min_gap: float = DEFAULT_MIN_GAP,
                  min_duration: float = DEFAULT_MIN_DURATION) -> Decisions:
        """From a checkpoint's meta (its classes, calibration and ``data.fps``); `threshold`
        (``--threshold``, in [0, 1]) replaces every class's θ."""
        calibration = Calibration.from_json(dict(meta.calibration)) if meta.calibration else None
        return cls.of(meta.classes, calibration, float(meta.config.data.fps), threshold,
                      min_gap=min_gap, min_duration=min_duration)

    @classmethod
    def of(cls, classes: Sequence[str], calibration: Calibration | None, fps: float, threshold: float | None = None,
           *, min_gap: float = DEFAULT_MIN_GAP, min_duration: float = DEFAULT_MIN_DURATION) -> Decisions:
        """From the class names, a calibration (or None) and the grid's fps."""
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise VicokdError(f"--threshold {threshold:g}: a probability threshold in [0, 1]")
        classes = tuple(classes)
        if threshold is not None:
            thresholds, source = np.full(len(classes), float(threshold)), "--threshold"
        elif calibration is not None:
            thresholds, source = calibration.threshold_array(list(classes)), "calibrated on validation"
        else:
            thresholds, source = np.full(len(classes), DEFAULT_THRESHOLD), "default"
        for value in thresholds:
            check_segment_settings(fps, float(value), min_gap, min_duration)
        return cls(classes, calibration, thresholds, source, fps, min_gap, min_duration)

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Reported probabilities of logits (..., C)."""
        return reported_probabilities(logits.float(), self.calibration, list(self.classes))

    def active(self, probs: np.ndarray) -> np.ndarray:
        """``probs ≥ θ`` per class: bool of the shape of `probs` (..., C)."""
        return np.asarray(probs) >= self.thresholds

    def tracker(self) -> SegmentTracker:
        return SegmentTracker(self.classes, self.thresholds, self.fps, self.min_gap, self.min_duration)

    def segments(self, frame_probs: np.ndarray) -> list[ActionSegment]:
        """Segments of frame probabilities (L, C)."""
        return segments_from_probs(frame_probs, self.classes, self.fps, self.thresholds, self.min_gap,
                                   self.min_duration)

    def settings(self) -> dict[str, Any]:
        """As JSON: per-class thresholds, their source, whether calibrated, the merge rules."""
        return {"thresholds": dict(zip(self.classes, map(float, self.thresholds))),
                "threshold_source": self.threshold_source, "calibrated": self.calibrated,
                "min_gap": self.min_gap, "min_duration": self.min_duration}
