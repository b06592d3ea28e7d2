"""Cross-modal fusion: positional encodings, cross-modal attention and the cross-modal adapter.

Shapes: B batch, V views, T frames, D feature width, h heads.

- :func:`sinusoidal_encoding` — fixed sin/cos table (L, D), computed for any length on the fly
  (nothing is sized by T in a buffer)::

      PE[t, 2i] = sin(t / 10000^(2i/D)),   PE[t, 2i+1] = cos(t / 10000^(2i/D))

- :func:`multi_head_attention` — ``softmax(Q Kᵀ / √d_h) V`` per head via
  ``F.scaled_dot_product_attention`` on (N, L, h·d_h) projections.
- :class:`CrossModalAttention` — per view, over time (Eq. 2 and 3 of the paper)::

      F^attn_n = CrossAttn(Q = F^V_n + PE, K = V = F^A_n + PE)     (B, V, T, D)
      F^AV_n  = F^V_n + F^attn_n

  A view whose audio is absent (``audio_present[b, n]`` False) gets F^attn = 0, so F^AV = F^V.
- :class:`CrossModalAdapter` — the student's pseudo-audio F̂^A = A_ψ(F^V) =
  ``Linear(D→D) → ReLU → Linear(D→D)`` (Eq. 6).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vicokd.errors import ConfigError

__all__ = ["CrossModalAdapter", "CrossModalAttention", "multi_head_attention", "sinusoidal_encoding"]


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


class CrossModalAttention(nn.Module):
    """Visual queries attend to audio keys/values of the same view over time (Eq. 2-3).

    Args:
        dim: D, width of F^V and F^A.
        num_heads: heads h (D must be divisible by h).
        dropout: attention dropout (training only).
        positional: add sinusoidal PE over T to queries and keys/values.
    """

    def __init__(self, dim: int, num_heads: int = 8, dropout: float = 0.0, positional: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"model.dim {dim} is not divisible by model.fusion.num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.positional = positional
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, visual: Tensor, audio: Tensor, audio_present: Tensor | None = None) -> Tensor:
        """F^attn (B, V, T, D) from F^V and F^A (B, V, T, D); `audio_present` (B, V) bool."""
        b, v, t, d = visual.shape
        query, context = visual.reshape(b * v, t, d), audio.reshape(b * v, t, d)
        if self.positional:
            pe = sinusoidal_encoding(t, d, device=visual.device, dtype=visual.dtype)
            query, context = query + pe, context + pe
        out = multi_head_attention(self.q(query), self.k(context), self.v(context), self.num_heads,
                                   dropout=self.dropout if self.training else 0.0)
        out = self.proj(out).reshape(b, v, t, d)
        if audio_present is not None:
            # `where`, not a product: a missing view's output is exactly 0 even if its input was NaN.
            out = torch.where(audio_present.to(torch.bool)[:, :, None, None], out, out.new_zeros(()))
        return out


class CrossModalAdapter(nn.Module):
    """Pseudo-audio for the student: F̂^A = W₂ ReLU(W₁ F^V + b₁) + b₂, (…, D) → (…, D)."""

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, visual: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(visual)))
