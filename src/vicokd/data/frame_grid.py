"""Which decoded frame is grid frame j: the two rules of ``data.grid``, applied as frames are decoded.

Grid frame j stands for time ``t_j = j / fps`` seconds (``fps`` = ``data.fps``, 2.5) on the video's
own clock, whose zero is the first frame's presentation time.

* ``timestamps`` (the default): grid frame j is the decoded frame whose presentation time is
  nearest to ``t_j`` (the earlier one on a tie, to :data:`TIE_S`); before the first frame it is
  the first frame, after the last it is the last. A video ending at ``E`` seconds (last presentation time plus one
  frame duration) has ``ceil(E · fps)`` grid frames. Frame rates that change inside a file need
  nothing more: only the timestamps count.
* ``interval`` (MultiSensor-Home's reference rule, docs/reference/REFERENCE-CODE.md §Frame grid): source frame
  ``j · interval`` (counted in decode order), ``interval = max(1, round(source_fps / fps))``;
  ``ceil(n / interval)`` grid frames for n frames. On a constant-rate file whose rate is a
  multiple of ``fps`` (10, 25, 30 fps, ...) this picks exactly the frames of ``timestamps``. At
  any other rate, or when the rate changes, its grid frames are not at ``t_j`` (6 fps: every 2nd
  frame, so times run 1.2× the clock): a warning says so, naming the file.

A *timestamp reset* (a presentation time before the previous one, e.g. concatenated MPEG-TS
recordings or a camera that restarted) is handled, with one warning: the frames after it continue
the clock from the previous frame plus one frame duration, as one recording. A frame without a
timestamp gets the previous one plus one frame duration.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from vicokd.data.sampling import grid_interval

GridRule = Literal["timestamps", "interval"]
GRID_RULES: tuple[str, ...] = ("timestamps", "interval")
# Frame durations that differ by more than this ratio make a variable-rate video.
VARIABLE_RATE_RATIO = 1.5
# Two frames this close to equally far from a grid time are a tie (float error of the timestamps).
TIE_S = 1e-9
# A rate within this relative distance of a multiple of the grid rate counts as that multiple.
RATE_TOLERANCE = 1e-3


def check_grid_rule(rule: str) -> GridRule:
    if rule not in GRID_RULES:
        raise ValueError(f"data.grid must be one of {', '.join(GRID_RULES)}, got {rule!r}")
    return rule  # type: ignore[return-value]


def is_grid_multiple(source_fps: float, fps: float = 2.5) -> bool:
    """Whether `source_fps` is a whole multiple of the grid rate (so ``interval`` keeps the clock)."""
    ratio = source_fps / fps
    return round(ratio) >= 1 and abs(ratio - round(ratio)) <= RATE_TOLERANCE * ratio


def earlier_is_nearer(target: float, earlier: float, later: float) -> bool:
    """Whether the frame at `earlier` s is grid time `target`'s under ``timestamps`` rather than the
    one at `later` s (earlier ≤ target ≤ later): the nearer one, the earlier on a tie (to :data:`TIE_S`)."""
    return target - earlier <= later - target + TIE_S


def timestamp_grid_length(end_seconds: float, fps: float = 2.5) -> int:
    """Grid frames of a video that ends at `end_seconds`: ``ceil(E · fps)`` (0 for no frames)."""
    return max(0, math.ceil(end_seconds * fps - 1e-6))


class VideoClock:
    """The continuous clock of one video's frames, fed one presentation time at a time.

    :meth:`time` turns a raw presentation time (seconds, None when the frame has none) into the
    time on the video's clock: zero at the first frame, continued across timestamp resets. It
    records the shortest and longest frame duration and the resets, for :meth:`notes`.
    """

    def __init__(self, nominal_fps: float) -> None:
        self.nominal_duration = 1.0 / nominal_fps if nominal_fps > 0 else 0.04
        self.origin: float | None = None
        self.offset = 0.0
        self.last: float | None = None
        self.duration: float | None = None  # the latest positive frame duration
        self.shortest = math.inf
        self.longest = 0.0
        self.resets: list[tuple[int, float, float]] = []  # (frame, time before, raw time after)
        self.count = 0

    @property
    def frame_duration(self) -> float:
        return self.duration if self.duration is not None else self.nominal_duration

    def time(self, raw: float | None) -> float:
        if self.last is None:
            self.origin = raw if raw is not None else 0.0
            now = 0.0
        elif raw is None:
            now = self.last + self.frame_duration
        else:
            now = raw - self.origin + self.offset
            if now < self.last:  # the clock went back: continue it one frame after the last
                self.resets.append((self.count, self.last, raw - self.origin))
                self.offset += self.last + self.frame_duration - now
                now = self.last + self.frame_duration
            elif now > self.last:
                step = now - self.last
                self.duration = step
                self.shortest, self.longest = min(self.shortest, step), max(self.longest, step)
        self.last = now
        self.count += 1
        return now

    @property
    def end(self) -> float:
        """End of the video on its clock: the last frame's time plus one frame duration (0 if none)."""
        return 0.0 if self.last is None else self.last + self.frame_duration

    @property
    def variable_rate(self) -> bool:
        return self.longest > 0 and self.longest > VARIABLE_RATE_RATIO * self.shortest

    def notes(self, source: str, rule: GridRule, nominal_fps: float, fps: float = 2.5) -> list[str]:
        """One line per timing fact a user should know of (resets, a changing rate, a drifting rule)."""
        lines = []
        if self.resets:
            frame, before, after = self.resets[0]
            lines.append(f"{source}: {len(self.resets)} timestamp reset(s); the first at frame {frame} "
                         f"({before:.2f} s, then {after:.2f} s): the frames after each continue the clock "
                         "as one recording")
        drifts = self.variable_rate or self.resets or not is_grid_multiple(nominal_fps, fps)
        if rule == "interval" and drifts:
            interval = grid_interval(nominal_fps, fps)
            why = (f"its frame rate changes ({1 / self.longest:.3g}-{1 / self.shortest:.3g} fps)"
                   if self.variable_rate else f"{nominal_fps:.4g} fps is not a multiple of {fps:g}")
            lines.append(f"{source}: {why}: data.grid=interval takes every {interval}th frame, so grid times do "
                         f"not follow the video's clock (nominally {nominal_fps / interval / fps:.3f}x); "
                         "use data.grid=timestamps")
        elif self.variable_rate:
            lines.append(f"{source}: variable frame rate ({1 / self.longest:.3g}-{1 / self.shortest:.3g} fps); "
                         "grid frames are chosen by timestamp")
        return lines


