"""How well each view shows the action: the moments ViCoKD's view-aware consistency is for.

The VC loss (docs/reference/PAPER.md, Eq. 9-10) pulls together the per-view predictions of the views in which
a person is detected. It is meant for a person seen in two views while the action is clear in
one and poor in the other (far away, small, partly hidden). This module measures how often the
synthetic home contains such moments.

Per view and 2.5-FPS grid frame the simulator knows (on the visibility grid of
:meth:`~vicokd.synthetic.render.ViewRenderer.body_cells`, :data:`VIS_WIDTH` columns):

* ``share`` = seen body cells / body cells: the share of the actor's projected body that is
  inside the image and not hidden by furniture or walls (the rule of ``visibility.npz``: the
  view sees the actor when ``share >= VISIBLE_SHARE`` = 0.25);
* ``height``: the actor's apparent size, the height of the upright body (:data:`BODY_HEIGHT`)
  at the depth of the torso's midpoint along the camera's optical axis, as a share of the image
  height. It depends on the distance only (not on posture nor on what hides the body), so that
  "far/small" and "partly hidden" are separate reasons. At the demo's 80 × 60 pixels a height
  of 0.4 is a 24-pixel-tall person (19 pixels in the demo model's 48-pixel input).

The rule, for a view that sees the actor (``share >= 0.25``):

* **poor** when ``share < POOR_SHARE`` = 0.5 (more than half of the body hidden or out of the
  image: reason *partly hidden*) or ``height < POOR_HEIGHT`` = 0.4 (reason *far/small*), or both;
* **clear** when ``share >= CLEAR_SHARE`` = 0.75 and ``height >= CLEAR_HEIGHT`` = 0.5;
* in between otherwise (neither clear nor poor), so that a clear/poor pair differs by a margin,
  not by a hair around one threshold.

Why these numbers: over the (view, labelled frame) pairs that see the actor in the demo's home
(100 clips, 80 × 60, seed 0) the seen share has median 0.81 and 10th percentile 0.55: under half
seen is the worst 8 %, three quarters or more is 64 %. The apparent height has median 0.50 and
never falls below 0.29: the room is 6 × 5 m, so nobody is absolutely small as at the far end of
a large home, and "far/small" can only mean the far part of this room: below 0.4 is the farthest
27 % (beyond about 4.5 m for a 64° camera), 0.5 and above the nearer half (within about 3.6 m).
Among the views that see the actor at one moment, the largest apparent height is a median 1.9
times the smallest. The share of VC moments moves with the thresholds: on that home 28 % of the
labelled time seen by two or more views with these, 10 % with far/small below 0.3 instead of
0.4, 45 % with partly hidden below 0.6 instead of 0.5.

A labelled grid frame (some action is going on) is a **VC moment** when at least two views see
the actor, at least one of them is clear and at least one is poor. Its reason is *far/small*
when every poor view is poor by size only, *partly hidden* when every poor view is poor by share
only, *both* otherwise.

Stored per clip in ``OUT/view_quality.npz`` (``.npz``, no pickles): one float32 array
(4, V, L) per clip key, rows :data:`FIELDS` = seen cells, in-image cells, body cells (whole
numbers, exact in float32) and ``height``; a ``__meta__`` entry holds JSON with the version,
the fields and the thresholds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vicokd.data.sampling import grid_length
from vicokd.errors import DataError
from vicokd.io import atomic_path
from vicokd.synthetic.actor import pose_capsules
from vicokd.synthetic.render import GRID_FPS, VIS_WIDTH, VISIBLE_SHARE, ViewRenderer, frame_times
from vicokd.synthetic.scene import Camera
from vicokd.synthetic.script import ClipScript

QUALITY_FILE = "view_quality.npz"
QUALITY_VERSION = 1
FIELDS = ("seen", "in_image", "body", "height")
BODY_HEIGHT = 1.68  # metres from the floor to the top of the head, upright (actor.py: 0.95 + 0.62 + 0.11)

CLEAR_SHARE = 0.75  # at least three quarters of the body seen ...
CLEAR_HEIGHT = 0.50  # ... and the upright body at least half the image height (within ~3.6 m)
POOR_SHARE = 0.50  # less than half of the body seen: partly hidden (furniture, walls or the image edge)
POOR_HEIGHT = 0.40  # the upright body under 40 % of the image height (farther than ~4.5 m): far/small

REASONS = ("far", "hidden", "both")
_META = "__meta__"


def apparent_height(camera: Camera, size: tuple[int, int], torso: np.ndarray) -> np.ndarray:
    """Height (F,) of the upright body at the depth of `torso` (F, 3, world points) as a share of
    the height of an image of `size` = (W, H): ``BODY_HEIGHT / (2 · depth · tan(vfov / 2))``, with
    depth along the optical axis; 0 where the point is at or behind the camera (depth ≤ 5 cm)."""
    _, _, depth = camera.project(torso, size)
    tan_y = camera.half_extent(size)[1]
    return np.where(depth > 0.05, BODY_HEIGHT / (2 * np.maximum(depth, 0.05) * tan_y), 0.0)


def clip_view_measures(renderers: Sequence[ViewRenderer], script: ClipScript, fps: float) -> np.ndarray:
    """Measures (4, V, L) float32 of one clip rendered at `fps`: rows :data:`FIELDS` per view and
    grid frame j (time j / 2.5 s), on the same frames as
    :func:`~vicokd.synthetic.render.grid_visibility` (``seen / body`` is its share)."""
    length = grid_length(len(frame_times(script.duration, fps)), fps, GRID_FPS)
    times = np.arange(length) / GRID_FPS
    caps = pose_capsules(script.pose(times), script.outfit)
    doors = script.state(times)["door"]
    present = (caps.radius > 0).any(axis=1)
    torso = (caps.start[:, 0] + caps.end[:, 0]) / 2  # capsule 0 runs from the pelvis to the neck
    out = np.zeros((len(FIELDS), len(renderers), length), dtype=np.float32)
    for v, renderer in enumerate(renderers):
        for j in range(length):
            out[:3, v, j] = renderer.body_cells(caps.frame(j), float(doors[j]))
        out[3, v] = np.where(present, apparent_height(renderer.camera, renderer.size, torso), 0.0)
    return out


def visible_shares(measures: np.ndarray) -> np.ndarray:
    """Seen share (V, L) float64 of the body from measures (4, V, L): seen / body, 0 where no body."""
    seen, body = measures[0].astype(np.float64), measures[2].astype(np.float64)
    return np.divide(seen, body, out=np.zeros_like(seen), where=body > 0)


@dataclass(frozen=True)
class ViewStates:
    """Per view and frame (boolean arrays of one shape): the view sees the actor (`visible`),
    is clear, is poor because far/small (`far`) or because partly hidden (`hidden`)."""

    visible: np.ndarray
    clear: np.ndarray
    far: np.ndarray
    hidden: np.ndarray

    @property
    def poor(self) -> np.ndarray:
        return self.far | self.hidden


def view_states(share: np.ndarray, height: np.ndarray) -> ViewStates:
    """Apply the rule of the module docstring to `share` and `height` (arrays of one shape)."""
    share, height = np.asarray(share, dtype=np.float64), np.asarray(height, dtype=np.float64)
    visible = share >= VISIBLE_SHARE
    return ViewStates(
        visible=visible,
        clear=visible & (share >= CLEAR_SHARE) & (height >= CLEAR_HEIGHT),
        far=visible & (height < POOR_HEIGHT),
        hidden=visible & (share < POOR_SHARE),
    )


def vc_moments(share: np.ndarray, height: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame, from `share` and `height` (V, L): ``(multi, vc, reason)``.

    `multi` (L,) bool: at least two views see the actor; `vc` (L,) bool: a VC moment (`multi`,
    one view clear and one poor); `reason` (L,) int: index into :data:`REASONS` for VC moments
    (far = every poor view poor by size only, hidden = by share only, both otherwise), −1 elsewhere.
    """
    states = view_states(share, height)
    multi = states.visible.sum(axis=0) >= 2
    vc = multi & states.clear.any(axis=0) & states.poor.any(axis=0)
    any_far = (states.far & ~states.hidden).any(axis=0)
    any_hidden = (states.hidden & ~states.far).any(axis=0)
    any_both = (states.far & states.hidden).any(axis=0)
    reason = np.where(any_both | (any_far & any_hidden), 2, np.where(any_far, 0, 1))
    return multi, vc, np.where(vc, reason, -1)


