"""Decode frames and audio with PyAV; Kaldi-compatible log-mel filter banks in torch.

Frames: the 2.5-FPS grid of :mod:`vicokd.data.frame_grid` (grid frame j is the frame nearest to
time j / 2.5 s by its timestamp, or source frame ``j·interval`` under ``data.grid=interval``),
converted to RGB and resized to (H, W) by FFmpeg's scaler (aspect ignored, as the reference
code). :func:`probe_video` reads the presentation time of every packet (no decoding) so that a
changing frame rate or a timestamp reset is known before the frames are. :func:`read_grid_frames`
decodes sequentially when most grid frames are wanted and seeks to each wanted frame when only a
few are.

Audio: the view's own track, mono, resampled to 16 kHz float32 in [-1, 1]; cut into L equal
chunks (chunk j goes with grid frame j); per chunk a Kaldi-style log-mel fbank: 25 ms Hanning
window, 10 ms shift, DC offset removed, pre-emphasis 0.97, 512-point power spectrum, 128
triangular mel filters (Kaldi mel scale, 20 Hz – Nyquist), ``log(max(x, ε))``, no dither,
no energy, snip edges: ``1 + (n − 400) // 160`` rows for n samples (38 for a 0.4 s chunk).
Normalised as the AST feature extractor does: ``(x + 4.2677393) / (2 · 4.5689974)``.
:func:`iter_grid_fbank` computes the same values :data:`FBANK_GROUP` chunks at a time from a
stream of decoded samples, so memory does not grow with the length of a track.

Nothing is filled in silently. Frames and audio samples are counted as they are decoded and
compared with what the container's header declares: a video (or audio track) that ends early is
a warning naming the file and both lengths when it lacks at most :data:`SHORT_TOLERANCE_S`
seconds (the grid frames past its end repeat its last frame; the audio is padded with silence so
chunk j still covers grid frame j), and a :class:`~vicokd.errors.DataError` beyond that. A
decode error is a ``DataError`` naming the file and the frame it stopped at. Decoding uses slice
threading only: FFmpeg's frame threading (PyAV ``thread_type="AUTO"``) swallows the error of a
truncated packet and just stops, which is how a half-cut file used to pass as a whole one.
"""

from __future__ import annotations

import math
import warnings as _warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from vicokd.data.frame_grid import (
    GridPicker,
    GridRule,
    VideoClock,
    earlier_is_nearer,
    timestamp_grid_length,
)
from vicokd.data.sampling import grid_interval
from vicokd.errors import DataError

AST_MEAN = -4.2677393
AST_STD = 4.5689974
_LOG_FLOOR = float(np.finfo(np.float32).eps)
# A video or audio track may end this much earlier than its header says with a warning (the
# grid frames past its end repeat its last frame; missing audio is silence); more is an error.
# Headers and streams of sound files disagree by a frame or two (edit lists, encoder delay);
# half a second is more than that and less than two 2.5-FPS grid frames of made-up data.
SHORT_TOLERANCE_S = 0.5
# An audio track up to this much shorter than its video is padded with silence without a
# warning: AAC works in frames of 1024 samples (64 ms at 16 kHz), so tracks end on a frame edge.
AUDIO_SLACK_S = 0.1
# grid chunks per fbank computation in :func:`iter_grid_fbank` (64 chunks = 25.6 s at 2.5 FPS,
# a few MB of intermediates however long the track is)
FBANK_GROUP = 64


class ShortMediaWarning(UserWarning):
    """A video or audio track ends before its header says, within :data:`SHORT_TOLERANCE_S`."""


def _warn(message: str, warnings: list[str] | None) -> None:
    """Append `message` to `warnings`, or issue it as a :class:`ShortMediaWarning` when None."""
    if warnings is None:
        _warnings.warn(message, ShortMediaWarning, stacklevel=3)
    else:
        warnings.append(message)


