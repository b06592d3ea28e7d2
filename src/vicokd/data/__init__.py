"""Data: annotations, the 2.5-FPS grid and sampling, media decoding, the prepared cache, datasets.

Public names (docs/reference/DESIGN.md §4): :func:`load_annotations`, :func:`sample_indices`,
:func:`frame_labels`, plus :class:`Clip`, :func:`prepare` and :class:`MultiViewClips`.
"""

from vicokd.data.annotations import Clip, Segment, frame_labels, load_annotations, sequence_labels
from vicokd.data.sampling import grid_interval, grid_length, sample_indices

__all__ = [
    "Clip",
    "Segment",
    "frame_labels",
    "grid_interval",
    "grid_length",
    "load_annotations",
    "sample_indices",
    "sequence_labels",
]