@dataclass(frozen=True)
class MomentCounts:
    """Labelled grid frames (one frame = 0.4 s): all of them (`labelled`), those seen by at least
    two views (`multi`), the VC moments (`vc`) and the VC moments by reason (`far`, `hidden`,
    `both`, as :data:`REASONS`)."""

    labelled: int = 0
    multi: int = 0
    vc: int = 0
    far: int = 0
    hidden: int = 0
    both: int = 0

    def __add__(self, other: MomentCounts) -> MomentCounts:
        return MomentCounts(*(a + b for a, b in zip(astuple(self), astuple(other))))

    @property
    def multi_share(self) -> float:
        """Share of the labelled time seen by at least two views."""
        return self.multi / max(self.labelled, 1)

    @property
    def vc_share(self) -> float:
        """Share of the ≥ 2-view labelled time that is a VC moment."""
        return self.vc / max(self.multi, 1)

    def reason_shares(self) -> dict[str, float]:
        """Share of the VC moments by reason (:data:`REASONS`)."""
        return {r: getattr(self, r) / max(self.vc, 1) for r in REASONS}


def count_moments(share: np.ndarray, height: np.ndarray, frames: np.ndarray) -> MomentCounts:
    """:class:`MomentCounts` over the grid frames where `frames` (L,) bool is set, from `share`
    and `height` (V, L)."""
    multi, vc, reason = vc_moments(share, height)
    return MomentCounts(int(frames.sum()), int((multi & frames).sum()), int((vc & frames).sum()),
                        *(int(((reason == i) & frames).sum()) for i in range(len(REASONS))))


