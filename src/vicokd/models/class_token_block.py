"""A ViT's last block computed for the class token only, with the key and value projections folded.

A timm ViT that pools its class token (``global_pool == "token"``) uses only row 0 of its last
block's output. That row is (timm ``Block``, pre-norm, no mask)::

    y_j = γ ⊙ x̂_j + β                                x̂_j = (x_j − mean(x_j)) / std(x_j), LN1's affine γ, β
    s_hj = scale · q_h · k_hj,    q_h = W_q,h y_0 + b_q,h,   k_hj = W_k,h y_j + b_k,h
    a_h = softmax_j(s_h)
    o_h = Σ_j a_hj (W_v,h y_j + b_v,h)
    x'_0 = x_0 + ls1(P o),   out = x'_0 + ls2(MLP(LN2(x'_0)))

Because the keys and values are linear in x̂_j, two identities make every token's cost a few
dot products of width W instead of two W×W projections:

- ``s_hj = x̂_j · (scale · γ ⊙ W_k,hᵀ q_h) + c_h``, where c_h does not depend on j and so drops out
  of the softmax;
- ``o_h = W_v,h (γ ⊙ z_h + β) + b_v,h`` with ``z_h = Σ_j a_hj x̂_j`` (the weights sum to 1).

The same maths as the full block (tested against timm's ``Block`` to float rounding, values and
gradients); per frame of N tokens it costs ``≈ 4·H·N·W + 22·W²`` FLOPs instead of
``≈ 24·N·W² + 4·N²·W`` (N = 37, W = 64, H = 2: 36× fewer). It applies only where the identities
hold (:func:`folds`): LayerNorm before attention, no q/k normalisation, no attention mask, gate
or post-attention norm, and no dropout or stochastic depth that is active.

Shapes: N items (frames), L tokens (class token first), W width, H heads of width d (H·d = A).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm as TimmLayerNorm
from timm.layers.attention import Attention
from timm.models.vision_transformer import Block
from torch import Tensor, nn

__all__ = ["attention_folds", "class_token_attention", "class_token_block", "folds"]

LAYER_NORMS = (nn.LayerNorm, TimmLayerNorm)  # per-token normalisation over W with an affine γ, β


def _inactive(module: nn.Module) -> bool:
    """A dropout / drop-path module that changes nothing now (Identity, p = 0, or eval mode)."""
    if isinstance(module, nn.Identity):
        return True
    probability = getattr(module, "p", getattr(module, "drop_prob", None))
    return probability == 0 or not module.training


def attention_folds(block: nn.Module) -> bool:
    """Whether :func:`class_token_attention` gives `block`'s class-token attention: a timm ``Block``
    with LayerNorm before attention and no q/k normalisation."""
    if type(block) is not Block or type(block.attn) is not Attention:
        return False
    attn = block.attn
    return type(block.norm1) in LAYER_NORMS and isinstance(attn.q_norm, nn.Identity) and isinstance(
        attn.k_norm, nn.Identity)


def folds(block: nn.Module) -> bool:
    """Whether :func:`class_token_block` gives `block`'s class-token output exactly (module docstring)."""
    if not attention_folds(block):
        return False
    attn = block.attn
    mlp_drops = [getattr(block.mlp, name, nn.Identity()) for name in ("drop1", "drop2")]
    return isinstance(attn.norm, nn.Identity) and attn.gate is None and all(
        _inactive(m) for m in (attn.attn_drop, attn.proj_drop, block.drop_path1, block.drop_path2, *mlp_drops))


def _normalized(block: Block, tokens: Tensor) -> Tensor:
    """x̂: the tokens normalised by LN1 without its affine, (N, L, W)."""
    return F.layer_norm(tokens, tokens.shape[-1:], eps=block.norm1.eps)


def _affine(block: Block, x: Tensor) -> Tensor:
    """γ ⊙ x + β of LN1 (identity parts where LN1 has no affine)."""
    norm = block.norm1
    if norm.weight is not None:
        x = x * norm.weight
    return x + norm.bias if norm.bias is not None else x


def _qkv_weights(attn: Attention) -> tuple[Tensor, Tensor, Tensor, list[Tensor | None]]:
    """W_q (H, d, W), W_k, W_v and the three biases (H, d) or None."""
    shape = (attn.num_heads, attn.head_dim, -1)
    w_q, w_k, w_v = (w.reshape(shape) for w in attn.qkv.weight.chunk(3))
    bias = attn.qkv.bias
    biases = [None] * 3 if bias is None else [b.reshape(attn.num_heads, attn.head_dim) for b in bias.chunk(3)]
    return w_q, w_k, w_v, biases


def _scores(block: Block, normalized: Tensor) -> tuple[Tensor, Tensor, list[Tensor | None]]:
    """Attention logits of the class token over all tokens, shifted per head: (N, H, L); and W_v, biases."""
    attn = block.attn
    w_q, w_k, w_v, biases = _qkv_weights(attn)
    query = torch.einsum("nw,hdw->nhd", _affine(block, normalized[:, 0]), w_q)  # (N, H, d)
    if biases[0] is not None:
        query = query + biases[0]
    folded = torch.einsum("nhd,hdw->nhw", query, w_k) * attn.scale  # W_k,hᵀ q_h · scale
    if block.norm1.weight is not None:
        folded = folded * block.norm1.weight
    return torch.einsum("nhw,nlw->nhl", folded, normalized), w_v, biases


def class_token_attention(block: nn.Module, tokens: Tensor) -> Tensor:
    """The class token's attention weights in `block` over its input tokens (N, L, W) → (N, H, L);
    `block` must pass :func:`attention_folds`."""
    return _scores(block, _normalized(block, tokens))[0].softmax(dim=-1)


def class_token_block(block: nn.Module, tokens: Tensor) -> Tensor:
    """`block`'s output at the class token, (N, L, W) → (N, W); `block` must pass :func:`folds`."""
    normalized = _normalized(block, tokens)
    scores, w_v, biases = _scores(block, normalized)
    weights = scores.softmax(dim=-1)  # (N, H, L)
    pooled = _affine(block, torch.einsum("nhl,nlw->nhw", weights, normalized))  # γ ⊙ z_h + β
    heads = torch.einsum("nhw,hdw->nhd", pooled, w_v)
    if biases[2] is not None:
        heads = heads + biases[2]
    attn = block.attn
    x = tokens[:, 0] + block.ls1(attn.proj(heads.reshape(heads.shape[0], -1)))
    return x + block.ls2(block.mlp(block.norm2(x)))
