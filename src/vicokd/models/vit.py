"""A timm ViT taken apart: its tokens after the first blocks (:func:`vit_tokens`, what the feature
cache stores), the rest of it from those tokens (:func:`vit_from_tokens`, with the last block
computed for the class token only when that is all the pooling reads), and the class token's
attention map (:func:`cls_attention`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vicokd.errors import VicokdError
from vicokd.models.class_token_block import attention_folds, class_token_attention, class_token_block, folds

__all__ = ["cls_attention", "pools_class_token", "vit_from_tokens", "vit_tokens"]


def vit_tokens(net: nn.Module, images: Tensor, upto: int) -> Tensor:
    """Tokens of a timm ViT after its first `upto` blocks: (N, 3, H, W) → (N, prefix + patches, W).

    ``patch_embed → position embedding (+ prefix tokens) → patch dropout → norm_pre → blocks[:upto]``,
    the start of timm's ``forward_features``.
    """
    x = net.norm_pre(net.patch_drop(net._pos_embed(net.patch_embed(images))))
    for block in list(net.blocks)[:upto]:
        x = block(x)
    return x


def pools_class_token(net: nn.Module) -> bool:
    """Whether a timm ViT's pooled output is its class token (row 0) after the final norm."""
    return (getattr(net, "global_pool", None) == "token" and getattr(net, "attn_pool", None) is None
            and getattr(net, "cls_token", None) is not None)


def vit_from_tokens(net: nn.Module, tokens: Tensor, start: int) -> Tensor:
    """The rest of a timm ViT from the tokens after block `start`: ``blocks[start:] → norm → pooled``,
    (N, tokens, W) → (N, W); ``vit_from_tokens(net, vit_tokens(net, x, s), s) == net(x)``.

    When the ViT pools its class token, the last block is computed for that token only
    (:func:`~vicokd.models.class_token_block.class_token_block`: the same maths, a fraction of the cost).
    """
    x = tokens
    blocks = list(net.blocks)[start:]
    last = blocks.pop() if blocks and pools_class_token(net) and folds(blocks[-1]) else None
    for block in blocks:
        x = block(x)
    if last is not None:
        x = class_token_block(last, x)[:, None]
    return net.forward_head(net.norm(x), pre_logits=True)


@torch.no_grad()
def cls_attention(vit: nn.Module, images: Tensor) -> Tensor:
    """CLS-token attention over patches in the last block of a timm ViT, mean over heads.

    images (N, 3, H, W) → (N, H/p, W/p); each map sums to at most 1 (the rest goes to prefix
    tokens). Needs a ViT-style model: ``blocks[-1].attn.qkv``, a class token, ``patch_embed``.
    """
    blocks = getattr(vit, "blocks", None)
    if not blocks or not attention_folds(blocks[-1]) or getattr(vit, "cls_token", None) is None:
        raise VicokdError(f"attention maps need a ViT-style timm encoder with a class token, "
                          f"not {type(vit).__name__}")
    tokens = vit_tokens(vit, images, len(blocks) - 1)
    weights = class_token_attention(blocks[-1], tokens)  # (N, h, L)
    grid = vit.patch_embed.dynamic_feat_size(tuple(images.shape[-2:]))
    return weights[:, :, vit.num_prefix_tokens:].mean(1).reshape(len(images), *grid)
