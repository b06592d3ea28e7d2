"""Write an mp4 with PyAV: H.264 video (libx264, yuv420p) and an optional mono audio track,
AAC (lossy, as cameras record) or FLAC (lossless 16-bit, about ten times faster to encode).

The file appears atomically: it is written to a temporary file beside the target and renamed,
so a reader never sees half a video. Video frame ``i`` has presentation time ``i / fps``
seconds; audio sample ``n`` has time ``n / sample_rate`` seconds, so both tracks start at 0.
The streams are interleaved in time order as they are encoded.

Decoding notes: the AAC encoder works in frames of 1024 samples, so a decoder returns the track
padded with silence up to the next multiple of 1024 samples (at most 64 ms at 16 kHz); the
encoder delay is recorded in the file and removed by FFmpeg-based decoders (PyAV included),
so sample ``n`` decodes at sample ``n``. FLAC decodes to exactly the samples written, rounded
to 16 bits. H.264 is lossy: decoded pixels differ from the written
ones by a few grey levels at the default quality (``crf=18``).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vicokd.io import atomic_path

AAC_FRAME = 1024  # samples per AAC frame (FFmpeg's native encoder)
# codec → (PyAV sample format, samples handed to the encoder at a time)
AUDIO_CODECS = {"aac": ("fltp", AAC_FRAME), "flac": ("s16", 4096)}


def _rate(fps: float) -> Fraction:
    """`fps` as the exact fraction a container stores (29.97 → 30000/1001)."""
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def _check_inputs(frames: np.ndarray, audio: np.ndarray | None, sample_rate: int) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError("frames must hold at least one frame")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 (yuv420p) needs an even frame size, got {width}x{height}")
    if audio is not None:
        if audio.ndim != 1:
            raise ValueError(f"audio must be mono (S,), got shape {audio.shape}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")


def write_mp4(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    *,
    crf: int = 18,
    preset: str = "veryfast",
    keyframe_seconds: float = 2.0,
    audio_bitrate: int = 64000,
    audio_codec: str = "aac",
    display_rotation: int = 0,
) -> None:
    """Write `frames` (N, H, W, 3) uint8 RGB at `fps` frames per second to the mp4 `path`.

    `audio` is an optional mono waveform (S,) in [-1, 1] (values outside are clipped) at
    `sample_rate` Hz, stored as `audio_codec`: ``"aac"`` at `audio_bitrate` bit/s or ``"flac"``
    (lossless at 16 bits); its duration may differ from the video's. H and W must be even
    (yuv420p). `crf` is x264's constant quality (0 lossless-ish luma, 18 visually transparent,
    23 x264's default), `preset` its speed/size trade-off, and a key frame is placed every
    `keyframe_seconds` seconds (so readers can seek). The same inputs give the same file byte for
    byte with the same PyAV build (single-threaded x264 without its assembly: no code path that
    depends on the CPU). `display_rotation` (degrees, counterclockwise, a multiple of 90) is
    recorded in the stream's display matrix, as phones and ceiling cameras record how their
    stored images are turned: a player shows `frames` turned by it. Parent directories are
    created; an existing file is replaced atomically.
    """
    frames = np.asarray(frames)
    _check_inputs(frames, audio, sample_rate)
    if audio_codec not in AUDIO_CODECS:
        raise ValueError(f"audio_codec must be one of {', '.join(AUDIO_CODECS)}, got {audio_codec!r}")
    rate = _rate(fps)
    path = Path(path)
    with atomic_path(path) as tmp:
        _encode(str(tmp), frames, rate, audio, sample_rate, crf, preset, keyframe_seconds, audio_bitrate,
                audio_codec, display_rotation)


def _encode(
    filename: str,
    frames: np.ndarray,
    rate: Fraction,
    audio: np.ndarray | None,
    sample_rate: int,
    crf: int,
    preset: str,
    keyframe_seconds: float,
    audio_bitrate: int,
    audio_codec: str,
    display_rotation: int,
) -> None:
    """Encode and mux both streams into `filename`, audio interleaved up to each frame's time."""
    height, width = frames.shape[1:3]
    with av.open(filename, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = 1 / rate
        if display_rotation % 360:
            video.set_display_rotation(display_rotation)
        keyint = max(1, round(keyframe_seconds * float(rate)))
        # one encoder thread and x264's portable C code instead of its assembly: the same input then
        # gives the same bitstream however busy the machine is. With the assembly (AVX-512 kernels
        # on this project's CPU), a few macroblocks of a GOP came out differently in about one run
        # in four on a loaded machine (14 of 59); the C code costs ~0.05 s per 40-s view at 128 × 96, a tenth
        # of rendering it. Parallelism comes from encoding several files at once.
        video.options = {"crf": str(crf), "preset": preset, "g": str(keyint), "threads": "1",
                         "x264-params": "no-asm=1"}
        sound = None
        samples = np.zeros(0, np.float32)
        if audio is not None:
            sound = container.add_stream(audio_codec, rate=sample_rate, layout="mono")
            if audio_codec == "aac":
                sound.bit_rate = audio_bitrate
                sound.options = {"aac_coder": "fast"}
            samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
            if AUDIO_CODECS[audio_codec][0] == "s16":
                samples = np.round(samples * 32767).astype(np.int16)
        sent = 0  # audio samples handed to the encoder so far
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
            if sound is not None:
                until = min(len(samples), int((index + 1) / rate * sample_rate))
                sent = _encode_audio(container, sound, samples, sent, until, sample_rate)
        container.mux(video.encode(None))
        if sound is not None:
            _encode_audio(container, sound, samples, sent, len(samples), sample_rate)
            container.mux(sound.encode(None))


def _encode_audio(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    samples: np.ndarray,
    start: int,
    until: int,
    sample_rate: int,
) -> int:
    """Encode whole encoder frames of `samples[start:until]` (the tail too when `until` is the end).

    Returns the index of the first sample not yet encoded.
    """
    sample_format, frame_size = AUDIO_CODECS[stream.codec_context.name]
    last = len(samples)
    while start < until and (until - start >= frame_size or until == last):
        chunk = samples[start : min(start + frame_size, until)]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk[None, :]), format=sample_format, layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        container.mux(stream.encode(frame))
        start += len(chunk)
    return start
