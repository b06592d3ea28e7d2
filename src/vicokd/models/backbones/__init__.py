"""Backbones: F^AV (B, V, T, D) → :class:`BackboneOutput` (F^Fusion and the three logit levels).

Registry by the names ``model.backbone`` accepts; each class takes ``(dim, num_classes, section,
*, sequence_head)`` where ``section`` is the backbone's own config (``model.multitsf``,
``model.multiasl``, ``model.multitrans``). ``sequence_head=False`` (``model.sequence_head:
frame_pool``): the backbone builds no sequence head of its own and returns ``seq_logits=None``;
the model pools the frame logits instead (:class:`vicokd.models.MultiViewActionModel`).
"""

from __future__ import annotations

from torch import nn

from vicokd.config import ModelConfig
from vicokd.errors import ConfigError
from vicokd.models.backbones._blocks import BackboneOutput
from vicokd.models.backbones.multiasl import MultiASL
from vicokd.models.backbones.multitrans import MultiTrans
from vicokd.models.backbones.multitsf import MultiTSF

__all__ = ["BACKBONES", "BackboneOutput", "MultiASL", "MultiTSF", "MultiTrans", "build_backbone"]

BACKBONES: dict[str, type[nn.Module]] = {"multitrans": MultiTrans, "multiasl": MultiASL, "multitsf": MultiTSF}


def build_backbone(config: ModelConfig, num_classes: int) -> nn.Module:
    """The backbone named by ``config.backbone``, built from its own config section."""
    if config.backbone not in BACKBONES:
        raise ConfigError(f"model.backbone: {config.backbone!r} is not one of {sorted(BACKBONES)}")
    return BACKBONES[config.backbone](config.dim, num_classes, getattr(config, config.backbone),
                                      sequence_head=config.sequence_head == "backbone")
