"""The actor: a body of capsules (segments with a radius) posed from a few pose channels.

A pose is a set of channels, each an array over frames (see :data:`POSE_CHANNELS`):

* ``x``, ``y`` (metres): the pelvis' position over the floor; ``heading`` (radians);
* ``sit`` 0 → 1 from standing to seated (seat height 0.47 m), ``bend`` 0 → 1 from upright to
  the torso pitched forward by about 65°;
* ``walk`` 0 → 1 gait amplitude and ``stride`` the distance walked so far (metres; the legs
  and free arms swing with it, one gait cycle per 1.2 m);
* ``lh_*``, ``rh_*``: where the left and right hands go, in the body frame (``f`` forward,
  ``l`` to the left, ``u`` up from the floor, metres); the arm reaches as far as it can;
* ``present``: 1 in the room, 0 when outside (nothing is drawn);
* one channel per prop in :data:`PROPS` (held when ≥ 0.5).

Body poses named in the issue map onto these channels: walking (walk, stride), standing,
sitting (sit), reaching (a hand target at a world point), hand to mouth (a hand target at the
mouth), holding an object (hands in front of the chest with a prop), bending (bend).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vicokd.synthetic.scene import RGB

PROPS = ("phone", "book", "cup", "food", "broom", "vacuum")
HAND_CHANNELS = ("lh_f", "lh_l", "lh_u", "rh_f", "rh_l", "rh_u")
POSE_CHANNELS = ("x", "y", "heading", "sit", "bend", "walk", "stride", "present", *HAND_CHANNELS, *PROPS)

SEAT_HEIGHT = 0.47
UPPER_ARM = 0.3
FOREARM = 0.3
GAIT_CYCLE = 1.2  # metres walked per gait cycle (two steps)
MOUTH = (0.12, 0.0, 1.56)  # body-frame point in front of the mouth when standing upright


def rest_hands(sit: float) -> dict[str, float]:
    """Hand targets at rest: hanging by the sides standing, on the thighs seated."""
    f = 0.02 + 0.3 * sit
    up = 0.78 - 0.18 * sit
    return {"lh_f": f, "lh_l": 0.2 - 0.05 * sit, "lh_u": up, "rh_f": f, "rh_l": -0.2 + 0.05 * sit, "rh_u": up}


def mouth(sit: float) -> tuple[float, float, float]:
    """Body-frame point in front of the mouth (hand-to-mouth target) for a `sit` level."""
    return MOUTH[0], MOUTH[1], MOUTH[2] - (0.95 - _pelvis_height(sit))


def _pelvis_height(sit: np.ndarray | float) -> np.ndarray | float:
    return 0.95 - (0.95 - SEAT_HEIGHT - 0.06) * sit


@dataclass(frozen=True)
class Outfit:
    """Colours of the actor (RGB albedo in [0, 1]) and of the book they read."""

    shirt: RGB
    trousers: RGB
    skin: RGB
    hair: RGB
    shoes: RGB
    book: RGB


_SHIRTS = ((0.75, 0.22, 0.2), (0.2, 0.4, 0.7), (0.9, 0.75, 0.3), (0.3, 0.6, 0.35), (0.85, 0.85, 0.85),
           (0.55, 0.3, 0.6), (0.95, 0.5, 0.2))
_TROUSERS = ((0.15, 0.18, 0.3), (0.25, 0.25, 0.25), (0.45, 0.38, 0.28), (0.1, 0.1, 0.12))
_SKINS = ((0.93, 0.76, 0.62), (0.78, 0.57, 0.42), (0.55, 0.38, 0.26), (0.98, 0.84, 0.72))
_HAIRS = ((0.1, 0.08, 0.06), (0.35, 0.22, 0.1), (0.8, 0.65, 0.35), (0.5, 0.5, 0.5))
_BOOKS = ((0.7, 0.15, 0.15), (0.15, 0.3, 0.65), (0.2, 0.55, 0.3))


def random_outfit(rng: np.random.Generator) -> Outfit:
    """Clothes, skin, hair and book colours drawn from small palettes."""

    def pick(palette: tuple[RGB, ...]) -> RGB:
        return palette[int(rng.integers(len(palette)))]

    return Outfit(pick(_SHIRTS), pick(_TROUSERS), pick(_SKINS), pick(_HAIRS), (0.12, 0.1, 0.1), pick(_BOOKS))


@dataclass(frozen=True)
class Capsules:
    """The posed body over F frames: K capsules from ``start`` to ``end`` (F, K, 3) in world
    metres with ``radius`` (F, K) (0 = not drawn); ``color`` (K, 3) albedo and ``top_color``
    (K, 3) for surfaces facing up (hair on the head)."""

    start: np.ndarray
    end: np.ndarray
    radius: np.ndarray
    color: np.ndarray
    top_color: np.ndarray

    def frame(self, i: int) -> Capsules:
        """Frame `i` alone, as a one-frame :class:`Capsules`."""
        return Capsules(self.start[i : i + 1], self.end[i : i + 1], self.radius[i : i + 1], self.color,
                        self.top_color)

    def points(self) -> np.ndarray:
        """All capsule end points (F, 2K, 3)."""
        return np.concatenate([self.start, self.end], axis=1)


def _v(forward: np.ndarray | float, left: np.ndarray | float, up: np.ndarray | float, count: int
       ) -> np.ndarray:
    """Body-frame vectors (F, 3) from components (scalars broadcast over F frames)."""
    parts = np.broadcast_arrays(np.asarray(forward, float), np.asarray(left, float), np.asarray(up, float),
                                np.zeros(count))
    return np.stack(parts[:3], axis=-1)


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _arm(shoulder: np.ndarray, target: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-bone arm from `shoulder` toward `target` (F, 3 body frame): (elbow, hand).

    The hand stops at the arm's reach; the elbow bends down and outward (`side` +1 left, −1 right).
    """
    v = target - shoulder
    dist = np.linalg.norm(v, axis=-1, keepdims=True)
    direction = v / np.maximum(dist, 1e-9)
    reach = np.minimum(dist, (UPPER_ARM + FOREARM) * 0.98)
    hand = shoulder + direction * reach
    half = reach / 2
    bend = np.sqrt(np.maximum(UPPER_ARM**2 - half**2, 0.0))
    pole = np.array([-0.3, 0.5 * side, -1.0])
    pole = _normalize(pole - (direction @ pole)[:, None] * direction)
    return shoulder + direction * half + pole * bend, hand


