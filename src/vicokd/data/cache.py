"""`vicokd prepare`: decode every clip once into a versioned on-disk cache.

Layout of a cache directory::

    CACHE/index.json                 {"version", "data" (grid/image/audio settings), "classes",
                                      "splits": {"train": [keys], "test": [keys], ...}}
    CACHE/clips/<key>/meta.json      identity, view files, L, per-view lengths, audio_present,
                                      segments
    CACHE/clips/<key>/frames.npy     uint8 (V, L, 3, H, W), grid frames of every view, channel-first
                                      (the model's layout: a sampled clip is one gather, no transpose)
    CACHE/clips/<key>/fbank.npy      float16 (V, L, R, M), normalised log-mel per grid frame
                                      (zeros for a view without audio; R real rows, no padding)

A clip directory appears by one rename of a finished temporary directory, so a clip is either
whole or absent: re-running `prepare` skips what exists and resumes the rest. Clips are decoded
in parallel processes; a bad clip is reported in one line and does not stop the others, and
every finished clip is kept.

Version 2 stores frames channel-first (version 1 stored (V, L, H, W, 3)); a cache of another
version is refused with a one-line error, and is prepared again into a new folder.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vicokd.config import DataConfig
from vicokd.data.annotations import Clip, available_splits, load_annotations
from vicokd.data.media import grid_fbank, probe_video, read_audio, read_grid_frames
from vicokd.data.split import write_json_atomic
from vicokd.errors import DataError

CACHE_VERSION = 2  # 2: frames (V, L, 3, H, W); 1: frames (V, L, H, W, 3)
INDEX_FILE = "index.json"
# Settings that change the cached arrays; a cache made with other values is refused.
_CACHE_KEYS = ("fps", "image_size", "sample_rate", "num_mel_bins", "frame_length_ms", "frame_shift_ms")


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


def read_clip_meta(cache_dir: str | Path, key: str) -> ClipMeta:
    path = clip_dir(cache_dir, key) / "meta.json"
    try:
        return ClipMeta(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise DataError(f"{path}: clip {key!r} is not in the cache; re-run `vicokd prepare`") from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise DataError(f"{path}: damaged clip metadata ({exc}); delete the folder and re-run prepare") from None


def _check_version(path: Path, index: dict[str, Any]) -> None:
    """A one-line :class:`DataError` when the ``index.json`` at `path` is not of :data:`CACHE_VERSION`."""
    if index.get("version") != CACHE_VERSION:
        raise DataError(f"{path}: cache version {index.get('version')!r}, this vicokd reads version {CACHE_VERSION} "
                        "(channel-first frames); re-run `vicokd prepare` with a new --out folder")


def read_index(cache_dir: str | Path) -> CacheIndex:
    """Open a prepared cache; a missing or foreign-version cache is a one-line error."""
    cache_dir = Path(cache_dir)
    path = cache_dir / INDEX_FILE
    if not path.is_file():
        raise DataError(f"{cache_dir}: no prepared cache here (run `vicokd prepare DATA_ROOT --out {cache_dir}`)")
    index = json.loads(path.read_text())
    _check_version(path, index)
    keys = sorted({k for split in index["splits"].values() for k in split})
    clips = {key: read_clip_meta(cache_dir, key) for key in keys}
    return CacheIndex(cache_dir, index["data"], index["classes"], index["splits"], clips)


def load_frames(cache_dir: str | Path, key: str) -> np.ndarray:
    """Memory-mapped uint8 frames (V, L, 3, H, W) of a cached clip, channel-first RGB.

    ``frames[:, indices]`` gathers sampled frames straight into the model's layout; readers that
    want images use :func:`load_images`.
    """
    path = clip_dir(cache_dir, key) / "frames.npy"
    frames = np.load(path, mmap_mode="r")
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise DataError(f"{path}: frames have shape {frames.shape}, expected (V, L, 3, H, W) of cache version "
                        f"{CACHE_VERSION}; re-run `vicokd prepare` with a new --out folder")
    return frames


def load_images(cache_dir: str | Path, key: str) -> np.ndarray:
    """The frames of :func:`load_frames` as images (V, L, H, W, 3): a view of the memory map, no copy."""
    return load_frames(cache_dir, key).transpose(0, 1, 3, 4, 2)


def load_fbank(cache_dir: str | Path, key: str) -> np.ndarray:
    """Memory-mapped float16 fbank chunks (V, L, R, M) of a cached clip."""
    return np.load(clip_dir(cache_dir, key) / "fbank.npy", mmap_mode="r")


def _check_segments(clip: Clip, length: int, fps: float) -> None:
    duration = length / fps
    for i, seg in enumerate(clip.segments):
        if seg.start >= duration:
            raise DataError(f"{clip.source}.tricks[{i}]: segment starts at {seg.start:g} s, after the end of "
                            f"the video ({duration:g} s on the {fps:g}-FPS grid)")


def decode_clip(clip: Clip, config: DataConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any], list[str]]:
    """Decode one clip: frames (V, L, 3, H, W) uint8, fbank (V, L, R, M) float16, meta, warnings."""
    warnings: list[str] = []
    infos = [probe_video(path) for path in clip.videos]
    view_lengths = [info.grid_length(config.fps) for info in infos]
    length = min(view_lengths)
    if length < 1:
        raise DataError(f"{clip.source}: a view has no frames ({clip.videos[view_lengths.index(length)]})")
    if len(set(view_lengths)) > 1:
        warnings.append(f"{clip.source}: views have different lengths {view_lengths} grid frames; "
                        f"using the shortest ({length})")
    _check_segments(clip, length, config.fps)
    frames = np.empty((len(clip.videos), length, 3, *config.image_size), dtype=np.uint8)
    for view, path in enumerate(clip.videos):  # (L, H, W, 3) decoded → (L, 3, H, W) stored
        frames[view] = read_grid_frames(path, config.image_size, config.fps, length=length).transpose(0, 3, 1, 2)
    fbanks, present = [], []
    for path, info in zip(clip.videos, infos):
        wave = read_audio(path, config.sample_rate) if info.has_audio else None
        if wave is not None:  # AAC decoders append up to 1023 padding samples: keep the video's duration
            wave = wave[: round(info.num_frames / info.fps * config.sample_rate)]
        if wave is None or wave.size == 0:
            fbanks.append(None)
            present.append(False)
            continue
        fbanks.append(grid_fbank(wave, length, config.sample_rate, config.num_mel_bins,
                                 config.frame_length_ms, config.frame_shift_ms))
        present.append(True)
    rows = min((f.shape[1] for f in fbanks if f is not None), default=0)
    if rows == 0:
        nominal = int(config.sample_rate / config.fps)
        window, shift = (int(config.sample_rate * ms / 1000) for ms in (config.frame_length_ms, config.frame_shift_ms))
        rows = max(1, 1 + (nominal - window) // shift)
        present = [False] * len(present)
    fbank = np.zeros((len(clip.videos), length, rows, config.num_mel_bins), dtype=np.float16)
    for view, values in enumerate(fbanks):
        if values is not None and present[view]:
            fbank[view] = values[:, :rows]
    meta = {
        "key": clip.key, "session": clip.session, "clip_id": clip.clip_id, "part": clip.part,
        "videos": [str(p) for p in clip.videos], "length": length, "view_lengths": view_lengths,
        "audio_present": present, "fbank_rows": rows,
        "segments": [seg.to_json() for seg in clip.segments],
    }
    return frames, fbank, meta, warnings


def _prepare_clip(clip: Clip, config: DataConfig, cache_dir: Path) -> list[str]:
    """Decode `clip` into ``clips/<key>`` atomically; returns its warnings."""
    frames, fbank, meta, warnings = decode_clip(clip, config)
    final = clip_dir(cache_dir, clip.key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{clip.key}."))
    try:
        np.save(tmp / "frames.npy", frames)
        np.save(tmp / "fbank.npy", fbank)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return warnings


def _check_existing(cache_dir: Path, settings: dict[str, Any]) -> None:
    path = cache_dir / INDEX_FILE
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    _check_version(path, old)
    if old.get("data") != settings:
        raise DataError(f"{path}: this cache was prepared with other settings ({old.get('data')}); "
                        "use another --out folder")


def _worker_init() -> None:
    torch.set_num_threads(1)


def _run_parallel(clips: list[Clip], config: DataConfig, cache_dir: Path, workers: int
                  ) -> Iterator[list[str] | DataError]:
    """Prepare clips (in `workers` spawned processes when > 1); yield warnings or the error of each."""
    if workers <= 1:
        for clip in clips:
            try:
                yield _prepare_clip(clip, config, cache_dir)
            except DataError as exc:
                yield exc
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
        futures = [pool.submit(_prepare_clip, clip, config, cache_dir) for clip in clips]
        for future in as_completed(futures):
            try:
                yield future.result()
            except DataError as exc:
                yield exc


def prepare(root: str | Path, cache_dir: str | Path, config: DataConfig, workers: int = 2,
            progress: bool = True) -> CacheIndex:
    """Decode every clip of every split under `root` into `cache_dir` (resumable).

    Prints a summary (clips, views, frames, seconds, bytes). Raises :class:`DataError` after
    the run when some clips failed; the finished ones stay in the cache.
    """
    root, cache_dir = Path(root), Path(cache_dir)
    started = time.perf_counter()
    splits = available_splits(root)
    if not splits:
        raise DataError(f"{root}: no annotation files (train.json/test.json or train_data.json/test_data.json)")
    clips_by_split: dict[str, list[Clip]] = {}
    classes: list[str] | None = list(config.classes) if config.classes is not None else None
    for split in splits:
        clips_by_split[split], classes = load_annotations(root, split, classes)
    settings = cache_settings(config)
    _check_existing(cache_dir, settings)
    cache_dir.mkdir(parents=True, exist_ok=True)
    unique = {clip.key: clip for clips in clips_by_split.values() for clip in clips}
    todo = [clip for key, clip in unique.items() if not (clip_dir(cache_dir, key) / "meta.json").is_file()]
    failures: list[str] = []
    bar = tqdm(total=len(unique), initial=len(unique) - len(todo), desc="prepare", unit="clip",
               disable=not progress, file=sys.stderr)
    for outcome in _run_parallel(todo, config, cache_dir, workers):
        if isinstance(outcome, DataError):
            failures.append(str(outcome))
            tqdm.write(f"error: {outcome}", file=sys.stderr)
        else:
            for line in outcome:
                tqdm.write(f"warning: {line}", file=sys.stderr)
        bar.update(1)
    bar.close()
    index = {
        "version": CACHE_VERSION, "data": settings, "classes": classes,
        "splits": {split: [c.key for c in clips] for split, clips in clips_by_split.items()},
    }
    if failures:
        raise DataError(f"{len(failures)} of {len(unique)} clips failed (the other clips are kept; "
                        f"fix and re-run to resume); first: {failures[0]}")
    write_json_atomic(cache_dir / INDEX_FILE, index)
    result = read_index(cache_dir)
    views = sum(meta.num_views for meta in result.clips.values())
    frames = sum(meta.num_views * meta.length for meta in result.clips.values())
    size = sum(f.stat().st_size for f in (cache_dir / "clips").rglob("*.npy"))
    if progress:
        print(f"prepared {len(result.clips)} clips ({len(todo)} new), {views} views, {frames} frames, "
              f"{time.perf_counter() - started:.1f} s, {size / 2**20:.1f} MiB in {cache_dir}")
    return result