@dataclass(frozen=True)
class VideoInfo:
    """Stream facts needed for the grid: frame rate, frame count, whether an audio track exists.

    `end` is where the video ends on its own clock (seconds; :class:`~vicokd.data.frame_grid.VideoClock`);
    `clock` holds the packet timestamps' facts (a changing rate, resets). `width` and `height` are
    as the video is shown: a stream whose display matrix turns it a quarter turn has them swapped
    from what is stored (:func:`rgb_converter` gives frames upright).
    """

    fps: float
    num_frames: int
    has_audio: bool
    width: int
    height: int
    end: float = 0.0
    clock: VideoClock | None = field(default=None, compare=False, repr=False)

    def grid_length(self, fps: float = 2.5, rule: GridRule = "timestamps") -> int:
        if rule == "interval":
            return math.ceil(self.num_frames / grid_interval(self.fps, fps))
        return timestamp_grid_length(self.end, fps)

    def covered_seconds(self, length: int, fps: float = 2.5, rule: GridRule = "timestamps") -> float:
        """Seconds of the video that its first `length` grid frames cover (its whole duration when shorter)."""
        if rule == "interval":
            return min(self.num_frames, length * grid_interval(self.fps, fps)) / self.fps
        return min(self.end, length / fps)


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise DataError(f"{path}: unreadable video ({exc})") from None


def video_stream(container: av.container.InputContainer, path: str | Path) -> av.video.stream.VideoStream:
    """The first video stream of an opened file; a file without one, or a still image whatever its name
    (``png_pipe``, ``image2``: FFmpeg's image demuxers), is one line naming the file."""
    if not container.streams.video:
        raise DataError(f"{path}: no video stream")
    stream = container.streams.video[0]
    demuxer = container.format.name
    if demuxer == "image2" or demuxer.endswith("_pipe"):
        raise DataError(f"{path}: a still image ({stream.codec_context.name}), not a video, whatever its name "
                        "says; give each view as a video file")
    return stream


def _packet_clock(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                  fps: float) -> VideoClock:
    """The clock of the stream's frames from its packets' timestamps, without decoding.

    Packets come in decode order (B-frames out of presentation order), so their presentation
    times are sorted between the points where the decode timestamp goes back (a reset); a packet
    the demuxer cannot read ends the scan (decoding then judges the file).
    """
    clock = VideoClock(fps)
    segment: list[float] = []
    last_dts = None
    try:
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            dts = packet.pts if packet.dts is None else packet.dts
            if last_dts is not None and dts < last_dts:
                for time in sorted(segment):
                    clock.time(time)
                segment = []
            last_dts = dts
            segment.append(float(packet.pts * stream.time_base))
    except av.error.FFmpegError:
        pass
    for time in sorted(segment):
        clock.time(time)
    return clock


def rgb_converter(size: tuple[int, int]) -> Callable[[av.VideoFrame], np.ndarray]:
    """A function from a decoded frame to uint8 RGB ``(H, W, 3)`` at `size` = (H, W), FFmpeg's scaler,
    upright: every decoder of vicokd (prepare, predict, stream, the benchmarks) converts through it.

    Upright: a frame whose display matrix says it is shown turned by r degrees counterclockwise
    (``frame.rotation``: phones, ceiling cameras) is turned so, to the nearest quarter turn, as
    players do; it is scaled to (W, H) first when the turn is a quarter, so the result is (H, W).
    One scaler context for every frame it converts, on the calling thread: PyAV's
    ``frame.to_ndarray(width=..., height=...)`` builds a new context per frame with a thread pool
    sized to the machine, which cost 3x the decode itself at the demo's 80x60 (the pixels are the
    same, tested).
    """
    height, width = size
    reformatter = VideoReformatter()

    def convert(frame: av.VideoFrame) -> np.ndarray:
        turns = quarter_turns(frame.rotation)
        stored = (height, width) if turns % 2 else (width, height)  # (width, height) before the turn
        image = reformatter.reformat(frame, *stored, "rgb24", threads=1).to_ndarray()
        return np.ascontiguousarray(np.rot90(image, turns)) if turns else image

    return convert


def quarter_turns(rotation: float) -> int:
    """A display rotation in degrees (counterclockwise) as the nearest number of quarter turns, 0-3."""
    return round(rotation / 90) % 4


