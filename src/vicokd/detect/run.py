"""`vicokd detect DATA_ROOT`: a person score for every grid frame of every view of every clip.

Clips are those of every split file under DATA_ROOT (train/val/test), keyed by
:attr:`vicokd.data.annotations.Clip.key`. Frames come from the prepared cache (``vicokd
prepare``) when there is one, else they are decoded from the videos on the same 2.5-FPS grid.
Scores go to one person-score file (:mod:`vicokd.data.person_scores`): clip key → float32
``(V, L)``, L the clip's grid length, so the dataset indexes it with the sampled grid indices.

The run is resumable: the file is rewritten atomically every ``detect.save_every`` clips (and on
interrupt), and a re-run skips the clips already there with the right (V, L). A file made by a
different detector or with other detector settings is never mixed into: it is an error unless
``overwrite`` is set.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from vicokd.config import Config
from vicokd.data.annotations import Clip, available_splits, read_clips, split_file
from vicokd.data.frame_grid import GridRule
from vicokd.data.person_scores import SCORES_FILE, person_mask, read_person_scores, write_person_scores
from vicokd.detect.base import FrameLoader, PersonDetector
from vicokd.detect.registry import create_detector
from vicokd.errors import DataError, VicokdError


@dataclass
class DetectSummary:
    """What a run did, and the share of frames with a person (score > threshold) per view."""

    out: Path
    detector: str
    threshold: float
    source: str  # "cache <dir>" or "videos"
    clips: int = 0
    computed: int = 0  # clips scored in this run (the others were already in the file)
    frames_scored: int = 0
    seconds: float = 0.0
    view_frames: list[int] = field(default_factory=list)  # per view position: grid frames
    view_person: list[int] = field(default_factory=list)  # per view position: frames with score > threshold

    @property
    def frames_per_second(self) -> float:
        return self.frames_scored / self.seconds if self.seconds > 0 else 0.0

    def add(self, scores: np.ndarray) -> None:
        """Count one clip's (V, L) scores into the per-view shares."""
        for view, row in enumerate(scores):
            while len(self.view_frames) <= view:
                self.view_frames.append(0)
                self.view_person.append(0)
            self.view_frames[view] += row.size
            self.view_person[view] += int(person_mask(row, self.threshold).sum())

    def format(self) -> str:
        lines = [f"person scores of {self.clips} clips ({self.computed} scored now, "
                 f"{self.clips - self.computed} already done) with {self.detector} from {self.source} → {self.out}"]
        if self.frames_scored:
            lines.append(f"{self.frames_scored} frames in {self.seconds:.1f} s "
                         f"({self.frames_per_second:.1f} frames/s)")
        for view, (total, person) in enumerate(zip(self.view_frames, self.view_person), start=1):
            share = 100.0 * person / total if total else 0.0
            lines.append(f"  view {view}: person in {share:5.1f} % of {total} frames (score > {self.threshold:g})")
        return "\n".join(lines)


# ------------------------------------------------------------------------------ frame sources


class _CacheFrames:
    """Frames of a prepared cache (memory-mapped); `transform` resizes them back to the source aspect."""

    def __init__(self, cache_dir: Path, clips: list[Clip], aspect: float | None, strict: bool) -> None:
        from vicokd.data.cache import read_index

        self.cache_dir = cache_dir
        self.transform = None if aspect is None else partial(restore_aspect, aspect=aspect)
        self.index = read_index(cache_dir)
        for clip in clips:
            meta = self.index.clips.get(clip.key)
            same = meta is not None and [Path(v).resolve() for v in meta.videos] == [
                Path(v).resolve() for v in clip.videos]
            if not same:
                problem = "is not in" if meta is None else "has other videos in"
                self.mismatch = f"{cache_dir}: clip {clip.key!r} ({clip.source}) {problem} this cache"
                if strict:
                    raise DataError(f"{self.mismatch}; re-run `vicokd prepare` for this dataset")
                return
        self.mismatch = ""

    def shape(self, clip: Clip) -> tuple[int, int]:
        meta = self.index.clips[clip.key]
        return meta.num_views, meta.length

    def loader(self, clip: Clip) -> FrameLoader:
        def load() -> np.ndarray:
            from vicokd.data.cache import load_images

            return load_images(self.cache_dir, clip.key)

        return load


class _VideoFrames:
    """Grid frames decoded from the videos (native size of view 1; clip length = shortest view)."""

    transform = None

    def __init__(self, fps: float, rule: GridRule) -> None:
        self.fps, self.rule = fps, rule
        self._shapes: dict[str, tuple[int, int]] = {}

    def shape(self, clip: Clip) -> tuple[int, int]:
        from vicokd.data.media import probe_video

        if clip.key not in self._shapes:
            lengths = [probe_video(path).grid_length(self.fps, self.rule) for path in clip.videos]
            if min(lengths) < 1:
                raise DataError(f"{clip.source}: a view has no frames")
            self._shapes[clip.key] = (clip.num_views, min(lengths))
        return self._shapes[clip.key]

    def loader(self, clip: Clip) -> FrameLoader:
        def load() -> np.ndarray:
            from vicokd.data.media import probe_video, read_grid_frames

            length = self.shape(clip)[1]
            first = probe_video(clip.videos[0])
            size = (first.height, first.width)
            return np.stack([read_grid_frames(path, size, self.fps, length=length, rule=self.rule)
                             for path in clip.videos])

        return load


