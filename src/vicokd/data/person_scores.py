"""Per-view, per-grid-frame person scores: one compact, versioned file per dataset.

Format (``.npz``, no pickles): one float32 array (V, L) per clip, named by the clip key
(:attr:`vicokd.data.annotations.Clip.key`, the full identity session/id/part), plus a
``__meta__`` entry holding JSON ``{"version": 1, "detector": …, "threshold": …}``. Every grid
frame of every view has a score (not only one sampled set), so a sampled frame gets the score
of that exact grid frame, in training jitter and in evaluation alike.

Writes are atomic (temporary file, then rename); :func:`write_person_scores` merges with what is
already on disk so that a detector run can save as it goes and resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from vicokd.config import DataConfig
from vicokd.errors import DataError
from vicokd.io import atomic_path
from vicokd.memo import FileMemo

SCORES_VERSION = 1
SCORES_FILE = "person_scores.npz"
_META = "__meta__"


Scores = TypeVar("Scores", np.ndarray, torch.Tensor)


def person_mask(scores: Scores, threshold: float) -> Scores:
    """Where a person is seen: ``m = score > threshold`` (``data.person_threshold``), elementwise
    bool of the scores' shape (numpy or torch); the VC masks, the detector summaries and the reports."""
    return scores > threshold


def person_scores_path(data: DataConfig) -> Path:
    """The configured score file (``data.person_scores``), else ``<data.cache>/person_scores.npz``."""
    return Path(data.person_scores or Path(data.cache) / SCORES_FILE)


def _parse_person_scores(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(bytes(archive[_META]).decode()) if _META in archive.files else {}
            scores = {name: archive[name].astype(np.float32) for name in archive.files if name != _META}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable person-score file ({exc})") from None
    if meta.get("version") != SCORES_VERSION:
        raise DataError(f"{path}: person-score format version {meta.get('version')!r}, "
                        f"expected {SCORES_VERSION}; re-run `vicokd detect`")
    for array in scores.values():
        array.setflags(write=False)  # shared by every reader of the process
    return scores, meta


# every run of a grid reads the same score file: parsed once per process and file identity
_score_files: FileMemo[tuple[dict[str, np.ndarray], dict[str, Any]]] = FileMemo(8)


def read_person_scores(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Return ``(scores by clip key, meta)``; a missing or foreign file is a one-line error.

    The arrays are read-only (shared: :class:`~vicokd.memo.FileMemo`); the dicts are the caller's.
    """
    path = Path(path)
    try:
        scores, meta = _score_files.get(path, _parse_person_scores)
    except FileNotFoundError:
        raise DataError(f"{path}: person-score file not found (make it with `vicokd detect`)") from None
    return dict(scores), dict(meta)


def write_person_scores(path: str | Path, scores: dict[str, np.ndarray], **meta: Any) -> None:
    """Atomically write `scores` (clip key → (V, L)), merged over the entries already in `path`."""
    path = Path(path)
    merged: dict[str, np.ndarray] = {}
    old_meta: dict[str, Any] = {}
    if path.is_file():
        merged, old_meta = read_person_scores(path)
    merged.update({k: np.asarray(v, dtype=np.float32) for k, v in scores.items()})
    for key, value in merged.items():
        if value.ndim != 2:
            raise ValueError(f"scores of {key!r} must be (V, L), got shape {value.shape}")
    header = {**old_meta, **meta, "version": SCORES_VERSION}
    arrays = {**merged, _META: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
