"""Sounds of the home: procedural recipes, one microphone per camera, room noise.

Each :class:`~vicokd.synthetic.script.SoundEvent` is synthesised by its recipe (a function
of a random generator, a length in samples and the sample rate) at its level at 1 m, then
placed in the room: at every microphone its amplitude falls as 1/d with the distance d (metres,
at least 0.3 m) and it arrives after d/343 s. A source that moves with the actor is followed at
:data:`CONTROL_RATE` positions per second. Every microphone adds its own room noise (pink noise,
mains hum, sensor hiss). Output is mono float32 in [-1, 1] at 16 kHz.

Recipes are built from filtered noise, damped tones and harmonic series; they are meant to be
told apart by their spectra and rhythms the way the real ones are (a vacuum's loud broadband
motor against a brush's soft swishes, a call's ringing and voices against the near silence of
reading, gulps against crunching), not to be realistic recordings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.fft

from vicokd.synthetic.scene import Home
from vicokd.synthetic.script import ClipScript, SoundEvent

SAMPLE_RATE = 16000
CONTROL_RATE = 20.0  # positions per second for moving sources
SPEED_OF_SOUND = 343.0
MIN_DISTANCE = 0.3  # metres: the 1/d law is capped this close to a microphone

Recipe = Callable[[np.random.Generator, int, int], np.ndarray]


# --------------------------------------------------------------------------- building blocks


def _band(rng: np.random.Generator, n: int, low: float, high: float, sr: int, tilt: float = 0.0) -> np.ndarray:
    """Noise of unit RMS with energy between `low` and `high` Hz; `tilt` = spectral slope
    exponent of the amplitude (−0.5 gives pink noise)."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    freqs = np.fft.rfftfreq(n, 1 / sr)
    mask = (freqs >= low) & (freqs <= high)
    spectrum *= mask * np.power(np.maximum(freqs, 1.0), tilt)
    signal = np.fft.irfft(spectrum, n)
    rms = np.sqrt(np.mean(signal**2))
    return signal / rms if rms > 0 else signal


