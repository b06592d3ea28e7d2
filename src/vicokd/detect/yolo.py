"""YOLOv10 through ultralytics: the paper's person detector (docs/reference/REFERENCE-CODE.md §Person detection).

``yolov10b.pt`` (COCO; class 0 = person) from a weights file on local disk, given as
``--weights`` / ``detect.weights``. Score of a frame = mean confidence of the person boxes kept at
the detector's default threshold (``conf`` 0.25), 0 when none.

Nothing is downloaded: the file must exist before ultralytics is even imported, and ultralytics
is imported with ``YOLO_OFFLINE`` / ``YOLO_AUTOINSTALL=false`` so that it neither phones home nor
pip-installs anything. ultralytics is an optional extra: ``pip install 'vicokd[yolo]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vicokd.config import DetectConfig
from vicokd.detect.base import Detection, DetectorError, PersonDetector, check_frames

PERSON = 0  # COCO class index of "person"
DEFAULT_CONFIDENCE = 0.25  # ultralytics' default `conf`
WEIGHTS_URL = "https://github.com/ultralytics/assets/releases/download/v8.2.0/yolov10b.pt"
WEIGHTS_HINT = f"download it once ({WEIGHTS_URL}) and pass --weights PATH or set detect.weights"


def _import_yolo() -> Any:
    """ultralytics.YOLO, imported offline; one line on what to install when it is missing."""
    os.environ.setdefault("YOLO_OFFLINE", "true")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise DetectorError(f"the yolo detector needs ultralytics: pip install 'vicokd[yolo]' ({exc})") from None
    return YOLO


class YoloDetector(PersonDetector):
    """ultralytics YOLO (v10 by default) restricted to COCO class 0.

    `weights` is a local ``.pt`` file; `confidence` the detection threshold (``conf``);
    `device` as ultralytics understands it ("cpu", "cuda:0", None = its choice); `image_size` the
    inference size (``imgsz``).
    """

    name = "yolo"

    def __init__(
        self,
        weights: str | Path | None,
        confidence: float = DEFAULT_CONFIDENCE,
        device: str | None = None,
        image_size: int = 640,
        batch_size: int = 32,
    ) -> None:
        super().__init__(batch_size)
        if weights is None:
            raise DetectorError(f"detect.weights: the yolo detector needs a weights file; {WEIGHTS_HINT}")
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DetectorError(f"{path}: YOLO weights file not found; {WEIGHTS_HINT}")
        if not 0.0 <= confidence <= 1.0:
            raise DetectorError(f"detect.confidence: must be in [0, 1], got {confidence}")
        self.weights = path
        self.confidence = confidence
        self.device = device
        self.image_size = image_size
        yolo = _import_yolo()
        try:
            self._model = yolo(str(path))
        except Exception as exc:  # ultralytics raises many types for a bad/foreign checkpoint
            raise DetectorError(f"{path}: cannot load as an ultralytics YOLO model ({exc})") from None

    @classmethod
    def from_config(cls, config: DetectConfig, data_root: Path | None = None) -> YoloDetector:
        confidence = DEFAULT_CONFIDENCE if config.confidence is None else config.confidence
        return cls(config.weights, confidence, config.device, config.yolo_image_size, config.batch_size)

    def detect(self, frames: np.ndarray) -> list[list[Detection]]:
        """Person boxes per frame (pixel ``xyxy`` of the input frame) with their confidences."""
        frames = check_frames(frames)
        # ultralytics reads numpy images as OpenCV does: HWC, BGR
        batch = [np.ascontiguousarray(frame[..., ::-1]) for frame in frames]
        results = self._model.predict(source=batch, conf=self.confidence, classes=[PERSON],
                                      imgsz=self.image_size, device=self.device, verbose=False)
        found: list[list[Detection]] = []
        for result in results:
            boxes = result.boxes
            xyxy = boxes.xyxy.cpu().numpy().reshape(-1, 4)
            conf = boxes.conf.cpu().numpy().reshape(-1)
            cls = boxes.cls.cpu().numpy().reshape(-1)
            found.append([Detection(tuple(float(v) for v in box), float(c))  # type: ignore[arg-type]
                          for box, c, k in zip(xyxy, conf, cls) if int(k) == PERSON])
        return found

    def describe(self) -> dict[str, object]:
        return {"detector": self.name, "weights": self.weights.name, "confidence": self.confidence,
                "image_size": self.image_size}
