"""The person-detector interface shared by every backend.

A detector looks at RGB frames and answers two questions:

* :meth:`PersonDetector.detect` — where are the people? One list of :class:`Detection` per frame
  (boxes, confidences and, where the backend has them, keypoints and a person mask), for drawing.
* :meth:`PersonDetector.score_frames` — how sure is it that a person is in each frame? One float
  in ``[0, 1]`` per frame. The rule for every pixel backend (docs/reference/REFERENCE-CODE.md §Person
  detection): **the mean confidence of the person detections the detector keeps at its own
  detection threshold, 0 when it keeps none**. The view-consistency mask is later
  ``score > threshold`` (``data.person_threshold``).

Frames are ``np.ndarray`` of shape ``(N, H, W, 3)``, dtype ``uint8``, RGB.

:meth:`PersonDetector.score_clip` scores a whole cached clip, ``(V, L, H, W, 3) → (V, L)``; the
default batches its frames through :meth:`score_frames`. Backends that do not look at pixels
(``groundtruth``) override it and never load the frames.
"""

from __future__ import annotations

import abc
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from vicokd.errors import VicokdError

FrameLoader = Callable[[], np.ndarray]
"""Returns a clip's frames ``(V, L, H, W, 3)`` uint8 RGB when called (lazily: may decode)."""


class DetectorError(VicokdError):
    """A detector cannot run: missing package, missing weights file, unusable input."""


@dataclass(frozen=True)
class Detection:
    """One person found in one frame (pixel coordinates of that frame).

    `box` is ``(x0, y0, x1, y1)``; `confidence` the detector's score in ``[0, 1]``; `keypoints`
    ``(K, 3)`` float32 rows ``(x, y, visibility)`` or None; `edges` pairs of keypoint indices to
    join when drawing; `mask` ``(H, W)`` float32 person probability or None.
    """

    box: tuple[float, float, float, float]
    confidence: float
    keypoints: np.ndarray | None = field(default=None, repr=False, compare=False)
    edges: tuple[tuple[int, int], ...] = field(default=(), repr=False, compare=False)
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)


def mean_confidence(detections: Sequence[Detection]) -> float:
    """The per-frame person score: mean confidence of `detections`, 0.0 when there are none."""
    if not detections:
        return 0.0
    return float(np.mean([d.confidence for d in detections]))


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Validate a batch of frames: ``(N, H, W, 3)`` uint8 (a single ``(H, W, 3)`` image is promoted)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise DetectorError(f"frames must be (N, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    return frames


class PersonDetector(abc.ABC):
    """A person detector. Subclasses set `name` and implement :meth:`detect`.

    `batch_size` bounds how many frames one backend call receives (memory and progress
    granularity); `describe()` is what the score file records about the detector.
    """

    name: str = "detector"

    def __init__(self, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise DetectorError(f"detect.batch_size: must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    @abc.abstractmethod
    def detect(self, frames: np.ndarray) -> list[list[Detection]]:
        """People in each frame of ``(N, H, W, 3)`` uint8 RGB: a list of N lists of detections."""

    def score_frames(self, frames: np.ndarray) -> np.ndarray:
        """Person score per frame, ``(N,)`` float32 in ``[0, 1]``: mean kept confidence, 0 if none."""
        frames = check_frames(frames)
        scores = [mean_confidence(found) for found in self.detect(frames)]
        return np.asarray(scores, dtype=np.float32).reshape(len(frames))

    def score_clip(
        self,
        key: str,
        frames: FrameLoader,
        num_views: int,
        length: int,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> np.ndarray:
        """Scores ``(V, L)`` float32 of every grid frame of every view of clip `key`.

        `frames()` returns ``(V, L, H, W, 3)`` (may be memory-mapped); frames go through
        :meth:`score_frames` in batches of `batch_size` (across views, so short views still fill
        a batch), each batch passed through `transform` first when given (e.g. a resize).
        """
        video = frames()
        if video.shape[:2] != (num_views, length):
            raise DetectorError(f"clip {key}: frames have (V, L) = {video.shape[:2]}, "
                                f"expected {(num_views, length)}")
        flat = video.reshape(num_views * length, *video.shape[2:])
        parts = [np.zeros(0, np.float32)]
        for start in range(0, len(flat), self.batch_size):
            batch = np.ascontiguousarray(flat[start : start + self.batch_size])
            parts.append(self.score_frames(transform(batch) if transform is not None else batch))
        return np.concatenate(parts).reshape(num_views, length).astype(np.float32)

    def describe(self) -> dict[str, object]:
        """Settings recorded in the score file's metadata (name plus backend options)."""
        return {"detector": self.name}

    def close(self) -> None:
        """Release native resources (graphs, models). Safe to call twice."""
        return None

    def __enter__(self) -> PersonDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what native libraries write to file descriptor 2 inside the block.

    MediaPipe/TFLite print INFO/WARNING lines from C++ threads straight to fd 2 (no Python
    logger to turn down). The text is kept in a temporary file and replayed if the block raises,
    so real errors stay visible.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured): nothing to do
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)
