"""Decoding frames on the 2.5-FPS grid and audio fbank chunks from real mp4 files."""

import av
import numpy as np
import pytest
from skimage import data as photos

from vicokd.data.media import (
    audio_chunks,
    grid_fbank,
    log_mel_fbank,
    probe_video,
    read_audio,
    read_grid_frames,
    rgb_converter,
)
from vicokd.data.video_io import write_mp4
from vicokd.errors import DataError

from media_helpers import FPS, SAMPLE_RATE, SIZE, frame_colour, make_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "01" / "00-View2-Part1.mp4"
    make_video(path, 42, view=2, burst=(1.2, 1.6))
    return path


def test_probe(video):
    info = probe_video(video)
    assert info.fps == FPS and info.num_frames == 42 and info.has_audio
    assert info.grid_length() == 11  # ceil(42 / 4)


def test_grid_frames_are_the_right_source_frames(video):
    frames = read_grid_frames(video, SIZE)
    assert frames.shape == (11, *SIZE, 3) and frames.dtype == np.uint8
    for j in range(11):
        expected = frame_colour(4 * j, 2).astype(int)
        centre = frames[j, 10:-10, 10:-10].reshape(-1, 3).mean(0)
        assert np.abs(centre - expected).max() < 6, (j, centre, expected)


def test_seeking_gives_the_same_frames(video):
    everything = read_grid_frames(video, SIZE)
    picked = read_grid_frames(video, SIZE, indices=[7, 2])  # few frames: seek path
    np.testing.assert_array_equal(picked, everything[[7, 2]])
    resized = read_grid_frames(video, (32, 40), indices=np.arange(11))
    assert resized.shape == (11, 32, 40, 3)


def test_rgb_converter_gives_pyav_pixels(tmp_path):
    """One scaler context reused over frames: the pixels of PyAV's per-frame conversion, any size."""
    photo = photos.astronaut()[::4, ::4]  # (128, 128, 3), real pixels
    frames = np.stack([np.roll(photo, 9 * i, axis=1) for i in range(6)])
    path = tmp_path / "photo.mp4"
    write_mp4(path, frames, FPS)
    for size in ((128, 128), (60, 80), (37, 51)):
        convert = rgb_converter(size)
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                expected = frame.to_ndarray(format="rgb24", width=size[1], height=size[0])
                np.testing.assert_array_equal(convert(frame), expected)


def test_past_the_end_repeats_last_frame(video):
    frames = read_grid_frames(video, SIZE, indices=[11, 13])  # source frames 44, 52 > 41
    np.testing.assert_array_equal(frames[0], frames[1])
    centre = frames[0, 10:-10, 10:-10].reshape(-1, 3).mean(0)
    assert np.abs(centre - frame_colour(41, 2).astype(int)).max() < 6


def test_audio_decoding_and_chunks(video):
    wave = read_audio(video, SAMPLE_RATE)
    assert wave.dtype == np.float32 and abs(len(wave) - 4.2 * SAMPLE_RATE) < 0.05 * SAMPLE_RATE
    fbank = grid_fbank(wave, 11)
    # one chunk per grid frame, 0.38 s each -> 1 + (n - 400) // 160 rows
    n = len(wave) // 11
    assert fbank.shape == (11, 1 + (n - 400) // 160, 128)
    energy = fbank.mean(axis=(1, 2))
    # the 1 kHz burst at 1.2-1.6 s lands in the chunks of grid frames 3 and 4 (0.4 s each)
    assert set(np.argsort(energy)[-2:].tolist()) == {3, 4}


def test_audio_chunks_hand_computed():
    wave = np.arange(10, dtype=np.float32)
    chunks = audio_chunks(wave, 3)  # starts floor(j*10/3) = 0, 3, 6; length 3
    np.testing.assert_array_equal(chunks, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])


def test_fbank_matches_kaldi_reference_of_transformers():
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(6400)).astype(np.float32)
    mel = mel_filter_bank(num_frequency_bins=257, num_mel_filters=128, min_frequency=20, max_frequency=8000,
                          sampling_rate=16000, norm=None, mel_scale="kaldi", triangularize_in_mel_space=True)
    reference = spectrogram(wave, window_function(400, "hann", periodic=False), frame_length=400, hop_length=160,
                            fft_length=512, power=2.0, center=False, preemphasis=0.97, mel_filters=mel,
                            log_mel="log", mel_floor=1.192092955078125e-07, remove_dc_offset=True).T
    ours = log_mel_fbank(wave).numpy()
    assert ours.shape == reference.shape == (38, 128)
    np.testing.assert_allclose(ours, reference, atol=1e-3)


def test_video_without_audio(tmp_path):
    path = tmp_path / "silent.mp4"
    make_video(path, 10, view=1, audio=False)
    assert read_audio(path) is None
    assert not probe_video(path).has_audio


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match=r"missing.mp4: video file not found"):
        read_grid_frames(tmp_path / "missing.mp4", SIZE)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(DataError, match=r"bad.mp4: unreadable video"):
        probe_video(bad)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_rotated_view_is_decoded_upright(tmp_path, degrees):
    """A view stored turned, with a display matrix saying so (as phones and ceiling cameras record),
    decodes to the same upright pixels as the upright file: prepare, predict and stream all convert
    frames with rgb_converter (read_grid_frames here)."""
    photo = photos.astronaut()[::4, ::4][:96]  # (96, 128, 3), real pixels, not square
    upright = np.stack([np.roll(photo, 9 * i, axis=1) for i in range(5)])
    stored = np.stack([np.rot90(image, -degrees // 90) for image in upright])  # the sensor's orientation
    write_mp4(tmp_path / "upright.mp4", upright, FPS, crf=0)
    write_mp4(tmp_path / "turned.mp4", stored, FPS, crf=0, display_rotation=degrees)
    info = probe_video(tmp_path / "turned.mp4")
    assert (info.height, info.width) == photo.shape[:2]  # the size as shown (detect and quicklook read at it)
    for size in ((96, 128), (48, 64)):
        expected = read_grid_frames(tmp_path / "upright.mp4", size, grid_fps=FPS)
        decoded = read_grid_frames(tmp_path / "turned.mp4", size, grid_fps=FPS)
        assert decoded.shape == expected.shape == (5, *size, 3)
        error = np.abs(decoded.astype(int) - expected.astype(int)).mean()  # chroma subsampling differs a little
        half_turn_off = np.abs(decoded.astype(int) - np.rot90(expected, 2, axes=(1, 2)).astype(int)).mean()
        assert error < 4.0 and error < half_turn_off / 10