def pose_capsules(pose: dict[str, np.ndarray], outfit: Outfit) -> Capsules:
    """Capsules of the body (and held props) for every frame of `pose` (channels → (F,))."""
    count = len(pose["x"])
    sit, bend, walk = pose["sit"], pose["bend"], pose["walk"]
    held_right = np.clip(sum(pose[p] for p in ("phone", "food", "broom", "vacuum", "book")), 0, 1)
    held_left = np.clip(pose["book"] + pose["cup"], 0, 1)

    # torso: pelvis moves back as the torso pitches forward; lowered when seated
    pelvis = _v(-0.12 * bend, 0.0, _pelvis_height(sit), count)
    angle = 1.15 * bend
    axis = _v(np.sin(angle), 0.0, np.cos(angle), count)
    neck, head = pelvis + 0.47 * axis, pelvis + 0.62 * axis
    shoulders = [pelvis + 0.42 * axis + _v(0, s * 0.19, 0, count) for s in (1.0, -1.0)]
    hips = [pelvis + _v(0, s * 0.1, -0.06, count) for s in (1.0, -1.0)]

    # legs: gait swing standing, thighs horizontal seated, blended by `sit`
    phase = 2 * np.pi * pose["stride"] / GAIT_CYCLE
    legs = []
    for i, s in enumerate((1.0, -1.0)):
        swing = s * 0.28 * walk * np.sin(phase)
        lift = 0.08 * walk * np.maximum(0.0, s * np.cos(phase))
        hip = hips[i]
        stand_knee = hip + _v(0.5 * swing + 0.04 + 0.12 * bend, 0, -0.45 + 0.5 * lift, count)
        stand_ankle = _v(hip[:, 0] + swing, hip[:, 1], 0.08 + lift, count)
        sit_knee = hip + _v(0.45, 0.02 * s, 0.02, count)
        sit_ankle = sit_knee + _v(0.05, 0, -(_pelvis_height(1.0) - 0.02), count)
        knee = (1 - sit)[:, None] * stand_knee + sit[:, None] * sit_knee
        ankle = (1 - sit)[:, None] * stand_ankle + sit[:, None] * sit_ankle
        legs.append((hip, knee, ankle, ankle + _v(0.15, 0, -0.03, count)))

    # arms: hand targets from the channels, free arms swing against the legs while walking
    arms = []
    for i, (prefix, s, held) in enumerate((("lh", 1.0, held_left), ("rh", -1.0, held_right))):
        target = _v(pose[f"{prefix}_f"], pose[f"{prefix}_l"], pose[f"{prefix}_u"], count)
        target[:, 0] -= (1 - held) * s * 0.22 * walk * np.sin(phase)
        arms.append((shoulders[i], *_arm(shoulders[i], target, s)))
    (_, _, lhand), (_, relbow, rhand) = arms

    # props in the hands
    forearm_dir = _normalize(rhand - relbow)
    floor = _v(pose["rh_f"] + 0.35, pose["rh_l"], 0.06, count)
    sweeper = np.clip(pose["broom"] + pose["vacuum"], 0, 1)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | float, RGB, RGB | None]] = [
        (pelvis, neck, 0.15, outfit.shirt, None),
        (hips[0], hips[1], 0.13, outfit.trousers, None),
        (head, head, 0.11, outfit.skin, outfit.hair),
    ]
    for shoulder, elbow, hand in arms:
        parts += [(shoulder, elbow, 0.05, outfit.shirt, None), (elbow, hand, 0.04, outfit.skin, None),
                  (hand, hand, 0.045, outfit.skin, None)]
    for hip, knee, ankle, toe in legs:
        parts += [(hip, knee, 0.075, outfit.trousers, None), (knee, ankle, 0.06, outfit.trousers, None),
                  (ankle, toe, 0.045, outfit.shoes, None)]
    held = {p: (pose[p] >= 0.5).astype(float) for p in PROPS}
    # props at their real size and look (a lit phone screen, a white mug, a green plastic broom head, an
    # upright vacuum cleaner's yellow body along the lower half of its handle: colours no outfit, rug or sofa
    # has), so that what a real camera shows of them survives the demo's small frames
    # (docs/experiments/world.md)
    body_top = floor + 0.55 * (rhand - floor)
    parts += [
        (rhand, rhand + 0.15 * forearm_dir, 0.045 * held["phone"], (0.62, 0.8, 1.0), None),
        (lhand, rhand, 0.085 * held["book"], outfit.book, None),
        (lhand, lhand + _v(0, 0, 0.11, count), 0.05 * held["cup"], (0.95, 0.95, 0.92), None),
        (rhand, rhand + 0.09 * forearm_dir, 0.045 * held["food"], (0.95, 0.8, 0.3), None),
        (rhand, floor, 0.02 * (sweeper >= 0.5), (0.55, 0.55, 0.58), None),
        (floor - _v(0, 0.16, 0, count), floor + _v(0, 0.16, 0, count), 0.045 * held["broom"], (0.2, 0.65, 0.3),
         None),
        (floor - _v(0, 0.16, 0, count), floor + _v(0, 0.16, 0, count), 0.06 * held["vacuum"], (0.25, 0.25, 0.28),
         None),
        (floor + 0.12 * (rhand - floor), body_top, 0.1 * held["vacuum"], (0.95, 0.8, 0.1), None),
    ]

    # body frame → world
    cos, sin = np.cos(pose["heading"]), np.sin(pose["heading"])

    def world(p: np.ndarray) -> np.ndarray:
        return np.stack([pose["x"] + p[:, 0] * cos - p[:, 1] * sin, pose["y"] + p[:, 0] * sin + p[:, 1] * cos,
                         p[:, 2]], axis=-1)

    present = (pose["present"] >= 0.5).astype(float)[:, None]
    radius = np.stack([np.broadcast_to(np.asarray(r, float), (count,)) for _, _, r, _, _ in parts], axis=1)
    return Capsules(
        start=np.stack([world(a) for a, _, _, _, _ in parts], axis=1),
        end=np.stack([world(b) for _, b, _, _, _ in parts], axis=1),
        radius=radius * present,
        color=np.array([c for _, _, _, c, _ in parts]),
        top_color=np.array([c if t is None else t for _, _, _, c, t in parts]),
    )


def shoulder_height(sit: float) -> float:
    """Height of the shoulders above the floor when upright at a `sit` level."""
    return float(_pelvis_height(sit)) + 0.42


def to_body(point: tuple[float, float, float], x: float, y: float, heading: float) -> tuple[float, float, float]:
    """A world point as (forward, left, up) in the body frame of an actor at (x, y, heading)."""
    dx, dy = point[0] - x, point[1] - y
    return (dx * np.cos(heading) + dy * np.sin(heading), -dx * np.sin(heading) + dy * np.cos(heading), point[2])
