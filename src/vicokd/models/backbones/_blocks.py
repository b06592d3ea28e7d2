"""Building blocks shared by the three backbones: output type, pre-norm Transformer, reshapes.

Every backbone maps F^AV (B, V, T, D) to a :class:`BackboneOutput`. Attention is always
batch-first on an explicit reshape, so "who attends to whom" is visible in the code:

- :func:`over_time`  (B, V, T, D) → (B·V, T, D): each view's frames attend to each other;
- :func:`over_views` (B, V, T, D) → (B·T, V, D): the views of one frame attend to each other;

and their inverses. No sample of the batch ever attends to another (the old MultiTSF view
Transformer did, see docs/reference/REFERENCE-CODE.md §Models).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from vicokd.errors import ConfigError
from vicokd.models.layers import multi_head_attention

__all__ = [
    "BackboneOutput",
    "Block",
    "DropPath",
    "Encoder",
    "SelfAttention",
    "check_heads",
    "from_over_time",
    "from_over_views",
    "over_time",
    "over_views",
    "pool",
]


@dataclass
class BackboneOutput:
    """What every backbone returns.

    fusion: F^Fusion (B, V, T, D), per-view temporal features (Eq. 4).
    view_frame_logits: (B, V, T, C) from F^Fusion, one row per view and frame.
    frame_logits: (B, T, C) fused over views.
    seq_logits: (B, C), or None when the backbone was built without its sequence head.
    extras: backbone-specific tensors (human_logits, cas, cas_top, actionness, topk_mask, ...).
    """

    fusion: Tensor
    view_frame_logits: Tensor
    frame_logits: Tensor
    seq_logits: Tensor | None
    extras: dict[str, Tensor] = field(default_factory=dict)


def over_time(x: Tensor) -> Tensor:
    """(B, V, T, D) → (B·V, T, D)."""
    b, v, t, d = x.shape
    return x.reshape(b * v, t, d)


def from_over_time(x: Tensor, batch: int) -> Tensor:
    """(B·V, T, D) → (B, V, T, D)."""
    return x.reshape(batch, -1, *x.shape[1:])


def over_views(x: Tensor) -> Tensor:
    """(B, V, T, D) → (B·T, V, D)."""
    b, v, t, d = x.shape
    return x.transpose(1, 2).reshape(b * t, v, d)


def from_over_views(x: Tensor, batch: int) -> Tensor:
    """(B·T, V, D) → (B, V, T, D)."""
    return x.reshape(batch, -1, *x.shape[1:]).transpose(1, 2)


def pool(x: Tensor, how: str, dim: int) -> Tensor:
    """Max or mean over one axis (an explicit, recorded aggregation)."""
    return x.amax(dim) if how == "max" else x.mean(dim)


def check_heads(dim: int, heads: int, where: str) -> None:
    """Fail with the config field when D cannot be split into `heads` heads."""
    if heads < 1 or dim % heads:
        raise ConfigError(f"{where}: {heads} heads do not divide model.dim {dim}")


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch per sample with probability p, scale by 1/(1−p)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class SelfAttention(nn.Module):
    """Multi-head self-attention (N, L, D) → (N, L, D) with width h·d_h (d_h = D/h by default)."""

    def __init__(self, dim: int, heads: int, head_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        inner = heads * (head_dim or dim // heads)
        self.qkv = nn.Linear(dim, 3 * inner)
        self.proj = nn.Linear(inner, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        out = multi_head_attention(q, k, v, self.heads, dropout=self.dropout if self.training else 0.0)
        return self.proj_drop(self.proj(out))


class Block(nn.Module):
    """Pre-norm Transformer block::

        x = x + DropPath(Attn(LN(x)));   x = x + DropPath(FFN(LN(x))),   FFN = Linear-GELU-Linear
    """

    def __init__(self, dim: int, heads: int, ffn: int, *, head_dim: int | None = None,
                 dropout: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, head_dim, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn, dim),
                                 nn.Dropout(dropout))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.ffn(self.norm2(x)))


class Encoder(nn.Module):
    """`depth` pre-norm blocks on (N, L, D), drop path rising linearly 0 → `drop_path`, final LN.

    Args:
        dim: D.
        depth: number of blocks (0 = identity, still with the final LayerNorm when `final_norm`).
        heads: attention heads.
        ffn: hidden width of the feed-forward layers.
        head_dim: per-head width (default D / heads).
        dropout: attention and FFN dropout.
        drop_path: stochastic depth of the last block.
        final_norm: LayerNorm after the last block.
    """

    def __init__(self, dim: int, depth: int, heads: int, ffn: int, *, head_dim: int | None = None,
                 dropout: float = 0.0, drop_path: float = 0.0, final_norm: bool = True) -> None:
        super().__init__()
        rates = [drop_path * i / (depth - 1) for i in range(depth)] if depth > 1 else [drop_path] * depth
        self.blocks = nn.ModuleList(
            Block(dim, heads, ffn, head_dim=head_dim, dropout=dropout, drop_path=rate) for rate in rates
        )
        self.norm = nn.LayerNorm(dim) if final_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