class GridPicker:
    """Pick the grid frames of one video from its frames in presentation order (module docstring).

    Feed every decoded frame to :meth:`push` with its raw presentation time in seconds; it
    returns the ``(grid index, frame)`` pairs that frame decides, in order. :meth:`finish` gives
    the rest, up to `length` grid frames (the video's own grid length when None), repeating the
    last frame. `convert` turns a frame into what is returned (called once per frame used).
    """

    def __init__(self, rule: GridRule, nominal_fps: float, fps: float = 2.5,
                 convert: Callable[[Any], Any] = lambda frame: frame) -> None:
        self.rule, self.nominal_fps, self.fps, self.convert = check_grid_rule(rule), nominal_fps, fps, convert
        self.interval = grid_interval(nominal_fps, fps)
        self.clock = VideoClock(nominal_fps)
        self.next_index = 0  # the first grid index not yet given
        self.previous: tuple[float, Any] | None = None  # (time, frame) of the last frame pushed
        self._converted: tuple[Any, Any] | None = None  # (frame, converted): the last conversion

    def _out(self, frame: Any) -> Any:
        if self._converted is None or self._converted[0] is not frame:
            self._converted = (frame, self.convert(frame))
        return self._converted[1]

    def push(self, raw_time: float | None, frame: Any) -> list[tuple[int, Any]]:
        number = self.clock.count
        now = self.clock.time(raw_time)
        given = []
        if self.rule == "interval":
            if number % self.interval == 0:
                given.append((number // self.interval, self._out(frame)))
                self.next_index = number // self.interval + 1
        else:
            while self.next_index / self.fps <= now:
                target = self.next_index / self.fps
                before = self.previous
                earlier = before is not None and earlier_is_nearer(target, before[0], now)
                given.append((self.next_index, self._out(before[1] if earlier else frame)))  # type: ignore[index]
                self.next_index += 1
        self.previous = (now, frame)
        return given

    def own_length(self) -> int:
        """Grid frames of the frames pushed so far, by the rule (0 before the first frame)."""
        if self.previous is None:
            return 0
        if self.rule == "interval":
            return math.ceil(self.clock.count / self.interval)
        return timestamp_grid_length(self.clock.end, self.fps)

    def finish(self, length: int | None = None) -> list[tuple[int, Any]]:
        """The grid frames after the last frame pushed, up to `length` (the video's own grid length when None)."""
        total = self.own_length() if length is None else length
        if self.previous is None:
            return []
        rest = [(j, self._out(self.previous[1])) for j in range(self.next_index, total)]
        self.next_index = max(self.next_index, total)
        return rest
