"""Human-presence loss of the MultiTSF backbone's auxiliary human head.

The head gives one logit per frame of each view, ``z`` (B, V, T); the person detector gives raw
scores ``s`` (B, V, T) ≥ 0 (mean person confidence of the frame, 0 when nobody is found). Each
(b, v) row is a distribution over time:

    q_{b,v,t} = s_{b,v,t} / Σ_t' s_{b,v,t'}                       (soft target, normalised over T)
    ℓ_{b,v}   = − Σ_t q_{b,v,t} · log softmax_t(z_{b,v,·})_t      (cross-entropy over the T axis)
    L         = mean of ℓ_{b,v} over the rows with Σ_t s_{b,v,t} > 0

Rows in which no frame has a person carry no target and are skipped; when no row has one, the
loss is 0 (in the graph), never NaN. Scores are data: no gradient flows into them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vicokd.losses._common import check_same_shape, masked_mean, promote


def human_presence_loss(logits: Tensor, scores: Tensor) -> Tensor:
    """Cross-entropy over time between `logits` (B, V, T) and normalised person `scores` → scalar.

    Any leading shape works as long as time is the last axis; `scores` must be ≥ 0.
    """
    check_same_shape("logits", logits, "scores", scores)
    if logits.ndim < 1:
        raise ValueError("logits must have a time axis (..., T)")
    z = promote(logits)
    s = scores.detach().to(z.dtype)
    total = s.sum(dim=-1, keepdim=True)
    target = s / total.clamp(min=torch.finfo(z.dtype).tiny)  # all-zero rows stay all zero
    row_loss = -(target * F.log_softmax(z, dim=-1)).sum(dim=-1)
    return masked_mean(row_loss, total.squeeze(-1) > 0)
