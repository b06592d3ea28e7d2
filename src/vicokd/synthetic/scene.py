"""The synthetic home: floor plan, furniture, wall fixtures, places for the actor, and cameras.

Coordinates are metres: x runs from the west wall (0) to the east wall, y from the south wall (0)
to the north wall, z up from the floor. A heading is an angle in radians counter-clockwise from
+x (0 faces east, π/2 faces north). The home is the same for every seed; seeds change what
happens in it.

Geometry helpers shared by the renderer and the coverage statistics live here too: ray casting
against the room's inner surfaces and against axis-aligned boxes, the pinhole camera (rays of
pixels and projection of points), collision-free walking routes, and the floor coverage of each
camera.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

Vec3 = tuple[float, float, float]
RGB = tuple[float, float, float]

ROOM: Vec3 = (6.0, 5.0, 2.6)  # width (x), depth (y), height (z)
HALLWAY_X = -1.2  # the hallway's far wall, seen through the open door
BODY_CLEARANCE = 0.12  # metres kept between a walking route and furniture
MAX_VIEWS = 8
STATE_CHANNELS = ("lamp", "curtain", "door", "laptop", "ac")  # scene channels, 0..1 (curtain 1 = closed)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box from corner `lo` to corner `hi` (metres) with albedo `color`.

    A box with a `state` follows that scene channel (0..1): its colour blends from `color` to
    `state_color`, which is emitted light when `emissive` (a lamp shade, a screen) and a lit
    surface otherwise. `obstacle` boxes block walking routes.
    """

    name: str
    lo: Vec3
    hi: Vec3
    color: RGB
    state: str | None = None
    state_color: RGB = (0.0, 0.0, 0.0)
    emissive: bool = False
    obstacle: bool = True


@dataclass(frozen=True)
class WallRect:
    """A rectangle on a wall (`wall` in north/south/east/west): `u` along the wall, `z` up.

    `u` is x on the north and south walls and y on the east and west walls, in metres.
    """

    name: str
    wall: str
    u: tuple[float, float]
    z: tuple[float, float]


@dataclass(frozen=True)
class Station:
    """A place where the actor does something.

    `stand` is where the actor stands (x, y) facing `heading`; `seat` is the pelvis position
    (x, y) when seated there (None: not a seat); `reach` is the point a hand goes to (x, y, z).
    """

    name: str
    stand: tuple[float, float]
    heading: float
    seat: tuple[float, float] | None = None
    reach: Vec3 | None = None


