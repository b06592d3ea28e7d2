"""MultiTSF backbone (Nguyen et al., "MultiTSF: Transformer-based Sensor Fusion"), view bug fixed.

Input F^AV (B, V, T, D). Per view n (weights shared across views)::

    Z_n       = TemporalEncoder([cls ; F^AV_n] + PE_{T+1})        (T+1, D), pre-norm, drop path, LN
    F^Fusion_n = Z_n[1:]                                          (T, D)
    view_frame_logits[n, t] = W_f F^Fusion_{n,t} + b_f            1×1 conv ≡ Linear, shared over views
    frame_logits[t]         = max_n view_frame_logits[n, t]
    G[t]      = ViewEncoder({F^Fusion_{n,t}}_n)                   the V views of frame t attend to each other
    seq_logits = W_s LN(mean_{n,t} G[t, n]) + b_s

Auxiliary human head: extras["human_logits"] (B, V, T) = Conv1d(D→1) over time on F^AV, trained
against person scores with a softmax over T (the loss's job).

The released code ran the view Transformer with ``batch_first=False`` on (B·T, V, D), which made
it attend across time and batch samples instead of views; here it attends across views only
(:func:`over_views`), so no prediction depends on the rest of the batch. The CLS token is a
global register for the temporal attention; the sequence head reads the frame tokens.
View-symmetric: permuting views permutes per-view outputs and leaves fused ones unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vicokd.config import MultiTSFConfig
from vicokd.errors import ConfigError
from vicokd.models.backbones._blocks import (
    BackboneOutput,
    Encoder,
    check_heads,
    from_over_time,
    from_over_views,
    over_time,
    over_views,
)
from vicokd.models.layers import sinusoidal_encoding

__all__ = ["MultiTSF"]


class MultiTSF(nn.Module):
    """Per-view temporal Transformer + cross-view Transformer + human head (see module docstring)."""

    head_modules = ("frame_head", "seq_norm", "seq_head", "human_head")  # the "heads" parameter group

    def __init__(self, dim: int, num_classes: int, config: MultiTSFConfig, *, sequence_head: bool = True) -> None:
        super().__init__()
        check_heads(dim, config.temporal_heads, "model.multitsf.temporal_heads")
        check_heads(dim, config.view_heads, "model.multitsf.view_heads")
        if config.human_kernel % 2 == 0:
            raise ConfigError(f"model.multitsf.human_kernel: must be odd, got {config.human_kernel}")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.temporal = Encoder(dim, config.temporal_layers, config.temporal_heads, int(dim * config.mlp_ratio),
                                dropout=config.dropout, drop_path=config.drop_path)
        self.frame_head = nn.Linear(dim, num_classes)
        self.view_encoder = self.seq_norm = self.seq_head = None
        if sequence_head:
            self.view_encoder = Encoder(dim, config.view_layers, config.view_heads, config.view_ffn,
                                        dropout=config.dropout, final_norm=False)
            self.seq_norm = nn.LayerNorm(dim)
            self.seq_head = nn.Linear(dim, num_classes)
        self.human_head = (nn.Conv1d(dim, 1, config.human_kernel, padding=config.human_kernel // 2)
                           if config.human_head else None)

    def forward(self, av: Tensor) -> BackboneOutput:
        b, v, t, d = av.shape
        tokens = torch.cat([self.cls_token.expand(b * v, 1, d).to(av.dtype), over_time(av)], dim=1)
        tokens = tokens + sinusoidal_encoding(t + 1, d, device=av.device, dtype=av.dtype)
        fusion = from_over_time(self.temporal(tokens)[:, 1:], b)
        view_frame_logits = self.frame_head(fusion)
        seq_logits = None
        if self.seq_head is not None:
            views = from_over_views(self.view_encoder(over_views(fusion)), b)
            seq_logits = self.seq_head(self.seq_norm(views.mean(dim=(1, 2))))
        extras = {}
        if self.human_head is not None:
            extras["human_logits"] = self.human_head(over_time(av).transpose(1, 2)).reshape(b, v, t)
        return BackboneOutput(fusion, view_frame_logits, view_frame_logits.amax(1), seq_logits, extras)

