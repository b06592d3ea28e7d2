"""The class-token-only last ViT block (models/class_token_block.py) against timm's own Block."""

import pytest
import timm
import torch
from timm.models.vision_transformer import Block

from vicokd.models.class_token_block import attention_folds, class_token_attention, class_token_block, folds
from vicokd.models.vit import cls_attention, vit_from_tokens, vit_tokens


def _block(width: int = 32, heads: int = 4, **kwargs) -> Block:
    torch.manual_seed(0)
    block = Block(width, heads, qkv_bias=True, **kwargs)
    with torch.no_grad():  # LN1's affine away from (1, 0), so the folding of γ and β is exercised
        block.norm1.weight.uniform_(0.5, 1.5)
        block.norm1.bias.normal_(0, 0.3)
    return block


def _transcribed_class_row(block: Block, x: torch.Tensor) -> torch.Tensor:
    """Row 0 of the block written out as the module docstring's equations, without folding."""
    attn = block.attn
    y = block.norm1(x)
    q, k, v = attn.qkv(y).reshape(*x.shape[:2], 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    a = (q[:, :, :1] @ k.transpose(-2, -1) * attn.scale).softmax(-1)  # (N, H, 1, L)
    o = (a @ v)[:, :, 0].reshape(len(x), -1)
    row = x[:, 0] + attn.proj(o)
    return row + block.mlp(block.norm2(row))


@pytest.mark.parametrize("bias", [True, False])
def test_class_token_block_equals_timm_block_row_zero_in_values_and_gradients(bias):
    block = _block() if bias else Block(32, 4, qkv_bias=False)
    assert folds(block)
    tokens = torch.randn(6, 17, 32) * 2 + 0.5
    mine = tokens.clone().requires_grad_(True)
    theirs = tokens.clone().requires_grad_(True)
    fast = class_token_block(block, mine)
    full = block(theirs)[:, 0]
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, _transcribed_class_row(block, tokens), atol=1e-5, rtol=1e-5)
    weight = torch.randn_like(full)
    fast_grads = torch.autograd.grad((fast * weight).sum(), [mine, *block.parameters()], allow_unused=True)
    full_grads = torch.autograd.grad((full * weight).sum(), [theirs, *block.parameters()], allow_unused=True)
    for a, b in zip(fast_grads, full_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_class_token_attention_sums_to_one_and_matches_the_transcription():
    block = _block()
    tokens = torch.randn(3, 10, 32)
    weights = class_token_attention(block, tokens)
    attn = block.attn
    _, k, _ = attn.qkv(block.norm1(tokens)).reshape(3, 10, 3, 4, 8).permute(2, 0, 3, 1, 4)
    q = attn.qkv(block.norm1(tokens))[:, 0, :32].reshape(3, 4, 1, 8)
    expected = (q @ k.transpose(-2, -1) * attn.scale).softmax(-1)[:, :, 0]
    torch.testing.assert_close(weights, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))


def test_blocks_the_folding_does_not_hold_for_are_refused():
    assert not attention_folds(Block(32, 4, qk_norm=True))
    gated = Block(32, 4)
    gated.attn.gate = torch.nn.Linear(32, 32)
    assert not folds(gated)
    dropping = Block(32, 4, proj_drop=0.1).train()
    assert not folds(dropping)
    assert folds(dropping.eval())  # dropout is inactive in eval mode
    assert not folds(torch.nn.Linear(3, 3))


def test_vit_from_tokens_uses_the_class_token_block_and_equals_the_whole_vit():
    torch.manual_seed(0)
    net = timm.create_model("vit_small_patch32_224", pretrained=False, num_classes=0, img_size=48, patch_size=8,
                            embed_dim=32, depth=3, num_heads=2, dynamic_img_size=True).eval()
    images = torch.randn(4, 3, 48, 48)
    for start in (1, 2):
        tokens = vit_tokens(net, images, start)
        torch.testing.assert_close(vit_from_tokens(net, tokens, start), net(images), atol=1e-5, rtol=1e-5)
    maps = cls_attention(net, images)
    assert maps.shape == (4, 6, 6) and torch.all(maps.sum((1, 2)) < 1)
    averaged = timm.create_model("vit_small_patch32_224", pretrained=False, num_classes=0, img_size=48, patch_size=8,
                                 embed_dim=32, depth=2, num_heads=2, global_pool="avg").eval()
    tokens = vit_tokens(averaged, images, 1)  # mean pooling needs every row: the whole block runs
    torch.testing.assert_close(vit_from_tokens(averaged, tokens, 1), averaged(images), atol=1e-5, rtol=1e-5)
