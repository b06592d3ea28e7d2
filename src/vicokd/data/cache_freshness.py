"""Whether a cached clip is current: the fingerprint of the videos it was decoded from, its state
against the annotations (new, current, to redo, to relabel), and :func:`check_sources`.

Stale clips are redone. ``meta.json`` records the fingerprint of what the arrays were decoded
from (each view's path as the annotation writes it, its size and modification time in ns); a
clip whose fingerprint differs, or whose metadata has none (an older vicokd) or is damaged, is
decoded again and replaces the old one in two renames. A clip whose videos are unchanged but
whose annotation record changed (segments, position in the file, root) gets a new ``meta.json``
only. :func:`check_sources` (called by the dataset) refuses a cache whose annotation files or
videos changed after it was prepared, when they are still there to compare.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

from vicokd.data.annotations import Clip, split_file
from vicokd.data.cache import CacheIndex, clip_dir, load_array, read_clip_meta
from vicokd.errors import DataError

__all__ = ["annotation_sources", "check_sources", "clip_state", "record_fields", "sha256_of", "video_fingerprint"]


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


def record_fields(clip: Clip) -> dict[str, Any]:
    """The fields of ``meta.json`` that come from the annotation record alone (no decoding)."""
    return {"videos": [str(p) for p in clip.videos], "segments": [seg.to_json() for seg in clip.segments],
            "source": clip.source}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def annotation_sources(root: Path, splits: list[str]) -> dict[str, Any]:
    files = {split: split_file(root, split) for split in splits}
    return {"root": str(root.resolve()),
            "annotations": {split: {"file": path.name, "sha256": sha256_of(path)} for split, path in files.items()}}


def clip_state(cache_dir: Path, clip: Clip) -> tuple[str, str]:
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
            array = load_array(clip_dir(cache_dir, clip.key) / f"{name}.npy")
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
    if {key: getattr(meta, key) for key in ("videos", "segments", "source")} != record_fields(clip):
        return "relabel", ""
    return "current", ""


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
        if path.is_file() and sha256_of(path) != entry["sha256"]:
            raise DataError(f"{path}: changed since the cache {index.root} was prepared; {hint}")
    for key, meta in index.clips.items():
        for video, before in zip(meta.videos, (meta.inputs or {}).get("videos", [])):
            try:
                stat = Path(video).stat()
            except OSError:
                continue
            if before is not None and (stat.st_size, stat.st_mtime_ns) != (before["size"], before["mtime_ns"]):
                raise DataError(f"{video}: changed since clip {key!r} was cached in {index.root}; {hint}")
