"""Kobayashi's two-way multi-label loss (CVPR 2023), the supervision loss of Eq. 5.

For logits ``x`` (N, C) and binary targets ``y`` (N, C), with temperatures ``Tp`` (positives) and
``Tn`` (negatives):

    class-wise, for each class c with at least one positive (over the samples n):
        P_c = Tp · log Σ_{n: y_nc=1} exp(−x_nc / Tp)
        N_c = Tn · log Σ_{n: y_nc=0} exp( x_nc / Tn)
    sample-wise, for each row n with at least one positive (over the classes c):
        P_n = Tp · log Σ_{c: y_nc=1} exp(−x_nc / Tp)
        N_n = Tn · log Σ_{c: y_nc=0} exp( x_nc / Tn)

    L = mean_{c: any positive} softplus(P_c + N_c) + mean_{n: any positive} softplus(P_n + N_n)

A sum over an empty set is 0, so its log is −inf: a class (row) whose entries are all positive has
``N = −inf`` and contributes ``softplus(−inf) = 0``. Classes and rows without a positive are skipped;
when the whole input has no positive the loss is an exact 0 that still belongs to the graph (its
gradient is 0), never NaN. Frame-level supervision passes frames flattened to (B·T, C); the number
of classes is read from the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vicokd.losses._common import check_same_shape, masked_mean, promote


def _masked_logsumexp(values: Tensor, members: Tensor, dim: int) -> Tensor:
    """``log Σ_{members} exp(values)`` along `dim`; −inf where a group has no member.

    Non-members are set to −inf. The backward of ``masked_fill`` writes an exact 0 into every filled
    entry, so no NaN from an all −inf group (``exp(−inf − (−inf))``) can reach the logits.
    """
    return torch.logsumexp(values.masked_fill(~members, float("-inf")), dim=dim)


def _two_way_term(x: Tensor, positive: Tensor, tp: float, tn: float, dim: int) -> Tensor:
    """``softplus(P + N)`` per group, the groups running along the axis other than `dim`."""
    p = tp * _masked_logsumexp(-x / tp, positive, dim)
    n = tn * _masked_logsumexp(x / tn, ~positive, dim)
    return F.softplus(p + n)


def two_way_loss(logits: Tensor, targets: Tensor, tp: float = 4.0, tn: float = 1.0) -> Tensor:
    """Two-way multi-label loss of `logits` (N, C) against binary `targets` (N, C) → scalar.

    A target ≥ 0.5 counts as a positive. `tp` and `tn` are the positive and negative temperatures
    (paper: 4 and 1). The loss is computed in at least float32. See the module docstring for the
    equation and the handling of classes/rows without positives.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    check_same_shape("logits", logits, "targets", targets)
    if tp <= 0 or tn <= 0:
        raise ValueError(f"temperatures must be > 0, got tp={tp}, tn={tn}")
    x = promote(logits)
    positive = targets >= 0.5
    class_term = _two_way_term(x, positive, tp, tn, dim=0)  # (C,)
    sample_term = _two_way_term(x, positive, tp, tn, dim=1)  # (N,)
    return masked_mean(class_term, positive.any(dim=0)) + masked_mean(sample_term, positive.any(dim=1))
