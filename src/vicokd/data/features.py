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
    DIR/clips/<key>.inputs.json  the cache clip's input fingerprint the features were computed
                                 from (``ClipMeta.inputs``), written after the arrays

Training reads a clip's features whole, once per process (:func:`resident_features`): the
arrays stay in memory for every later epoch and run of the process (the demo's 300 clips are
~30 MB; the cache keeps at most :data:`RESIDENT_BYTES`), instead of a memory map per clip whose
opening costs more than reading it.

Each clip file is written atomically; re-running skips clips already present whose inputs are
unchanged. When ``prepare`` redoes a clip (its videos changed), its features are stale: a
re-run recomputes them, and a dataset reading them refuses with one line until then (a feature
directory of an older vicokd has no ``inputs.json`` and cannot be checked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vicokd.data.cache import CacheIndex, ClipMeta
from vicokd.errors import DataError
from vicokd.io import write_text
from vicokd.memo import FileMemo

FEATURES_VERSION = 1
RESIDENT_BYTES = 4 << 30  # feature arrays kept in memory per process (least recently used dropped beyond)
FEATURES_FILE = "features.json"
ENCODERS_FILE = "encoders.safetensors"


def feature_path(directory: str | Path, key: str, modality: str) -> Path:
    return Path(directory) / "clips" / f"{key}.{modality}.npy"


def _stamp_path(directory: str | Path, key: str) -> Path:
    return Path(directory) / "clips" / f"{key}.inputs.json"


def _stamp(meta: ClipMeta) -> str:
    return json.dumps(meta.inputs, sort_keys=True)


def write_feature_stamp(directory: str | Path, meta: ClipMeta) -> None:
    """Record which cache copy of clip `meta.key` the features were computed from (after the arrays)."""
    write_text(_stamp_path(directory, meta.key), _stamp(meta))


def features_are_current(directory: str | Path, meta: ClipMeta) -> bool:
    """Whether the clip's features exist and were computed from the cache copy `meta` describes."""
    path = _stamp_path(directory, meta.key)
    return path.is_file() and path.read_text() == _stamp(meta)


def check_feature_freshness(directory: str | Path, index: CacheIndex, keys: list[str]) -> None:
    """Refuse features computed from an older copy of a clip that ``prepare`` has since redone."""
    stale = [key for key in keys if _stamp_path(directory, key).is_file()
             and not features_are_current(directory, index.clips[key])]
    if stale:
        raise DataError(f"{directory}: the features of {len(stale)} clips (first {stale[0]!r}) were computed before "
                        f"`prepare` redid them from changed videos; recompute them with `vicokd prepare DATA_ROOT "
                        f"--out {index.root} --features {directory} --config X`")


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


def _read_resident(path: Path) -> np.ndarray:
    array = np.load(path)
    array.setflags(write=False)
    return array


_resident: FileMemo[np.ndarray] = FileMemo(RESIDENT_BYTES, size=lambda array: array.nbytes)


def resident_features(directory: str | Path, key: str, modality: str) -> np.ndarray:
    """The float16 features (V, L, W) of one clip, read whole once per process and then shared.

    Keyed by the file's identity (:class:`~vicokd.memo.FileMemo`), so a file rewritten by ``prepare
    --features`` (atomically: a new inode) is read again. Read-only, as every dataset and run of
    the process shares it; at most :data:`RESIDENT_BYTES` are kept, least recently used dropped first.
    """
    path = feature_path(directory, key, modality)
    try:
        return _resident.get(path, _read_resident)
    except FileNotFoundError:
        raise DataError(f"{path}: no {modality} features for clip {key!r}; re-run `vicokd prepare --features`"
                        ) from None
