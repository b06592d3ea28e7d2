"""Annotations: MultiSensor-Home JSON (Home-1, Home-2, user datasets) → :class:`Clip` records.

Each annotation file is a JSON list with one record per multi-view clip::

    {"video_url_1": "01/00-View1-Part1.mp4", …, "video_url_5": "…",
     "tricks": [{"start": 3.25, "end": 6.13, "labels": ["Sitdown"]}, …]}

Paths are relative to the dataset root, times in seconds. Views are ordered by the index k of
``video_url_k``. A path that is absolute or leaves the root (``../x.mp4``, ``01/../../x.mp4``)
is rejected, naming the record, unless ``allow_outside_root`` is set (``data.allow_outside_root``
in a config): an annotation file must not make `prepare` open arbitrary files. The check is on
the path as written (after collapsing ``..``), not on where symbolic links lead: a link inside
the root was placed there by whoever owns the root (e.g. a session folder linked to another
disk) and is followed. Split files: Home-1 ``train.json``/``test.json``, Home-2
``train_data.json``/``test_data.json``, and ``val.json``/``val_data.json`` where a validation
split is defined. Classes are the sorted union of every label of every segment over all split
files of the root (so train and test index classes identically), unless a list is given. Class
names are exact: two labels that differ only in case or spaces (``standup`` beside ``Standup``,
``TurnOffLamp `` beside ``TurnOffLamp``), or a label that differs so from a given class, are
refused in one line naming the record, never made classes of their own.

Frame labels on the 2.5-FPS grid: for each segment, rows ``round(start·fps) … round(end·fps)``
inclusive of each of its classes are 1, clipped to the grid length L.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vicokd.errors import DataError

SPLIT_FILES = {
    "train": ("train.json", "train_data.json"),
    "val": ("val.json", "val_data.json"),
    "test": ("test.json", "test_data.json"),
}
_VIEW_KEY = re.compile(r"^video_url_(\d+)$")
_VIEW_FILE = re.compile(r"^(?P<id>.+?)-View(?P<view>\d+)-Part(?P<part>\d+)\.[A-Za-z0-9]+$")


@dataclass(frozen=True)
class Segment:
    """A labelled interval of a clip, times in seconds; every label counts."""

    start: float
    end: float
    labels: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "labels": list(self.labels)}


@dataclass(frozen=True)
class Clip:
    """One synchronised multi-view clip.

    `key` is the clip's full identity (session, id, part), unique within a dataset and safe as a
    file name, e.g. ``"01_00_Part1"``. `videos` holds the view files in view order.
    """

    key: str
    session: str
    clip_id: str
    part: int
    videos: list[Path] = field(hash=False)
    segments: tuple[Segment, ...]
    source: str  # "<file>[<index>]" for error messages
    urls: tuple[str, ...] = ()  # the video paths as the record writes them (relative to the root)

    @property
    def num_views(self) -> int:
        return len(self.videos)

    @property
    def labels(self) -> tuple[str, ...]:
        """Sorted set of every label of every segment (the sequence label)."""
        return tuple(sorted({label for seg in self.segments for label in seg.labels}))


def split_file(root: str | Path, split: str) -> Path:
    """The annotation file of `split` under `root` (Home-1 or Home-2 naming)."""
    if split not in SPLIT_FILES:
        raise DataError(f"split {split!r}: expected one of {', '.join(SPLIT_FILES)}")
    root = Path(root)
    for name in SPLIT_FILES[split]:
        if (root / name).is_file():
            return root / name
    names = " or ".join(SPLIT_FILES[split])
    raise DataError(f"{root}: no {split} annotation file ({names})")


def available_splits(root: str | Path) -> list[str]:
    root = Path(root)
    return [s for s, names in SPLIT_FILES.items() if any((root / n).is_file() for n in names)]


def read_json(path: Path) -> Any:
    """Parse a JSON file; malformed JSON is a one-line error with line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def _identity(first_video: str, where: str) -> tuple[str, str, str, int]:
    """(key, session, clip_id, part) from the path of view 1."""
    path = Path(first_video)
    session = path.parent.as_posix() if path.parent.as_posix() != "." else ""
    match = _VIEW_FILE.match(path.name)
    if match:
        clip_id, part = match["id"], int(match["part"])
    else:
        clip_id, part = path.stem, 1
    key = "_".join(p for p in (session.replace("/", "_"), clip_id, f"Part{part}") if p)
    key = re.sub(r"[^A-Za-z0-9_.-]", "-", key)
    return key, session, clip_id, part


