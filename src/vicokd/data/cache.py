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

A clip directory appears by one rename of a finished temporary directory, so a clip is either
whole or absent: re-running `prepare` skips what is current and resumes the rest. Clips are
decoded in parallel processes; a bad clip is reported in one line and does not stop the others,
and every finished clip is kept. Arrays are written to disk as they are decoded (one frame and
one 64-chunk fbank group in memory at a time), so a worker's memory does not grow with the
length of a clip.

Stale clips are redone. ``meta.json`` records the fingerprint of what the arrays were decoded
from (each view's path as the annotation writes it, its size and modification time in ns); a
clip whose fingerprint differs, or whose metadata has none (an older vicokd) or is damaged, is
decoded again and replaces the old one in two renames. A clip whose videos are unchanged but
whose annotation record changed (segments, position in the file, root) gets a new ``meta.json``
only. :func:`check_sources` (called by the dataset) refuses a cache whose annotation files or
videos changed after it was prepared, when they are still there to compare.

Workers end with `prepare` (:mod:`vicokd.data.workers`: the kernel's parent-death signal, a
watch thread, SIGINT blocked from birth); on Ctrl-C the parent stops them and removes their
unfinished folders (a killed run's are removed by the next run).

Version 2 stores frames channel-first (version 1 stored (V, L, H, W, 3)); a cache of another
version is refused with a one-line error, and is prepared again into a new folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vicokd.config import DataConfig
from vicokd.data.annotations import Clip, available_splits, check_view_counts, load_annotations, split_file
from vicokd.data.media import (
    VideoInfo,
    audio_for_video,
    fbank_rows,
    iter_grid_fbank,
    iter_grid_frames,
    probe_video,
)
from vicokd.data.workers import run_in_workers
from vicokd.errors import DataError
from vicokd.io import write_json_atomic
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


def _read_index_json(path: Path) -> dict[str, Any]:
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
    index = _read_index_json(path)
    keys = sorted({k for split in index["splits"].values() for k in split})
    clips = {key: read_clip_meta(cache_dir, key) for key in keys}
    return CacheIndex(cache_dir, index["data"], index["classes"], index["splits"], clips, index.get("sources", {}))


def load_frames(cache_dir: str | Path, key: str) -> np.ndarray:
    """Memory-mapped uint8 frames (V, L, 3, H, W) of a cached clip, channel-first RGB.

    ``frames[:, indices]`` gathers sampled frames straight into the model's layout; readers that
    want images use :func:`load_images`.
    """
    path = clip_dir(cache_dir, key) / "frames.npy"
    frames = _load_array(path)
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise DataError(f"{path}: frames have shape {frames.shape}, expected (V, L, 3, H, W) of cache version "
                        f"{CACHE_VERSION}; re-run `vicokd prepare` with a new --out folder")
    return frames


def load_images(cache_dir: str | Path, key: str) -> np.ndarray:
    """The frames of :func:`load_frames` as images (V, L, H, W, 3): a view of the memory map, no copy."""
    return load_frames(cache_dir, key).transpose(0, 1, 3, 4, 2)


def load_fbank(cache_dir: str | Path, key: str) -> np.ndarray:
    """Memory-mapped float16 fbank chunks (V, L, R, M) of a cached clip."""
    return _load_array(clip_dir(cache_dir, key) / "fbank.npy")


def _load_array(path: Path) -> np.ndarray:
    """``np.load(path, mmap_mode="r")``; a missing, truncated or garbled file is a one-line :class:`DataError`."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: damaged cache file ({getattr(exc, 'strerror', None) or exc}); re-run "
                        "`vicokd prepare` (it decodes damaged clips again)") from None


def video_fingerprint(clip: Clip) -> dict[str, Any]:
    """What the arrays of `clip` are decoded from: each view's path as written, size and mtime (ns).

    A view that cannot be read gets ``None`` (the decode reports why).
    """
    videos = []
    for url, path in zip(clip.urls or [str(v) for v in clip.videos], clip.videos):
        try:
            stat = Path(path).stat()
        except OSError:
            videos.append(None)
            continue
        videos.append({"url": url, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return {"videos": videos}


def _record_fields(clip: Clip) -> dict[str, Any]:
    """The fields of ``meta.json`` that come from the annotation record alone (no decoding)."""
    return {"videos": [str(p) for p in clip.videos], "segments": [seg.to_json() for seg in clip.segments],
            "source": clip.source}


def _check_segments(clip: Clip, view_lengths: list[int], fps: float) -> None:
    """A segment that starts after the clip's end (the shortest view) is an error naming its cause.

    When it starts before the end of a longer view, the short video is named, not the annotation.
    """
    length, longest = min(view_lengths), max(view_lengths)
    duration = length / fps
    for i, seg in enumerate(clip.segments):
        if seg.start < duration:
            continue
        if seg.start < longest / fps:
            short = view_lengths.index(length)
            lengths = ", ".join(f"{n / fps:g}" for n in view_lengths)
            raise DataError(f"{clip.videos[short]}: view {short + 1} of {clip.source} is {duration:g} s long, the "
                            f"other views up to {longest / fps:g} s (s per view: {lengths}); {clip.source}.tricks[{i}] "
                            f"starts at {seg.start:g} s, after the end of this view: check or replace this video")
        raise DataError(f"{clip.source}.tricks[{i}]: segment starts at {seg.start:g} s, after the end of "
                        f"the video ({duration:g} s on the {fps:g}-FPS grid)")


class _NpyWriter:
    """Write a C-order ``.npy`` file front to back, block by block: nothing is held in memory.

    Regular writes, not a memory map: pages of a written memory map count as resident memory
    of the process until the kernel writes them back and drops them.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: Any) -> None:
        self.path, self.dtype = path, np.dtype(dtype)
        self.expected = int(np.prod(shape)) * self.dtype.itemsize
        self.written = 0
        self.file = open(path, "wb")  # noqa: SIM115 (closed in close())
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self.file, header)

    def write(self, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, dtype=self.dtype)
        self.file.write(memoryview(data).cast("B"))
        self.written += data.nbytes

    def zeros(self, shape: tuple[int, ...]) -> None:
        row = np.zeros(shape[1:], dtype=self.dtype)
        for _ in range(shape[0]):
            self.write(row)

    def __enter__(self) -> _NpyWriter:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        self.file.close()
        if kind is None and self.written != self.expected:
            raise RuntimeError(f"{self.path}: wrote {self.written} bytes of {self.expected}")