@dataclass(frozen=True)
class Camera:
    """A pinhole wall camera at `position` looking at `target` with horizontal field of view
    `hfov` (degrees); its microphone is at the same place. `gain` is its colour balance."""

    name: str
    position: Vec3
    target: Vec3
    hfov: float
    gain: RGB = (1.0, 1.0, 1.0)

    @cached_property
    def _basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        forward = np.subtract(self.target, self.position).astype(np.float64)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, (0.0, 0.0, 1.0))
        right /= np.linalg.norm(right)
        return forward, right, np.cross(right, forward)

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit vectors (forward, right, up) of the image plane, no roll."""
        return self._basis

    def half_extent(self, size: tuple[int, int]) -> tuple[float, float]:
        """tan of half the horizontal and vertical field of view for an image `size` = (W, H)."""
        tan_x = math.tan(math.radians(self.hfov) / 2)
        return tan_x, tan_x * size[1] / size[0]

    def rays(self, rows: np.ndarray, cols: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Unit ray directions (N, 3) through image points (`rows`, `cols`) of an image `size`.

        Pixel (i, j) covers rows [i, i+1) and columns [j, j+1); points outside the image are
        allowed (their rays leave the field of view).
        """
        forward, right, up = self.basis()
        tan_x, tan_y = self.half_extent(size)
        x = (2 * np.ravel(cols) / size[0] - 1) * tan_x
        y = (1 - 2 * np.ravel(rows) / size[1]) * tan_y
        dirs = forward + x[:, None] * right + y[:, None] * up
        return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)

    def project(self, points: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image coordinates (rows, cols) and depth along the optical axis of `points` (..., 3).

        Depth ≤ 0 means behind the camera (rows and cols are then meaningless).
        """
        forward, right, up = self.basis()
        rel = np.asarray(points, dtype=np.float64) - self.position
        depth = rel @ forward
        safe = np.where(depth > 1e-6, depth, 1e-6)
        tan_x, tan_y = self.half_extent(size)
        cols = ((rel @ right) / safe / tan_x + 1) * size[0] / 2
        rows = (1 - (rel @ up) / safe / tan_y) * size[1] / 2
        return rows, cols, depth


@dataclass(frozen=True)
class Home:
    """The floor plan and the cameras (see the module docstring for units and axes)."""

    size: Vec3
    boxes: tuple[Box, ...]
    window: WallRect
    door: WallRect
    pictures: tuple[WallRect, ...]
    rug: tuple[float, float, float, float]  # x0, y0, x1, y1
    lamp_bulb: Vec3
    stations: tuple[Station, ...]
    hubs: tuple[tuple[float, float], ...]  # extra route points in open floor
    clean_areas: tuple[tuple[float, float, float, float], ...]  # open rectangles x0, y0, x1, y1
    cameras: tuple[Camera, ...]
    outside: tuple[float, float] = field(default=(-0.6, 3.75))  # hallway point behind the door

    def station(self, name: str) -> Station:
        """The station called `name` (KeyError if there is none)."""
        for station in self.stations:
            if station.name == name:
                return station
        raise KeyError(name)

    @property
    def num_views(self) -> int:
        return len(self.cameras)

    def centre(self, name: str) -> Vec3:
        """Centre (x, y, z) of the first box called `name` (e.g. "laptop", "air conditioner")."""
        box = next(b for b in self.boxes if b.name == name)
        return tuple((lo + hi) / 2 for lo, hi in zip(box.lo, box.hi))  # type: ignore[return-value]


# --------------------------------------------------------------------------------- the home


def _box(name: str, x: tuple[float, float], y: tuple[float, float], z: tuple[float, float], color: RGB,
         **kwargs: object) -> Box:
    return Box(name, (x[0], y[0], z[0]), (x[1], y[1], z[1]), color, **kwargs)  # type: ignore[arg-type]


def _table_legs(name: str, x: tuple[float, float], y: tuple[float, float], height: float, color: RGB,
                width: float = 0.05) -> list[Box]:
    """Four legs under a table top spanning `x` × `y`, not obstacles (the top is)."""
    return [
        _box(f"{name} leg", (lx, lx + width), (ly, ly + width), (0.0, height), color, obstacle=False)
        for lx in (x[0] + 0.03, x[1] - 0.03 - width)
        for ly in (y[0] + 0.03, y[1] - 0.03 - width)
    ]


def _chair(name: str, seat: tuple[float, float], facing: str, color: RGB) -> list[Box]:
    """A chair with its seat centred at `seat`, its back opposite the `facing` side (n/s/e)."""
    cx, cy = seat
    half = 0.2
    boxes = [_box(f"{name} seat", (cx - half, cx + half), (cy - half, cy + half), (0.42, 0.47), color,
                  obstacle=False)]
    boxes += _table_legs(name, (cx - half, cx + half), (cy - half, cy + half), 0.42, color, width=0.04)
    back = {"north": ((cx - half, cx + half), (cy - half - 0.04, cy - half)),
            "south": ((cx - half, cx + half), (cy + half, cy + half + 0.04)),
            "east": ((cx - half - 0.04, cx - half), (cy - half, cy + half))}[facing]
    boxes.append(_box(f"{name} back", back[0], back[1], (0.42, 0.95), color, obstacle=False))
    return boxes


def _shelf_books(name: str, along: tuple[float, float], front: float, depth: float, axis: str,
                 levels: tuple[float, ...], palette: tuple[RGB, ...]) -> list[Box]:
    """Rows of book blocks on shelves at heights `levels`, flush with a shelf's front face.

    The face lies at `front` on the `axis` ("x" or "y") across `along`; books reach `depth`
    metres from the face into the shelf (its sign points inward).
    """
    boxes = []
    width = along[1] - along[0]
    inward = (min(front, front + depth), max(front, front + depth))
    for row, z in enumerate(levels):
        cuts = [along[0] + 0.04, along[0] + width * (0.3 + 0.05 * (row % 2)),
                along[0] + width * (0.62 - 0.04 * row), along[1] - 0.04]
        for k in range(3):
            span = (cuts[k] + 0.01, cuts[k + 1] - 0.01)
            height = (z, z + 0.2 + 0.04 * ((row + k) % 3))
            color = palette[(row * 3 + k + len(name)) % len(palette)]
            xy = (span, inward) if axis == "y" else (inward, span)
            boxes.append(_box(f"{name} books", xy[0], xy[1], height, color, obstacle=False))
    return boxes


# camera layouts of the home (see _cameras): name → what it is like
LAYOUTS = {"home1": "like Home-1: cameras all around the room, views that overlap little",
           "home2": "like Home-2: cameras in the corners and on the north wall, all looking at the living area, "
                    "views close in what they capture"}
LAYOUT_JOIN = "+"  # "home1+home2": clip i filmed by the (i mod 2)-th layout (the pretraining home sees both)


def layout_names(layout: str) -> tuple[str, ...]:
    """The layouts named by `layout`: one name of :data:`LAYOUTS`, or several joined by ``+``
    (ValueError naming the unknown one)."""
    names = tuple(layout.split(LAYOUT_JOIN))
    for name in names:
        if name not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)} (or several joined by "
                             f"'{LAYOUT_JOIN}'), got {name!r}")
    return names


def _cameras(views: int, layout: str = "home1") -> tuple[Camera, ...]:
    """The first `views` of eight wall mounts of `layout`, ordered so that any prefix covers the room.

    ``home1`` (MultiSensor-Home's Home-1: greater view disparity) hangs the cameras all around the
    room, each looking across it from another side with a 56-66° lens, so that views overlap
    little. ``home2`` (Home-2: views closer in what they capture) hangs the first five in the four
    corners and in the middle of the north wall, all looking at the living area (sofa, lamp, rug,
    dining table) with 65° lenses: the sofa and its seats, which face north, are seen from the
    front or the side, and most views see the actor at once.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "home2":
        mounts = [
            Camera("View1", (0.12, 4.88, 2.4), (3.0, 2.0, 0.5), 65.0, (1.0, 1.0, 1.0)),
            Camera("View2", (5.88, 4.88, 2.4), (3.0, 2.0, 0.5), 65.0, (1.04, 1.0, 0.94)),
            Camera("View3", (0.12, 0.12, 2.4), (3.0, 2.6, 0.5), 65.0, (0.96, 1.0, 1.05)),
            Camera("View4", (5.88, 0.12, 2.4), (3.0, 2.6, 0.5), 65.0, (1.02, 1.02, 0.97)),
            Camera("View5", (3.0, 4.9, 2.4), (3.0, 1.2, 0.5), 65.0, (0.98, 0.99, 1.03)),
            Camera("View6", (0.1, 2.5, 2.4), (4.0, 2.0, 0.5), 65.0, (1.03, 0.98, 0.98)),
            Camera("View7", (5.9, 2.0, 2.4), (2.0, 2.4, 0.5), 65.0, (0.97, 1.02, 1.0)),
            Camera("View8", (3.0, 0.1, 2.4), (3.0, 3.6, 0.5), 65.0, (1.0, 0.97, 1.03)),
        ]
        return tuple(mounts[:views])
    mounts = [
        Camera("View1", (0.12, 0.12, 2.4), (3.6, 3.3, 0.3), 64.0, (1.0, 1.0, 1.0)),
        Camera("View2", (5.88, 4.88, 2.4), (2.0, 1.6, 0.3), 60.0, (1.04, 1.0, 0.94)),
        Camera("View3", (0.1, 2.45, 2.45), (4.8, 2.2, 0.1), 56.0, (0.96, 1.0, 1.05)),
        Camera("View4", (5.9, 0.9, 2.4), (2.4, 3.0, 0.0), 64.0, (1.02, 1.02, 0.97)),
        Camera("View5", (2.7, 4.9, 2.4), (2.0, 1.5, 0.0), 66.0, (0.98, 0.99, 1.03)),
        Camera("View6", (2.2, 0.1, 2.4), (3.0, 4.0, 0.3), 60.0, (1.03, 0.98, 0.98)),
        Camera("View7", (0.12, 4.88, 2.4), (3.2, 1.6, 0.3), 60.0, (0.97, 1.02, 1.0)),
        Camera("View8", (5.9, 3.9, 2.4), (1.5, 2.0, 0.3), 58.0, (1.0, 0.97, 1.03)),
    ]
    return tuple(mounts[:views])


def build_home(views: int = 5, layout: str = "home1") -> Home:
    """The home seen by `views` wall cameras (1..8) hung as `layout` (:data:`LAYOUTS`)."""
    if not 1 <= views <= MAX_VIEWS:
        raise ValueError(f"views must be between 1 and {MAX_VIEWS}, got {views}")
    wood, dark_wood, light_wood = (0.55, 0.38, 0.24), (0.36, 0.24, 0.16), (0.72, 0.58, 0.40)
    metal, sofa, white = (0.22, 0.22, 0.24), (0.28, 0.44, 0.52), (0.92, 0.92, 0.90)
    books = ((0.70, 0.20, 0.18), (0.20, 0.35, 0.62), (0.85, 0.70, 0.25), (0.25, 0.55, 0.35),
             (0.90, 0.88, 0.80), (0.45, 0.25, 0.50))
    boxes: list[Box] = [
        # sofa along the south wall, facing north
        _box("sofa", (1.5, 3.5), (0.05, 0.95), (0.0, 0.45), sofa),
        _box("sofa back", (1.5, 3.5), (0.05, 0.3), (0.45, 0.88), sofa),
        _box("sofa arm", (1.5, 1.7), (0.05, 0.95), (0.45, 0.63), sofa),
        _box("sofa arm", (3.3, 3.5), (0.05, 0.95), (0.45, 0.63), sofa),
        # floor lamp beside the sofa; the shade glows when the lamp is on
        _box("lamp base", (3.73, 3.97), (0.38, 0.62), (0.0, 0.04), metal),
        _box("lamp pole", (3.83, 3.87), (0.48, 0.52), (0.04, 1.45), metal, obstacle=False),
        _box("lamp shade", (3.68, 4.02), (0.33, 0.67), (1.45, 1.78), (0.80, 0.76, 0.66),
             state="lamp", state_color=(1.0, 0.88, 0.6), emissive=True),
        # dining table with two chairs and a plate
        _box("dining table", (0.9, 2.1), (2.5, 3.3), (0.70, 0.75), wood),
        _box("plate", (1.38, 1.62), (2.58, 2.8), (0.75, 0.77), white, obstacle=False),
        # desk against the east wall, laptop (screen lights while in use), desk chair
        _box("desk", (5.3, 5.95), (2.4, 3.8), (0.72, 0.76), light_wood),
        _box("laptop", (5.45, 5.72), (2.96, 3.3), (0.76, 0.78), metal, obstacle=False),
        _box("laptop screen", (5.72, 5.75), (2.96, 3.3), (0.78, 1.0), (0.08, 0.08, 0.1),
             state="laptop", state_color=(0.55, 0.72, 1.0), emissive=True, obstacle=False),
        # bookshelf on the north wall, a shelf that divides the desk corner from the room
        _box("bookshelf", (0.25, 1.35), (4.62, 4.98), (0.0, 1.95), dark_wood),
        _box("divider shelf", (3.9, 4.25), (1.9, 3.3), (0.0, 1.75), light_wood),
        # tall plant in the south-east corner
        _box("plant pot", (5.4, 5.8), (0.3, 0.7), (0.0, 0.45), (0.70, 0.38, 0.25)),
        _box("plant", (5.3, 5.9), (0.2, 0.8), (0.45, 1.55), (0.22, 0.45, 0.20), obstacle=False),
        # air conditioner high on the north wall: its vane opens and its LED lights when running
        _box("air conditioner", (4.45, 5.35), (4.76, 5.0), (1.98, 2.28), white, obstacle=False),
        _box("ac vane", (4.55, 5.05), (4.745, 4.76), (1.99, 2.03), white, state="ac",
             state_color=(0.12, 0.12, 0.13), obstacle=False),
        _box("ac led", (5.2, 5.26), (4.745, 4.76), (2.16, 2.19), (0.25, 0.25, 0.25), state="ac",
             state_color=(0.3, 1.0, 0.4), emissive=True, obstacle=False),
        _box("curtain rail", (2.05, 3.95), (4.9, 4.96), (2.18, 2.22), metal, obstacle=False),
    ]
    boxes += _table_legs("dining table", (0.9, 2.1), (2.5, 3.3), 0.70, wood)
    boxes += _table_legs("desk", (5.3, 5.95), (2.4, 3.8), 0.72, light_wood)
    boxes += _chair("dining chair", (1.5, 2.08), "north", dark_wood)
    boxes += _chair("dining chair", (1.5, 3.72), "south", dark_wood)
    boxes += _chair("desk chair", (4.92, 3.12), "east", (0.14, 0.14, 0.16))
    boxes += _shelf_books("bookshelf", (0.25, 1.35), 4.61, 0.25, "y", (0.08, 0.55, 1.02, 1.49), books)
    for face, depth in ((3.89, 0.15), (4.26, -0.15)):
        boxes += _shelf_books("divider shelf", (1.9, 3.3), face, depth, "x", (0.1, 0.6, 1.1), books)
    stations = (
        Station("door", (0.45, 3.75), math.pi),
        Station("lamp", (3.85, 1.12), -math.pi / 2, reach=(3.85, 0.62, 1.35)),
        Station("sofa left", (2.05, 1.25), math.pi / 2, seat=(2.05, 0.62)),
        Station("sofa right", (2.95, 1.25), math.pi / 2, seat=(2.95, 0.62)),
        Station("dining south", (1.5, 2.3), math.pi / 2, seat=(1.5, 2.06)),
        Station("dining north", (1.5, 3.5), -math.pi / 2, seat=(1.5, 3.74)),
        Station("desk", (5.12, 3.12), 0.0, seat=(4.9, 3.12)),
        Station("window", (3.0, 4.45), math.pi / 2, reach=(3.0, 4.9, 1.6)),
        Station("air conditioner", (4.9, 4.15), math.pi / 2, reach=(4.9, 4.76, 2.0)),
        Station("bookshelf", (0.8, 4.25), math.pi / 2, reach=(0.8, 4.62, 1.2)),
        Station("room centre", (3.0, 2.6), -math.pi / 2),
        Station("east corner", (4.75, 1.2), math.pi),
    )
    return Home(
        size=ROOM,
        boxes=tuple(boxes),
        window=WallRect("window", "north", (2.2, 3.8), (0.9, 2.15)),
        door=WallRect("door", "west", (3.3, 4.2), (0.0, 2.05)),
        pictures=(WallRect("picture", "south", (2.0, 3.0), (1.25, 1.8)),
                  WallRect("picture", "east", (2.75, 3.45), (1.3, 1.75))),
        rug=(1.6, 1.05, 3.4, 2.2),
        lamp_bulb=(3.85, 0.5, 1.6),
        stations=stations,
        hubs=((3.0, 1.5), (3.1, 3.9), (4.6, 1.5), (4.6, 3.95), (0.9, 3.9), (0.75, 1.7)),
        clean_areas=((2.45, 1.3, 3.75, 4.35), (4.4, 0.45, 5.15, 1.8), (0.35, 1.05, 1.2, 2.3)),
        cameras=_cameras(views, layout),
    )


# --------------------------------------------------------------------------- ray casting


def intersect_room(origin: np.ndarray, dirs: np.ndarray, size: Vec3) -> tuple[np.ndarray, np.ndarray]:
    """Distance along unit rays from `origin` (inside the room) to its inner surfaces.

    Returns ``(t (N,), surface (N,))`` with surface 0 west, 1 east, 2 south, 3 north, 4 floor,
    5 ceiling.
    """
    bounds = np.where(dirs > 0, np.asarray(size), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_axis = np.where(np.abs(dirs) > 1e-12, (bounds - origin) / dirs, np.inf)
    axis = np.argmin(t_axis, axis=1)
    t = t_axis[np.arange(len(dirs)), axis]
    side = dirs[np.arange(len(dirs)), axis] > 0
    return t, axis * 2 + side


def intersect_boxes(origin: np.ndarray, dirs: np.ndarray, boxes: tuple[Box, ...] | list[Box]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest entry of rays (origin (3,) or (N, 3), unit dirs (N, 3)) into any of `boxes`.

    Returns ``(t, index, normal)``: distance (inf where no box is hit), the box's index (−1),
    and the outward unit normal (N, 3) of the face that was hit.
    """
    count = len(dirs)
    origin = np.broadcast_to(np.asarray(origin, dtype=np.float64), dirs.shape)
    safe = np.where(np.abs(dirs) > 1e-12, dirs, 1e-12)
    inv = [1.0 / safe[:, a] for a in range(3)]
    start = [origin[:, a] for a in range(3)]
    best = np.full(count, np.inf)
    index = np.full(count, -1)
    axis = np.zeros(count, dtype=np.int64)
    for k, box in enumerate(boxes):
        near, far = [], []
        for a in range(3):  # slab method, one axis at a time (short-axis reductions are slow)
            t1 = (box.lo[a] - start[a]) * inv[a]
            t2 = (box.hi[a] - start[a]) * inv[a]
            near.append(np.minimum(t1, t2))
            far.append(np.maximum(t1, t2))
        t_near = np.maximum(np.maximum(near[0], near[1]), near[2])
        t_far = np.minimum(np.minimum(far[0], far[1]), far[2])
        hit = (t_near <= t_far) & (t_near > 1e-6) & (t_near < best)
        best[hit] = t_near[hit]
        index[hit] = k
        axis[hit] = np.where(near[0][hit] == t_near[hit], 0, np.where(near[1][hit] == t_near[hit], 1, 2))
    normal = np.zeros((count, 3))
    rows = np.arange(count)
    normal[rows, axis] = -np.sign(dirs[rows, axis])
    return best, index, normal


def occluded(camera_position: Vec3, points: np.ndarray, boxes: tuple[Box, ...]) -> np.ndarray:
    """Whether furniture blocks the line of sight from the camera to each of `points` (N, 3)."""
    origin = np.asarray(camera_position, dtype=np.float64)
    rel = np.asarray(points, dtype=np.float64) - origin
    dist = np.linalg.norm(rel, axis=1)
    t, _, _ = intersect_boxes(origin, rel / dist[:, None], boxes)
    return t < dist - 1e-3


# ------------------------------------------------------------------------------- walking


def _segment_clear(a: np.ndarray, b: np.ndarray, obstacles: list[Box], clearance: float) -> bool:
    """Whether the floor segment a→b keeps `clearance` from every obstacle footprint."""
    for box in obstacles:
        lo = np.array(box.lo[:2]) - clearance
        hi = np.array(box.hi[:2]) + clearance
        d = b - a
        safe = np.where(np.abs(d) > 1e-12, d, 1e-12)
        t1, t2 = (lo - a) / safe, (hi - a) / safe
        t_near = np.minimum(t1, t2).max()
        t_far = np.maximum(t1, t2).min()
        if t_near <= t_far and t_far >= 0 and t_near <= 1:
            return False
    return True


def route(home: Home, start: tuple[float, float], goal: tuple[float, float]) -> list[tuple[float, float]]:
    """Shortest walking route (list of floor points from `start` to `goal`) around furniture.

    Routes go straight when they can, else through the home's hub points (a visibility graph
    searched with Dijkstra). Raises ValueError when the goal cannot be reached.
    """
    obstacles = [b for b in home.boxes if b.obstacle]
    nodes = [np.array(start), np.array(goal)] + [np.array(h) for h in home.hubs]
    count = len(nodes)
    dist = [math.inf] * count
    previous = [-1] * count
    dist[0] = 0.0
    queue = [(0.0, 0)]
    while queue:
        d, i = heapq.heappop(queue)
        if d > dist[i]:
            continue
        if i == 1:
            break
        for j in range(1, count):
            step = float(np.linalg.norm(nodes[j] - nodes[i]))
            if d + step < dist[j] and _segment_clear(nodes[i], nodes[j], obstacles, BODY_CLEARANCE):
                dist[j], previous[j] = d + step, i
                heapq.heappush(queue, (d + step, j))
    if math.isinf(dist[1]):
        raise ValueError(f"no walking route from {start} to {goal}")
    path = [1]
    while path[-1] != 0:
        path.append(previous[path[-1]])
    return [tuple(float(v) for v in nodes[i]) for i in reversed(path)]  # type: ignore[misc]


# ------------------------------------------------------------------------------ coverage


def free_floor(home: Home, step: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Centres of a `step` grid over the floor and whether each is open floor (not under furniture).

    Returns ``(points (ny, nx, 3) at z = 0, open (ny, nx) bool)``.
    """
    xs = np.arange(step / 2, home.size[0], step)
    ys = np.arange(step / 2, home.size[1], step)
    gx, gy = np.meshgrid(xs, ys)
    points = np.stack([gx, gy, np.zeros_like(gx)], axis=-1)
    open_floor = np.ones(gx.shape, dtype=bool)
    for box in home.boxes:
        if box.lo[2] < 1.0:  # furniture standing on the floor (not the wall-mounted AC)
            inside = (gx >= box.lo[0]) & (gx <= box.hi[0]) & (gy >= box.lo[1]) & (gy <= box.hi[1])
            open_floor &= ~inside
    return points, open_floor


def floor_visibility(home: Home, size: tuple[int, int], step: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Which open-floor points each camera sees: in its field of view and not behind furniture.

    Returns ``(seen (V, ny, nx) bool, open (ny, nx) bool)`` on the grid of :func:`free_floor`,
    for images of `size` = (W, H) (the aspect sets the vertical field of view).
    """
    points, open_floor = free_floor(home, step)
    flat = points.reshape(-1, 3)
    seen = []
    for camera in home.cameras:
        rows, cols, depth = camera.project(flat, size)
        inside = (depth > 0) & (rows >= 0) & (rows < size[1]) & (cols >= 0) & (cols < size[0])
        visible = inside & ~occluded(camera.position, flat, home.boxes)
        seen.append(visible.reshape(open_floor.shape) & open_floor)
    return np.stack(seen), open_floor


def floor_coverage(home: Home, size: tuple[int, int], step: float = 0.1) -> np.ndarray:
    """Share (V,) of the open floor that each camera sees (in its field of view, unoccluded)."""
    seen, open_floor = floor_visibility(home, size, step)
    return seen.reshape(len(seen), -1).sum(axis=1) / open_floor.sum()


def pairwise_disparity(seen: np.ndarray) -> float:
    """Mean over view pairs (a, b) of 1 − |S_a ∩ S_b| / |S_a ∪ S_b|, where ``seen`` (V, ...) bool
    holds each view's set S_v (floor points, or frames in which the actor is visible); pairs whose
    union is empty are left out. 0: every view sees the same; 1: no two views share anything."""
    flat = seen.reshape(len(seen), -1).astype(bool)
    values = []
    for a in range(len(flat)):
        for b in range(a + 1, len(flat)):
            union = (flat[a] | flat[b]).sum()
            if union:
                values.append(1.0 - (flat[a] & flat[b]).sum() / union)
    return float(np.mean(values)) if values else 0.0
