"""What the simulator knows about every grid frame, without action labels: pretraining targets.

For each clip of a synthetic home, at the 2.5-FPS grid (frame j at time j / 2.5 s), per view
where the camera matters and per clip otherwise:

* ``mask`` (V, L, gh, gw): share of each cell of a gh × gw grid over the image covered by the
  seen actor (rays cast at ``samples`` × ``samples`` points per cell, depth-tested against the
  furniture and walls). The grid matches a ViT's patch grid when the image is resized to the
  model's input (aspect ignored), so a cell is a patch;
* ``pose`` (L, 3): ``sit``, ``bend``, ``walk`` levels (0..1) of :mod:`.actor`;
* ``hand_mouth`` (L,): 1 when a hand target is within :data:`MOUTH_RADIUS` of the mouth;
* ``props`` (L, 6): which prop of :data:`~vicokd.synthetic.actor.PROPS` is held;
* ``state`` (L, 5): the scene channels of :data:`~vicokd.synthetic.scene.STATE_CHANNELS`;
* ``present`` (L,): 1 while the actor is in the room;
* :func:`sound_targets` (L, K): per grid chunk (the audio of [j / 2.5, (j + 1) / 2.5) s), the share
  of it during which a sound of each kind of :data:`SOUND_KINDS` plays (the recipes of
  :mod:`.audio`: vacuum, gulp, chew, ring, footstep, door, ...). The kind of a sound, never the
  action it belongs to: AudioSet-style event labels for pretraining an audio encoder.

Whether a camera sees the actor at all is the generator's ``visibility.npz``. Nothing here
renders pixels or writes videos; the script of a clip is planned again from the generator's
options (:func:`vicokd.synthetic.generate.plan_dataset`), which is exact: the same options
give the same scripts.
"""

from __future__ import annotations

import functools

import numpy as np

from vicokd.data.sampling import grid_length
from vicokd.synthetic.actor import PROPS, Capsules, mouth, pose_capsules
from vicokd.synthetic.audio import RECIPES
from vicokd.synthetic.render import GRID_FPS, StaticLayer, cast_capsules, frame_times
from vicokd.synthetic.scene import STATE_CHANNELS, Camera, Home
from vicokd.synthetic.script import ClipScript

POSE_TARGETS = ("sit", "bend", "walk")
MOUTH_RADIUS = 0.15  # metres between a hand target and the mouth that count as "hand at the mouth"
SOUND_KINDS: tuple[str, ...] = tuple(sorted(RECIPES))


class MaskCaster:
    """Rays of one camera through `samples`² points of each cell of a `grid` = (gh, gw) over an
    image of `size` = (W, H), with the static scene's depth along each ray."""

    def __init__(self, home: Home, camera: Camera, size: tuple[int, int], grid: tuple[int, int], samples: int):
        width, height = size
        rows_n, cols_n = grid[0] * samples, grid[1] * samples
        rows = (np.arange(rows_n) + 0.5) * height / rows_n
        cols = (np.arange(cols_n) + 0.5) * width / cols_n
        grid_rows, grid_cols = np.meshgrid(rows, cols, indexing="ij")
        self.layer = StaticLayer(home, camera, size, grid_rows, grid_cols)
        self.grid, self.samples = grid, samples
        self.all = np.arange(rows_n * cols_n)

    def mask(self, caps_frame: Capsules, door: float) -> np.ndarray:
        """Share (gh, gw) of each cell's rays that hit the actor before the static scene."""
        t, _, _ = cast_capsules(self.layer.origin, self.layer.dirs, caps_frame)
        seen = np.isfinite(t) & (t < self.layer.depth(self.all, door))
        gh, gw = self.grid
        s = self.samples
        return seen.reshape(gh, s, gw, s).mean(axis=(1, 3)).astype(np.float32)


@functools.lru_cache(maxsize=2)
def _casters(home: Home, size: tuple[int, int], grid: tuple[int, int], samples: int) -> tuple[MaskCaster, ...]:
    """The views' mask casters, kept per process (their static scene is cast once)."""
    return tuple(MaskCaster(home, camera, size, grid, samples) for camera in home.cameras)


def grid_times(script: ClipScript, fps: float) -> np.ndarray:
    """Times (seconds) of the grid frames of a clip rendered at `fps` (the cache's frames)."""
    length = grid_length(len(frame_times(script.duration, fps)), fps, GRID_FPS)
    return np.arange(length) / GRID_FPS


def clip_targets(home: Home, script: ClipScript, size: tuple[int, int], fps: float,
                 grid: tuple[int, int] = (6, 6), samples: int = 4) -> dict[str, np.ndarray]:
    """Every target of one clip (see the module docstring), float32 arrays keyed by name."""
    times = grid_times(script, fps)
    pose = script.pose(times)
    state = script.state(times)
    caps = pose_capsules(pose, script.outfit)
    casters = _casters(home, size, grid, samples)
    length = len(times)
    mask = np.zeros((len(casters), length, *grid), dtype=np.float32)
    for j in range(length):
        frame = caps.frame(j)
        if not (frame.radius > 0).any():
            continue
        for v, caster in enumerate(casters):
            mask[v, j] = caster.mask(frame, float(state["door"][j]))
    sit = pose["sit"]
    mouths = np.stack([np.asarray(mouth(float(s))) for s in sit])  # (L, 3) body frame
    near = np.zeros(length, dtype=bool)
    for prefix in ("lh", "rh"):
        hand = np.stack([pose[f"{prefix}_f"], pose[f"{prefix}_l"], pose[f"{prefix}_u"]], axis=1)
        near |= np.linalg.norm(hand - mouths, axis=1) < MOUTH_RADIUS
    present = (pose["present"] >= 0.5).astype(np.float32)
    return {
        "mask": mask,
        "pose": np.stack([pose[n] for n in POSE_TARGETS], axis=1).astype(np.float32),
        "hand_mouth": (near & (present > 0)).astype(np.float32),
        "props": np.stack([(pose[p] >= 0.5) & (present > 0) for p in PROPS], axis=1).astype(np.float32),
        "state": np.stack([state[c] for c in STATE_CHANNELS], axis=1).astype(np.float32),
        "present": present,
    }


def sound_targets(script: ClipScript, length: int, fps: float = GRID_FPS) -> np.ndarray:
    """Share (L, K) of grid chunk j = [j / fps, (j + 1) / fps) s covered by sounds of each kind of
    :data:`SOUND_KINDS` (float32 in [0, 1]; overlapping sounds of one kind count once)."""
    starts = np.arange(length) / fps
    out = np.zeros((length, len(SOUND_KINDS)), dtype=np.float32)
    for k, kind in enumerate(SOUND_KINDS):
        spans = sorted((e.start, e.start + e.duration) for e in script.sounds if e.kind == kind and e.duration > 0)
        merged: list[list[float]] = []
        for begin, end in spans:
            if merged and begin <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([begin, end])
        for begin, end in merged:
            overlap = np.clip(np.minimum(starts + 1 / fps, end) - np.maximum(starts, begin), 0, None)
            out[:, k] += (overlap * fps).astype(np.float32)
    return np.clip(out, 0.0, 1.0)