def _audio_samples(info: VideoInfo, length: int, config: DataConfig) -> int:
    """Samples of audio that the first `length` grid frames of a view cover (its whole duration when shorter)."""
    return round(info.covered_seconds(length, config.fps, config.grid) * config.sample_rate)


def decode_clip(clip: Clip, config: DataConfig, out_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """Decode one clip into ``out_dir/frames.npy`` (V, L, 3, H, W) uint8 and ``fbank.npy`` (V, L, R, M) float16.

    The arrays are written as they are decoded. Returns the clip's ``meta.json`` content and its warnings.
    """
    warnings: list[str] = []
    inputs = video_fingerprint(clip)  # before decoding: a video replaced meanwhile is redone next time
    infos = [probe_video(path) for path in clip.videos]
    view_lengths = [info.grid_length(config.fps, config.grid) for info in infos]
    length = min(view_lengths)
    if length < 1:
        raise DataError(f"{clip.source}: a view has no frames ({clip.videos[view_lengths.index(length)]})")
    if len(set(view_lengths)) > 1:
        warnings.append(f"{clip.source}: views have different lengths {view_lengths} grid frames; "
                        f"using the shortest ({length})")
    _check_segments(clip, view_lengths, config.fps)
    views = len(clip.videos)
    with _NpyWriter(out_dir / "frames.npy", (views, length, 3, *config.image_size), np.uint8) as out:
        for path, info in zip(clip.videos, infos):  # (H, W, 3) decoded → (3, H, W) stored
            for image in iter_grid_frames(path, config.image_size, config.fps, length, rule=config.grid, info=info,
                                          warnings=warnings):
                out.write(image.transpose(2, 0, 1))
    samples = [_audio_samples(info, length, config) for info in infos]
    settings = (config.sample_rate, config.frame_length_ms, config.frame_shift_ms)
    rows = min((fbank_rows(n // length, *settings) for n, info in zip(samples, infos) if info.has_audio), default=0)
    audio = [info.has_audio and rows > 0 for info in infos]
    if rows < 1:
        rows = max(1, fbank_rows(int(config.sample_rate / config.fps), *settings))
    present = []
    shape = (length, rows, config.num_mel_bins)
    with _NpyWriter(out_dir / "fbank.npy", (views, *shape), np.float16) as out:
        for path, n, has_audio in zip(clip.videos, samples, audio):
            blocks = audio_for_video(path, n, config.sample_rate, warnings=warnings) if has_audio else iter(())
            first = next(blocks, None)
            if first is None:
                if has_audio:
                    warnings.append(f"{path}: the audio track has no samples; treated as a view without audio")
                out.zeros(shape)
                present.append(False)
                continue
            for group in iter_grid_fbank(itertools.chain([first], blocks), n, length, config.sample_rate,
                                         config.num_mel_bins, config.frame_length_ms, config.frame_shift_ms):
                out.write(group[:, :rows])
            present.append(True)
    meta = {
        "key": clip.key, "session": clip.session, "clip_id": clip.clip_id, "part": clip.part,
        "videos": [str(p) for p in clip.videos], "length": length, "view_lengths": view_lengths,
        "audio_present": present, "fbank_rows": rows,
        "segments": [seg.to_json() for seg in clip.segments], "source": clip.source, "inputs": inputs,
    }
    return meta, warnings


# temporary clip folders: ".<key>.<pid of the process writing it>.<random>"
_TEMP_DIR = re.compile(r"^\.(?P<key>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+$")


def _temp_dir(final: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.{os.getpid()}."))


def _prepare_clip(clip: Clip, config: DataConfig, cache_dir: Path) -> list[str]:
    """Decode `clip` into ``clips/<key>`` atomically (replacing a stale one); returns its warnings.

    A failed write (a full disk) is a :class:`DataError` naming the clip folder; nothing half
    written stays behind.
    """
    final = clip_dir(cache_dir, clip.key)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_dir(final)
    except OSError as exc:
        raise DataError(f"{final}: cannot write the cached clip ({exc.strerror or exc})") from None
    try:
        meta, warnings = decode_clip(clip, config, tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if final.exists():  # a stale clip: move it aside (rename onto an empty folder), then swap
            old = _temp_dir(final)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except OSError as exc:  # decode errors are DataError already; an OSError here is a write
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"{final}: cannot write the cached clip ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return warnings


def _alive(pid: int, since: float) -> bool:
    """Whether process `pid` runs and started before `since` (epoch seconds; later: the pid was reused).

    A zombie (ended, not yet reaped: killed workers of a killed parent in a container whose
    first process does not reap) counts as ended. Start times come from /proc where there is one.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return True
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return fields[0] != "Z" and started <= since + 1.0


def remove_stale_temps(cache_dir: str | Path) -> list[Path]:
    """Remove unfinished clip folders left by processes that are gone (a killed `prepare`); returns them."""
    removed = []
    clips = Path(cache_dir) / "clips"
    if not clips.is_dir():
        return removed
    for path in clips.iterdir():
        match = _TEMP_DIR.match(path.name)
        if match and path.is_dir() and not _alive(int(match["pid"]), path.stat().st_mtime):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _check_existing(cache_dir: Path, settings: dict[str, Any]) -> None:
    path = cache_dir / INDEX_FILE
    if not path.is_file():
        return
    old = _read_index_json(path)
    if old.get("data") is not None:  # caches from before data.grid were read with the interval rule
        old["data"] = {"grid": "interval", **old["data"]}
    if old.get("data") != settings:
        raise DataError(f"{path}: this cache was prepared with other settings ({old.get('data')}); "
                        "use another --out folder")


# ------------------------------------------------------------------------------ workers


def _run_parallel(clips: list[Clip], config: DataConfig, cache_dir: Path, workers: int
                  ) -> Iterator[list[str] | DataError]:
    """Prepare clips (in `workers` spawned processes when > 1); yield warnings or the error of each.

    When the caller stops (an exception, Ctrl-C, closing this generator), the workers are
    ended and their unfinished folders removed before the exception goes on.
    """
    results = run_in_workers(_prepare_clip, [(clip, config, cache_dir) for clip in clips], workers)
    try:
        for index, future in results:
            try:
                outcome: list[str] | DataError = future.result()
            except DataError as exc:
                outcome = exc
            except BrokenProcessPool:
                clip = clips[index]
                raise DataError(f"{clip.source}: a prepare worker died while decoding clip {clip.key!r} (out of "
                                "memory?); the finished clips are kept, re-run with fewer --workers to resume"
                                ) from None
            yield outcome
    except BaseException:
        results.close()  # the workers end before their folders go
        remove_stale_temps(cache_dir)
        raise


# ------------------------------------------------------------------------------ freshness


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sources(root: Path, splits: list[str]) -> dict[str, Any]:
    files = {split: split_file(root, split) for split in splits}
    return {"root": str(root.resolve()),
            "annotations": {split: {"file": path.name, "sha256": _sha256(path)} for split, path in files.items()}}


def _clip_state(cache_dir: Path, clip: Clip) -> tuple[str, str]:
    """("current" | "new" | "redo" | "relabel", why) for a clip of the annotations vs its cached copy."""
    path = clip_dir(cache_dir, clip.key) / "meta.json"
    if not path.is_file():
        return "new", ""
    try:
        meta = read_clip_meta(cache_dir, clip.key)
    except DataError:
        return "redo", "its meta.json is damaged"
    if meta.inputs is None:
        return "redo", "it has no input fingerprint (cached by an older vicokd)"
    try:
        expected = {"frames": (meta.num_views, meta.length, 3), "fbank": (meta.num_views, meta.length, meta.fbank_rows)}
        for name, shape in expected.items():  # the headers only: memory maps read no data here
            array = _load_array(clip_dir(cache_dir, clip.key) / f"{name}.npy")
            if array.shape[:3] != shape:
                return "redo", f"its {name}.npy has shape {array.shape}, not {shape}"
    except DataError:
        return "redo", f"its {name}.npy is damaged"
    current = video_fingerprint(clip)
    if meta.inputs != current:
        old = meta.inputs.get("videos", [])
        changed = [new["url"] if new else str(video) for video, new, before in
                   itertools.zip_longest(clip.videos, current["videos"], old) if new != before]
        return "redo", f"{', '.join(changed) or 'its video list'} changed since it was cached"
    if {key: getattr(meta, key) for key in ("videos", "segments", "source")} != _record_fields(clip):
        return "relabel", ""
    return "current", ""


def _relabel(cache_dir: Path, clip: Clip, config: DataConfig) -> None:
    """Write a new ``meta.json`` for a clip whose videos are unchanged but whose record changed."""
    meta = read_clip_meta(cache_dir, clip.key)
    _check_segments(clip, meta.view_lengths, config.fps)
    path = clip_dir(cache_dir, clip.key) / "meta.json"
    try:
        write_json_atomic(path, {**asdict(meta), **_record_fields(clip)})
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({exc.strerror or exc})") from None


def check_sources(index: CacheIndex) -> None:
    """Refuse a cache whose annotation files or videos changed after `prepare` (one-line :class:`DataError`).

    Only inputs that still exist are compared (a cache may be used without its dataset, e.g.
    copied to another machine); caches of older vicokd without a record of their sources pass.
    """
    sources = index.sources
    hint = (f"re-run `vicokd prepare {sources.get('root', 'DATA_ROOT')} --out {index.root}` "
            "(it redoes only what changed)")
    root = Path(sources["root"]) if "root" in sources else None
    for entry in sources.get("annotations", {}).values() if root is not None else ():
        path = root / entry["file"]
        if path.is_file() and _sha256(path) != entry["sha256"]:
            raise DataError(f"{path}: changed since the cache {index.root} was prepared; {hint}")
    for key, meta in index.clips.items():
        for video, before in zip(meta.videos, (meta.inputs or {}).get("videos", [])):
            try:
                stat = Path(video).stat()
            except OSError:
                continue
            if before is not None and (stat.st_size, stat.st_mtime_ns) != (before["size"], before["mtime_ns"]):
                raise DataError(f"{video}: changed since clip {key!r} was cached in {index.root}; {hint}")


def prepare(root: str | Path, cache_dir: str | Path, config: DataConfig, workers: int = 2,
            progress: bool = True) -> CacheIndex:
    """Decode every clip of every split under `root` into `cache_dir` (resumable).

    Clips already cached from the same inputs are kept; stale ones are redone or relabelled
    (module docstring). Prints a summary (clips, views, frames, seconds, bytes). Raises
    :class:`DataError` after the run when some clips failed; the finished ones stay in the cache.
    """
    root, cache_dir = Path(root), Path(cache_dir)
    started = time.perf_counter()
    splits = available_splits(root)
    if not splits:
        raise DataError(f"{root}: no annotation files (train.json/test.json or train_data.json/test_data.json)")
    clips_by_split: dict[str, list[Clip]] = {}
    classes: list[str] | None = list(config.classes) if config.classes is not None else None
    for split in splits:
        clips_by_split[split], classes = load_annotations(root, split, classes,
                                                          allow_outside_root=config.allow_outside_root)
    unique = {clip.key: clip for clips in clips_by_split.values() for clip in clips}
    check_view_counts(list(unique.values()))
    sources = _sources(root, splits)
    settings = cache_settings(config)
    _check_existing(cache_dir, settings)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{cache_dir}: cannot create the cache folder ({exc.strerror or exc})") from None
    remove_stale_temps(cache_dir)
    states = {key: _clip_state(cache_dir, clip) for key, clip in unique.items()}
    todo = [unique[key] for key, (state, _) in states.items() if state in ("new", "redo")]
    failures: list[str] = []
    for key, (state, why) in states.items():
        if state == "redo":
            print(f"note: {unique[key].source} (clip {key}): {why}; decoding it again", file=sys.stderr)
        elif state == "relabel":
            try:
                _relabel(cache_dir, unique[key], config)
            except DataError as exc:
                failures.append(str(exc))
                print(f"error: {exc}", file=sys.stderr)
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
        "sources": sources,
    }
    if failures:
        raise DataError(f"{len(failures)} of {len(unique)} clips failed (the other clips are kept; "
                        f"fix and re-run to resume); first: {failures[0]}")
    try:
        write_json_atomic(cache_dir / INDEX_FILE, index)
    except OSError as exc:
        raise DataError(f"{cache_dir / INDEX_FILE}: cannot write ({exc.strerror or exc}); the clips are kept, "
                        "re-run to finish") from None
    result = read_index(cache_dir)
    views = sum(meta.num_views for meta in result.clips.values())
    frames = sum(meta.num_views * meta.length for meta in result.clips.values())
    size = sum(f.stat().st_size for f in (cache_dir / "clips").rglob("*.npy"))
    counts = [(sum(state == name for state, _ in states.values()), label)
              for name, label in (("redo", "redone"), ("relabel", "relabelled"))]
    changed = "".join(f", {count} {label}" for count, label in counts if count)
    if progress:
        print(f"prepared {len(result.clips)} clips ({len(todo) - counts[0][0]} new{changed}), {views} views, "
              f"{frames} frames, {time.perf_counter() - started:.1f} s, {size / 2**20:.1f} MiB in {cache_dir}")
    return result