def _time(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def _fade(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear fade in over `attack` and out over `release` seconds (n ≥ 1 samples)."""
    t = _time(n, sr)
    return np.clip(np.minimum(t / attack, (t[-1] - t) / release), 0, 1)


def _decay(n: int, sr: int, tau: float) -> np.ndarray:
    return np.exp(-_time(n, sr) / tau)


def _add(out: np.ndarray, at: float, piece: np.ndarray, sr: int) -> None:
    """Add `piece` into `out` starting at `at` seconds (cut at the end)."""
    start = int(at * sr)
    if 0 <= start < len(out):
        stop = min(len(out), start + len(piece))
        out[start:stop] += piece[: stop - start]


def _hit(rng: np.random.Generator, sr: int, low: float, high: float, tau: float, length: float = 0.2
         ) -> np.ndarray:
    """A short impact: band noise with an exponential decay."""
    n = int(length * sr)
    return _band(rng, n, low, high, sr) * _decay(n, sr, tau)


def _ping(sr: int, freqs: Sequence[float], tau: float, length: float) -> np.ndarray:
    """A struck object: a few inharmonic partials decaying together."""
    t = _time(int(length * sr), sr)
    return sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate(freqs)) * np.exp(-t / tau)


def _voice(rng: np.random.Generator, n: int, sr: int, pitch: float, band: tuple[float, float] | None) -> np.ndarray:
    """Speech-like sound: syllables of a harmonic voice with moving formants and pauses.

    Pitch glides around `pitch` Hz; each syllable (0.12-0.3 s) gets a vowel-like spectral
    envelope (two formants); `band` limits it like a phone's loudspeaker.
    """
    out = np.zeros(n)
    t = 0.0
    duration = n / sr
    while t < duration:
        syllables = int(rng.integers(3, 9))
        for _ in range(syllables):
            length = float(rng.uniform(0.12, 0.3))
            m = int(length * sr)
            f0 = pitch * float(rng.uniform(0.85, 1.2)) * np.linspace(1.0, float(rng.uniform(0.9, 1.1)), m)
            phase = 2 * np.pi * np.cumsum(f0) / sr
            formants = (float(rng.uniform(300, 850)), float(rng.uniform(900, 2400)))
            wave = np.zeros(m)
            for k in range(1, int(3800 / pitch)):
                freq = k * pitch
                if band is not None and not band[0] <= freq <= band[1]:
                    continue
                weight = sum(np.exp(-((freq - f) / 160.0) ** 2) for f in formants) + 0.03
                wave += weight * np.sin(k * phase)
            wave *= np.sin(np.pi * np.linspace(0, 1, m)) ** 0.7
            _add(out, t, wave / max(np.abs(wave).max(), 1e-9), sr)
            t += length + float(rng.uniform(0.0, 0.06))
        t += float(rng.uniform(0.25, 0.9))  # pause between phrases
    return out


# ------------------------------------------------------------------------------- recipes


def footstep(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    out = np.zeros(n)
    _add(out, 0.0, 0.09 * _hit(rng, sr, 50, 400, 0.025) + 0.015 * _hit(rng, sr, 2000, 6000, 0.006), sr)
    return out


def door_open(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Latch click, then a creak (a rough tone gliding up)."""
    out = np.zeros(n)
    _add(out, 0.0, 0.25 * _hit(rng, sr, 1000, 5000, 0.01), sr)
    m = max(n - int(0.1 * sr), 0)
    t = _time(m, sr)
    f0 = np.linspace(320, 620, m) * (1 + 0.03 * np.sin(2 * np.pi * 7 * t))
    creak = np.sin(2 * np.pi * np.cumsum(f0) / sr) * (0.5 + 0.5 * np.abs(_band(rng, m, 20, 80, sr)))
    _add(out, 0.1, 0.05 * creak * _fade(m, sr, 0.1, 0.2), sr)
    return out


def door_close(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    out = np.zeros(n)
    _add(out, 0.0, 0.35 * _hit(rng, sr, 40, 300, 0.06, 0.4), sr)
    _add(out, 0.03, 0.2 * _hit(rng, sr, 1500, 5000, 0.008), sr)
    return out


def switch(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    out = np.zeros(n)
    _add(out, 0.0, 0.25 * _hit(rng, sr, 2000, 7000, 0.004, 0.05) + 0.05 * _ping(sr, (1250,), 0.02, 0.05), sr)
    return out


def curtain(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Fabric swish with the rattle of curtain rings."""
    swish = 0.06 * _band(rng, n, 1200, 6500, sr) * np.sin(np.pi * np.linspace(0, 1, n)) ** 0.5
    swish *= 0.6 + 0.4 * np.abs(_band(rng, n, 1, 6, sr)).clip(0, 2) / 2
    for _ in range(int(rng.integers(5, 12))):
        _add(swish, float(rng.uniform(0, n / sr)), 0.03 * _ping(sr, (3100, 4700, 6100), 0.03, 0.1), sr)
    return swish


def beeps(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A remote-control beep every 0.3 s at 2 kHz (as many as fit)."""
    out = np.zeros(n)
    beep = np.sin(2 * np.pi * 2000 * _time(int(0.12 * sr), sr)) * _fade(int(0.12 * sr), sr, 0.005, 0.01)
    for k in range(max(1, int(n / sr / 0.3))):
        _add(out, k * 0.3, 0.15 * beep, sr)
    return out


def ac_air(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Steady airflow of the air conditioner with a faint fan tone."""
    return 0.02 * _band(rng, n, 60, 3000, sr, tilt=-0.5) + 0.004 * np.sin(2 * np.pi * 97 * _time(n, sr))


def typing(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Key clicks in bursts of words with pauses."""
    out = np.zeros(n)
    t = 0.0
    while t < n / sr:
        for _ in range(int(rng.integers(3, 9))):
            click = 0.06 * _hit(rng, sr, 2000, 7000, 0.005, 0.04) + 0.03 * _hit(rng, sr, 300, 1200, 0.01, 0.04)
            _add(out, t, click * float(rng.uniform(0.6, 1.0)), sr)
            t += float(rng.uniform(0.08, 0.16))
        t += float(rng.uniform(0.3, 1.2))
    return out


def ring(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A ringtone: a short melody of bell-like notes, repeated."""
    out = np.zeros(n)
    notes = (1318.5, 1568.0, 1760.0, 1568.0)
    t = 0.0
    while t < n / sr:
        for f in notes:
            _add(out, t, 0.12 * _ping(sr, (f, 2 * f, 3.01 * f), 0.12, 0.16), sr)
            t += 0.16
        t += 0.5
    return out


def call(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A phone call on the loudspeaker: the user's voice and the caller's band-limited voice."""
    out = np.zeros(n)
    t = 0.0
    user_pitch, caller_pitch = float(rng.uniform(100, 140)), float(rng.uniform(170, 230))
    user = True
    while t < n / sr:
        turn = float(rng.uniform(1.5, 4.0))
        m = int(min(turn, n / sr - t) * sr)
        if user:
            piece = 0.09 * _voice(rng, m, sr, user_pitch, None)
        else:
            piece = 0.05 * _voice(rng, m, sr, caller_pitch, (300.0, 3400.0))
        _add(out, t, piece, sr)
        t += turn + float(rng.uniform(0.2, 0.6))
        user = not user
    return out


def browse(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Browsing on the phone: notification chimes and the quiet sound of short videos."""
    out = 0.03 * _voice(rng, n, sr, float(rng.uniform(150, 220)), (300.0, 3400.0))
    for _ in range(max(1, int(n / sr / 4))):
        _add(out, float(rng.uniform(0, n / sr)), 0.08 * _ping(sr, (1318.5, 1975.5), 0.15, 0.4), sr)
    return out


def page(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    return 0.04 * _band(rng, n, 1500, 7000, sr) * np.sin(np.pi * np.linspace(0, 1, n)) ** 2


def gulp(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A swallow: a low damped tone gliding up, with a little noise."""
    m = int(0.12 * sr)
    f0 = np.linspace(float(rng.uniform(230, 300)), float(rng.uniform(380, 460)), m)
    tone = np.sin(2 * np.pi * np.cumsum(f0) / sr) * _decay(m, sr, 0.04)
    out = np.zeros(n)
    _add(out, 0.0, 0.07 * tone + 0.01 * _hit(rng, sr, 100, 800, 0.03, 0.12), sr)
    return out


def clink(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Ceramic or metal struck lightly: inharmonic partials."""
    base = float(rng.uniform(2100, 2600))
    out = np.zeros(n)
    _add(out, 0.0, 0.08 * _ping(sr, (base, 1.71 * base, 2.37 * base), 0.09, 0.3), sr)
    return out


def bite(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    out = np.zeros(n)
    _add(out, 0.0, 0.08 * _hit(rng, sr, 800, 6000, 0.03, 0.15), sr)
    return out


def chew(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Crunching: clusters of crackles about three times a second."""
    out = np.zeros(n)
    t = 0.0
    while t < n / sr:
        for _ in range(int(rng.integers(4, 10))):
            _add(out, t + float(rng.uniform(0, 0.07)), 0.03 * _hit(rng, sr, 1000, 6500, 0.004, 0.02), sr)
        t += float(rng.uniform(0.25, 0.4))
    return out


def sweep(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """One push of a floor brush: a soft bristle swish."""
    return 0.04 * _band(rng, n, 800, 5000, sr) * np.sin(np.pi * np.linspace(0, 1, n))


def vacuum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A vacuum cleaner: loud broadband motor noise, a motor hum and a high whine."""
    t = _time(n, sr)
    f0 = float(rng.uniform(140, 190))
    hum = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
    whine = np.sin(2 * np.pi * float(rng.uniform(1800, 2600)) * t)
    level = 1 + 0.12 * _band(rng, n, 0.3, 2.0, sr)
    return (0.22 * _band(rng, n, 150, 7500, sr, tilt=-0.2) + 0.05 * hum + 0.02 * whine) * level * _fade(
        n, sr, 0.6, 0.8)


def sit(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Sinking into a cushion."""
    out = np.zeros(n)
    _add(out, 0.0, 0.2 * _hit(rng, sr, 40, 250, 0.08, 0.4) + 0.02 * _hit(rng, sr, 500, 3000, 0.05, 0.4), sr)
    return out


def chair(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A wooden chair creaking and its legs scraping the floor."""
    return 0.04 * _band(rng, n, 200, 1500, sr) * np.abs(_band(rng, n, 5, 25, sr)).clip(0, 2.5) / 2.5 * _fade(
        n, sr, 0.05, 0.15)


def bird(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Chirps outside: fast downward frequency sweeps."""
    out = np.zeros(n)
    t = 0.0
    while t < n / sr:
        m = int(float(rng.uniform(0.05, 0.12)) * sr)
        f = np.linspace(float(rng.uniform(4200, 5200)), float(rng.uniform(2800, 3600)), m)
        _add(out, t, 0.12 * np.sin(2 * np.pi * np.cumsum(f) / sr) * np.sin(np.pi * np.linspace(0, 1, m)), sr)
        t += float(rng.uniform(0.1, 0.5))
    return out


def car(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A car passing outside: low rumble swelling and fading."""
    return 0.12 * _band(rng, n, 40, 900, sr, tilt=-0.5) * np.sin(np.pi * np.linspace(0, 1, n)) ** 2


RECIPES: dict[str, Recipe] = {
    "footstep": footstep, "door_open": door_open, "door_close": door_close, "switch": switch,
    "curtain": curtain, "beeps": beeps, "ac_air": ac_air, "typing": typing, "ring": ring, "call": call,
    "browse": browse, "page": page, "gulp": gulp, "clink": clink, "bite": bite, "chew": chew,
    "sweep": sweep, "vacuum": vacuum, "sit": sit, "chair": chair, "bird": bird, "car": car,
}


# ---------------------------------------------------------------------------------- mixing


def _source_track(event: SoundEvent, script: ClipScript, n: int, sr: int) -> np.ndarray:
    """Source positions (K, 3) at CONTROL_RATE from the event's start (K = 1 for a fixed source)."""
    if isinstance(event.source, tuple):
        return np.array([event.source], dtype=np.float64)
    times = event.start + np.arange(int(np.ceil(n / sr * CONTROL_RATE)) + 1) / CONTROL_RATE
    xy = script.sample(("x", "y"), times)
    return np.stack([xy["x"], xy["y"], np.full_like(times, event.source)], axis=1)


def event_signals(script: ClipScript, microphones: np.ndarray, events: Sequence[SoundEvent],
                  sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The sum of `events` as heard at each microphone (V, 3 positions): (V, S) float64, no noise."""
    total = round(script.duration * sample_rate)
    out = np.zeros((len(microphones), total))
    for event in events:
        n = round(event.duration * sample_rate)
        if n <= 0:
            continue
        wave = RECIPES[event.kind](np.random.default_rng(event.seed), n, sample_rate)[:n] * event.gain
        if event.envelope is not None:
            wave = wave * np.interp(event.start + np.arange(n) / sample_rate, *script.channels[event.envelope])
        track = _source_track(event, script, n, sample_rate)
        dist = np.linalg.norm(track[None, :, :] - microphones[:, None, :], axis=2)  # (V, K)
        gain = 1.0 / np.maximum(dist, MIN_DISTANCE)  # (V, 1) for a fixed source
        if gain.shape[1] > 1:  # a moving source: follow it sample by sample
            control = np.arange(gain.shape[1]) * (sample_rate / CONTROL_RATE)
            gain = np.stack([np.interp(np.arange(n), control, g) for g in gain])
        for v in range(len(microphones)):
            start = round(event.start * sample_rate) + round(dist[v, 0] / SPEED_OF_SOUND * sample_rate)
            stop = min(total, start + n)
            if start < stop:
                out[v, start:stop] += (wave * gain[v])[: stop - start]
    return out


def room_noise(rng: np.random.Generator, views: int, samples: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Each microphone's own background (V, S) float32: pink room noise (unit RMS, 20 Hz to
    8 kHz, amplitude ∝ f^−1/2, drawn in the frequency domain at the next FFT-friendly length and
    cut to S), 50 Hz mains hum of random phase and white hiss, scaled by a level in [0.7, 1.3].

    All views in one float32 transform: the background was a sixth of the synthesis in float64
    with one transform per view at lengths with large prime factors.
    """
    level = rng.uniform(0.7, 1.3, views).astype(np.float32)[:, None]
    phase = rng.uniform(0, 2 * np.pi, views).astype(np.float32)[:, None]
    length = scipy.fft.next_fast_len(samples, real=True)
    freqs = np.fft.rfftfreq(length, 1 / sample_rate)
    shape = (((freqs >= 20) & (freqs <= 8000)) * np.power(np.maximum(freqs, 1.0), -0.5)).astype(np.float32)
    spectrum = np.empty((views, len(freqs)), np.complex64)
    spectrum.real = rng.standard_normal(spectrum.shape, dtype=np.float32)
    spectrum.imag = rng.standard_normal(spectrum.shape, dtype=np.float32)
    spectrum *= shape
    pink = scipy.fft.irfft(spectrum, length, axis=1)[:, :samples]
    pink /= np.maximum(np.sqrt(np.mean(pink**2, axis=1, keepdims=True)), 1e-12)
    hiss = rng.standard_normal((views, samples), dtype=np.float32)
    t = np.arange(samples, dtype=np.float32) / np.float32(sample_rate)
    hum = np.sin(np.float32(2 * np.pi * 50) * t + phase)
    return level * (0.0025 * pink + 0.0006 * hiss + 0.0008 * hum)


def microphone_audio(home: Home, script: ClipScript, seed: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """All sounds of the clip plus room noise at each camera's microphone: (V, S) float32 in [-1, 1]."""
    mics = np.array([c.position for c in home.cameras])
    signal = event_signals(script, mics, script.sounds, sample_rate)
    signal += room_noise(np.random.default_rng(seed), len(mics), signal.shape[1], sample_rate)
    return np.clip(signal, -1.0, 1.0).astype(np.float32)
