"""The demo's synthetic home: its classes and generator options, shared by `demo` and `pretrain`."""

from __future__ import annotations

import json
from pathlib import Path

from vicokd.errors import VicokdError
from vicokd.pipeline.steps import Step
from vicokd.synthetic import CLASSES, SynthOptions, generate_home
from vicokd.synthetic.generate import MANIFEST
from vicokd.synthetic.options import SynthSummary
from vicokd.synthetic.scene import LAYOUT_JOIN, LAYOUTS

# MultiSensor-Home's 16 Home-1 classes, as the paper's tables use them: most are told apart by what
# the cameras see (place, posture, lamp, curtains, door, screen, air conditioner), a few look alike and
# are told apart by sound (Clean / CleanVacuum, ReadBook / UsePhone).
DEMO_CLASSES = CLASSES
DEMO_FRAME_SIZE = (80, 60)  # (width, height) of the rendered videos
DEMO_DURATION = (20.0, 40.0)  # clip length in seconds
ALL_LAYOUTS = LAYOUT_JOIN.join(LAYOUTS)  # the pretraining home films its clips with every layout in turn


def demo_synth_options(clips: int, views: int, seed: int, layout: str = "home1") -> SynthOptions:
    """The generator's options of a demo home: small frames at the 2.5-FPS grid rate, 20-40 s clips,
    cameras hung as `layout`."""
    return SynthOptions(clips=clips, views=views, seed=seed, size=DEMO_FRAME_SIZE, fps=2.5, duration=DEMO_DURATION,
                        classes=DEMO_CLASSES, supersample=1, layout=layout)


def synthesise_or_reuse(data: Path, synth: SynthOptions, step: Step, *, retry_hint: str, workers: int,
                        progress: bool) -> SynthSummary | None:
    """Render the home `synth` into `data`, or reuse it (``step.status = "reused"``, returns None).

    A folder made with other generator options, or not made by the generator at all, is refused
    with one line that ends with `retry_hint` (e.g. "choose another --out, or delete it").
    """
    manifest = data / MANIFEST
    if manifest.is_file():
        made = json.loads(manifest.read_text()).get("options")
        if made != synth.to_json():
            differing = [k for k, v in synth.to_json().items() if made is None or made.get(k) != v]
            raise VicokdError(f"{data}: made with other generator options ({', '.join(differing)}); {retry_hint}")
        if (data / "README.md").is_file() and (data / "test.json").is_file():
            step.status = "reused"
            return None
    elif data.exists() and any(data.iterdir()):
        raise VicokdError(f"{data}: exists and was not made by the generator; {retry_hint}")
    return generate_home(data, synth, workers=workers, progress=progress)