VIEW_KINDS = ("clear", "between", "far", "hidden", "both", "hidden_edge")
QUANTILES = (10, 25, 50, 75, 90)


@dataclass(frozen=True)
class ViewQualityStats:
    """What :func:`quality_stats` measures over a home.

    `overall` counts labelled grid frames, `by_class[c]` the frames where class c is labelled.
    `view_frames` counts (view, labelled frame) pairs where the view sees the actor, by
    :data:`VIEW_KINDS`: ``clear``; ``between`` (neither clear nor poor); poor by size only
    (``far``), by share only (``hidden``) or by both (``both``); ``hidden_edge`` counts the
    poor-by-share pairs where more of the body is out of the image than behind furniture.
    `share_q` and `height_q` are the :data:`QUANTILES` percentiles of share and height over the
    same pairs.
    """

    overall: MomentCounts
    by_class: dict[str, MomentCounts]
    view_frames: dict[str, int]
    share_q: tuple[float, ...]
    height_q: tuple[float, ...]


def quality_stats(measures: Sequence[np.ndarray], labels: Sequence[np.ndarray], classes: Sequence[str]
                  ) -> ViewQualityStats:
    """Statistics of a home from per-clip `measures` (4, V, L) and frame `labels` (L, C)."""
    overall = MomentCounts()
    by_class = {c: MomentCounts() for c in classes}
    kinds = dict.fromkeys(VIEW_KINDS, 0)
    shares, heights = [], []
    for measure, label in zip(measures, labels):
        active = label.any(axis=1)
        share, height = visible_shares(measure), measure[3].astype(np.float64)
        overall += count_moments(share, height, active)
        for i, c in enumerate(classes):
            by_class[c] += count_moments(share, height, label[:, i] > 0)
        states = view_states(share[:, active], height[:, active])
        far, hidden = states.far, states.hidden
        edge = (measure[2] - measure[1] > measure[1] - measure[0])[:, active]  # more out of the image than hidden
        for kind, mask in (("clear", states.clear), ("between", states.visible & ~states.clear & ~states.poor),
                           ("far", far & ~hidden), ("hidden", hidden & ~far), ("both", far & hidden),
                           ("hidden_edge", hidden & edge)):
            kinds[kind] += int(mask.sum())
        shares.append(share[:, active][states.visible])
        heights.append(height[:, active][states.visible])
    share_q: tuple[float, ...] = ()
    height_q: tuple[float, ...] = ()
    if sum(len(s) for s in shares):
        share_q = tuple(float(q) for q in np.percentile(np.concatenate(shares), QUANTILES))
        height_q = tuple(float(q) for q in np.percentile(np.concatenate(heights), QUANTILES))
    return ViewQualityStats(overall, by_class, kinds, share_q, height_q)


# ------------------------------------------------------------------------------- the file


def _meta() -> dict[str, Any]:
    return {"version": QUALITY_VERSION, "fields": list(FIELDS), "grid_fps": GRID_FPS, "vis_width": VIS_WIDTH,
            "body_height": BODY_HEIGHT, "visible_share": VISIBLE_SHARE, "clear_share": CLEAR_SHARE,
            "clear_height": CLEAR_HEIGHT, "poor_share": POOR_SHARE, "poor_height": POOR_HEIGHT}


def read_view_quality(path: str | Path) -> dict[str, np.ndarray]:
    """Per clip key the measures (4, V, L) float32; a missing, foreign or older file gives {}
    (the generator then measures again)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(bytes(archive[_META]).decode()) if _META in archive.files else {}
            if meta.get("version") != QUALITY_VERSION or meta.get("fields") != list(FIELDS):
                return {}
            return {name: archive[name].astype(np.float32) for name in archive.files if name != _META}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable view-quality file ({exc})") from None


def write_view_quality(path: str | Path, measures: dict[str, np.ndarray], *, merge: bool = True,
                       compress: bool = True) -> None:
    """Atomically write `measures` (clip key → (4, V, L)), merged over the file's entries when
    `merge`. Thresholds in the header are those of this module when written. `compress` False
    writes a plain ``.npz`` (the generator's per-clip saves: each rewrites the whole file)."""
    path = Path(path)
    merged = read_view_quality(path) if merge else {}
    merged.update({k: np.asarray(v, dtype=np.float32) for k, v in measures.items()})
    for key, value in merged.items():
        if value.ndim != 3 or value.shape[0] != len(FIELDS):
            raise ValueError(f"view quality of {key!r} must be ({len(FIELDS)}, V, L), got shape {value.shape}")
    arrays = {**merged, _META: np.frombuffer(json.dumps(_meta()).encode(), dtype=np.uint8)}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        (np.savez_compressed if compress else np.savez)(handle, **arrays)
