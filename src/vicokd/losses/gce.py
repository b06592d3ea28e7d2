"""Generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018) for binary targets, as used by the
MultiASL backbone on its two actionness heads (q = 0.7).

For a predicted probability ``p`` of the positive class and a target ``y``:

    L = (1 − p_y^q) / q,   p_y = p if y = 1 else 1 − p,   0 < q ≤ 1

q → 0 recovers the cross-entropy ``−log p_y``; q = 1 is the mean absolute error ``1 − p_y``. The
expression ``y (1 − p^q)/q + (1 − y)(1 − (1 − p)^q)/q`` is used, which equals the above for
binary ``y`` and is its expectation for a soft target ``y ∈ [0, 1]``. Reduction: the mean over all
elements (the paper's code balancing is not specified, so none is applied).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from vicokd.losses._common import check_same_shape, promote

_EPS = 1e-12


def _check(values: Tensor, targets: Tensor, q: float, name: str) -> None:
    check_same_shape(name, values, "targets", targets)
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")


def generalized_cross_entropy(probs: Tensor, targets: Tensor, q: float = 0.7) -> Tensor:
    """Mean GCE of probabilities `probs` (any shape, values in [0, 1]) against `targets` → scalar.

    ``p`` and ``1 − p`` are clamped at 1e-12 before the power so that the gradient ``q·p^(q−1)``
    stays finite at 0.
    """
    _check(probs, targets, q, "probs")
    p = promote(probs)
    y = targets.to(p.dtype)
    pos = (1 - p.clamp(min=_EPS).pow(q)) / q
    neg = (1 - (1 - p).clamp(min=_EPS).pow(q)) / q
    return (y * pos + (1 - y) * neg).mean()


def generalized_cross_entropy_with_logits(logits: Tensor, targets: Tensor, q: float = 0.7) -> Tensor:
    """Mean GCE with ``p = sigmoid(logits)`` (any shape) against `targets` → scalar.

    Computed stably as ``p^q = exp(q · logsigmoid(x))`` and ``(1 − p)^q = exp(q · logsigmoid(−x))``.
    """
    _check(logits, targets, q, "logits")
    x = promote(logits)
    y = targets.to(x.dtype)
    pos = (1 - (q * F.logsigmoid(x)).exp()) / q
    neg = (1 - (q * F.logsigmoid(-x)).exp()) / q
    return (y * pos + (1 - y) * neg).mean()
