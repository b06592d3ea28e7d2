"""Cached encoder features for frozen-encoder training (``vicokd prepare --features DIR``).

When the encoders are frozen, their per-frame outputs never change: they are computed once for
every grid frame of every view and training reads them instead of pixels and fbank chunks.

Layout of a feature directory::

    DIR/features.json            {"version", "cache" (the pixel cache it was made from),
                                  "model" (the encoder sections of the config), "widths",
                                  "source" (where the encoder weights came from)}
    DIR/encoders.safetensors     the encoder networks' weights (visual_encoder.net.*,
                                 audio_encoder.net.*), loaded into the model so that its
                                 checkpoints also work on raw video
    DIR/clips/<key>.visual.npy   float16 (V, L, W_v): visual network output per grid frame
    DIR/clips/<key>.audio.npy    float16 (V, L, W_a): audio network output (when computed)

Each clip file is written atomically; re-running skips clips already present.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vicokd.errors import DataError

FEATURES_VERSION = 1
FEATURES_FILE = "features.json"
ENCODERS_FILE = "encoders.safetensors"


def feature_path(directory: str | Path, key: str, modality: str) -> Path:
    return Path(directory) / "clips" / f"{key}.{modality}.npy"


def read_feature_index(directory: str | Path) -> dict[str, Any]:
    """``features.json`` of a feature directory; a missing or foreign one is a one-line error."""
    path = Path(directory) / FEATURES_FILE
    if not path.is_file():
        raise DataError(f"{directory}: no feature cache here (make it with "
                        f"`vicokd prepare DATA_ROOT --out CACHE --features {directory} --config X`)")
    index = json.loads(path.read_text())
    if index.get("version") != FEATURES_VERSION:
        raise DataError(f"{path}: feature cache version {index.get('version')!r}, expected {FEATURES_VERSION}")
    return index


def load_features(directory: str | Path, key: str, modality: str) -> np.ndarray:
    """Memory-mapped float16 features (V, L, W) of one clip and modality ("visual" or "audio")."""
    path = feature_path(directory, key, modality)
    if not path.is_file():
        raise DataError(f"{path}: no {modality} features for clip {key!r}; re-run `vicokd prepare --features`")
    return np.load(path, mmap_mode="r")
