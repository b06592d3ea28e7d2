"""Timeline of a prediction: classes × time heat map of frame probabilities, detected segments on top.

Column j of the heat map is grid frame j, centred on its time j / fps and 1 / fps wide; a
segment [start, end] (the times of its first and last grid frame) is drawn as a box over the
cells of its frames, ``start − 0.5/fps`` to ``end + 0.5/fps``, on its class's row. The CSV beside
the PNG has one row per grid frame: ``time_s`` and the probability of each class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from vicokd.errors import VicokdError
from vicokd.io import write_csv
from vicokd.report._io import save_figure

__all__ = ["Span", "plot_timeline"]


class Span(Protocol):
    """A detected segment: class name and the times of its first and last grid frame (seconds)."""

    label: str
    start: float
    end: float


def plot_timeline(probs: np.ndarray, classes: Sequence[str], fps: float, segments: Iterable[Span],
                  png: str | Path, *, title: str | None = None) -> tuple[Path, Path]:
    """Heat map of `probs` (L, C) over time with `segments` boxed; writes the PNG and its CSV.

    Returns the PNG and CSV paths.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise VicokdError(f"timeline: probabilities of shape {probs.shape} do not match (L, C) with "
                          f"C = {len(classes)} classes")
    png = Path(png)
    length, num_classes = probs.shape
    half = 0.5 / fps
    duration = length / fps
    figure = Figure(figsize=(min(24.0, max(6.4, 0.12 * duration + 2.5)), 1.2 + 0.35 * num_classes))
    axes = figure.subplots()
    image = axes.imshow(probs.T, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest",
                        extent=(-half, duration - half, num_classes - 0.5, -0.5))
    row = {name: i for i, name in enumerate(classes)}
    for segment in segments:
        axes.add_patch(Rectangle((segment.start - half, row[segment.label] - 0.42),
                                 segment.end - segment.start + 2 * half, 0.84,
                                 fill=False, edgecolor="red", linewidth=1.5))
    axes.set_yticks(range(num_classes), labels=list(classes))
    axes.set_xlabel("time (s)")
    axes.set_title(title or "frame probabilities; boxes: detected segments")
    figure.colorbar(image, ax=axes, label="probability", fraction=0.03, pad=0.01)
    save_figure(figure, png)
    rows = ({"time_s": round(j / fps, 6), **{name: round(float(p), 6) for name, p in zip(classes, values)}}
            for j, values in enumerate(probs))
    csv_path = write_csv(png.with_suffix(".csv"), ["time_s", *classes], rows)
    return png, csv_path
