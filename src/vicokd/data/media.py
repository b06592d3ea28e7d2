"""Decode frames and audio with PyAV; Kaldi-compatible log-mel filter banks in torch.

Frames: the 2.5-FPS grid of :mod:`vicokd.data.sampling` (source frame ``j·interval`` is grid
frame j), converted to RGB and resized to (H, W) by FFmpeg's scaler (aspect ignored, as the
reference code). :func:`read_grid_frames` decodes sequentially when most grid frames are wanted
and seeks to each wanted frame when only a few are.

Audio: the view's own track, mono, resampled to 16 kHz float32 in [-1, 1]; cut into L equal
chunks (chunk j goes with grid frame j); per chunk a Kaldi-style log-mel fbank: 25 ms Hanning
window, 10 ms shift, DC offset removed, pre-emphasis 0.97, 512-point power spectrum, 128
triangular mel filters (Kaldi mel scale, 20 Hz – Nyquist), ``log(max(x, ε))``, no dither,
no energy, snip edges: ``1 + (n − 400) // 160`` rows for n samples (38 for a 0.4 s chunk).
Normalised as the AST feature extractor does: ``(x + 4.2677393) / (2 · 4.5689974)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from vicokd.data.sampling import grid_interval
from vicokd.errors import DataError

AST_MEAN = -4.2677393
AST_STD = 4.5689974
_LOG_FLOOR = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class VideoInfo:
    """Stream facts needed for the grid: frame rate, frame count, whether an audio track exists."""

    fps: float
    num_frames: int
    has_audio: bool
    width: int
    height: int

    def grid_length(self, fps: float = 2.5) -> int:
        return math.ceil(self.num_frames / grid_interval(self.fps, fps))


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise DataError(f"{path}: unreadable video ({exc})") from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise DataError(f"{path}: no video stream")
    return container.streams.video[0]


def probe_video(path: str | Path) -> VideoInfo:
    """Frame rate, frame count (decoded when the container does not say) and audio presence."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise DataError(f"{path}: video stream has no frame rate")
        count = stream.frames
        if not count:
            try:
                count = sum(1 for _ in container.decode(stream))
            except av.error.FFmpegError as exc:
                raise DataError(f"{path}: corrupt video ({exc})") from None
        return VideoInfo(float(rate), int(count), bool(container.streams.audio),
                         stream.codec_context.width, stream.codec_context.height)


def _frame_index(frame: av.VideoFrame, stream: av.video.stream.VideoStream, fps: float) -> int:
    start = stream.start_time or 0
    return round(float((frame.pts - start) * stream.time_base) * fps)


def read_grid_frames(
    path: str | Path,
    size: tuple[int, int],
    grid_fps: float = 2.5,
    indices: np.ndarray | list[int] | None = None,
    length: int | None = None,
) -> np.ndarray:
    """Decode grid frames of a video as uint8 RGB (N, H, W, 3), `size` = (H, W).

    `indices` are grid indices (all of the first `length` grid frames when None). Few indices
    (under a quarter of the grid) are read by seeking to the key frame before each one; otherwise
    the video is decoded once, front to back. A grid frame past the end repeats the last frame.
    """
    path = Path(path)
    height, width = size
    info = probe_video(path)
    interval = grid_interval(info.fps, grid_fps)
    total = info.grid_length(grid_fps) if length is None else length
    wanted = np.arange(total) if indices is None else np.asarray(indices, dtype=np.int64)
    targets = sorted({int(i) * interval for i in wanted})
    found: dict[int, np.ndarray] = {}

    def image(frame: av.VideoFrame) -> np.ndarray:
        return frame.to_ndarray(format="rgb24", width=width, height=height)

    def take(frames: Iterator[av.VideoFrame], wanted_sources: list[int]) -> None:
        """Store the first frame at or after each wanted source index; past the end, the last."""
        pending = list(wanted_sources)
        last = None
        for frame in frames:
            index = _frame_index(frame, stream, info.fps)
            while pending and index >= pending[0]:
                found[pending.pop(0)] = image(frame)
            if not pending:
                return
            last = frame
        if last is not None:
            for target in pending:
                found[target] = image(last)

    try:
        with _open(path) as container:
            stream = _video_stream(container, path)
            stream.thread_type = "AUTO"
            if len(targets) * 4 < info.grid_length(grid_fps):
                for target in targets:  # seek to the key frame before each target
                    offset = int(target / info.fps / stream.time_base) + (stream.start_time or 0)
                    container.seek(offset, stream=stream)
                    take(container.decode(stream), [target])
            else:
                take(container.decode(stream), targets)
    except av.error.FFmpegError as exc:
        raise DataError(f"{path}: corrupt video ({exc})") from None
    if len(found) < len(targets):
        raise DataError(f"{path}: no decodable frames")
    out = np.empty((len(wanted), height, width, 3), dtype=np.uint8)
    for row, i in enumerate(wanted):
        out[row] = found[int(i) * interval]
    return out


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray | None:
    """The file's first audio track as mono float32 in [-1, 1] at `sample_rate`; None if absent."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        pieces = []
        try:
            for frame in container.decode(stream):
                pieces.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            pieces.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: corrupt audio track ({exc})") from None
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces).astype(np.float32)


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
