"""Fig. 4-style attention maps: for one moment of a clip, views × models with attention overlaid.

The map of a model is the CLS attention of the last block of its visual ViT over the patches
(:meth:`vicokd.models.MultiViewActionModel.visual_attention`, mean over heads), computed on the
frame exactly as the model sees it (resized cache frame, ImageNet normalisation). For display
each map is scaled to [0, 1] (min-max per image) and stretched over the frame; the CSV beside
the PNG keeps the raw attention weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from vicokd.io import write_csv
from vicokd.models import MultiViewActionModel
from vicokd.report._io import save_figure


def attention_maps(model: MultiViewActionModel, frames: np.ndarray) -> np.ndarray:
    """uint8 frames (V, H, W, 3) → attention (V, H/p, W/p) of `model`'s visual encoder (which normalises)."""
    video = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
    model.eval()
    with torch.no_grad():
        maps = model.visual_attention(video)
    return maps.float().cpu().numpy()


def attention_inside(maps: np.ndarray, coverage: np.ndarray) -> tuple[float, float]:
    """Share of attention that falls on a region, and the share uniform attention would give.

    maps (N, h, w): attention over patches of N images; coverage (N, h, w) in [0, 1]: the part of
    each patch the region covers (the actor's mask). Returns
    ``(Σ a·m / Σ a, mean_N (Σ m / (h·w)))``: attention-weighted coverage pooled over the images,
    and the chance level of uniform attention.
    """
    if maps.shape != coverage.shape or maps.ndim != 3 or not len(maps):
        raise ValueError(f"maps {maps.shape} and coverage {coverage.shape} must be the same (N, h, w), N >= 1")
    inside = float((maps * coverage).sum() / maps.sum())
    return inside, float(coverage.mean())


def _scaled(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return np.zeros_like(values) if high <= low else (values - low) / (high - low)


def plot_attention_grid(frames: np.ndarray, maps: Mapping[str, np.ndarray], png: str | Path, *, title: str,
                        view_notes: Sequence[str] | None = None) -> tuple[Path, Path]:
    """Rows = views; columns = the plain frame, then one per model with its map overlaid.

    `frames` (V, H, W, 3) uint8; `maps` model label → (V, h, w). `view_notes` (one per view,
    e.g. "person visible") go into the row labels. Writes the PNG and a CSV (same stem) with one
    row per patch: ``model, view, row, col, attention``.
    """
    from matplotlib.figure import Figure

    png = Path(png)
    views = frames.shape[0]
    height, width = frames.shape[1:3]
    figure = Figure(figsize=(1.8 * (len(maps) + 1) + 0.6, 1.8 * views * height / width + 0.6), layout="constrained")
    axes = np.asarray(figure.subplots(views, len(maps) + 1, squeeze=False))
    columns: list[tuple[str, np.ndarray | None]] = [("frame", None), *maps.items()]
    for col, (label, values) in enumerate(columns):
        axes[0, col].set_title(label, fontsize=9)
        for view in range(views):
            ax = axes[view, col]
            ax.imshow(frames[view], extent=(0, width, height, 0))
            if values is not None:
                ax.imshow(_scaled(values[view]), cmap="jet", alpha=0.4, extent=(0, width, height, 0),
                          interpolation="bilinear")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                note = f"\n{view_notes[view]}" if view_notes else ""
                ax.set_ylabel(f"view {view + 1}{note}", fontsize=8)
    figure.suptitle(title, fontsize=9)
    save_figure(figure, png)
    rows = [{"model": label, "view": view + 1, "row": i, "col": j, "attention": f"{values[view, i, j]:.6f}"}
            for label, values in maps.items() for view in range(views)
            for i in range(values.shape[1]) for j in range(values.shape[2])]
    return png, write_csv(png.with_suffix(".csv"), ("model", "view", "row", "col", "attention"), rows)
