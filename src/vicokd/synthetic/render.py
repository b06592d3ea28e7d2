"""Ray-cast images of the home from one camera, with the actor drawn over the static scene.

Everything is vectorised over pixels with numpy. The static scene (room surfaces, furniture,
wall fixtures) is cast once per camera; a frame then only recombines its light terms for the
scene state of that moment (lamp, curtains, door, laptop screen, air conditioner) and casts the
actor's capsules inside the actor's bounding box, with a depth test against the static scene
(furniture in front hides the body; the body shows through the open door only).

Lighting is a small fixed model without shadows: a constant term, daylight from the window
(dimmed by closed curtains) and the lamp's light, each falling off with distance and facing.
Images are rendered at `supersample`² samples per pixel and averaged (anti-aliasing).

The actor's visibility in a view is the share of the body's projected area that is inside the
image and not hidden by furniture or walls, measured on a fixed grid (:data:`VIS_WIDTH` columns)
so that it does not depend on the output resolution. The actor counts as visible when that
share is at least :data:`VISIBLE_SHARE`.
"""

from __future__ import annotations

import numpy as np

from vicokd.data.sampling import grid_length
from vicokd.synthetic.actor import Capsules, pose_capsules
from vicokd.synthetic.scene import (
    HALLWAY_X,
    STATE_CHANNELS,
    Camera,
    Home,
    WallRect,
    intersect_boxes,
    intersect_room,
)
from vicokd.synthetic.script import ClipScript

VIS_WIDTH = 96  # columns of the grid on which visibility is measured
VISIBLE_SHARE = 0.25  # share of the body that must be seen to count as visible
EXPOSURE = 1.3

_KEY_LIGHT = np.array([0.3, -0.5, 1.0]) / np.linalg.norm([0.3, -0.5, 1.0])
CURTAIN_SHADE = 0.85  # share of the daylight that closed curtains keep out
_WALL_COLORS = {0: (0.80, 0.83, 0.80), 1: (0.80, 0.83, 0.80), 2: (0.86, 0.83, 0.76), 3: (0.86, 0.83, 0.76),
                5: (0.95, 0.95, 0.93)}
_CURTAIN = np.array([0.55, 0.42, 0.6])
_HALLWAY = np.array([0.3, 0.28, 0.26])


def light_terms(points: np.ndarray, normals: np.ndarray, home: Home) -> np.ndarray:
    """Light reaching surfaces (N, 3 points with unit normals): (3, N) terms (constant, day, lamp).

    Daylight comes from just inside the window, lamp light from the bulb; see :func:`combine_light`.
    """
    window = home.window
    inside_window = np.array([sum(window.u) / 2, home.size[1] - 0.3, sum(window.z) / 2])
    constant = 0.3 + 0.14 * np.clip(normals @ _KEY_LIGHT, 0, 1)
    terms = [constant]
    for source, strength, reach in ((inside_window, 0.6, 3.5), (np.asarray(home.lamp_bulb), 0.95, 1.6)):
        to_light = source - points
        dist = np.linalg.norm(to_light, axis=1)
        facing = np.clip(np.einsum("ij,ij->i", normals, to_light) / np.maximum(dist, 1e-6), 0, 1)
        terms.append(strength * (0.3 + 0.7 * facing) / (1 + (dist / reach) ** 2))
    return np.stack(terms)


def combine_light(terms: np.ndarray, state: dict[str, float], daylight: float) -> np.ndarray:
    """Light (N,) of one moment from :func:`light_terms`: constant + daylight let in by the
    curtains + the lamp when on."""
    day = daylight * (1 - CURTAIN_SHADE * state["curtain"])
    return terms[0] + day * terms[1] + state["lamp"] * terms[2]


