"""MultiASL backbone: per-view temporal Transformer + action-selection (ASL) branch.

Input F^AV (B, V, T, D). Per view n (weights shared across views), no positional encoding::

    [z_n ; F^Fusion_n] = TemporalEncoder([token ; F^AV_n])       1 layer, 4 heads × 128, final LN
    view_frame_logits[n, t] = W_f F^Fusion_{n,t} + b_f           (B, V, T, C)
    frame_logits[t]         = max_n view_frame_logits[n, t]      (B, T, C)
    seq_logits              = W_s max_n z_n + b_s                (B, C)

Action-selection branch on the views fused by max, X = max_n F^AV_n and Z = max_n F^Fusion_n
(B, T, D each)::

    extras["cas"]        (B, T, C)  class activation sequence  MLP([X ; Z])
    extras["cas_top"]    (B, C)     mean of the top-k CAS values per class over T,
                                    k = max(1, T // topk_divisor)
    extras["topk_mask"]  (B, T, C)  1 where frame t is among the top-k of class c (no gradient)
    extras["actionness"] (B, T, 2)  actionness logits of the two heads: [:, :, 0] from X (raw
                                    features), [:, :, 1] from Z (temporal outputs)

The reference loss is TwoWay(seq) + TwoWay(cas_top) + GCE(actionness[..., 0]) +
GCE(actionness[..., 1]) with q = ``gce_q``; the GCE target of frame t is 1 when t is selected
(``topk_mask``) for a class the clip is labelled with. View-symmetric.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vicokd.config import MultiASLConfig
from vicokd.models.backbones._blocks import BackboneOutput, Encoder, from_over_time, over_time

__all__ = ["MultiASL"]


class MultiASL(nn.Module):
    """Per-view temporal Transformer with a learnable token, max-over-views heads, ASL branch."""

    head_modules = ("frame_head", "seq_head", "cas_head", "actionness_raw", "actionness_temporal")

    def __init__(self, dim: int, num_classes: int, config: MultiASLConfig, *, sequence_head: bool = True) -> None:
        super().__init__()
        self.topk_divisor = config.topk_divisor
        self.token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.token, std=0.02)
        self.temporal = Encoder(dim, config.temporal_layers, config.temporal_heads, int(dim * config.mlp_ratio),
                                head_dim=config.head_dim, dropout=config.dropout)
        self.frame_head = nn.Linear(dim, num_classes)
        self.seq_head = nn.Linear(dim, num_classes) if sequence_head else None
        self.cas_head = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Dropout(config.dropout),
                                      nn.Linear(dim, num_classes))
        self.actionness_raw = nn.Linear(dim, 1)
        self.actionness_temporal = nn.Linear(dim, 1)

    def forward(self, av: Tensor) -> BackboneOutput:
        b, v, t, d = av.shape
        tokens = torch.cat([self.token.expand(b * v, 1, d).to(av.dtype), over_time(av)], dim=1)
        out = from_over_time(self.temporal(tokens), b)  # (B, V, T+1, D)
        fusion = out[:, :, 1:]
        view_frame_logits = self.frame_head(fusion)
        seq_logits = self.seq_head(out[:, :, 0].amax(1)) if self.seq_head is not None else None

        raw, temporal = av.amax(1), fusion.amax(1)
        cas = self.cas_head(torch.cat([raw, temporal], dim=-1))
        k = max(1, t // self.topk_divisor)
        top_values, top_index = cas.topk(k, dim=1)
        topk_mask = torch.zeros_like(cas).scatter_(1, top_index, 1.0).detach()
        actionness = torch.cat([self.actionness_raw(raw), self.actionness_temporal(temporal)], dim=-1)
        extras = {"cas": cas, "cas_top": top_values.mean(1), "topk_mask": topk_mask, "actionness": actionness}
        return BackboneOutput(fusion, view_frame_logits, view_frame_logits.amax(1), seq_logits, extras)
