"""The frame encoder wrapper shared by the visual and the audio encoder.

Shapes: B batch, V views, T frames, D = ``model.dim``.

:class:`ChunkedEncoder` runs a network on all B·V·T items in chunks of ``chunk_size`` (memory
bound), with optional activation checkpointing per chunk and optional freezing, and projects its
output to D: ``(B, V, T, *item)`` → ``(B, V, T, D)``. The encoders themselves:
:mod:`vicokd.models.visual_encoder` (a timm image model) and :mod:`vicokd.models.audio_encoder`
(a real AST, or the released code's fbank MLP).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vicokd.errors import ConfigError, VicokdError
from vicokd.models.vit import vit_from_tokens

__all__ = ["ChunkedEncoder", "check_chunk_size"]


class ChunkedEncoder(nn.Module):
    """Runs `net` on every item of a (..., *item) tensor in chunks, then projects to D.

    ``y = P(net(x_i))`` for each item x_i, P = Linear(width→D) or identity when width = D.

    Args:
        net: maps (N, *item) to pooled features (N, width).
        width: feature width of `net`.
        dim: D.
        item_ndim: number of trailing axes of one item (3 for an image, 2 for an fbank chunk).
        chunk_size: items per `net` call.
        checkpointing: in training, store only each chunk's input and recompute in backward.
        freeze: `net` gets no gradient and stays in eval mode (P still trains).
    """

    def __init__(self, net: nn.Module, width: int, dim: int, *, item_ndim: int, chunk_size: int,
                 checkpointing: bool = False, freeze: bool = False) -> None:
        super().__init__()
        self.net = net
        self.width = width
        self.proj = nn.Linear(width, dim) if width != dim else nn.Identity()
        self.item_ndim = item_ndim
        self.chunk_size = chunk_size
        self.checkpointing = checkpointing
        self.freeze = freeze
        if freeze:
            self.net.requires_grad_(False)
            self.net.eval()

    def train(self, mode: bool = True) -> ChunkedEncoder:
        super().train(mode)
        if self.freeze:
            self.net.eval()
        return self

    def _encode(self, chunk: Tensor) -> Tensor:
        if self.freeze:
            with torch.no_grad():
                return self.net(chunk)
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self.net, chunk, use_reentrant=False)
        return self.net(chunk)

    def features(self, x: Tensor) -> Tensor:
        """`net` features before the projection: (*lead, *item) → (*lead, width), in chunks.

        A frozen encoder's features can be computed once and cached (``vicokd prepare
        --features``); ``proj`` then turns them into F^V or F^A during training.
        """
        lead = x.shape[: x.ndim - self.item_ndim]
        items = x.reshape(-1, *x.shape[len(lead):])
        features = torch.cat([self._encode(chunk) for chunk in items.split(self.chunk_size)])
        return features.reshape(*lead, -1)

    def forward(self, x: Tensor) -> Tensor:
        """(*lead, *item) → (*lead, D)."""
        return self.proj(self.features(x))

    def from_tokens(self, tokens: Tensor) -> Tensor:
        """F^V from the cached tokens after block L-K (:func:`vit_tokens`): (*lead, N, W) → (*lead, D).

        Runs the top K blocks, the final norm and the pooling (:func:`vit_from_tokens`), in chunks.
        """
        start = self.token_start
        if start is None:
            raise VicokdError("token features need model.visual.trainable_blocks >= 1")
        lead = tokens.shape[:-2]
        items = tokens.reshape(-1, *tokens.shape[-2:])

        def run(chunk: Tensor) -> Tensor:
            return vit_from_tokens(self.net, chunk, start)

        chunks = [checkpoint(run, chunk, use_reentrant=False)
                  if self.checkpointing and self.training and torch.is_grad_enabled() else run(chunk)
                  for chunk in items.split(self.chunk_size)]
        return self.proj(torch.cat(chunks).reshape(*lead, -1))

    @property
    def token_start(self) -> int | None:
        """L-K, the first block that trains (None unless some but not all blocks train)."""
        return getattr(self, "_token_start", None)

    def train_top_blocks(self, count: int) -> None:
        """Freeze all of a ViT-style `net` but its top `count` blocks and final norm (count >= 1)."""
        blocks = getattr(self.net, "blocks", None)
        if blocks is None or not hasattr(self.net, "patch_embed"):
            raise ConfigError(f"model.visual.trainable_blocks: {count} needs a ViT-style timm model, "
                              f"not {type(self.net).__name__}")
        if count > len(blocks):
            raise ConfigError(f"model.visual.trainable_blocks: {count}, but the encoder has {len(blocks)} blocks")
        self._token_start = len(blocks) - count
        self.net.requires_grad_(False)
        for module in (*list(blocks)[self._token_start:], self.net.norm, getattr(self.net, "fc_norm", None)):
            if module is not None:
                module.requires_grad_(True)


def check_chunk_size(size: int, where: str) -> None:
    """``chunk_size`` at `where` is at least 1 (a one-line :class:`ConfigError` otherwise)."""
    if size < 1:
        raise ConfigError(f"{where}: must be at least 1, got {size}")