def parse_segments(tricks: Any, where: str) -> tuple[Segment, ...]:
    """Validate a record's ``tricks`` list (may be empty: an all-negative clip)."""
    if not isinstance(tricks, list):
        raise DataError(f"{where}.tricks: expected a list of segments")
    segments = []
    for i, seg in enumerate(tricks):
        at = f"{where}.tricks[{i}]"
        if not isinstance(seg, Mapping):
            raise DataError(f"{at}: expected an object with start, end, labels")
        for name in ("start", "end", "labels"):
            if name not in seg:
                raise DataError(f"{at}: missing field '{name}'")
        start, end, labels = seg["start"], seg["end"], seg["labels"]
        if isinstance(labels, str):
            labels = [labels]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end)):
            raise DataError(f"{at}: start/end must be numbers (seconds), got {start!r}, {end!r}")
        if start < 0 or start > end:
            raise DataError(f"{at}: invalid interval start={start} end={end} (need 0 <= start <= end)")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise DataError(f"{at}.labels: expected a non-empty list of class names")
        segments.append(Segment(float(start), float(end), tuple(labels)))
    return tuple(segments)


def video_path(root: Path, url: str, where: str, allow_outside_root: bool = False) -> Path:
    """``root / url``; an absolute `url` or one that leaves `root` is a :class:`DataError` naming `where`.

    The check is lexical (module docstring): ``..`` is collapsed, symbolic links are not resolved.
    """
    if "\0" in url:
        raise DataError(f"{where}: video path {url!r} contains a NUL character")
    if not allow_outside_root:
        hint = f"video paths must stay inside the dataset root {root} (set data.allow_outside_root=true to allow it)"
        if os.path.isabs(url):
            raise DataError(f"{where}: absolute video path {url!r}; {hint}")
        if os.path.normpath(url).split(os.sep)[0] == os.pardir:
            raise DataError(f"{where}: video path {url!r} leaves the dataset root; {hint}")
    return root / url


def parse_record(record: Any, root: Path, where: str, *, allow_outside_root: bool = False) -> Clip:
    """One JSON record → :class:`Clip` (views ordered by their ``video_url_k`` index).

    Video paths must stay inside `root` unless `allow_outside_root` (module docstring).
    """
    if not isinstance(record, Mapping):
        raise DataError(f"{where}: expected an object with video_url_k and tricks")
    views = sorted((int(m[1]), key) for key in record if (m := _VIEW_KEY.match(str(key))))
    if not views:
        raise DataError(f"{where}: clip has zero views (no video_url_k field)")
    indices = [k for k, _ in views]
    if len(set(indices)) != len(indices):
        raise DataError(f"{where}: duplicate view index in {[key for _, key in views]}")
    urls = []
    for _, key in views:
        url = record[key]
        if not isinstance(url, str) or not url:
            raise DataError(f"{where}.{key}: expected a relative video path")
        urls.append(url)
    videos = [video_path(root, url, f"{where}.{key}", allow_outside_root) for url, (_, key) in zip(urls, views)]
    if "tricks" not in record:
        raise DataError(f"{where}: missing field 'tricks'")
    segments = parse_segments(record["tricks"], where)
    key, session, clip_id, part = _identity(urls[0], where)
    return Clip(key, session, clip_id, part, videos, segments, where, tuple(urls))


def read_clips(path: Path, root: Path | None = None, *, allow_outside_root: bool = False) -> list[Clip]:
    """All records of one annotation file, with unique keys (video paths checked as :func:`parse_record`)."""
    root = path.parent if root is None else root
    records = read_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of clip records")
    clips = [parse_record(r, root, f"{path.name}[{i}]", allow_outside_root=allow_outside_root)
             for i, r in enumerate(records)]
    seen: dict[str, Clip] = {}
    for clip in clips:
        if clip.key in seen:
            first = seen[clip.key]
            mine, theirs = (clip.session, clip.clip_id, clip.part), (first.session, first.clip_id, first.part)
            why = "" if mine == theirs else (
                f": session {first.session!r} clip {first.clip_id!r} and session {clip.session!r} clip "
                f"{clip.clip_id!r} differ only in characters a clip name cannot hold (it keeps A-Z a-z 0-9 _ . -); "
                "rename one of the two folders or files")
            raise DataError(f"{clip.source}: clip identity {clip.key!r} repeats {first.source}{why}")
        seen[clip.key] = clip
    return clips


def check_view_counts(clips: Sequence[Clip]) -> None:
    """Every clip of a dataset has the same number of views (clips of unequal V cannot share a
    batch); otherwise one line naming the first record that differs from the most common count."""
    counts = Counter(clip.num_views for clip in clips)
    if len(counts) <= 1:
        return
    usual, many = counts.most_common(1)[0]
    odd = next(clip for clip in clips if clip.num_views != usual)
    raise DataError(f"{odd.source} (clip {odd.key}): {odd.num_views} views where {many} of the {len(clips)} clips "
                    f"have {usual}: every clip of a dataset needs the same cameras; add the record's missing "
                    "video_url_k or remove the record")


def label_folding(name: str) -> str:
    """What two spellings of one class would share: the name without case and with its runs of
    whitespace (inner, leading, trailing) removed. Class names are exact, as MultiSensor-Home ships
    them; two labels that fold alike but differ are refused (:func:`collect_classes`)."""
    return "".join(name.split()).casefold()


def _near_miss(label: str, classes: Sequence[str], where: str) -> DataError | None:
    """The error for a label that is not in `classes` but differs from one of them only in case or spaces."""
    spelled = next((name for name in classes if label_folding(name) == label_folding(label)), None)
    if spelled is None:
        return None
    return DataError(f"{where}: label {label!r} differs from the class {spelled!r} only in case or spaces; "
                     "class names are exact, so correct the annotation (or data.classes)")


