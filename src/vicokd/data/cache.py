"""`vicokd prepare`: decode every clip once into a versioned on-disk cache.

Layout of a cache directory::

    CACHE/index.json                 {"version", "data" (grid/image/audio settings), "classes",
                                      "splits": {"train": [keys], "test": [keys], ...},
                                      "sources": {"root", "annotations": {split: {file, sha256}}}}
    CACHE/clips/<key>/meta.json      identity, view files, L, per-view lengths, audio_present,
                                      segments, source record, input fingerprint
    CACHE/clips/<key>/frames.npy     uint8 (V, L, 3, H, W), grid frames of every view, channel-first
                                      (the model's layout: a sampled clip is one gather, no transpose)
    CACHE/clips/<key>/fbank.npy      float16 (V, L, R, M), normalised log-mel per grid frame
                                      (zeros for a view without audio; R real rows, no padding)

Written by :func:`vicokd.data.prepare.prepare` (a clip's arrays: :mod:`vicokd.data.cache_writer`;
whether a cached clip is current: :mod:`vicokd.data.cache_freshness`; unfinished folders of
killed runs: :mod:`vicokd.data.cache_temps`). This module reads it.

Version 2 stores frames channel-first (version 1 stored (V, L, H, W, 3)); a cache of another
version is refused with a one-line error, and is prepared again into a new folder.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vicokd.config import DataConfig
from vicokd.errors import DataError
from vicokd.memo import FileMemo

CACHE_VERSION = 2  # 2: frames (V, L, 3, H, W); 1: frames (V, L, H, W, 3)
INDEX_FILE = "index.json"
# Settings that change the cached arrays; a cache made with other values is refused.
_CACHE_KEYS = ("fps", "grid", "image_size", "sample_rate", "num_mel_bins", "frame_length_ms", "frame_shift_ms")


@dataclass(frozen=True)
class ClipMeta:
    """What the cache knows about one clip (``meta.json``)."""

    key: str
    session: str
    clip_id: str
    part: int
    videos: list[str]
    length: int  # L, grid frames kept (minimum over views)
    view_lengths: list[int]
    audio_present: list[bool]
    fbank_rows: int
    segments: list[dict[str, Any]]
    source: str = ""  # the annotation record, "<file>[<index>]" (empty in caches of older vicokd)
    inputs: dict[str, Any] | None = None  # fingerprint of the decoded videos (:func:`video_fingerprint`)

    @property
    def num_views(self) -> int:
        return len(self.videos)


@dataclass(frozen=True)
class CacheIndex:
    """``index.json`` plus the metadata of every clip."""

    root: Path
    data: dict[str, Any]
    classes: list[str]
    splits: dict[str, list[str]]
    clips: dict[str, ClipMeta]
    sources: dict[str, Any] = dataclasses.field(default_factory=dict)  # root, annotation files and hashes

    @property
    def image_size(self) -> tuple[int, int]:
        height, width = self.data["image_size"]
        return int(height), int(width)

    @property
    def fps(self) -> float:
        return float(self.data["fps"])


def cache_settings(config: DataConfig) -> dict[str, Any]:
    values = asdict(config)
    return {key: list(values[key]) if isinstance(values[key], tuple) else values[key] for key in _CACHE_KEYS}


def clip_dir(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / "clips" / key


def _parse_clip_meta(path: Path) -> ClipMeta:
    return ClipMeta(**json.loads(path.read_text()))


# every run of a grid reads the index of its cache again: each clip's meta.json is parsed once
_clip_metas: FileMemo[ClipMeta] = FileMemo(1_000_000)


def read_clip_meta(cache_dir: str | Path, key: str) -> ClipMeta:
    """One clip's ``meta.json`` (parsed once per process and file identity: :class:`~vicokd.memo.FileMemo`)."""
    path = clip_dir(cache_dir, key) / "meta.json"
    try:
        return _clip_metas.get(path, _parse_clip_meta)
    except FileNotFoundError:
        raise DataError(f"{path}: clip {key!r} is not in the cache; re-run `vicokd prepare`") from None
    except (ValueError, TypeError) as exc:  # bad JSON, bad UTF-8, not an object of ClipMeta's fields
        raise DataError(f"{path}: damaged clip metadata ({exc}); re-run `vicokd prepare` (it decodes damaged "
                        "clips again)") from None


def _check_version(path: Path, index: dict[str, Any]) -> None:
    """A one-line :class:`DataError` when the ``index.json`` at `path` is not of :data:`CACHE_VERSION`."""
    if index.get("version") != CACHE_VERSION:
        raise DataError(f"{path}: cache version {index.get('version')!r}, this vicokd reads version {CACHE_VERSION} "
                        "(channel-first frames); re-run `vicokd prepare` with a new --out folder")


def read_index_json(path: Path) -> dict[str, Any]:
    """The content of ``index.json`` at `path`, of this cache version; damage is a one-line :class:`DataError`."""
    try:
        index = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: damaged cache index ({exc}); re-run `vicokd prepare` to write it again") from None
    if not isinstance(index, dict) or not isinstance(index.get("splits"), dict):
        raise DataError(f"{path}: damaged cache index (not an object with 'splits'); re-run `vicokd prepare`")
    _check_version(path, index)
    for key in ("data", "classes"):
        if key not in index:
            raise DataError(f"{path}: damaged cache index (no {key!r}); re-run `vicokd prepare`")
    return index


def read_index(cache_dir: str | Path) -> CacheIndex:
    """Open a prepared cache; a missing or foreign-version cache is a one-line error."""
    cache_dir = Path(cache_dir)
    path = cache_dir / INDEX_FILE
    if not path.is_file():
        raise DataError(f"{cache_dir}: no prepared cache here (run `vicokd prepare DATA_ROOT --out {cache_dir}`)")
    index = read_index_json(path)
    keys = sorted({k for split in index["splits"].values() for k in split})
    clips = {key: read_clip_meta(cache_dir, key) for key in keys}
    return CacheIndex(cache_dir, index["data"], index["classes"], index["splits"], clips, index.get("sources", {}))


def load_frames(cache_dir: str | Path, key: str) -> np.ndarray:
    """Memory-mapped uint8 frames (V, L, 3, H, W) of a cached clip, channel-first RGB.

    ``frames[:, indices]`` gathers sampled frames straight into the model's layout; readers that
    want images use :func:`load_images`.
    """
    path = clip_dir(cache_dir, key) / "frames.npy"
    frames = load_array(path)
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise DataError(f"{path}: frames have shape {frames.shape}, expected (V, L, 3, H, W) of cache version "
                        f"{CACHE_VERSION}; re-run `vicokd prepare` with a new --out folder")
    return frames


def load_images(cache_dir: str | Path, key: str) -> np.ndarray:
    """The frames of :func:`load_frames` as images (V, L, H, W, 3): a view of the memory map, no copy."""
    return load_frames(cache_dir, key).transpose(0, 1, 3, 4, 2)


def load_fbank(cache_dir: str | Path, key: str) -> np.ndarray:
    """Memory-mapped float16 fbank chunks (V, L, R, M) of a cached clip."""
    return load_array(clip_dir(cache_dir, key) / "fbank.npy")


def load_array(path: Path) -> np.ndarray:
    """``np.load(path, mmap_mode="r")``; a missing, truncated or garbled file is a one-line :class:`DataError`."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: damaged cache file ({getattr(exc, 'strerror', None) or exc}); re-run "
                        "`vicokd prepare` (it decodes damaged clips again)") from None
