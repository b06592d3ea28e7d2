"""The batch: what the data loaders hand to the models, the losses and the training module (one typed dict).

Shapes: B clips, V views, T sampled grid frames, C classes, R fbank rows, M mel bins, W encoder
feature width. Every key but the labels is optional: a student reads ``video`` (or
``visual_features``), a teacher also ``audio`` (or ``audio_features``) and ``audio_present``;
``person`` is there when person scores were loaded. A loader's sample is the same dict without
the leading B (and ``index`` an int, ``key`` a str): :mod:`vicokd.data.dataset`.
Used by every layer (it imports nothing of vicokd), like :mod:`vicokd.io`.
"""

from __future__ import annotations

from typing import TypedDict

from torch import Tensor

__all__ = ["Batch"]


class Batch(TypedDict, total=False):
    """One batch of multi-view clips (module docstring)."""

    video: Tensor  # uint8 (B, V, T, 3, H, W): the model normalises it
    audio: Tensor  # float32 (B, V, T, R, M) normalised log-mel chunks
    visual_features: Tensor  # float32 (B, V, T, W) (or tokens (B, V, T, N, W)) from the feature cache
    audio_features: Tensor  # float32 (B, V, T, W)
    audio_present: Tensor  # bool (B, V): False for a view without an audio track
    frame_labels: Tensor  # float32 (B, T, C) multi-hot labels of the sampled frames
    labels: Tensor  # float32 (B, C) multi-hot clip labels
    person: Tensor  # float32 (B, V, T) person scores (mask: score > data.person_threshold)
    frame_index: Tensor  # int64 (B, T) sampled grid indices
    index: Tensor  # int64 (B,) positions of the clips in their split
    key: list[str]  # (B,) clip identities