def collect_classes(clips: Iterable[Clip]) -> list[str]:
    """Sorted union of every label of every segment; two labels that differ only in case or spaces
    (:func:`label_folding`) are a :class:`DataError` naming the record of the later one."""
    first: dict[str, tuple[str, str]] = {}  # folded → (label, where it was first seen)
    classes: set[str] = set()
    for clip in clips:
        for i, seg in enumerate(clip.segments):
            for label in seg.labels:
                where = f"{clip.source}.tricks[{i}].labels"
                seen = first.setdefault(label_folding(label), (label, where))
                if seen[0] != label:
                    raise DataError(f"{where}: label {label!r} differs from {seen[0]!r} ({seen[1]}) only in case "
                                    "or spaces; class names are exact, so correct one of the two annotations")
                classes.add(label)
    return sorted(classes)


def check_labels(clips: Iterable[Clip], classes: Sequence[str]) -> None:
    """Every label must be in the fixed class list (a near miss in case or spaces is named as such)."""
    known = set(classes)
    for clip in clips:
        for i, seg in enumerate(clip.segments):
            for label in seg.labels:
                if label not in known:
                    where = f"{clip.source}.tricks[{i}].labels"
                    raise _near_miss(label, classes, where) or DataError(
                        f"{where}: unknown label {label!r} (not in the configured class list)")


def load_annotations(
    root: str | Path, split: str, classes: Sequence[str] | None = None, *, allow_outside_root: bool = False
) -> tuple[list[Clip], list[str]]:
    """Read the clips of `split` ("train", "test", or "val" where defined) under `root`.

    Returns ``(clips, classes)``; classes are `classes` when given (labels outside it are an
    error), else the sorted union over all split files of `root`. Video paths that are absolute
    or leave `root` are an error unless `allow_outside_root` (module docstring).
    """
    root = Path(root)
    clips = read_clips(split_file(root, split), root, allow_outside_root=allow_outside_root)
    if classes is None:
        every = [clips if s == split else read_clips(split_file(root, s), root, allow_outside_root=allow_outside_root)
                 for s in available_splits(root)]
        class_list = collect_classes(c for group in every for c in group)
    else:
        class_list = list(classes)
        check_labels(clips, class_list)
    return clips, class_list


def _segment_fields(segment: Any) -> tuple[float, float, Sequence[str]]:
    if isinstance(segment, Segment):
        return segment.start, segment.end, segment.labels
    labels = segment["labels"]
    return float(segment["start"]), float(segment["end"]), [labels] if isinstance(labels, str) else labels


def _unknown_label(name: str, classes: Sequence[str], where: str | None, segment: int) -> DataError:
    near_miss = _near_miss(name, classes, f"{where}.tricks[{segment}].labels" if where else "segment label")
    if near_miss is not None:
        return near_miss
    known = ", ".join(classes) if len(classes) <= 20 else f"{len(classes)} classes"
    at = f"{where}.tricks[{segment}].labels: " if where else ""
    return DataError(f"{at}segment label {name!r} is not in the class list ({known})")


def frame_labels(
    segments: Iterable[Mapping[str, Any] | Segment],
    num_grid_frames: int,
    classes: Sequence[str],
    fps: float = 2.5,
    *,
    where: str | None = None,
) -> np.ndarray:
    """Multi-hot frame labels (L, C) float32 on the grid.

    Row j stands for time j/fps. For each segment and each of its labels c, rows
    ``round(start·fps) … round(end·fps)`` (inclusive, clipped to [0, L−1]) are set to 1.
    `segments` is a clip's ``tricks`` list (dicts) or :class:`Segment` records. A label outside
    `classes` is a :class:`DataError`; `where` (e.g. ``"train.json[3] (clip 01_00_Part1)"``)
    names the annotation record in its message.
    """
    index = {name: i for i, name in enumerate(classes)}
    labels = np.zeros((num_grid_frames, len(classes)), dtype=np.float32)
    for number, segment in enumerate(segments):
        start, end, names = _segment_fields(segment)
        first = max(0, round(start * fps))
        last = min(num_grid_frames - 1, round(end * fps))
        for name in names:
            if name not in index:
                raise _unknown_label(name, classes, where, number)
            if first <= last:
                labels[first : last + 1, index[name]] = 1.0
    return labels


def sequence_labels(segments: Iterable[Mapping[str, Any] | Segment], classes: Sequence[str], *,
                    where: str | None = None) -> np.ndarray:
    """Multi-hot clip label (C,) float32: every label of every segment (`where` as :func:`frame_labels`)."""
    index = {name: i for i, name in enumerate(classes)}
    labels = np.zeros(len(classes), dtype=np.float32)
    for number, segment in enumerate(segments):
        for name in _segment_fields(segment)[2]:
            if name not in index:
                raise _unknown_label(name, classes, where, number)
            labels[index[name]] = 1.0
    return labels
