"""MultiTrans backbone (Yasuda et al., ICASSP 2022, arXiv 2202.09124): Transformer sensor fusion.

Input F^AV (B, V, T, D). The V view tokens of each frame, tagged with learned sensor embeddings
e_n (one per view, up to ``max_views``), attend to one another; a temporal encoder follows::

    H[t]       = SensorEncoder({F^AV_{n,t} + e_n}_n)             `layers` blocks, across views at t
    F^Fusion_n = TemporalEncoder(H_n + PE_T)                     `temporal_layers` blocks, final LN
    view_frame_logits[n, t] = W F^Fusion_{n,t} + b               (B, V, T, C)
    frame_logits[t]         = pool_n view_frame_logits[n, t]     max or mean (``view_pooling``)
    seq_logits              = pool_t frame_logits[t]             mean, max or attention (``pooling``)

Attention pooling: ``seq_c = Σ_t softmax_t(a_{t,c}) · frame_logits_{t,c}`` with
``a_t = W_a mean_n F^Fusion_{n,t}``. The audio stream is already fused into F^AV by the
cross-modal attention, so the sensor tokens are the views. Not view-symmetric: the sensor
embedding ties view n to its position in the input.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vicokd.config import MultiTransConfig
from vicokd.errors import VicokdError
from vicokd.models.backbones._blocks import (
    BackboneOutput,
    Encoder,
    check_heads,
    from_over_time,
    from_over_views,
    over_time,
    over_views,
    pool,
)
from vicokd.models.layers import sinusoidal_encoding

__all__ = ["MultiTrans"]


class MultiTrans(nn.Module):
    """Cross-view Transformer with sensor embeddings, then a temporal Transformer (see module doc)."""

    head_modules = ("frame_head", "attention_head")

    def __init__(self, dim: int, num_classes: int, config: MultiTransConfig, *, sequence_head: bool = True) -> None:
        super().__init__()
        check_heads(dim, config.heads, "model.multitrans.heads")
        self.max_views = config.max_views
        self.view_pooling = config.view_pooling
        self.pooling = config.pooling
        ffn = int(dim * config.mlp_ratio)
        self.sensor_embed = nn.Parameter(torch.zeros(config.max_views, dim))
        nn.init.trunc_normal_(self.sensor_embed, std=0.02)
        self.sensor = Encoder(dim, config.layers, config.heads, ffn, dropout=config.dropout, final_norm=False)
        self.temporal = Encoder(dim, config.temporal_layers, config.heads, ffn, dropout=config.dropout)
        self.frame_head = nn.Linear(dim, num_classes)
        self.sequence_head = sequence_head
        self.attention_head = (nn.Linear(dim, num_classes) if sequence_head and config.pooling == "attention"
                               else None)

    def forward(self, av: Tensor) -> BackboneOutput:
        b, v, t, d = av.shape
        if v > self.max_views:
            raise VicokdError(f"MultiTrans got {v} views but has sensor embeddings for "
                              f"model.multitrans.max_views = {self.max_views}; raise it and retrain")
        h = from_over_views(self.sensor(over_views(av + self.sensor_embed[:v, None].to(av.dtype))), b)
        h = over_time(h) + sinusoidal_encoding(t, d, device=av.device, dtype=av.dtype)
        fusion = from_over_time(self.temporal(h), b)
        view_frame_logits = self.frame_head(fusion)
        frame_logits = pool(view_frame_logits, self.view_pooling, 1)
        seq_logits = None
        if self.attention_head is not None:
            weights = self.attention_head(fusion.mean(1)).softmax(dim=1)
            seq_logits = (weights * frame_logits).sum(1)
        elif self.sequence_head:
            seq_logits = pool(frame_logits, self.pooling, 1)
        return BackboneOutput(fusion, view_frame_logits, frame_logits, seq_logits)
