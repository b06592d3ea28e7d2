"""Action scripts: what happens in a clip, as keyframed channels, labelled segments and sounds.

A clip is planned as a sequence of activities in a home whose state carries over (where the
actor is, seated or standing, lamp, curtains, air conditioner). Each of the 16 Home-1 classes is
a script of location + body motion + scene change + sound, summarised in :data:`CLASS_SCRIPTS`.

Walking between places (footsteps), idling and background sounds (birds, a passing car, the
air conditioner's airflow) are not labelled. Segments overlap where it is natural: the next
seated activity starts while sitting down ends, and a drink can be taken while eating or using
the laptop (multi-label frames).

Channels are piecewise linear between keyframes (times in seconds); see
:mod:`vicokd.synthetic.actor` for the pose channels and
:data:`vicokd.synthetic.scene.STATE_CHANNELS` for the scene channels.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vicokd.synthetic.actor import (
    GAIT_CYCLE,
    POSE_CHANNELS,
    Outfit,
    mouth,
    rest_hands,
    shoulder_height,
    to_body,
)
from vicokd.synthetic.scene import STATE_CHANNELS, Home, Station, route

# class → (where, body motion, scene change, sound): what the simulation does for each class
CLASS_SCRIPTS: dict[str, tuple[str, str, str, str]] = {
    "AdjustAC": ("below the air conditioner", "raise a hand toward the unit", "the unit may start or stop "
                 "(vane, LED)", "remote beeps; airflow while running"),
    "Clean": ("open floor", "slow walk, bent forward, pushing a floor brush", "-", "soft bristle swishes"),
    "CleanVacuum": ("open floor", "the same motion as Clean, with a vacuum cleaner", "-",
                    "loud broadband motor, hum and whine"),
    "CloseCurtain": ("window", "both hands pull the curtains together", "the window is covered, the room "
                     "darkens", "fabric swish, curtain rings"),
    "Drink": ("anywhere, seated or standing", "cup to the mouth (hand to mouth)", "-",
              "gulps; the cup clinks when put down"),
    "Eat": ("dining table, seated", "hand from the plate to the mouth, repeatedly", "-",
            "cutlery clinks, bites, crunching"),
    "Enter": ("door", "walk in from the hallway", "the door opens and closes", "latch, creak, door shuts"),
    "Exit": ("door", "walk out to the hallway", "the door opens and closes", "latch, creak, door shuts"),
    "OpenCurtain": ("window", "both hands pull the curtains apart", "the window opens up, daylight",
                    "fabric swish, curtain rings"),
    "ReadBook": ("sofa, dining chair or standing at the bookshelf", "book held in both hands, head down",
                 "-", "a soft page turn now and then"),
    "Sitdown": ("sofa, dining chair or desk chair", "lower onto the seat", "-", "cushion thump or chair creak"),
    "Standup": ("a seat", "rise from the seat", "-", "chair creak"),
    "TurnOffLamp": ("floor lamp", "reach the switch", "the lamp goes dark", "switch click"),
    "TurnOnLamp": ("floor lamp", "reach the switch", "the lamp lights up", "switch click"),
    "UseLaptop": ("desk, seated", "hands on the keyboard", "the screen lights up", "typing clicks"),
    "UsePhone": ("anywhere, seated or standing", "a lit phone held in both hands (the pose of ReadBook)", "-",
                 "ringtone then a call (two speech-like voices), or chimes and video sound, or silence"),
}
CLASSES = tuple(CLASS_SCRIPTS)  # the 16 Home-1 classes, alphabetical
MAX_LABELS = 5  # labelled segments per clip (at least 2 when time allows)
# how readily an activity is chosen: Sitdown, Standup and Drink also happen inside other
# activities, so they are chosen less on their own (keeps the classes roughly balanced)
_CHOICE_WEIGHT = {"Sitdown": 0.25, "Standup": 0.25, "Drink": 0.5}
_STEP = 1e-3  # duration of a "sudden" change (a switch, a prop appearing)
_SEATS = ("sofa left", "sofa right", "dining south", "dining north", "desk")
# the quiet sounds of quiet activities (page turns, eating, a broom) at this share of their recipe's level:
# in a real room they are near the noise floor a few metres away (docs/experiments/world.md)
_QUIET = 0.4
_PHONE_CALL, _PHONE_BROWSE = 0.35, 0.25  # shares of phone uses that are a call, or chimes and video sound


@dataclass(frozen=True)
class SoundEvent:
    """A sound of the clip: recipe `kind` (see :mod:`vicokd.synthetic.audio`) from `start`
    for `duration` seconds, at `source`: a fixed point (x, y, z) in metres or a height above
    the actor's floor position (it then moves with the actor). `gain` scales its level at 1 m,
    `seed` makes its waveform, `envelope` names a scene channel that scales it over time, and
    `label` is the class it belongs to (None for background sounds)."""

    kind: str
    start: float
    duration: float
    source: tuple[float, float, float] | float
    gain: float = 1.0
    seed: int = 0
    envelope: str | None = None
    label: str | None = None


class Timeline:
    """Keyframed channels: each holds its last value until a change is scheduled.

    Changes must be scheduled in time order per channel; a change from `start` over `duration`
    seconds ramps linearly from the held value to the new one.
    """

    def __init__(self, initial: dict[str, float]):
        self.keys: dict[str, list[tuple[float, float]]] = {k: [(0.0, float(v))] for k, v in initial.items()}

    def now(self, channel: str) -> float:
        """The channel's value after its last scheduled change."""
        return self.keys[channel][-1][1]

    def set(self, channel: str, value: float, start: float, duration: float = _STEP) -> None:
        keys = self.keys[channel]
        last_time, last_value = keys[-1]
        if start < last_time - 1e-6:
            raise ValueError(f"channel {channel!r}: change at {start:.3f} s before the last one at {last_time:.3f} s")
        if start > last_time:
            keys.append((start, last_value))
        keys.append((max(start, last_time) + max(duration, _STEP), float(value)))

    def frozen(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Keyframes as (times, values) arrays per channel."""
        return {k: (np.array([t for t, _ in v]), np.array([x for _, x in v])) for k, v in self.keys.items()}


@dataclass(frozen=True)
class ClipScript:
    """Everything that happens in one clip of `duration` seconds.

    `channels` are keyframes (times, values) of every pose and scene channel, `segments` the
    labelled intervals (start, end, class) in seconds, `sounds` the sound events; `outfit` and
    `daylight` (0..1, outdoor light) are the session's.
    """

    duration: float
    channels: dict[str, tuple[np.ndarray, np.ndarray]]
    segments: tuple[tuple[float, float, str], ...]
    sounds: tuple[SoundEvent, ...]
    outfit: Outfit
    daylight: float

    def sample(self, names: tuple[str, ...], times: np.ndarray) -> dict[str, np.ndarray]:
        """Channel values at `times` (seconds)."""
        return {n: np.interp(times, *self.channels[n]) for n in names}

    def pose(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """The actor's pose channels at `times` (see :mod:`vicokd.synthetic.actor`)."""
        return self.sample(POSE_CHANNELS, times)

    def state(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """The scene channels (lamp, curtain, door, laptop, ac; 0..1) at `times`."""
        return self.sample(STATE_CHANNELS, times)

    def tricks(self) -> list[dict[str, object]]:
        """Segments in the annotation format: start, end (seconds, 2 decimals) and labels."""
        return [{"start": round(s, 2), "end": round(e, 2), "labels": [c]} for s, e, c in self.segments]


def _near(angle: float, current: float) -> float:
    """The angle equal to `angle` modulo 2π that is closest to `current`."""
    return current + (angle - current + math.pi) % (2 * math.pi) - math.pi


class _Planner:
    """Builds one clip: the actor's state, the timeline, labels and sounds as activities run."""

    def __init__(self, home: Home, rng: np.random.Generator, classes: frozenset[str], duration: float):
        self.home, self.rng, self.classes, self.duration = home, rng, classes, duration
        self.segments: list[tuple[float, float, str]] = []
        self.sounds: list[SoundEvent] = []
        self.used: list[str] = []
        self.t = 0.0
        self.inside = "Enter" not in classes or rng.random() < 0.75
        stations = [s for s in home.stations if s.name != "door"]
        self.station: Station | None = stations[int(rng.integers(len(stations)))] if self.inside else None
        self.seated = bool(self.station and self.station.seat and rng.random() < 0.5)
        initial = {c: 0.0 for c in POSE_CHANNELS} | rest_hands(float(self.seated))
        if self.station is None:
            initial.update(x=home.outside[0], y=home.outside[1], heading=0.0)
        else:
            position = self.station.seat if self.seated and self.station.seat else self.station.stand
            initial.update(x=position[0], y=position[1], heading=self.station.heading, present=1.0,
                           sit=float(self.seated))
        initial.update(lamp=float(rng.random() < 0.5), curtain=float(rng.random() < 0.55), door=0.0,
                       laptop=0.0, ac=float(rng.random() < 0.4))
        self.tl = Timeline(initial)

    # ------------------------------------------------------------------------ primitives

    def _label(self, name: str, start: float, end: float) -> None:
        if name in self.classes:
            self.segments.append((start, end, name))

    def _sound(self, kind: str, start: float, duration: float, source: tuple[float, float, float] | float,
               gain: float = 1.0, label: str | None = None, envelope: str | None = None) -> None:
        seed = int(self.rng.integers(2**31))
        self.sounds.append(SoundEvent(kind, start, duration, source, gain, seed, envelope, label))

    def _position(self) -> tuple[float, float, float]:
        return self.tl.now("x"), self.tl.now("y"), self.tl.now("heading")

    def _hands(self, targets: dict[str, float], start: float, duration: float) -> None:
        for name, value in targets.items():
            self.tl.set(name, value, start, duration)

    def _hand(self, prefix: str, target: tuple[float, float, float], start: float, duration: float) -> None:
        """Move one hand (`prefix` "lh" or "rh") to a body-frame target."""
        self._hands(dict(zip((f"{prefix}_f", f"{prefix}_l", f"{prefix}_u"), target)), start, duration)

    def _reach(self, prefix: str, point: tuple[float, float, float], start: float, duration: float) -> None:
        """Move a hand toward a world point (the arm stops at full reach)."""
        self._hand(prefix, to_body(point, *self._position()), start, duration)

    def _rest(self, start: float, duration: float) -> None:
        self._hands(rest_hands(self.tl.now("sit")), start, duration)

    def _prop(self, name: str, held: bool, at: float) -> None:
        self.tl.set(name, float(held), at)

    def _turn(self, heading: float, duration: float = 0.4) -> None:
        current = self.tl.now("heading")
        target = _near(heading, current)
        if abs(target - current) > 1e-3:
            self.tl.set("heading", target, self.t, duration)
            self.t += duration

    def _hold_pose(self, sit: float) -> dict[str, float]:
        """Both hands in front of the chest (holding a book or a phone)."""
        chest = shoulder_height(sit) - 0.22
        return {"lh_f": 0.32, "lh_l": 0.1, "lh_u": chest, "rh_f": 0.32, "rh_l": -0.1, "rh_u": chest}

    def _jitter(self, prefix: str, base: tuple[float, float, float], start: float, end: float,
                size: float) -> None:
        """Small random hand movements around `base` from `start` to `end` (typing, holding)."""
        t = start
        while t + 0.9 < end:
            step = float(self.rng.uniform(0.4, 0.8))
            offset = self.rng.uniform(-size, size, 3) * (1, 1, 0.5)
            self._hand(prefix, tuple(np.add(base, offset)), t, step)  # type: ignore[arg-type]
            t += step
        self._hand(prefix, base, t, max(end - t, _STEP))

    # -------------------------------------------------------------------------- movement

    def walk(self, goal: tuple[float, float], speed: float | None = None, facing: float | None = None,
             hands_free: bool = True, amplitude: float = 1.0, step_gain: float = 1.0) -> None:
        """Walk a collision-free route to `goal`, with footsteps, then turn to `facing`."""
        x, y, heading = self._position()
        path = route(self.home, (x, y), goal)
        speed = speed or float(self.rng.uniform(0.8, 1.1))
        t0 = t = self.t
        if hands_free:
            self._rest(t, 0.3)
        stride = self.tl.now("stride")
        half = GAIT_CYCLE / 2
        for a, b in itertools.pairwise(path):
            length = math.dist(a, b)
            if length < 1e-3:
                continue
            duration = length / speed
            heading = _near(math.atan2(b[1] - a[1], b[0] - a[0]), heading)
            self.tl.set("heading", heading, t, min(0.35, duration))
            self.tl.set("x", b[0], t, duration)
            self.tl.set("y", b[1], t, duration)
            self.tl.set("stride", stride + length, t, duration)
            for step in np.arange(math.floor(stride / half) + 1, (stride + length) / half) * half:
                f = (step - stride) / length
                position = (a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), 0.02)
                self._sound("footstep", t + f * duration, 0.12, position, step_gain)
            stride += length
            t += duration
        if t > t0:
            ramp = min(0.3, (t - t0) / 2)
            self.tl.set("walk", amplitude, t0, ramp)
            self.tl.set("walk", 0.0, t - ramp, ramp)
        self.t = max(t, t0 + 0.3) if hands_free else t  # the hands have come to rest
        if facing is not None:
            self._turn(facing)

    def go_to(self, station: Station) -> None:
        """Stand up if needed and walk to `station`, facing its direction."""
        if self.station is station:
            if not self.seated:
                self._turn(station.heading)
            return
        if self.seated:
            self.stand_up()
        self.walk(station.stand, facing=station.heading)
        self.station = station

    def sit_down(self) -> float:
        """Sit on the current station's seat; returns when the body comes to rest."""
        station = self.station
        assert station is not None and station.seat is not None
        t0, duration = self.t, float(self.rng.uniform(1.2, 1.8))
        self.tl.set("x", station.seat[0], t0, duration)
        self.tl.set("y", station.seat[1], t0, duration)
        self.tl.set("sit", 1.0, t0, duration)
        self.tl.set("bend", 0.35, t0, duration / 2)
        self.tl.set("bend", 0.0, t0 + duration / 2, duration / 2)
        self._hands(rest_hands(1.0), t0, duration)
        seat = (*station.seat, 0.45)
        self._sound("sit" if station.name.startswith("sofa") else "chair", t0 + 0.75 * duration, 0.5, seat,
                    label="Sitdown")
        self._label("Sitdown", t0, t0 + duration)
        self.t, self.seated = t0 + duration, True
        return self.t

    def stand_up(self) -> None:
        """Rise from the current seat to the station's standing place."""
        station = self.station
        assert station is not None
        t0, duration = self.t, float(self.rng.uniform(1.1, 1.6))
        self.tl.set("x", station.stand[0], t0, duration)
        self.tl.set("y", station.stand[1], t0, duration)
        self.tl.set("sit", 0.0, t0, duration)
        self.tl.set("bend", 0.4, t0, duration / 2)
        self.tl.set("bend", 0.0, t0 + duration / 2, duration / 2)
        self._hands(rest_hands(0.0), t0, duration)
        self._sound("chair", t0, 0.5, (*station.stand, 0.45), 0.7, label="Standup")
        self._label("Standup", t0, t0 + duration)
        self.t, self.seated = t0 + duration, False

    def idle(self, duration: float) -> None:
        """Stay in place; standing for more than 2 s, the actor turns to look around a little."""
        if self.inside and not self.seated and duration > 2:
            heading = self.tl.now("heading")
            self.tl.set("heading", heading + float(self.rng.uniform(-0.4, 0.4)), self.t + 0.5, 0.8)
            self.tl.set("heading", heading, self.t + duration - 1.0, 0.8)
        self.t += duration

    # -------------------------------------------------------------------------- activities

    def enter(self) -> None:
        t0 = self.t
        door = (0.0, self.home.outside[1], 1.0)
        self.tl.set("present", 1.0, t0)
        self.tl.set("door", 1.0, t0, 0.8)
        self._sound("door_open", t0, 0.9, door, label="Enter")
        self.t = t0 + 0.6
        inside = (1.2, self.home.outside[1])
        self.walk(inside)
        closed = self.t + 0.8
        self.tl.set("door", 0.0, self.t, 0.8)
        self._sound("door_close", closed - 0.15, 0.5, door, label="Enter")
        self._label("Enter", t0, closed)
        self.inside, self.station = True, None
        self.t = closed

    def exit(self) -> None:
        if self.seated:
            self.stand_up()
        self.walk((1.2, self.home.outside[1]), facing=math.pi)
        t0 = self.t
        door = (0.0, self.home.outside[1], 1.0)
        self.walk((0.45, self.home.outside[1]))
        self._reach("lh", (0.0, self.home.outside[1] - 0.35, 1.0), self.t, 0.5)
        self.tl.set("door", 1.0, self.t + 0.3, 0.8)
        self._sound("door_open", self.t + 0.3, 0.9, door, label="Exit")
        self.t += 1.0
        self.walk(self.home.outside)
        self.tl.set("present", 0.0, self.t)
        self.tl.set("door", 0.0, self.t, 0.8)
        self._sound("door_close", self.t + 0.65, 0.5, door, label="Exit")
        self._label("Exit", t0, self.t + 0.8)
        self.t += 0.8
        self.inside, self.station = False, None

    def switch_lamp(self) -> None:
        station = self.home.station("lamp")
        self.go_to(station)
        assert station.reach is not None
        turn_on = self.tl.now("lamp") < 0.5
        t0, reach = self.t, float(self.rng.uniform(0.6, 0.9))
        self._reach("rh", station.reach, t0, reach)
        click = t0 + reach + 0.1
        self.tl.set("lamp", float(turn_on), click, 0.05)
        name = "TurnOnLamp" if turn_on else "TurnOffLamp"
        self._sound("switch", click, 0.15, station.reach, label=name)
        self._rest(click + 0.3, 0.6)
        self.t = click + 0.9
        self._label(name, t0, self.t)

    def curtains(self) -> None:
        station = self.home.station("window")
        self.go_to(station)
        close = self.tl.now("curtain") < 0.5
        name = "CloseCurtain" if close else "OpenCurtain"
        window = self.home.window
        centre = (window.u[0] + window.u[1]) / 2
        y, z = self.home.size[1] - 0.1, 1.6
        sides, middle = (window.u[0] + 0.15, window.u[1] - 0.15), (centre - 0.05, centre + 0.05)
        start_x, end_x = (sides, middle) if close else (middle, sides)
        t0 = self.t
        for prefix, x in zip(("lh", "rh"), start_x):
            self._reach(prefix, (x, y, z), t0, 0.8)
        pull = float(self.rng.uniform(1.5, 2.5))
        t1 = t0 + 0.8
        for prefix, x in zip(("lh", "rh"), end_x):
            self._reach(prefix, (x, y, z), t1, pull)
        self.tl.set("curtain", float(close), t1, pull)
        self._sound("curtain", t1, pull, (centre, y, 2.0), label=name)
        self._rest(t1 + pull, 0.6)
        self.t = t1 + pull + 0.6
        self._label(name, t0, self.t)

    def adjust_ac(self) -> None:
        station = self.home.station("air conditioner")
        self.go_to(station)
        assert station.reach is not None
        t0 = self.t
        self._reach("rh", station.reach, t0, 0.8)
        beeps = int(self.rng.integers(2, 5))
        self._sound("beeps", t0 + 0.9, 0.3 * beeps, self.home.centre("air conditioner"), label="AdjustAC")
        if self.rng.random() < 0.6:
            self.tl.set("ac", 1.0 - round(self.tl.now("ac")), t0 + 1.0, 1.5)
        hold = float(self.rng.uniform(0.8, 1.8)) + 0.3 * beeps
        self._rest(t0 + 0.9 + hold, 0.7)
        self.t = t0 + 1.6 + hold
        self._label("AdjustAC", t0, self.t)

    def _seat_at(self, names: tuple[str, ...]) -> float:
        """Go to one of the seats `names` (staying if already seated there) and sit; returns the
        time from which the next activity may start (overlapping the end of sitting down)."""
        if self.seated and self.station is not None and self.station.name in names:
            return self.t
        station = self.home.station(names[int(self.rng.integers(len(names)))])
        self.go_to(station)
        end = self.sit_down()
        return end - float(self.rng.uniform(0.3, 0.8))

    def _drink(self, start: float, sips: int, from_table: bool) -> float:
        """Sips with the left hand from `start`; returns the end time. Labels Drink."""
        sit = self.tl.now("sit")
        low = (0.3, 0.15, shoulder_height(sit) - 0.35)
        t = start
        if from_table:
            self._hand("lh", (0.42, 0.2, 0.8), t, 0.6)
            t += 0.6
        self._prop("cup", True, t)
        for _ in range(sips):
            self._hand("lh", mouth(sit), t, 0.7)
            hold = float(self.rng.uniform(1.0, 1.8))
            for k in range(int(self.rng.integers(2, 4))):
                self._sound("gulp", t + 0.8 + k * hold / 3, 0.25, shoulder_height(sit) + 0.15, label="Drink")
            self._hand("lh", low, t + 0.7 + hold, 0.6)
            t += 1.3 + hold + float(self.rng.uniform(0.5, 1.5))
        self._hand("lh", (0.42, 0.2, 0.8) if from_table else low, t, 0.6)
        self._sound("clink", t + 0.6, 0.4, shoulder_height(sit) - 0.5, 0.8, label="Drink")
        self._prop("cup", False, t + 0.6)
        self._label("Drink", start, t + 0.6)
        return t + 0.6

    def _length(self, low: float, high: float) -> float:
        """A duration drawn in [low, high] seconds, shortened to fit the clip (at least 5 s)."""
        return min(float(self.rng.uniform(low, high)), max(5.0, self.duration - self.t - 1.0))

    def _may_add_drink(self, length: float) -> bool:
        room = MAX_LABELS - len(self.segments) > 1
        return "Drink" in self.classes and room and length > 10 and self.rng.random() < 0.4

    def use_laptop(self) -> None:
        t0 = self._seat_at(("desk",))
        length = self._length(8, 20)
        end = self.t + length
        self.tl.set("laptop", 1.0, t0, 0.6)
        keys = {"lh": (0.42, 0.12, 0.82), "rh": (0.42, -0.12, 0.82)}
        start = self.t
        for prefix, target in keys.items():
            self._hand(prefix, target, start, 0.7)
        self._sound("typing", start + 0.8, end - start - 1.6, self.home.centre("laptop"), label="UseLaptop")
        self._jitter("rh", keys["rh"], start + 0.7, end - 0.7, 0.03)
        if self._may_add_drink(length):
            sip_start = start + float(self.rng.uniform(2.0, length - 8.0))
            self._jitter("lh", keys["lh"], start + 0.7, sip_start, 0.03)
            after = self._drink(sip_start, 1, from_table=True)
            self._jitter("lh", keys["lh"], after, end - 0.7, 0.03)
        else:
            self._jitter("lh", keys["lh"], start + 0.7, end - 0.7, 0.03)
        self._rest(end - 0.7, 0.7)
        self.tl.set("laptop", 0.0, end - 0.4, 0.4)
        self._label("UseLaptop", t0, end)
        self.t = end

    def _hold_object(self, prop: str, label: str, label_start: float, start: float, end: float,
                     sound: str | None) -> None:
        """Hold a book or a phone in both hands from `start` to `end` (the same pose for both),
        with `sound` (a recipe) while holding; labels `label` from `label_start` to `end`."""
        sit = self.tl.now("sit")
        pose = self._hold_pose(sit)
        self._prop(prop, True, start)
        self._hands(pose, start, 0.7)
        self.tl.set("bend", 0.12, start, 0.7)
        t = start + 0.7
        if sound is not None:
            self._sound(sound, t + 0.3, end - t - 1.2, shoulder_height(sit) - 0.1, label=label)
        while end - 1.0 - t >= 3.0:  # a page turn (book) or a thumb move (phone) now and then
            t += min(float(self.rng.uniform(3.0, 6.0)), end - 1.0 - t)
            channel = "rh_l" if prop == "book" else "rh_u"
            moved = pose[channel] + (0.15 if prop == "book" else 0.03)
            self.tl.set(channel, moved, t - 0.5, 0.25)
            self.tl.set(channel, pose[channel], t - 0.25, 0.25)
            if prop == "book":
                self._sound("page", t - 0.4, 0.4, shoulder_height(sit) - 0.2, _QUIET, label=label)
        self._rest(end - 0.7, 0.7)
        self.tl.set("bend", 0.0, end - 0.7, 0.7)
        self._prop(prop, False, end - 0.3)
        self._label(label, label_start, end)

    def read_book(self) -> None:
        if not self.seated and self.rng.random() < 0.35:
            station = self.home.station("bookshelf")
            self.go_to(station)
            assert station.reach is not None
            label_start = self.t
            self._reach("rh", station.reach, self.t, 0.8)
            self.t += 0.9
        else:
            label_start = self._seat_at(_SEATS[:4])
        end = self.t + self._length(7, 18)
        self._hold_object("book", "ReadBook", label_start, self.t, end, None)
        self.t = end

    def use_phone(self) -> None:
        label_start = self._seat_at(_SEATS[:4]) if not self.seated and self.rng.random() < 0.5 else self.t
        end = self.t + self._length(7, 18)
        # a phone is mostly used in silence (messages, reading); a third of the uses are a call, a quarter
        # play chimes or a video
        use = self.rng.random()
        start = self.t
        if use < _PHONE_CALL:
            ring = float(self.rng.uniform(1.5, 3.0))
            self._sound("ring", start, ring, 0.9, label="UsePhone")
            start += ring
        sound = "call" if use < _PHONE_CALL else "browse" if use < _PHONE_CALL + _PHONE_BROWSE else None
        self._hold_object("phone", "UsePhone", label_start, start, end, sound)
        self.t = end

    def drink(self) -> None:
        at_table = self.station is not None and self.station.name in ("dining south", "dining north", "desk")
        self.t = self._drink(self.t, int(self.rng.integers(1, 4)), from_table=at_table and self.seated)

    def eat(self) -> None:
        t0 = self._seat_at(("dining south", "dining north"))
        length = self._length(8, 18)
        end = self.t + length
        sit = 1.0
        plate, resting, chew_height = (0.45, -0.05, 0.8), (0.3, -0.15, 0.8), shoulder_height(sit) + 0.15
        self._prop("food", True, t0)
        self._hand("lh", (0.3, 0.18, 0.8), self.t, 0.6)
        drink_at = self.t + float(self.rng.uniform(3, length - 7)) if self._may_add_drink(length) else None
        t = self.t
        while t < end - 3.0:
            self._hand("rh", plate, t, 0.5)
            self._sound("clink", t + 0.5, 0.3, 0.78, 0.5 * _QUIET, label="Eat")
            self._hand("rh", mouth(sit), t + 0.6, 0.6)
            self._sound("bite", t + 1.2, 0.2, chew_height, _QUIET, label="Eat")
            self._hand("rh", resting, t + 1.4, 0.5)
            chew = float(self.rng.uniform(1.0, 2.2))
            self._sound("chew", t + 1.5, chew, chew_height, _QUIET, label="Eat")
            t += 1.5 + chew
            if drink_at is not None and t >= drink_at and t < end - 7:
                t = self._drink(t, 1, from_table=True) + 0.3
                drink_at = None
        self._rest(max(t, end - 0.8), 0.8)
        self._prop("food", False, max(t, end - 0.8) + 0.8)
        end = max(end, t + 0.8)
        self._label("Eat", t0, end)
        self.t = end

    def sweep(self, vacuum: bool) -> None:
        area = self.home.clean_areas[int(self.rng.integers(len(self.home.clean_areas)))]

        def point() -> tuple[float, float]:
            return float(self.rng.uniform(area[0], area[2])), float(self.rng.uniform(area[1], area[3]))

        if self.seated:
            self.stand_up()
        self.walk(point())
        self.station = None
        name, prop = ("CleanVacuum", "vacuum") if vacuum else ("Clean", "broom")
        t0 = self.t
        end = t0 + self._length(7, 16)
        self._prop(prop, True, t0)
        self.tl.set("bend", 0.3, t0, 0.5)
        grip = {"lh": (0.22, 0.0, 1.02), "rh": (0.3, -0.1, 0.85)}
        for prefix, target in grip.items():
            self._hand(prefix, target, t0, 0.5)
        period = float(self.rng.uniform(0.9, 1.3))
        t = t0 + 0.5
        while t < end - period - 0.6:
            for reach in (0.28, 0.0):
                for prefix, target in grip.items():
                    self.tl.set(f"{prefix}_f", target[0] + reach, t, period / 2)
                if reach and not vacuum:
                    self._sound("sweep", t, period / 2, 0.05, _QUIET, label=name)
                t += period / 2
        self.t = t0 + 0.5
        while self.t < end - 3.0:
            self.walk(point(), speed=float(self.rng.uniform(0.3, 0.45)), hands_free=False, amplitude=0.5,
                      step_gain=0.5)
            if self.t < end - 2.0:
                self.idle(float(self.rng.uniform(0.5, 1.5)))
        end = max(end, t, self.t)
        if vacuum:
            self._sound("vacuum", t0, end - t0, 0.15, label=name)
        self._rest(end, 0.5)
        self.tl.set("bend", 0.0, end, 0.5)
        self._prop(prop, False, end + 0.5)
        self._label(name, t0, end + 0.5)
        self.t = end + 0.5

    def sit_somewhere(self) -> None:
        self._seat_at(_SEATS)

    # --------------------------------------------------------------------------- planning

    def activities(self) -> dict[str, tuple[Callable[[], None], float, int]]:
        """Activities possible now: class → (run, rough minimum seconds, labels it adds)."""
        if not self.inside:
            return {"Enter": (self.enter, 4.5, 1)}
        lamp, curtain = self.tl.now("lamp") > 0.5, self.tl.now("curtain") > 0.5
        rise = 2.0 if self.seated else 0.0
        moves = int(self.seated and "Standup" in self.classes)
        sits = int("Sitdown" in self.classes)
        found: dict[str, tuple[Callable[[], None], float, int]] = {
            "Exit": (self.exit, 9.0 + rise, 1 + moves),
            "TurnOffLamp" if lamp else "TurnOnLamp": (self.switch_lamp, 7.0 + rise, 1 + moves),
            "OpenCurtain" if curtain else "CloseCurtain": (self.curtains, 9.0 + rise, 1 + moves),
            "AdjustAC": (self.adjust_ac, 9.0 + rise, 1 + moves),
            "UseLaptop": (self.use_laptop, 14.0 + rise, 1 + moves + sits),
            "ReadBook": (self.read_book, 11.0 + rise, 1 + moves + sits),
            "UsePhone": (self.use_phone, 9.0, 1),
            "Drink": (self.drink, 5.0, 1),
            "Eat": (self.eat, 14.0 + rise, 1 + moves + sits),
            "Clean": (lambda: self.sweep(vacuum=False), 11.0 + rise, 1 + moves),
            "CleanVacuum": (lambda: self.sweep(vacuum=True), 11.0 + rise, 1 + moves),
        }
        if self.seated:
            found["Standup"] = (self.stand_up, 2.0, 1)
        else:
            found["Sitdown"] = (self.sit_somewhere, 7.0, 1)
        return found

    def plan(self) -> None:
        """Run activities until 2-5 labelled segments (as time allows), then wander or rest."""
        target = int(self.rng.integers(2, MAX_LABELS + 1))
        while len(self.segments) < target:
            remaining = self.duration - self.t
            room = MAX_LABELS - len(self.segments)
            options = [(name, run) for name, (run, seconds, labels) in self.activities().items()
                       if name in self.classes and seconds <= remaining - 1 and labels <= room]
            if not options:
                break
            last = len(self.segments) >= target - 1  # leaving suits the last action best
            weights = np.array([_CHOICE_WEIGHT.get(name, 1.0) * (0.15 if name in self.used else 1.0)
                                * ((2.0 if last else 0.3) if name == "Exit" else 1.0) for name, _ in options])
            name, run = options[int(self.rng.choice(len(options), p=weights / weights.sum()))]
            self.used.append(name)
            run()
            self.idle(float(self.rng.uniform(0.3, 2.0)))
        remaining = self.duration - self.t
        if self.inside and not self.seated and remaining > 8:
            stations = [s for s in self.home.stations if s.name not in ("door", "lamp")]
            self.go_to(stations[int(self.rng.integers(len(stations)))])
        self.background_sounds()

    def background_sounds(self) -> None:
        """Birds or a car outside the window, and the air conditioner's airflow while it runs."""
        window = ((self.home.window.u[0] + self.home.window.u[1]) / 2, self.home.size[1] + 2.0, 1.5)
        for _ in range(int(self.rng.integers(0, 3))):
            kind = "bird" if self.rng.random() < 0.6 else "car"
            length = float(self.rng.uniform(1.0, 2.5) if kind == "bird" else self.rng.uniform(3.0, 5.0))
            self._sound(kind, float(self.rng.uniform(0, max(self.duration - length, 0.1))), length, window)
        if max(v for _, v in self.tl.keys["ac"]) > 0:
            self._sound("ac_air", 0.0, self.duration, self.home.centre("air conditioner"), envelope="ac")


def plan_clip(home: Home, rng: np.random.Generator, duration: float, classes: tuple[str, ...], outfit: Outfit,
              daylight: float) -> ClipScript:
    """Plan one clip of `duration` seconds using the classes in `classes` (labels outside it are
    neither chosen as activities nor written; implied motions still happen). A plan with fewer
    than two labelled segments is drawn again (a few times) from the same random stream."""
    for _ in range(4):
        planner = _Planner(home, rng, frozenset(classes), duration)
        planner.plan()
        if len(planner.segments) >= 2:
            break
    segments = tuple(sorted((max(0.0, s), min(e, duration), c) for s, e, c in planner.segments
                            if min(e, duration) - max(0.0, s) >= 0.5))
    sounds = tuple(s for s in planner.sounds if s.start < duration)
    return ClipScript(duration, planner.tl.frozen(), segments, sounds, outfit, daylight)