def restore_aspect(frames: np.ndarray, aspect: float) -> np.ndarray:
    """Resize frames ``(..., H, W, 3)`` to width ``round(H · aspect)`` (undo an aspect-ignoring resize)."""
    height, width = frames.shape[-3:-1]
    new_width = max(1, round(height * aspect))
    if new_width == width:
        return np.asarray(frames)
    flat = frames.reshape(-1, height, width, 3)
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(f)).resize((new_width, height),
                                                                                Image.BILINEAR))
                    for f in flat])
    return out.reshape(*frames.shape[:-3], height, new_width, 3)


# ----------------------------------------------------------------------------------- the run


def dataset_clips(root: Path, allow_outside_root: bool = False) -> list[Clip]:
    """Every clip of every split file under `root`, once, in split order (``data.allow_outside_root``
    as in ``prepare``)."""
    splits = available_splits(root)
    if not splits:
        raise DataError(f"{root}: no annotation files (train.json/test.json or train_data.json/test_data.json)")
    unique: dict[str, Clip] = {}
    for split in splits:
        for clip in read_clips(split_file(root, split), root, allow_outside_root=allow_outside_root):
            unique.setdefault(clip.key, clip)
    return list(unique.values())


def _choose_source(clips: list[Clip], cache: Path | None, config: Config
                   ) -> tuple[_CacheFrames | _VideoFrames, Path | None]:
    """The explicit cache (must match), else the configured cache if it holds this dataset, else videos."""
    aspect = config.detect.source_aspect
    if cache is not None:
        return _CacheFrames(cache, clips, aspect, strict=True), cache
    default = Path(config.data.cache)
    if (default / "index.json").is_file():
        source = _CacheFrames(default, clips, aspect, strict=False)
        if not source.mismatch:
            return source, default
        print(f"note: not using {default} ({source.mismatch}); decoding the videos", file=sys.stderr)
    return _VideoFrames(config.data.fps, config.data.grid), None


def detect_dataset(
    root: str | Path,
    out: str | Path | None = None,
    cache: str | Path | None = None,
    *,
    config: Config | None = None,
    detector: PersonDetector | str | None = None,
    threshold: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_clip: Callable[[str], None] | None = None,
) -> DetectSummary:
    """Score every grid frame of every view of every clip under `root`; see the module docstring.

    `out` defaults to ``data.person_scores``, else ``<cache>/person_scores.npz``. `detector` is a
    :class:`PersonDetector`, a registered name, or None for ``config.detect.detector``.
    `threshold` (default ``data.person_threshold``) is only used for the summary and recorded in
    the file. `on_clip(key)` is called after each newly scored clip (tests, progress hooks).
    """
    config = config or Config()
    root = Path(root)
    threshold = config.data.person_threshold if threshold is None else threshold
    clips = dataset_clips(root, config.data.allow_outside_root)
    source, cache_dir = _choose_source(clips, Path(cache) if cache is not None else None, config)
    if out is None:
        if config.data.person_scores is not None:
            out = config.data.person_scores
        elif cache_dir is not None:
            out = cache_dir / SCORES_FILE
        else:
            raise VicokdError(f"{root}: no prepared cache found; give --out SCORES (or --cache CACHE)")
    out = Path(out)
    own = not isinstance(detector, PersonDetector)
    det = detector if isinstance(detector, PersonDetector) else create_detector(detector, config.detect, root)
    try:
        return _run(clips, source, det, out, threshold, overwrite, progress, config.detect.save_every,
                    f"cache {cache_dir}" if cache_dir is not None else "videos", config.data.fps, on_clip)
    finally:
        if own:
            det.close()


def _existing(out: Path, settings: dict[str, object], overwrite: bool) -> dict[str, np.ndarray]:
    """Scores already in `out` that this run may keep (error if another detector made them)."""
    if not out.is_file():
        return {}
    if overwrite:
        out.unlink()
        return {}
    scores, meta = read_person_scores(out)
    if meta.get("settings") != settings:
        raise VicokdError(f"{out}: made by another detector or settings ({meta.get('settings')}, now "
                          f"{settings}); pass --overwrite to replace it, or choose another --out")
    return scores


def _run(clips: list[Clip], source: _CacheFrames | _VideoFrames, detector: PersonDetector, out: Path,
         threshold: float, overwrite: bool, progress: bool, save_every: int, source_name: str, fps: float,
         on_clip: Callable[[str], None] | None) -> DetectSummary:
    settings = detector.describe()
    meta = {"detector": detector.name, "threshold": threshold, "settings": settings, "fps": fps}
    done = _existing(out, settings, overwrite)
    summary = DetectSummary(out, detector.name, threshold, source_name, clips=len(clips))
    shapes = {clip.key: source.shape(clip) for clip in clips}
    todo = [clip for clip in clips if clip.key not in done or done[clip.key].shape != shapes[clip.key]]
    pending: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    bar = tqdm(total=len(clips), initial=len(clips) - len(todo), desc=f"detect ({detector.name})",
               unit="clip", disable=not progress, file=sys.stderr)
    try:
        for clip in todo:
            views, length = shapes[clip.key]
            scores = detector.score_clip(clip.key, source.loader(clip), views, length, source.transform)
            pending[clip.key] = scores
            summary.computed += 1
            summary.frames_scored += scores.size
            bar.update(1)
            if on_clip is not None:
                on_clip(clip.key)
            if len(pending) >= save_every:
                write_person_scores(out, pending, **meta)
                pending.clear()
    finally:
        bar.close()
        if pending:
            write_person_scores(out, pending, **meta)
        summary.seconds = time.perf_counter() - started
    if not out.is_file():  # nothing to score and no file yet: still write the (empty) file
        write_person_scores(out, {}, **meta)
    final, _ = read_person_scores(out)
    for clip in clips:
        summary.add(final[clip.key])
    return summary
