"""Ground-truth visibility written by the synthetic generator: no pixels looked at.

``<DATA_ROOT>/visibility.npz`` is a person-score file (:mod:`vicokd.data.person_scores`): per
clip key a ``(V, L)`` array, 1 where the rendered person is visible in that view at that grid
frame, else 0. This backend copies it clip by clip, checking that every clip of the dataset is
there with exactly the clip's (V, L).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from vicokd.config import DetectConfig
from vicokd.data.person_scores import read_person_scores
from vicokd.detect.base import Detection, DetectorError, FrameLoader, PersonDetector
from vicokd.errors import DataError

VISIBILITY_FILE = "visibility.npz"


class GroundTruthDetector(PersonDetector):
    """Scores from a visibility file (clip key → (V, L) in {0, 1}); frames are never loaded."""

    name = "groundtruth"

    def __init__(self, path: str | Path, batch_size: int = 32) -> None:
        super().__init__(batch_size)
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no ground-truth visibility file (the synthetic generator writes it; "
                            "for real videos use --detector mediapipe or yolo)")
        self._scores, _ = read_person_scores(self.path)

    @classmethod
    def from_config(cls, config: DetectConfig, data_root: Path | None = None) -> GroundTruthDetector:
        if data_root is None:
            raise DetectorError(f"the groundtruth detector reads DATA_ROOT/{VISIBILITY_FILE}; "
                                "it needs a dataset root, not a single image or video")
        return cls(Path(data_root) / VISIBILITY_FILE, config.batch_size)

    def score_clip(
        self,
        key: str,
        frames: FrameLoader,
        num_views: int,
        length: int,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> np.ndarray:
        """The clip's ``(V, L)`` visibility as float32 (`frames` is never called)."""
        if key not in self._scores:
            raise DataError(f"{self.path}: no visibility for clip {key!r}")
        scores = self._scores[key]
        if scores.shape != (num_views, length):
            raise DataError(f"{self.path}: visibility of clip {key!r} has shape {scores.shape}, "
                            f"expected (V, L) = {(num_views, length)}")
        return scores.astype(np.float32)

    def detect(self, frames: np.ndarray) -> list[list[Detection]]:
        raise DetectorError(f"the groundtruth detector reads {self.path.name} per clip; it cannot look at "
                            "images (use --detector mediapipe or yolo)")

    def describe(self) -> dict[str, object]:
        return {"detector": self.name, "source": self.path.name}
