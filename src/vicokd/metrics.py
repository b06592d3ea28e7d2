"""Average precision and mean average precision for multi-label action recognition.

Scores and targets are (N, C): N samples (clips, or frames of all clips), C classes; targets are
0/1. Inputs may be numpy arrays, torch tensors or nested sequences.

AP of one class (non-interpolated): sort the samples by score, descending; for each positive take
the precision at its rank; AP is the mean over the positives:

    AP_c = 1/P_c Σ_{k: y_(k)=1} precision@k,   precision@k = (#positives in ranks 1..k) / k

Ties: samples with equal scores form one threshold, so every positive of a tie group is given the
precision at the *last* rank of its group. The result does not depend on the order of the samples
and equals scikit-learn's ``average_precision_score`` (tied or not). A class without a positive
has no AP (NaN); mAP = 100 × mean of AP over the classes with at least one positive, and fails
loudly when there is none.

Clip-level and frame-level mAP rank the logits directly: AP depends only on the order of the
scores and the sigmoid is strictly increasing, so this is the AP of the sigmoid scores, without
the ties that rounding a saturated sigmoid would create.

In distributed evaluation, gather scores with their sample ids and :func:`deduplicate` them before
computing any metric: a distributed sampler pads the last batch with repeated samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from vicokd.errors import DataError

ArrayLike = np.ndarray | torch.Tensor | Sequence[Any]


def _to_numpy(values: ArrayLike) -> np.ndarray:
    """Convert a tensor (any device, any float dtype) or sequence to a numpy array."""
    if isinstance(values, torch.Tensor):
        tensor = values.detach().cpu()
        if tensor.dtype in (torch.float16, torch.bfloat16):
            tensor = tensor.float()
        return tensor.numpy()
    return np.asarray(values)


def _scores_and_positives(scores: ArrayLike, targets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate (N, C) scores and 0/1 targets; return float64 scores and a boolean positive mask."""
    s = _to_numpy(scores).astype(np.float64, copy=False)
    y = _to_numpy(targets)
    if s.ndim != 2 or s.shape != y.shape:
        raise ValueError(f"scores and targets must both be (N, C), got {s.shape} and {y.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    positive = y == 1
    if not np.all(positive | (y == 0)):
        raise ValueError("targets must be 0/1")
    return s, positive


def average_precision(scores: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Per-class non-interpolated AP of `scores` (N, C) against 0/1 `targets` (N, C) → (C,) float64.

    Values are in [0, 1]; NaN for a class without a positive. Ties as in the module docstring.
    """
    s, positive = _scores_and_positives(scores, targets)
    n, c = s.shape
    if n == 0:
        return np.full(c, np.nan)
    order = np.argsort(-s, axis=0, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=0)
    y_sorted = np.take_along_axis(positive, order, axis=0)
    true_pos = np.cumsum(y_sorted, axis=0)  # positives within ranks 1..k, (N, C)
    # Row index of the last member of each row's tie group: a reverse running minimum over the
    # indices of the group ends (the last row always ends a group).
    ends_group = np.ones((n, c), dtype=bool)
    ends_group[:-1] = s_sorted[:-1] != s_sorted[1:]
    end_index = np.where(ends_group, np.arange(n)[:, None], n)
    group_end = np.minimum.accumulate(end_index[::-1], axis=0)[::-1]
    precision = np.take_along_axis(true_pos, group_end, axis=0) / (group_end + 1)
    num_pos = true_pos[-1]
    ap = np.full(c, np.nan)
    has_pos = num_pos > 0
    ap[has_pos] = (precision * y_sorted).sum(axis=0)[has_pos] / num_pos[has_pos]
    return ap


def excluded_classes(targets: ArrayLike) -> np.ndarray:
    """Indices of the classes of 0/1 `targets` (N, C) without a positive (excluded from mAP)."""
    y = _to_numpy(targets)
    if y.ndim != 2:
        raise ValueError(f"targets must be (N, C), got shape {y.shape}")
    return np.flatnonzero(~(y == 1).any(axis=0))


def mean_average_precision(scores: ArrayLike, targets: ArrayLike) -> float:
    """mAP in percent: 100 × mean AP over the classes with at least one positive.

    Raises :class:`~vicokd.errors.DataError` when no class has a positive (mAP is undefined; it is
    never reported as 0).
    """
    ap = average_precision(scores, targets)
    valid = ~np.isnan(ap)
    if not valid.any():
        raise DataError(
            f"mAP is undefined: none of the {ap.size} classes has a positive target (check the split's labels)"
        )
    return float(100.0 * ap[valid].mean())


def sequence_map(seq_logits: ArrayLike, labels: ArrayLike) -> float:
    """Clip-level mAP [%]: sigmoid of sequence logits (N, C) against clip labels (N, C)."""
    return mean_average_precision(seq_logits, labels)


def frame_map(frame_logits: ArrayLike, frame_labels: ArrayLike) -> float:
    """Frame-level mAP [%]: sigmoid of every frame's logits against its labels.

    `frame_logits` and `frame_labels` are (N, T, C) for N clips of T frames, or already flat (M, C);
    all frames of the split are pooled, (N·T, C), before AP is computed per class.
    """
    logits = _to_numpy(frame_logits)
    labels = _to_numpy(frame_labels)
    if logits.shape != labels.shape or logits.ndim not in (2, 3):
        raise ValueError(
            f"frame_logits and frame_labels must both be (N, T, C) or (M, C), got {logits.shape} and {labels.shape}"
        )
    return mean_average_precision(frame_rows(logits), frame_rows(labels))


Rows = TypeVar("Rows", np.ndarray, torch.Tensor)


def frame_rows(values: Rows) -> Rows:
    """Per-frame values of clips (N, T, C), or already one row per frame (M, C), as rows (N·T, C):
    every frame-level score, loss and decision pools the frames of all clips this way."""
    return values.reshape(-1, values.shape[-1])


def per_class_ap_table(scores: ArrayLike, targets: ArrayLike, classes: Sequence[str]) -> list[dict[str, Any]]:
    """One row per class: ``{"class", "ap", "positives", "excluded"}``.

    `classes` names the C columns in order. ``ap`` is in percent, and None for an excluded class
    (no positive) so that the table serialises to strict JSON.
    """
    ap = average_precision(scores, targets)
    if len(classes) != ap.size:
        raise ValueError(f"got {len(classes)} class names for {ap.size} score columns")
    positives = (_to_numpy(targets) == 1).sum(axis=0)
    return [
        {
            "class": name,
            "ap": None if np.isnan(value) else float(100.0 * value),
            "positives": int(count),
            "excluded": bool(np.isnan(value)),
        }
        for name, value, count in zip(classes, ap, positives)
    ]


def deduplicate(sample_ids: ArrayLike, *arrays: ArrayLike) -> tuple[np.ndarray, ...]:
    """Drop repeated samples (the padding of a distributed sampler) by id.

    `sample_ids` is (N,) (integers or strings); each array has N rows aligned with it. Returns
    ``(unique_ids, *arrays)`` as numpy arrays sorted by id, keeping the first occurrence of each id.
    Repeats are assumed to be the same sample evaluated twice; their values are not compared.
    """
    ids = _to_numpy(sample_ids)
    if ids.ndim != 1:
        raise ValueError(f"sample_ids must be 1-D, got shape {ids.shape}")
    unique, first = np.unique(ids, return_index=True)
    out = [unique]
    for k, values in enumerate(arrays):
        array = _to_numpy(values)
        if array.ndim == 0 or array.shape[0] != ids.shape[0]:
            raise ValueError(f"array {k} has shape {array.shape}; expected {ids.shape[0]} rows like sample_ids")
        out.append(array[first])
    return tuple(out)


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """|a ∩ b| / |a ∪ b| of two intervals (start, end) in seconds; 0 when the union is empty."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def matched_segments(predicted: Sequence[tuple[float, float, float]], truth: Sequence[tuple[float, float]],
                     min_iou: float = 0.5) -> int:
    """True positives among the predicted segments of one class and one clip.

    predicted: (start, end, score); truth: (start, end). Greedy by descending score: each
    prediction takes the unmatched true segment of highest temporal IoU, a hit when that IoU is
    at least `min_iou`; every true segment is matched at most once.
    """
    free = list(truth)
    hits = 0
    for start, end, _ in sorted(predicted, key=lambda segment: -segment[2]):
        if not free:
            break
        ious = [temporal_iou((start, end), segment) for segment in free]
        best = int(np.argmax(ious))
        if ious[best] >= min_iou:
            hits += 1
            free.pop(best)
    return hits
