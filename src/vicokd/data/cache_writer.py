"""A clip's cached arrays: decoded front to back into ``frames.npy`` and ``fbank.npy`` of a new
folder that one rename puts in place (:func:`write_clip`).

A clip directory appears by one rename of a finished temporary directory, so a clip is either
whole or absent: re-running `prepare` skips what is current and resumes the rest. Clips are
decoded in parallel processes; a bad clip is reported in one line and does not stop the others,
and every finished clip is kept. Arrays are written to disk as they are decoded (one frame and
one 64-chunk fbank group in memory at a time), so a worker's memory does not grow with the
length of a clip.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from vicokd.config import DataConfig
from vicokd.data.annotations import Clip
from vicokd.data.cache import clip_dir
from vicokd.data.cache_freshness import record_fields, video_fingerprint
from vicokd.data.cache_temps import temp_dir
from vicokd.data.media import VideoInfo, audio_for_video, fbank_rows, iter_grid_fbank, iter_grid_frames, probe_video
from vicokd.errors import DataError

__all__ = ["check_segments", "decode_clip", "write_clip"]


def check_segments(clip: Clip, view_lengths: list[int], fps: float) -> None:
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
    check_segments(clip, view_lengths, config.fps)
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
        "key": clip.key, "session": clip.session, "clip_id": clip.clip_id, "part": clip.part, **record_fields(clip),
        "length": length, "view_lengths": view_lengths, "audio_present": present, "fbank_rows": rows,
        "inputs": inputs,
    }
    return meta, warnings


def write_clip(clip: Clip, config: DataConfig, cache_dir: Path) -> list[str]:
    """Decode `clip` into ``clips/<key>`` atomically (replacing a stale one); returns its warnings.

    A failed write (a full disk) is a :class:`DataError` naming the clip folder; nothing half
    written stays behind.
    """
    final = clip_dir(cache_dir, clip.key)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_dir(final)
    except OSError as exc:
        raise DataError(f"{final}: cannot write the cached clip ({exc.strerror or exc})") from None
    try:
        meta, warnings = decode_clip(clip, config, tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if final.exists():  # a stale clip: move it aside (rename onto an empty folder), then swap
            old = temp_dir(final)
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