def _wall_coordinates(points: np.ndarray, rect: WallRect) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) in [0, 1] of wall points within `rect` (outside: values out of [0, 1])."""
    along = points[:, 0] if rect.wall in ("north", "south") else points[:, 1]
    u = (along - rect.u[0]) / (rect.u[1] - rect.u[0])
    v = (points[:, 2] - rect.z[0]) / (rect.z[1] - rect.z[0])
    return u, v


_WALL_IDS = {"west": 0, "east": 1, "south": 2, "north": 3}


def _inside(u: np.ndarray, v: np.ndarray, margin: float = 0.0) -> np.ndarray:
    return (u >= -margin) & (u <= 1 + margin) & (v >= -margin) & (v <= 1 + margin)


def _floor_albedo(points: np.ndarray, home: Home) -> np.ndarray:
    """Wooden planks along x, a rug in front of the sofa."""
    x, y = points[:, 0], points[:, 1]
    plank = np.floor(y / 0.16)
    tint = 1 + 0.08 * np.sin(plank * 12.9898) * np.cos(plank * 4.1414)
    seam = (y / 0.16 - plank < 0.06) | ((x + plank * 0.37) % 1.2 < 0.012)
    albedo = np.array([0.62, 0.45, 0.30]) * (tint * np.where(seam, 0.8, 1.0))[:, None]
    x0, y0, x1, y1 = home.rug
    rug = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    border = rug & ((x - x0 < 0.08) | (x1 - x < 0.08) | (y - y0 < 0.08) | (y1 - y < 0.08))
    albedo[rug] = (0.58, 0.22, 0.2)
    albedo[border] = (0.85, 0.74, 0.52)
    return albedo


def _picture_albedo(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """An abstract painting in a dark frame."""
    albedo = np.where((u < 0.45)[:, None], (0.2, 0.35, 0.62), np.where((v > 0.5)[:, None], (0.9, 0.75, 0.3),
                                                                          (0.75, 0.25, 0.2)))
    frame = (u < 0.05) | (u > 0.95) | (v < 0.07) | (v > 0.93)
    albedo[frame] = (0.15, 0.12, 0.1)
    return albedo


class StaticLayer:
    """The static scene seen through a set of pixel rays of one camera.

    Holds per ray: the distance to the scene (door closed), albedo, light terms, and where the
    window, the door and the state-driven boxes are, so that a frame is a cheap recombination.
    """

    def __init__(self, home: Home, camera: Camera, size: tuple[int, int], rows: np.ndarray, cols: np.ndarray):
        self.home = home
        self.origin = np.asarray(camera.position, dtype=np.float64)
        self.dirs = camera.rays(rows, cols, size)
        t_room, surface = intersect_room(self.origin, self.dirs, home.size)
        t_box, index, box_normal = intersect_boxes(self.origin, self.dirs, home.boxes)
        on_box = t_box < t_room
        self.t = np.where(on_box, t_box, t_room)
        points = self.origin + self.t[:, None] * self.dirs
        room_normal = np.zeros_like(points)
        axis = surface // 2
        room_normal[np.arange(len(points)), axis] = np.where(surface % 2 == 0, 1.0, -1.0)
        normals = np.where(on_box[:, None], box_normal, room_normal)
        self.light = light_terms(points, normals, home)

        surface = np.where(on_box, -1, surface)
        albedo = np.zeros_like(points)
        for sid, color in _WALL_COLORS.items():
            albedo[surface == sid] = color
        baseboard = (surface >= 0) & (surface <= 3) & (points[:, 2] < 0.08)
        albedo[baseboard] = (0.95, 0.95, 0.93)
        floor = surface == 4
        albedo[floor] = _floor_albedo(points[floor], home)
        for k, box in enumerate(home.boxes):
            albedo[index == k] = box.color
        for rect in home.pictures:
            u, v = _wall_coordinates(points, rect)
            hit = (surface == _WALL_IDS[rect.wall]) & _inside(u, v)
            albedo[hit] = _picture_albedo(u[hit], v[hit])

        door = home.door
        u, v = _wall_coordinates(points, door)
        on_door_wall = surface == _WALL_IDS[door.wall]
        albedo[on_door_wall & _inside(u, v, 0.07) & ~_inside(u, v)] = (0.95, 0.95, 0.93)  # casing
        self.door_idx = np.flatnonzero(on_door_wall & _inside(u, v))
        self.door_u = u[self.door_idx]
        du, dv = self.door_u, v[self.door_idx]
        panel = np.where(((du % 0.5 > 0.1) & (du % 0.5 < 0.4) & (dv % 0.5 > 0.08) & (dv % 0.5 < 0.42))[:, None],
                         (0.55, 0.38, 0.25), (0.62, 0.45, 0.3))
        handle = (du > 0.05) & (du < 0.12) & (dv > 0.46) & (dv < 0.5)
        panel[handle] = (0.15, 0.15, 0.15)
        albedo[self.door_idx] = panel
        dirs_x = self.dirs[self.door_idx, 0]
        hallway_t = (HALLWAY_X - self.origin[0]) / np.where(dirs_x < -1e-9, dirs_x, -1e-9)
        self.door_u_all = np.full(len(self.t), np.nan)  # position across the door (NaN off the door)
        self.door_u_all[self.door_idx] = self.door_u
        self.hallway_t = self.t.copy()  # distance when the door is open
        self.hallway_t[self.door_idx] = hallway_t

        window = home.window
        u, v = _wall_coordinates(points, window)
        self.window_idx = np.flatnonzero((surface == _WALL_IDS[window.wall]) & _inside(u, v))
        self.window_u, self.window_v = u[self.window_idx], v[self.window_idx]
        self.albedo = albedo
        self.state_boxes = [(np.flatnonzero(index == k), box) for k, box in enumerate(home.boxes) if box.state]

    def depth(self, idx: np.ndarray, door: float) -> np.ndarray:
        """Distance to the static scene along rays `idx` with the door open by `door` (0..1)."""
        return np.where(self.door_u_all[idx] < door, self.hallway_t[idx], self.t[idx])

    def background(self, state: dict[str, float], daylight: float) -> np.ndarray:
        """Linear colour (N, 3) of the static scene for one `state` (channels of STATE_CHANNELS)."""
        light = combine_light(self.light, state, daylight)
        color = self.albedo * light[:, None]
        for idx, box in self.state_boxes:
            value = state[box.state]
            target = np.asarray(box.state_color)
            if box.emissive:
                color[idx] = (1 - value) * color[idx] + value * target
            else:
                color[idx] = ((1 - value) * np.asarray(box.color) + value * target) * light[idx, None]
        u, v = self.window_u, self.window_v
        sky = np.where((v[:, None] < 0.22 + 0.07 * np.sin(u * 17.0)[:, None]), (0.25, 0.45, 0.25),
                       (0.45, 0.65, 0.92) + (1 - v)[:, None] * (0.37, 0.23, 0.03)) * (0.35 + 0.75 * daylight)
        frame = (np.abs(u - 0.5) < 0.012) | (u < 0.02) | (u > 0.98) | (v < 0.03) | (v > 0.97)
        sky[frame] = np.array([0.92, 0.92, 0.9]) * light[self.window_idx][frame, None]
        cover = (u < 0.07 + 0.43 * state["curtain"]) | (u > 0.93 - 0.43 * state["curtain"])
        folds = 0.82 + 0.18 * np.sin(2 * np.pi * u * 14)
        fabric = _CURTAIN * (folds * light[self.window_idx] + 0.25 * daylight)[:, None]
        color[self.window_idx] = np.where(cover[:, None], fabric, sky)
        is_open = self.door_u < state["door"]
        color[self.door_idx[is_open]] = _HALLWAY * (0.5 + 0.5 * daylight)
        return color


def cast_capsules(origin: np.ndarray, dirs: np.ndarray, caps: Capsules
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cast unit rays from `origin` at the capsules of one frame (``caps`` with F = 1).

    Returns ``(t, k, normal)``: the distance to the nearest capsule (inf where none), its index
    (−1) and the surface normal there. The entry point is ``t_closest − √(r² − d²)`` with d the
    ray's distance to the capsule's axis (exact for spheres, close for the limbs).
    """
    kept = np.flatnonzero(caps.radius[0] > 0)
    if len(kept) == 0 or len(dirs) == 0:
        return np.full(len(dirs), np.inf), np.full(len(dirs), -1), np.zeros_like(dirs)
    start, axis, radius = caps.start[0, kept], caps.end[0, kept] - caps.start[0, kept], caps.radius[0, kept]
    w = origin - start  # (K, 3): from each capsule's start to the ray origin
    # (K, N) layout: reductions over capsules then run along the long, contiguous ray axis
    b = axis @ dirs.T  # ray·axis
    d = w @ dirs.T  # ray·w
    c = (axis * axis).sum(1)[:, None]  # axis·axis
    e = (axis * w).sum(1)[:, None]  # axis·w
    ww = (w * w).sum(1)[:, None]  # w·w
    # cheap rejection: the ray must pass the capsule's bounding sphere (centre = axis midpoint)
    along = b / 2 - d  # ray·(centre − origin)
    bound = np.sqrt(c) / 2 + radius[:, None]
    k, ray = np.nonzero((ww - e + c / 4 - along**2 < bound**2) & (along > -bound))
    b, d = b[k, ray], d[k, ray]
    c, e, ww, r = c[k, 0], e[k, 0], ww[k, 0], radius[k]
    denom = c - b * b
    safe = np.where(denom > 1e-12, denom, 1.0)
    s = np.clip(np.where(denom > 1e-12, (e - d * b) / safe, 0.0), 0.0, 1.0)  # closest point on the axis
    t = s * b - d  # closest point on the ray
    # |w + t·ray − s·axis|² expanded with the dot products above (no (K, N, 3) temporaries)
    dist2 = ww + t * t + s * s * c + 2 * t * d - 2 * s * e - 2 * t * s * b
    t_hit = np.full((len(kept), len(dirs)), np.inf)
    t_hit[k, ray] = np.where((dist2 < r**2) & (t > 0), t - np.sqrt(np.maximum(r**2 - dist2, 0.0)), np.inf)
    s_all = np.zeros_like(t_hit)
    s_all[k, ray] = s
    best = np.argmin(t_hit, axis=0)
    rays = np.arange(len(dirs))
    t_best = t_hit[best, rays]
    hit = np.isfinite(t_best)
    normal = np.zeros_like(dirs)
    nearest = best[hit]
    centre = start[nearest] + s_all[nearest, rays[hit], None] * axis[nearest]
    normal[hit] = origin + t_best[hit, None] * dirs[hit] - centre
    normal[hit] /= np.maximum(np.linalg.norm(normal[hit], axis=1, keepdims=True), 1e-9)
    return t_best, np.where(hit, kept[best], -1), normal


