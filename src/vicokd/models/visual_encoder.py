"""The visual frame encoder: ``(B, V, T, 3, H, W)`` → F^V ``(B, V, T, D)``; any timm model by name,
pooled features (``num_classes=0``) projected to D when the widths differ, local pretrained
weights (:mod:`vicokd.models.weights`), frozen or with its top blocks trainable."""

from __future__ import annotations

from typing import Any

import timm

from vicokd.config import VisualEncoderConfig
from vicokd.errors import ConfigError, VicokdError
from vicokd.models.encoders import ChunkedEncoder, check_chunk_size
from vicokd.models.weights import first_error_line, load_weights, resolve_pretrained

__all__ = ["build_visual_encoder"]


def build_visual_encoder(config: VisualEncoderConfig, dim: int) -> ChunkedEncoder:
    """timm model ``config.name`` (with ``timm_kwargs``), local pretrained weights, chunked."""
    check_chunk_size(config.chunk_size, "model.visual.chunk_size")
    if not timm.is_model(config.name):
        raise ConfigError(f"model.visual.name: {config.name!r} is not a timm model")
    kwargs: dict[str, Any] = dict(config.timm_kwargs)
    source = None
    if config.pretrained is not None:
        source = resolve_pretrained(config.pretrained, "model.visual.pretrained")
        weights = load_weights(source, "model.visual.pretrained")
        # timm adapts the state dict (classifier dropped, position embeddings resampled).
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"state_dict": weights})
    try:
        net = timm.create_model(config.name, num_classes=0, **kwargs)
    except (RuntimeError, KeyError, ValueError) as exc:
        if source is None:
            raise ConfigError(f"model.visual.timm_kwargs: {first_error_line(exc)}") from None
        raise VicokdError(f"model.visual.pretrained: {source}: does not fit {config.name} "
                          f"{config.timm_kwargs or ''}: {first_error_line(exc)}") from None
    width = getattr(net, "head_hidden_size", None) or net.num_features
    blocks = config.trainable_blocks
    frozen = config.freeze if blocks is None else blocks == 0
    encoder = ChunkedEncoder(net, width, dim, item_ndim=3, chunk_size=config.chunk_size,
                             checkpointing=config.checkpointing, freeze=frozen)
    if blocks is not None and blocks > 0:
        encoder.train_top_blocks(blocks)
    return encoder