def probe_video(path: str | Path) -> VideoInfo:
    """Frame rate, frame count, where the video ends on its clock, and audio presence.

    The frame count is the header's (the packets' when it has none); the end is ``frames / fps``
    for a constant-rate file and the packets' clock (:func:`_packet_clock`) when the rate
    changes or the timestamps reset.
    """
    path = Path(path)
    with _open(path) as container:
        stream = video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise DataError(f"{path}: video stream has no frame rate")
        clock = _packet_clock(container, stream, float(rate))
        count = stream.frames or clock.count
        regular = not (clock.variable_rate or clock.resets)
        end = count / float(rate) if regular or not clock.count else clock.end
        width, height = stream.codec_context.width, stream.codec_context.height
        if quarter_turns(_first_frame_rotation(container, stream)) % 2:
            width, height = height, width
        return VideoInfo(float(rate), int(count), bool(container.streams.audio), width, height, end, clock)


def _first_frame_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    """The display rotation of the first decodable frame (degrees; 0 without a display matrix or a frame)."""
    try:
        container.seek(0, stream=stream)
        for frame in container.decode(stream):
            return float(frame.rotation)
    except av.error.FFmpegError:
        return 0.0
    return 0.0


def frame_time(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> float | None:
    """Presentation time of a decoded frame in seconds (None when it has none)."""
    return None if frame.pts is None else float(frame.pts * stream.time_base)


def _short_video(path: Path, info: VideoInfo, decoded: int, repeated: int, warnings: list[str] | None) -> None:
    """`path` decoded `decoded` of the frames its header declares: a warning, or an error beyond the tolerance."""
    missing = info.num_frames - decoded
    tolerance = max(2, math.ceil(SHORT_TOLERANCE_S * info.fps))
    lengths = (f"decoded {decoded} of the {info.num_frames} frames its header declares "
               f"({decoded / info.fps:.2f} s of {info.num_frames / info.fps:.2f} s)")
    if missing > tolerance:
        raise DataError(f"{path}: truncated or damaged video: {lengths}; more than {SHORT_TOLERANCE_S:g} s is "
                        "missing, replace or re-encode the file")
    effect = (f"the last {repeated} grid frame(s) repeat its last frame" if repeated
              else "no grid frame is affected")
    _warn(f"{path}: video ends early: {lengths}; {effect}", warnings)


def _decode_grid(path: Path, info: VideoInfo, length: int, image: Callable[[av.VideoFrame], np.ndarray],
                 rule: GridRule, grid_fps: float, warnings: list[str] | None) -> Iterator[tuple[int, np.ndarray]]:
    """Decode `path` front to back; yield (grid index, image) for grid frames 0 … `length` − 1, in order.

    A :class:`~vicokd.data.frame_grid.GridPicker` chooses the frames. Decoding stops once they are
    all chosen unless `length` reaches the video's own grid length; then every frame is decoded and
    counted, and a video shorter than its header is judged by :func:`_short_video`. Grid frames
    past the last decoded frame get that frame. The picker's timing notes (a timestamp reset, a
    changing rate, an interval rule off the clock) are warnings.
    """
    picker = GridPicker(rule, info.fps, grid_fps, image)
    to_end = length >= info.grid_length(grid_fps, rule)
    count, ended = 0, False
    try:
        with _open(path) as container:
            stream = video_stream(container, path)
            for frame in container.decode(stream):
                count += 1
                for index, converted in picker.push(frame_time(frame, stream), frame):
                    if index < length:
                        yield index, converted
                if picker.next_index >= length and not to_end:
                    break
            else:
                ended = True
    except av.error.FFmpegError as exc:
        raise DataError(f"{path}: corrupt video: decoding failed after {count} of {info.num_frames} frames "
                        f"({exc})") from None
    if count == 0:
        raise DataError(f"{path}: no decodable frames")
    if ended and count < info.num_frames:
        own = min(length, info.grid_length(grid_fps, rule))
        _short_video(path, info, count, max(0, own - min(picker.next_index, own)), warnings)
    for line in picker.clock.notes(str(path), rule, info.fps, grid_fps):
        _warn(line, warnings)
    yield from picker.finish(length)


def iter_grid_frames(
    path: str | Path,
    size: tuple[int, int],
    grid_fps: float = 2.5,
    length: int | None = None,
    *,
    rule: GridRule = "timestamps",
    info: VideoInfo | None = None,
    warnings: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the first `length` grid frames of a video in order, uint8 RGB (H, W, 3), `size` = (H, W).

    One sequential decode with one frame in memory at a time (plus the one being yielded): what
    `prepare` writes to disk as it goes. `rule` is ``data.grid`` (:mod:`vicokd.data.frame_grid`);
    `length` defaults to the video's grid length; `info` is the video's :func:`probe_video` when
    the caller has it. A video shorter than its header is a warning appended to `warnings`
    (issued as a :class:`ShortMediaWarning` when None) or a :class:`DataError` (module
    docstring); decode errors are ``DataError``.
    """
    path = Path(path)
    info = probe_video(path) if info is None else info
    total = info.grid_length(grid_fps, rule) if length is None else length
    for _, frame in _decode_grid(path, info, total, rgb_converter(size), rule, grid_fps, warnings):
        yield frame


def read_grid_frames(
    path: str | Path,
    size: tuple[int, int],
    grid_fps: float = 2.5,
    indices: np.ndarray | list[int] | range | None = None,
    length: int | None = None,
    *,
    rule: GridRule = "timestamps",
    warnings: list[str] | None = None,
) -> np.ndarray:
    """Decode grid frames of a video as uint8 RGB (N, H, W, 3), `size` = (H, W).

    `indices` are grid indices (all of the first `length` grid frames when None); `rule` is
    ``data.grid``. Few indices (under a quarter of the grid) of a video without timestamp resets
    are read by seeking to the key frame before each one; otherwise the video is decoded once,
    front to back. A grid frame past the video's end repeats the last frame. A video that ends
    before its header says is a warning appended to `warnings` (a :class:`ShortMediaWarning` when
    None) within :data:`SHORT_TOLERANCE_S`, and a :class:`DataError` beyond; decode errors are
    ``DataError`` (module docstring).
    """
    path = Path(path)
    height, width = size
    info = probe_video(path)
    total = info.grid_length(grid_fps, rule) if length is None else length
    wanted = np.arange(total) if indices is None else np.asarray(indices, dtype=np.int64)
    targets = sorted({int(i) for i in wanted})
    found: dict[int, np.ndarray] = {}
    image = rgb_converter(size)
    own = info.grid_length(grid_fps, rule)
    seeking = bool(targets) and len(targets) * 4 < own and not (info.clock and info.clock.resets)
    if seeking:
        found = _seek_targets(path, info, targets, image, rule, grid_fps)
    if len(found) < len(targets):  # many targets, or a seek found the file shorter than its header
        wanted_set = set(targets)
        last = max(targets[-1] + 1, own) if seeking else targets[-1] + 1
        found = {j: frame for j, frame in _decode_grid(path, info, last, image, rule, grid_fps, warnings)
                 if j in wanted_set}
    out = np.empty((len(wanted), height, width, 3), dtype=np.uint8)
    for row, i in enumerate(wanted):
        out[row] = found[int(i)]
    return out


def _seek_targets(path: Path, info: VideoInfo, targets: list[int], image: Callable[[av.VideoFrame], np.ndarray],
                  rule: GridRule, grid_fps: float) -> dict[int, np.ndarray]:
    """Seek to the key frame before each target grid frame and decode up to it.

    Under ``timestamps`` the target is the frame nearest to ``j / grid_fps`` (times from the
    stream's start); under ``interval`` the first frame at or after source frame ``j·interval``.
    Targets past the video's end get the last frame; a target the header promises but the file
    does not reach is left out (the caller then decodes the whole file, which counts).
    """
    found: dict[int, np.ndarray] = {}
    interval = grid_interval(info.fps, grid_fps)
    try:
        with _open(path) as container:
            stream = video_stream(container, path)
            origin = float((stream.start_time or 0) * stream.time_base)
            for target in targets:
                when = target * interval / info.fps if rule == "interval" else target / grid_fps
                container.seek(int((origin + when) / stream.time_base), stream=stream, backward=True)
                last: tuple[float, av.VideoFrame] | None = None
                for frame in container.decode(stream):
                    now = (frame_time(frame, stream) or origin) - origin
                    if rule == "interval":
                        reached = round(now * info.fps) >= target * interval
                        chosen = frame
                    else:
                        reached = now >= when
                        chosen = last[1] if last is not None and earlier_is_nearer(when, last[0], now) else frame
                    if reached:
                        found[target] = image(chosen)
                        break
                    last = (now, frame)
                else:
                    if last is not None and last[0] >= info.end - 1.5 / info.fps:  # it was the last frame
                        found[target] = image(last[1])
    except av.error.FFmpegError as exc:
        raise DataError(f"{path}: corrupt video ({exc})") from None
    return found


def iter_audio(path: str | Path, sample_rate: int = 16000) -> Iterator[np.ndarray]:
    """The file's first audio track as mono float32 blocks in [-1, 1] at `sample_rate`, in order.

    A file without an audio track is a :class:`DataError` (see :func:`probe_video`'s
    ``has_audio``); so is a decode error.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            raise DataError(f"{path}: no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        seconds = 0.0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    block = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    seconds += block.size / sample_rate
                    yield block
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: corrupt audio track: decoding failed after {seconds:.2f} s ({exc})") from None


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray | None:
    """The file's first audio track as mono float32 in [-1, 1] at `sample_rate`; None if absent."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            return None
    pieces = list(iter_audio(path, sample_rate))
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces).astype(np.float32)


def audio_for_video(path: str | Path, samples: int, sample_rate: int = 16000, *,
                    warnings: list[str] | None = None) -> Iterator[np.ndarray]:
    """The audio blocks of :func:`iter_audio`, cut to the `samples` the video's duration covers.

    A track that ends early by more than :data:`AUDIO_SLACK_S` is a warning naming the file and
    both durations (appended to `warnings`; a :class:`ShortMediaWarning` when None), by more than
    :data:`SHORT_TOLERANCE_S` a :class:`DataError`; the caller pads the rest with silence (as
    :func:`iter_grid_fbank` does), so the audio stays aligned with the frames.
    """
    path = Path(path)
    count = 0
    for block in iter_audio(path, sample_rate):
        block = block[: samples - count]
        count += block.size
        if block.size:
            yield block
        if count >= samples:
            return
    missing = (samples - count) / sample_rate
    if missing > AUDIO_SLACK_S:
        lengths = f"decoded {count / sample_rate:.2f} s of audio for {samples / sample_rate:.2f} s of video"
        if missing > SHORT_TOLERANCE_S:
            raise DataError(f"{path}: truncated or damaged audio track: {lengths}; more than {SHORT_TOLERANCE_S:g} s "
                            "is missing, replace or re-encode the file")
        _warn(f"{path}: audio track ends early: {lengths}; the rest is silence", warnings)


def kaldi_mel_banks(num_bins: int = 128, fft_size: int = 512, sample_rate: int = 16000,
                    low_freq: float = 20.0, high_freq: float | None = None) -> torch.Tensor:
    """Kaldi's triangular mel filters (num_bins, fft_size // 2 + 1), triangles in mel space.

    mel(f) = 1127 · ln(1 + f / 700); centres equally spaced in mel between low and high;
    the Nyquist column is zero (as Kaldi).
    """
    high_freq = sample_rate / 2 if high_freq is None else high_freq

    def mel(f: torch.Tensor | float) -> torch.Tensor:
        return 1127.0 * torch.log1p(torch.as_tensor(f, dtype=torch.float64) / 700.0)

    half = fft_size // 2
    freqs = torch.arange(half, dtype=torch.float64) * sample_rate / fft_size
    mel_freqs = mel(freqs)
    step = (mel(high_freq) - mel(low_freq)) / (num_bins + 1)
    edges = mel(low_freq) + torch.arange(num_bins + 2, dtype=torch.float64) * step
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (mel_freqs - left) / (centre - left)
    down = (right - mel_freqs) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1)).float()


def log_mel_fbank(
    waveform: np.ndarray | torch.Tensor,
    sample_rate: int = 16000,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
) -> torch.Tensor:
    """Kaldi-compatible log-mel fbank of waveform(s) (..., n) → (..., rows, num_mel_bins).

    rows = 1 + (n − window) // shift (0 when n < window). Not normalised (see
    :func:`normalize_fbank`).
    """
    wave = torch.as_tensor(waveform, dtype=torch.float32)
    window = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    fft_size = 1 << (window - 1).bit_length()
    if wave.shape[-1] < window:
        return torch.zeros((*wave.shape[:-1], 0, num_mel_bins))
    frames = wave.unfold(-1, window, shift)  # (..., rows, window)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - 0.97 * previous
    frames = frames * torch.hann_window(window, periodic=False, dtype=frames.dtype)
    power = torch.fft.rfft(frames, n=fft_size).abs().pow(2)
    banks = kaldi_mel_banks(num_mel_bins, fft_size, sample_rate)
    return torch.clamp(power @ banks.T, min=_LOG_FLOOR).log()


def normalize_fbank(fbank: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """AST normalisation ``(x − mean) / (2 · std)`` with the AudioSet statistics."""
    return (fbank - AST_MEAN) / (2 * AST_STD)


def audio_chunks(waveform: np.ndarray, num_chunks: int) -> np.ndarray:
    """Cut a waveform into `num_chunks` equal chunks (num_chunks, n // num_chunks).

    Chunk j starts at sample floor(j·n / L) and has n // L samples, so every chunk has the same
    length and chunk j covers the time of grid frame j.
    """
    total = waveform.shape[0]
    size = total // num_chunks
    starts = (np.arange(num_chunks) * total) // num_chunks
    if size == 0:
        return np.zeros((num_chunks, 0), np.float32)
    return waveform[starts[:, None] + np.arange(size)[None, :]]


def grid_fbank(waveform: np.ndarray, num_chunks: int, sample_rate: int = 16000, num_mel_bins: int = 128,
               frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0) -> np.ndarray:
    """Normalised log-mel fbank per grid chunk, float32 (L, rows, num_mel_bins)."""
    chunks = audio_chunks(waveform, num_chunks)
    fbank = log_mel_fbank(chunks, sample_rate, num_mel_bins, frame_length_ms, frame_shift_ms)
    return normalize_fbank(fbank).numpy()


def fbank_rows(samples: int, sample_rate: int = 16000, frame_length_ms: float = 25.0,
               frame_shift_ms: float = 10.0) -> int:
    """Rows of :func:`log_mel_fbank` for `samples` samples: ``1 + (n − window) // shift``, 0 when short."""
    window = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    return 0 if samples < window else 1 + (samples - window) // shift


def iter_grid_fbank(blocks: Iterable[np.ndarray], total: int, num_chunks: int, sample_rate: int = 16000,
                    num_mel_bins: int = 128, frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0,
                    group: int | None = None) -> Iterator[np.ndarray]:
    """:func:`grid_fbank` of a waveform of `total` samples given as a stream of `blocks`, `group` chunks at a time.

    Yields float32 (g, rows, num_mel_bins) for consecutive groups of grid chunks (g ≤ `group`);
    stacked, they equal ``grid_fbank(waveform, num_chunks, ...)`` of the whole waveform cut or
    padded with zeros to `total` samples. Only the samples of one group are held at a time;
    `group` defaults to :data:`FBANK_GROUP`.
    """
    group = FBANK_GROUP if group is None else group
    if group < 1:
        raise ValueError(f"group must be at least 1, got {group}")
    size = total // num_chunks
    starts = (np.arange(num_chunks, dtype=np.int64) * total) // num_chunks
    stream = iter(blocks)
    pending: list[np.ndarray] = []  # received blocks from sample `held_from` on, not yet joined
    held = np.zeros(0, np.float32)
    held_from = received = 0
    for first in range(0, num_chunks, group):
        chunk_starts = starts[first : first + group]
        needed = int(chunk_starts[-1]) + size  # samples up to the end of this group's last chunk
        while received < needed:
            block = next(stream, None)
            if block is None:
                break
            block = np.asarray(block, dtype=np.float32)[: total - received]
            pending.append(block)
            received += block.size
        if pending:
            held = np.concatenate([held, *pending])
            pending = []
        if held_from + held.size < needed:  # the stream ended early: silence
            held = np.concatenate([held, np.zeros(needed - held_from - held.size, np.float32)])
        if size == 0:
            chunks = np.zeros((len(chunk_starts), 0), np.float32)
        else:
            chunks = held[(chunk_starts - held_from)[:, None] + np.arange(size)[None, :]]
        fbank = log_mel_fbank(chunks, sample_rate, num_mel_bins, frame_length_ms, frame_shift_ms)
        yield normalize_fbank(fbank).numpy()
        if first + group < num_chunks:  # keep the samples from the next group's first chunk on
            drop = int(starts[first + group]) - held_from
            held, held_from = held[drop:], held_from + drop
