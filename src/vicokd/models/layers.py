"""Layers shared by the cross-modal block and the backbones: positional encodings and attention.

Shapes: N sequences, L positions, D feature width, h heads.

- :func:`sinusoidal_encoding` — fixed sin/cos table (L, D), computed for any length on the fly
  (nothing is sized by T in a buffer)::

      PE[t, 2i] = sin(t / 10000^(2i/D)),   PE[t, 2i+1] = cos(t / 10000^(2i/D))

- :func:`multi_head_attention` — ``softmax(Q Kᵀ / √d_h) V`` per head via
  ``F.scaled_dot_product_attention`` on (N, L, h·d_h) projections.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["multi_head_attention", "sinusoidal_encoding"]


def sinusoidal_encoding(length: int, dim: int, *, device: torch.device | None = None,
                        dtype: torch.dtype = torch.float32) -> Tensor:
    """Fixed sinusoidal position table (length, dim); odd `dim` drops the last cosine column."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device, dtype=torch.float32)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table.to(dtype)


def multi_head_attention(q: Tensor, k: Tensor, v: Tensor, num_heads: int, *, dropout: float = 0.0) -> Tensor:
    """Scaled dot-product attention over heads.

    q (N, Lq, h·d), k and v (N, Lk, h·d) → (N, Lq, h·d); each head attends with
    ``softmax(q_h k_hᵀ / √d) v_h``.
    """
    n, lq, width = q.shape
    head_dim = width // num_heads

    def heads(x: Tensor) -> Tensor:
        return x.reshape(n, x.shape[1], num_heads, head_dim).transpose(1, 2)

    out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), dropout_p=dropout)
    return out.transpose(1, 2).reshape(n, lq, width)
