"""The 2.5-FPS frame grid and the T-frame sampling rules (docs/reference/REFERENCE-CODE.md §Frame grid).

Grid: a video of ``n`` frames at ``video_fps`` is read at ``interval = round(video_fps / fps)``
(at least 1): frames ``0, interval, 2·interval, …``, grid length ``ceil(n / interval)``. Grid frame
``j`` stands for time ``j / fps`` seconds. A clip's length L is the minimum over its views.

Sampling T indices from L grid frames:

* ``uniform`` (evaluation): ``idx_i = floor(i·L/T)``, i = 0..T−1.
* ``jitter`` (training): ``s_i = i·L/T``, ``a_i = floor(s_i)``; for i < T−1 draw uniformly from
  ``[a_i, a_{i+1}]`` (inclusive) when they differ, else ``a_i``; for i = T−1 draw from
  ``[a_{T−1}, L−1]``. Indices never decrease; duplicates are normal; L < T repeats frames.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np


def grid_interval(video_fps: float, fps: float = 2.5) -> int:
    """Source-frame step of the grid: ``max(1, round(video_fps / fps))``."""
    return max(1, round(video_fps / fps))


def grid_length(num_video_frames: int, video_fps: float, fps: float = 2.5) -> int:
    """Number of grid frames of a video: ``ceil(n / interval)``."""
    return math.ceil(num_video_frames / grid_interval(video_fps, fps))


def sample_indices(
    num_available: int,
    num_frames: int,
    mode: Literal["uniform", "jitter"],
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Return T = `num_frames` non-decreasing grid indices in ``[0, num_available)`` (int64).

    `mode` is ``"uniform"`` (deterministic, evaluation) or ``"jitter"`` (training, drawn with
    `rng`, a fresh ``numpy.random.default_rng()`` when None).
    """
    if num_available < 1:
        raise ValueError(f"num_available must be >= 1, got {num_available}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    length, count = num_available, num_frames
    anchors = (np.arange(count, dtype=np.int64) * length) // count  # floor(i·L/T), exact in ints
    if mode == "uniform":
        return anchors
    if mode != "jitter":
        raise ValueError(f"mode must be 'uniform' or 'jitter', got {mode!r}")
    rng = rng if rng is not None else np.random.default_rng()
    upper = np.empty(count, dtype=np.int64)
    upper[:-1] = anchors[1:]
    upper[-1] = length - 1
    return rng.integers(anchors, upper, endpoint=True)
