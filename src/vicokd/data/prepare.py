"""`vicokd prepare`: decode every clip once into a versioned on-disk cache (:mod:`vicokd.data.cache`).

Workers end with `prepare` (:mod:`vicokd.data.workers`: the kernel's parent-death signal, a
watch thread, SIGINT blocked from birth); on Ctrl-C the parent stops them and removes their
unfinished folders (a killed run's are removed by the next run).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vicokd.config import DataConfig
from vicokd.data.annotations import Clip, available_splits, check_view_counts, load_annotations
from vicokd.data.cache import (
    CACHE_VERSION,
    INDEX_FILE,
    CacheIndex,
    cache_settings,
    clip_dir,
    read_clip_meta,
    read_index,
    read_index_json,
)
from vicokd.data.cache_freshness import annotation_sources, clip_state, record_fields
from vicokd.data.cache_temps import remove_stale_temps
from vicokd.data.cache_writer import check_segments, write_clip
from vicokd.data.workers import run_in_workers
from vicokd.errors import DataError
from vicokd.io import write_json_atomic

__all__ = ["prepare"]


def _check_existing(cache_dir: Path, settings: dict[str, Any]) -> None:
    path = cache_dir / INDEX_FILE
    if not path.is_file():
        return
    old = read_index_json(path)
    if old.get("data") is not None:  # caches from before data.grid were read with the interval rule
        old["data"] = {"grid": "interval", **old["data"]}
    if old.get("data") != settings:
        raise DataError(f"{path}: this cache was prepared with other settings ({old.get('data')}); "
                        "use another --out folder")


def _run_parallel(clips: list[Clip], config: DataConfig, cache_dir: Path, workers: int
                  ) -> Iterator[list[str] | DataError]:
    """Prepare clips (in `workers` spawned processes when > 1); yield warnings or the error of each.

    When the caller stops (an exception, Ctrl-C, closing this generator), the workers are
    ended and their unfinished folders removed before the exception goes on.
    """
    results = run_in_workers(write_clip, [(clip, config, cache_dir) for clip in clips], workers)
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


def _relabel(cache_dir: Path, clip: Clip, config: DataConfig) -> None:
    """Write a new ``meta.json`` for a clip whose videos are unchanged but whose record changed."""
    meta = read_clip_meta(cache_dir, clip.key)
    check_segments(clip, meta.view_lengths, config.fps)
    path = clip_dir(cache_dir, clip.key) / "meta.json"
    try:
        write_json_atomic(path, {**asdict(meta), **record_fields(clip)})
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({exc.strerror or exc})") from None


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
    sources = annotation_sources(root, splits)
    settings = cache_settings(config)
    _check_existing(cache_dir, settings)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{cache_dir}: cannot create the cache folder ({exc.strerror or exc})") from None
    remove_stale_temps(cache_dir)
    states = {key: clip_state(cache_dir, clip) for key, clip in unique.items()}
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
