"""Cross-modal attention and the cross-modal adapter (Eq. 2, 3 and 6 of the paper).

Shapes: B batch, V views, T frames, D feature width, h heads.

- :class:`CrossModalAttention` — per view, over time (Eq. 2 and 3 of the paper)::

      F^attn_n = CrossAttn(Q = F^V_n + PE, K = V = F^A_n + PE)     (B, V, T, D)
      F^AV_n  = F^V_n + F^attn_n

  A view whose audio is absent (``audio_present[b, n]`` False) gets F^attn = 0, so F^AV = F^V.
- :class:`CrossModalAdapter` — the student's pseudo-audio F̂^A = A_ψ(F^V) =
  ``Linear(D→D) → ReLU → Linear(D→D)`` (Eq. 6).

(The paper's F^Fusion, the backbone's output, is in :mod:`vicokd.models.backbones`.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vicokd.errors import ConfigError
from vicokd.models.layers import multi_head_attention, sinusoidal_encoding

__all__ = ["CrossModalAdapter", "CrossModalAttention"]


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
