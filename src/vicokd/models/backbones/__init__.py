"""Backbones: F^AV (B, V, T, D) → :class:`BackboneOutput` (F^Fusion and the three logit levels).

Each backbone is declared once, by name, in :mod:`vicokd.backbone_registry` (its class, label,
config section and needs); :func:`build_backbone` builds the one ``model.backbone`` names. A new
backbone is its own module plus one :func:`~vicokd.backbone_registry.register_backbone` line.

Each class takes ``(dim, num_classes, section, *, sequence_head)``, where ``section`` is its own
config (``model.multitsf`` …; None when it declares none), and may list ``head_modules`` (its
output heads, the "heads" group of the gradient shares). ``sequence_head=False``
(``model.sequence_head: frame_pool``): the backbone builds no sequence head of its own and
returns ``seq_logits=None``; the model pools the frame logits instead
(:class:`vicokd.models.MultiViewActionModel`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from vicokd.backbone_registry import backbone_spec
from vicokd.config import ModelConfig
from vicokd.models.backbones._blocks import BackboneOutput
from vicokd.models.backbones.multiasl import MultiASL
from vicokd.models.backbones.multitrans import MultiTrans
from vicokd.models.backbones.multitsf import MultiTSF

__all__ = ["BackboneOutput", "MultiASL", "MultiTSF", "MultiTrans", "build_backbone"]


def build_backbone(config: ModelConfig, num_classes: int) -> nn.Module:
    """The backbone named by ``config.backbone``, built from its own config section."""
    spec = backbone_spec(config.backbone)
    section: Any = getattr(config, spec.section) if spec.section else None
    return spec.module_class()(config.dim, num_classes, section, sequence_head=config.sequence_head == "backbone")
