"""write_mp4: H.264 + AAC with PyAV, decoded back with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vicokd.data.video_io import AAC_FRAME, write_mp4

SR = 16000


def _frames(count: int = 12, height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth moving gradients (compress well, so decoded ≈ written)."""
    y, x = np.mgrid[0:height, 0:width]
    frames = np.stack([np.stack([(x * 3 + 10 * i) % 256, (y * 4 + 5 * i) % 256, np.full_like(x, 40 + 15 * i)], -1)
                       for i in range(count)])
    return frames.astype(np.uint8)


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray | None, Fraction]:
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        has_audio = bool(container.streams.audio)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    audio = None
    if has_audio:
        with av.open(str(path)) as container:
            audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    return frames, audio, rate


def test_round_trip_frames_and_audio(tmp_path: Path) -> None:
    frames = _frames()
    audio = np.zeros(int(SR * 12 / 5), dtype=np.float32)
    audio[8000:8400] = np.random.default_rng(0).uniform(-0.5, 0.5, 400)  # a burst at 0.5 s
    path = tmp_path / "clip.mp4"
    write_mp4(path, frames, 5.0, audio)
    decoded, sound, rate = _decode(path)
    assert rate == 5
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 3
    assert sound is not None and len(audio) <= len(sound) < len(audio) + AAC_FRAME
    envelope = np.convolve(np.abs(sound), np.ones(200) / 200, mode="same")
    assert abs(int(np.argmax(envelope)) - 8200) < 150  # no shift: sample n decodes at n


def test_video_only_fractional_rate_and_determinism(tmp_path: Path) -> None:
    frames = _frames(count=5)
    write_mp4(tmp_path / "a.mp4", frames, 2.5)
    write_mp4(tmp_path / "b.mp4", frames, 2.5)
    first, sound, rate = _decode(tmp_path / "a.mp4")
    second, _, _ = _decode(tmp_path / "b.mp4")
    assert sound is None and rate == Fraction(5, 2)
    assert np.array_equal(first, second)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_atomic_replace_and_no_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "clip.mp4"
    write_mp4(path, _frames(count=3), 5.0)
    write_mp4(path, _frames(count=6), 5.0)
    assert len(_decode(path)[0]) == 6
    with pytest.raises(ValueError, match="even"):
        write_mp4(path, np.zeros((2, 47, 64, 3), np.uint8), 5.0)
    assert len(_decode(path)[0]) == 6  # a failed write leaves the old file alone
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize(("frames", "audio", "fps", "message"), [
    (np.zeros((2, 48, 64), np.uint8), None, 5.0, "uint8"),
    (np.zeros((2, 48, 64, 3), np.float32), None, 5.0, "uint8"),
    (np.zeros((0, 48, 64, 3), np.uint8), None, 5.0, "at least one"),
    (np.zeros((2, 48, 64, 3), np.uint8), np.zeros((2, 100), np.float32), 5.0, "mono"),
    (np.zeros((2, 48, 64, 3), np.uint8), None, 0.0, "fps"),
])
def test_bad_inputs(tmp_path: Path, frames: np.ndarray, audio: np.ndarray | None, fps: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_mp4(tmp_path / "x.mp4", frames, fps, audio)
    assert not list(tmp_path.iterdir())


def test_flac_track_decodes_to_the_written_samples(tmp_path: Path) -> None:
    frames = _frames(count=10)
    audio = np.random.default_rng(1).uniform(-0.4, 0.4, int(SR * 2)).astype(np.float32)  # the 2 s of 10 frames at 5 fps
    write_mp4(tmp_path / "clip.mp4", frames, 5.0, audio, audio_codec="flac")
    with av.open(str(tmp_path / "clip.mp4")) as container:
        assert container.streams.audio[0].codec_context.name == "flac"
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert sound.dtype == np.int16 and len(sound) == len(audio)
    assert np.array_equal(sound, np.round(audio * 32767).astype(np.int16))  # lossless at 16 bits
    with pytest.raises(ValueError, match="audio_codec"):
        write_mp4(tmp_path / "bad.mp4", frames, 5.0, audio, audio_codec="mp3")
