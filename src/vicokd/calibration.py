"""Calibrated decisions: a per-class scaling of the logits and a threshold per class.

Two-way-loss logits rank well but are not probabilities: a fixed 0.5 means nothing. At the end
of training (:func:`vicokd.training.run.fit`) the best model's frame logits on the validation
split (N frames, C classes) give:

- **scaling** per class c (Platt): ``p = σ(a_c·z + b_c)`` with a_c > 0, fitted by minimising
  the binary cross-entropy against the frame labels over the validation frames. Each class's
  ranking is kept, so every AP and mAP is unchanged. (One temperature σ(z / T) is not enough
  for two-way-loss logits: they sit around 0 for every class while few frames are positive, so
  the best T runs off to infinity and leaves p ≈ 0.5; measured in
  docs/experiments/calibration.md.)
- **thresholds** t_c, one per class: the rule is *maximise frame-level F1 on validation*. With
  the frames sorted by p descending, cutting after the k-th frame predicts those k positive;
  ``F1_k = 2·TP_k / (k + P)`` (P positives of the class); t_c is the p of the best cut's last
  frame (predict positive when p ≥ t_c; the earliest cut wins ties). A class with no positive
  validation frame keeps :data:`DEFAULT_THRESHOLD`.

Reliability is measured by the expected calibration error over (frame, class) pairs,
``ECE = Σ_b (|B_b| / N) · |mean_{B_b}(y) − mean_{B_b}(p)|`` over :data:`ECE_BINS` equal-width
bins of p, before (the plain sigmoid) and after calibration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from vicokd.metrics import frame_rows

__all__ = ["DEFAULT_THRESHOLD", "ECE_BINS", "Calibration", "calibrate", "expected_calibration_error", "f1_at",
           "f1_thresholds", "fit_scaling"]

DEFAULT_THRESHOLD = 0.5
ECE_BINS = 15


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of binary predictions `probs` against 0/1 `labels` (any equal shapes, pooled)."""
    p, y = np.asarray(probs, np.float64).ravel(), np.asarray(labels, np.float64).ravel()
    if not p.size:
        raise ValueError("expected_calibration_error: no predictions")
    which = np.minimum((p * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            error += chosen.mean() * abs(y[chosen].mean() - p[chosen].mean())
    return float(error)


def fit_scaling(logits: np.ndarray, labels: np.ndarray, steps: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Per class (a_c, b_c), a_c > 0, minimising BCE(σ(a_c·z + b_c), y) on (N, C) logits / labels.

    LBFGS on (log a, b) from (0, 0), i.e. from the plain sigmoid.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64)
    log_scale = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_scale, bias], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(z * log_scale.exp() + bias, y)
        value.backward()
        return value

    optimizer.step(loss)
    return log_scale.detach().exp().numpy(), bias.detach().numpy()


def f1_thresholds(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the threshold that maximises F1 on (N, C) `probs` / 0-1 `labels`, and that F1.

    Rule in the module docstring; a class without positives gets :data:`DEFAULT_THRESHOLD` and
    F1 NaN.
    """
    p, y = np.asarray(probs, np.float64), np.asarray(labels) > 0.5
    thresholds = np.full(p.shape[1], DEFAULT_THRESHOLD)
    best_f1 = np.full(p.shape[1], np.nan)
    for c in range(p.shape[1]):
        positives = int(y[:, c].sum())
        if positives == 0:
            continue
        order = np.argsort(-p[:, c], kind="stable")
        scores, hits = p[order, c], y[order, c]
        true_positives = np.cumsum(hits)
        predicted = np.arange(1, len(scores) + 1)
        last_of_tie = np.r_[scores[1:] != scores[:-1], True]  # a cut may not split equal scores
        f1 = np.where(last_of_tie, 2 * true_positives / (predicted + positives), -1.0)
        k = int(np.argmax(f1))
        thresholds[c], best_f1[c] = scores[k], f1[k]
    return thresholds, best_f1


def f1_at(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per-class F1 = 2·TP / (2·TP + FP + FN) of ``probs >= thresholds`` on (N, C); NaN for a class
    without positives (left out of a macro mean)."""
    predicted = np.asarray(probs) >= np.asarray(thresholds)[None, :]
    truth = np.asarray(labels) > 0.5
    true_positives = (predicted & truth).sum(0)
    denominator = predicted.sum(0) + truth.sum(0)
    return np.where(truth.sum(0) > 0, 2 * true_positives / np.maximum(denominator, 1), np.nan)


@dataclass(frozen=True)
class Calibration:
    """What a checkpoint stores (sidecar ``vicokd.calibration``) and ``predict`` applies."""

    scale: dict[str, float]
    bias: dict[str, float]
    thresholds: dict[str, float]
    val_f1: dict[str, float | None]
    ece_before: float
    ece_after: float
    val_frames: int
    rule: str = "per class: the threshold maximising frame-level F1 on the validation split"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Calibration:
        return cls(**values)

    def probabilities(self, logits: torch.Tensor, classes: Sequence[str]) -> torch.Tensor:
        """σ(a_c·z + b_c) of logits (..., C) in the order of `classes`."""
        scale = torch.tensor([self.scale[name] for name in classes], dtype=logits.dtype, device=logits.device)
        bias = torch.tensor([self.bias[name] for name in classes], dtype=logits.dtype, device=logits.device)
        return (logits * scale + bias).sigmoid()

    def threshold_array(self, classes: Sequence[str]) -> np.ndarray:
        return np.array([self.thresholds[name] for name in classes])


def reported_probabilities(logits: torch.Tensor, calibration: Calibration | None, classes: Sequence[str]
                           ) -> torch.Tensor:
    """The probabilities every decision uses (predict, stream, evaluate, the exported ONNX graph):
    σ(a_c·z + b_c) with the checkpoint's calibration, σ(z) without one; logits (..., C)."""
    return calibration.probabilities(logits, classes) if calibration is not None else logits.sigmoid()


def calibrate(frame_logits: np.ndarray, frame_labels: np.ndarray, classes: Sequence[str]) -> Calibration:
    """Per-class scaling and thresholds from validation frame logits / labels (..., C)."""
    z = frame_rows(np.asarray(frame_logits, np.float64))
    y = frame_rows(np.asarray(frame_labels, np.float64))
    scale, bias = fit_scaling(z, y)
    before, after = expit(z), expit(z * scale + bias)
    thresholds, f1 = f1_thresholds(after, y)
    return Calibration(
        scale={name: float(a) for name, a in zip(classes, scale)},
        bias={name: float(b) for name, b in zip(classes, bias)},
        thresholds={name: float(t) for name, t in zip(classes, thresholds)},
        val_f1={name: None if np.isnan(v) else float(v) for name, v in zip(classes, f1)},
        ece_before=expected_calibration_error(before, y), ece_after=expected_calibration_error(after, y),
        val_frames=len(z),
    )
