"""Detectors by name: ``mediapipe`` (default, offline), ``yolo`` (the paper's), ``groundtruth``.

Backends are imported only when asked for, so a missing optional package (mediapipe,
ultralytics) costs nothing until its detector is used, and then fails with one line saying what to
install. Other detectors can be added with :func:`register_detector`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from vicokd.config import DetectConfig
from vicokd.detect.base import PersonDetector
from vicokd.errors import ConfigError

DetectorFactory = Callable[[DetectConfig, "Path | None"], PersonDetector]
"""Builds a detector from the ``detect`` config section and the dataset root (or None)."""

_BUILTIN: dict[str, str] = {
    "mediapipe": "vicokd.detect.mediapipe_pose:MediaPipePoseDetector",
    "yolo": "vicokd.detect.yolo:YoloDetector",
    "groundtruth": "vicokd.detect.groundtruth:GroundTruthDetector",
}
_REGISTERED: dict[str, DetectorFactory] = {}


def register_detector(name: str, factory: DetectorFactory) -> None:
    """Make `factory` available as ``--detector name`` (replaces a previous registration)."""
    _REGISTERED[name] = factory


def available_detectors() -> list[str]:
    """Names accepted by :func:`create_detector`."""
    return sorted({*_BUILTIN, *_REGISTERED})


def check_detector(name: str) -> None:
    """`name` is a registered or built-in detector (``detect.detector``); one line listing them otherwise."""
    if name not in _REGISTERED and name not in _BUILTIN:
        raise ConfigError(f"detect.detector: unknown detector {name!r} (choose from "
                          f"{', '.join(available_detectors())})")


def create_detector(
    name: str | None = None, config: DetectConfig | None = None, data_root: str | Path | None = None
) -> PersonDetector:
    """Build detector `name` (default ``config.detector``) from the ``detect`` config section.

    `data_root` is the dataset root; only detectors that read files of the dataset need it
    (``groundtruth``).
    """
    config = config or DetectConfig()
    name = name or config.detector
    root = Path(data_root) if data_root is not None else None
    check_detector(name)
    if name in _REGISTERED:
        return _REGISTERED[name](config, root)
    module, _, cls = _BUILTIN[name].partition(":")
    backend = getattr(importlib.import_module(module), cls)
    return backend.from_config(config, root)
