"""The demo's synthetic home: its classes and generator options, shared by `demo` and `pretrain`."""

from __future__ import annotations

from vicokd.data.synthetic import SynthOptions

# The look-alike pairs whose sound tells them apart, plus Sitdown and Standup: with few clips,
# fewer classes leave more examples per class.
DEMO_CLASSES = ("Clean", "CleanVacuum", "Drink", "Eat", "ReadBook", "UsePhone", "Sitdown", "Standup")
DEMO_FRAME_SIZE = (80, 60)  # (width, height) of the rendered videos
DEMO_DURATION = (20.0, 40.0)  # clip length in seconds


def demo_synth_options(clips: int, views: int, seed: int) -> SynthOptions:
    """The generator's options of a demo home: small frames at the 2.5-FPS grid rate, 20-40 s clips."""
    return SynthOptions(clips=clips, views=views, seed=seed, size=DEMO_FRAME_SIZE, fps=2.5, duration=DEMO_DURATION,
                        classes=DEMO_CLASSES, supersample=1)
