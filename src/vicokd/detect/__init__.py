"""Person detection: the per-view, per-grid-frame scores behind the view-consistency masks.

A detector (:class:`PersonDetector`) turns RGB frames ``(N, H, W, 3)`` uint8 into person scores
``(N,)`` in [0, 1] — the mean confidence of the person detections it keeps at its own threshold,
0 when none — and, for drawing, into boxes / keypoints / masks (:class:`Detection`). Backends, by
name (:func:`create_detector`): ``mediapipe`` (default, offline), ``yolo`` (YOLOv10, the paper's),
``groundtruth`` (the synthetic generator's visibility file).

:func:`detect_dataset` scores every grid frame of every view of every clip of a dataset into one
person-score file (:mod:`vicokd.data.person_scores`); :func:`look_image` / :func:`look_video` are
the quick looks of ``vicokd detect --image/--video``. Backends import their packages lazily.
"""

from vicokd.detect.base import Detection, DetectorError, PersonDetector, mean_confidence
from vicokd.detect.quicklook import QuickLook, draw_detections, look_image, look_video
from vicokd.detect.registry import available_detectors, check_detector, create_detector, register_detector
from vicokd.detect.run import DetectSummary, detect_dataset

__all__ = [
    "DetectSummary",
    "Detection",
    "DetectorError",
    "PersonDetector",
    "QuickLook",
    "available_detectors",
    "check_detector",
    "create_detector",
    "detect_dataset",
    "draw_detections",
    "look_image",
    "look_video",
    "mean_confidence",
    "register_detector",
]
