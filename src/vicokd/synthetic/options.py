"""What `vicokd synth` is asked to make (:class:`SynthOptions`) and what it made (:class:`SynthSummary`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicokd.errors import ConfigError
from vicokd.synthetic.render import GRID_FPS
from vicokd.synthetic.scene import LAYOUT_JOIN, LAYOUTS, MAX_VIEWS
from vicokd.synthetic.script import CLASSES
from vicokd.synthetic.view_quality import ViewQualityStats

__all__ = ["MAX_SESSIONS", "SynthOptions", "SynthSummary"]

MAX_SESSIONS = 99  # session folders a home can have (two-digit names)


@dataclass(frozen=True)
class SynthOptions:
    """What to generate. `size` is (width, height) in pixels, `fps` the video frame rate (a
    multiple of 2.5 so that the 2.5-FPS grid falls on frames), `duration` the (min, max) clip
    length in seconds, `classes` the classes that are acted and labelled."""

    clips: int = 60
    views: int = 5
    seed: int = 0
    size: tuple[int, int] = (128, 96)
    fps: float = 5.0
    duration: tuple[float, float] = (20.0, 60.0)
    classes: tuple[str, ...] = CLASSES
    sessions: int = 8
    test_fraction: float = 0.3
    supersample: int = 2
    layout: str = "home1"  # camera layout (scene.LAYOUTS): home1 little overlap, home2 much; "home1+home2": both

    def validate(self) -> None:
        """Raise :class:`ConfigError` (one line, naming the option) for a bad value."""
        width, height = self.size
        checks = [
            (self.clips >= 1, f"--clips {self.clips}: need at least 1 clip"),
            (1 <= self.views <= MAX_VIEWS, f"--views {self.views}: the home has 1 to {MAX_VIEWS} camera mounts"),
            (16 <= width <= 1920 and 16 <= height <= 1080 and width % 2 == 0 and height % 2 == 0,
             f"--size {width}x{height}: width and height must be even, 16..1920 x 16..1080 (H.264)"),
            (self.fps > 0 and abs(self.fps / GRID_FPS - round(self.fps / GRID_FPS)) < 1e-9,
             f"--fps {self.fps:g}: must be a multiple of {GRID_FPS} so that the 2.5-FPS grid falls on frames"),
            (5.0 <= self.duration[0] <= self.duration[1] <= 600.0,
             f"--duration {self.duration[0]:g}-{self.duration[1]:g}: need 5 <= min <= max <= 600 seconds"),
            (1 <= self.sessions <= MAX_SESSIONS, f"--sessions {self.sessions}: need 1..{MAX_SESSIONS}"),
            (0.0 <= self.test_fraction < 1.0, f"--test {self.test_fraction:g}: need a share in [0, 1)"),
            (1 <= self.supersample <= 4, f"--supersample {self.supersample}: need 1..4"),
            (len(self.classes) > 0, "--classes: name at least one class"),
            (all(name in LAYOUTS for name in self.layout.split(LAYOUT_JOIN)),
             f"--layout {self.layout!r}: choose one of {', '.join(LAYOUTS)}, or several joined by '{LAYOUT_JOIN}'"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        unknown = [c for c in self.classes if c not in CLASSES]
        if unknown:
            raise ConfigError(f"--classes: unknown class {unknown[0]!r} (known: {', '.join(CLASSES)})")

    def to_json(self) -> dict[str, Any]:
        """The options as JSON; the default layout is left out, so homes made before layouts
        existed (all home1) keep their manifest."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        if values["layout"] == "home1":
            del values["layout"]
        return values


@dataclass(frozen=True)
class SynthSummary:
    """What a run made. Coverage per view: `floor_coverage` is the share of the open floor in
    view; `action_visibility` the share of labelled grid frames in which the actor is visible;
    `seen_by[n]` the share of labelled grid frames in which exactly n views see the actor;
    `view_disparity` the mean over view pairs of 1 − Jaccard of the labelled grid frames in which
    each sees the actor (:func:`.scene.pairwise_disparity`), `floor_disparity` the same of the open
    floor each sees;
    `view_quality` the VC moments (two views see the actor, one clear and one poor) and how well
    each view sees it (:mod:`.view_quality`)."""

    out: Path
    clips: int
    train: int
    test: int
    rendered: int
    seconds: float
    floor_coverage: tuple[float, ...]
    action_visibility: tuple[float, ...]
    seen_by: tuple[float, ...]
    segments: dict[str, int]
    view_disparity: float = 0.0
    floor_disparity: float = 0.0
    view_quality: ViewQualityStats | None = None

    def describe(self) -> str:
        """A short report for the terminal."""
        lines = [f"{self.out}: {self.clips} clips ({self.train} train, {self.test} test), "
                 f"{self.seconds / 60:.1f} min of video per view; {self.rendered} rendered now",
                 "view   floor seen   actor visible during actions"]
        for k, (floor, action) in enumerate(zip(self.floor_coverage, self.action_visibility)):
            lines.append(f"View{k + 1}  {100 * floor:9.0f} %   {100 * action:9.0f} %")
        lines.append("labelled time seen by 0, 1, 2, … views: "
                     + ", ".join(f"{100 * s:.0f} %" for s in self.seen_by))
        lines.append(f"view disparity (1 - Jaccard, mean over view pairs): {self.view_disparity:.2f} of the "
                     f"labelled frames seeing the actor, {self.floor_disparity:.2f} of the floor seen")
        if self.view_quality is not None:
            counts = self.view_quality.overall
            reasons = counts.reason_shares()
            lines.append(f"labelled time seen by >= 2 views: {100 * counts.multi_share:.0f} %; of it with one view "
                         f"clear and one poor (VC moments): {100 * counts.vc_share:.0f} % (far/small "
                         f"{100 * reasons['far']:.0f} %, partly hidden {100 * reasons['hidden']:.0f} %, "
                         f"both {100 * reasons['both']:.0f} %)")
        return "\n".join(lines)
