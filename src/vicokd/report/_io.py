"""Figures for reports, written atomically (see :mod:`vicokd.io`)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from vicokd.io import atomic_path


def save_figure(figure: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)