def _bbox(camera: Camera, caps: Capsules, size: tuple[int, int], limits: tuple[int, int, int, int]
          ) -> tuple[int, int, int, int] | None:
    """Pixel box (r0, r1, c0, c1) that holds the projected capsules, within `limits`; None if empty."""
    keep = caps.radius[0] > 0
    if not keep.any():
        return None
    points = np.concatenate([caps.start[0, keep], caps.end[0, keep]])
    radius = np.concatenate([caps.radius[0, keep]] * 2)
    rows, cols, depth = camera.project(points, size)
    r0, r1, c0, c1 = limits
    if (depth < 0.05).any():  # part of the body at or behind the image plane: search everywhere
        return limits
    focal = size[0] / 2 / camera.half_extent(size)[0]
    pad = radius * focal / depth + 1
    box = (max(r0, int(np.floor((rows - pad).min()))), min(r1, int(np.ceil((rows + pad).max()))),
           max(c0, int(np.floor((cols - pad).min()))), min(c1, int(np.ceil((cols + pad).max()))))
    return box if box[0] < box[1] and box[2] < box[3] else None


def _downsample(color: np.ndarray, factor: int) -> np.ndarray:
    """Mean over `factor` × `factor` blocks of an image (H·f, W·f, 3) → (H, W, 3)."""
    if factor == 1:
        return color
    total = sum(color[i::factor, j::factor] for i in range(factor) for j in range(factor))
    return total / factor**2


class ViewRenderer:
    """Images of one camera at `size` = (W, H) pixels, and the actor's visibility in them."""

    def __init__(self, home: Home, camera: Camera, size: tuple[int, int], supersample: int = 2):
        self.home, self.camera, self.size, self.supersample = home, camera, size, supersample
        width, height = size
        fine_rows = (np.arange(height * supersample) + 0.5) / supersample
        fine_cols = (np.arange(width * supersample) + 0.5) / supersample
        rows, cols = np.meshgrid(fine_rows, fine_cols, indexing="ij")
        self.fine = StaticLayer(home, camera, size, rows, cols)
        self.vis_size = (VIS_WIDTH, max(1, round(VIS_WIDTH * height / width)))
        vrows, vcols = np.meshgrid(np.arange(self.vis_size[1]) + 0.5, np.arange(VIS_WIDTH) + 0.5, indexing="ij")
        self.coarse = StaticLayer(home, camera, self.vis_size, vrows, vcols)
        # rays of the visibility grid extended by its size each way (the body may reach past the image)
        vis_w, vis_h = self.vis_size
        wide_rows, wide_cols = np.meshgrid(np.arange(-vis_h, 2 * vis_h) + 0.5, np.arange(-vis_w, 2 * vis_w) + 0.5,
                                           indexing="ij")
        self.wide_dirs = camera.rays(wide_rows, wide_cols, self.vis_size)
        self._backgrounds: dict[tuple[float, ...], tuple[np.ndarray, np.ndarray]] = {}

    def _finish(self, color: np.ndarray) -> np.ndarray:
        """Linear colour → uint8 pixels (exposure, the camera's colour balance, clipping)."""
        return np.round(np.clip(color * (EXPOSURE * np.asarray(self.camera.gain)), 0, 1) * 255).astype(np.uint8)

    def _background(self, state: dict[str, float], daylight: float) -> tuple[np.ndarray, np.ndarray]:
        """The empty room for a state: fine colour (H·s, W·s, 3) and the finished image."""
        key = (daylight, *(state[c] for c in STATE_CHANNELS))  # exact: a cache hit is the same image
        if key not in self._backgrounds:
            if len(self._backgrounds) > 256:
                self._backgrounds.clear()
            width, height = self.size
            s = self.supersample
            fine = self.fine.background(state, daylight).reshape(height * s, width * s, 3)
            self._backgrounds[key] = fine, self._finish(_downsample(fine, s))
        return self._backgrounds[key]

    def render(self, state: dict[str, float], daylight: float, caps: Capsules | None) -> np.ndarray:
        """One frame (H, W, 3) uint8 for a scene `state`, `daylight` level (0..1) and the actor's
        capsules (one frame; None draws the room without the actor)."""
        fine, image = self._background(state, daylight)
        image = image.copy()
        s = self.supersample
        height, width = fine.shape[:2]
        box = None if caps is None else _bbox(self.camera, caps, (width, height), (0, height, 0, width))
        if box is None:
            return image
        r0, r1 = box[0] // s * s, min(height, -(-box[1] // s) * s)  # whole output pixels
        c0, c1 = box[2] // s * s, min(width, -(-box[3] // s) * s)
        block = fine[r0:r1, c0:c1].copy()
        idx = (np.arange(r0, r1)[:, None] * width + np.arange(c0, c1)[None, :]).ravel()
        t, k, normal = cast_capsules(self.fine.origin, self.fine.dirs[idx], caps)
        front = t < self.fine.depth(idx, state["door"])
        if front.any():
            t, k, normal = t[front], k[front], normal[front]
            points = self.fine.origin + t[:, None] * self.fine.dirs[idx[front]]
            light = combine_light(light_terms(points, normal, self.home), state, daylight)
            albedo = np.where((normal[:, 2] > 0.35)[:, None], caps.top_color[k], caps.color[k])
            block.reshape(-1, 3)[front] = albedo * light[:, None]
            image[r0 // s : r1 // s, c0 // s : c1 // s] = self._finish(_downsample(block, s))
        return image

    def visible_share(self, caps: Capsules, door: float) -> float:
        """Share of the actor's projected area (one frame) that this camera sees (0..1)."""
        seen, _, total = self.body_cells(caps, door)
        return seen / total if total else 0.0

    def body_cells(self, caps: Capsules, door: float) -> tuple[int, int, int]:
        """Cells of the visibility grid (``vis_size``, :data:`VIS_WIDTH` columns) that the actor's
        body covers in one frame: ``(seen, in_image, total)``.

        ``total`` counts the body's projection on the image plane extended to three times the
        image each way (the body may reach past the edges), ``in_image`` the part inside the
        image, ``seen`` the part inside and in front of the static scene (door open by `door`).
        ``seen / total`` is :meth:`visible_share`. All zero when the actor is not drawn.
        """
        width, height = self.vis_size
        limits = (-height, 2 * height, -width, 2 * width)  # the body may extend past the image
        box = _bbox(self.camera, caps, self.vis_size, limits)
        if box is None:
            return 0, 0, 0
        r0, r1, c0, c1 = box
        rows, cols = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
        rows, cols = rows.ravel(), cols.ravel()
        dirs = self.wide_dirs[(rows + height) * 3 * width + cols + width]
        t, _, _ = cast_capsules(self.coarse.origin, dirs, caps)
        body = np.isfinite(t)
        total = int(body.sum())
        if total == 0:
            return 0, 0, 0
        inside = body & (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        idx = np.clip(rows, 0, height - 1) * width + np.clip(cols, 0, width - 1)
        seen = inside & (t < self.coarse.depth(idx, door))
        return int(seen.sum()), int(inside.sum()), total


# ------------------------------------------------------------------------------- clips

GRID_FPS = 2.5  # the frame grid of the data pipeline (vicokd.data.sampling)


def frame_times(duration: float, fps: float) -> np.ndarray:
    """Times (seconds) of the video frames of a clip: frame i at i / fps."""
    return np.arange(round(duration * fps)) / fps


def render_view(renderer: ViewRenderer, script: ClipScript, fps: float, actor: bool = True) -> np.ndarray:
    """Every video frame (F, H, W, 3) uint8 of one view of a clip (`actor` False: empty room)."""
    times = frame_times(script.duration, fps)
    caps = pose_capsules(script.pose(times), script.outfit) if actor else None
    states = script.state(times)
    width, height = renderer.size
    frames = np.empty((len(times), height, width, 3), dtype=np.uint8)
    for i in range(len(times)):
        state = {c: float(states[c][i]) for c in STATE_CHANNELS}
        frames[i] = renderer.render(state, script.daylight, None if caps is None else caps.frame(i))
    return frames


def grid_visibility(renderer: ViewRenderer, script: ClipScript, fps: float) -> np.ndarray:
    """Share of the actor's body seen (L,) at each grid frame j (time j / 2.5 s) of one view."""
    length = grid_length(len(frame_times(script.duration, fps)), fps, GRID_FPS)
    times = np.arange(length) / GRID_FPS
    caps = pose_capsules(script.pose(times), script.outfit)
    doors = script.state(times)["door"]
    return np.array([renderer.visible_share(caps.frame(j), float(doors[j])) for j in range(length)])
