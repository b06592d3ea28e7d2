"""Backbones: F^AV (B, V, T, D) → :class:`BackboneOutput` (F^Fusion and the three logit levels).

One registry, :data:`BACKBONES`, declares each backbone by the name ``model.backbone`` accepts:
its class, its label in tables, the config section holding its own settings, and what it needs
from the rest of the pipeline (person scores for an auxiliary head; a limit on the number of
views). A new backbone is its own module plus one :func:`register_backbone` line.

Each class takes ``(dim, num_classes, section, *, sequence_head)``, where ``section`` is its own
config (``model.multitsf`` …; None when it declares none), and may list ``head_modules`` (its
output heads, the "heads" group of the gradient shares). ``sequence_head=False``
(``model.sequence_head: frame_pool``): the backbone builds no sequence head of its own and
returns ``seq_logits=None``; the model pools the frame logits instead
(:class:`vicokd.models.MultiViewActionModel`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from vicokd.config import BACKBONE_NAMES, ModelConfig
from vicokd.errors import ConfigError
from vicokd.models.backbones._blocks import BackboneOutput
from vicokd.models.backbones.multiasl import MultiASL
from vicokd.models.backbones.multitrans import MultiTrans
from vicokd.models.backbones.multitsf import MultiTSF

__all__ = ["BACKBONES", "BackboneOutput", "BackboneSpec", "MultiASL", "MultiTSF", "MultiTrans", "backbone_spec",
           "build_backbone", "paper_backbones", "register_backbone", "unregister_backbone"]


def _never(config: ModelConfig) -> bool:
    return False


def _unlimited(config: ModelConfig) -> int | None:
    return None


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone as the pipeline knows it.

    name: the ``model.backbone`` value. cls: the module class. label: its name in tables.
    section: the ``model.<section>`` config of its own settings, or None.
    wants_person_scores: whether a run must load person scores for it (an auxiliary head).
    max_views: the most views it can take (None: any number), for export and checks.
    paper: one of the paper's three backbones (the rows of Tables 1-3).
    """

    name: str
    cls: type[nn.Module]
    label: str
    section: str | None = None
    wants_person_scores: Callable[[ModelConfig], bool] = _never
    max_views: Callable[[ModelConfig], int | None] = _unlimited
    paper: bool = False


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Make `spec` available as ``model.backbone: <spec.name>`` (replaces one of the same name)."""
    BACKBONES[spec.name] = spec
    if spec.name not in BACKBONE_NAMES:  # what a config accepts
        BACKBONE_NAMES.append(spec.name)
    return spec


def unregister_backbone(name: str) -> None:
    """Remove a registered backbone (a plugin's, a test's)."""
    BACKBONES.pop(name, None)
    if name in BACKBONE_NAMES:
        BACKBONE_NAMES.remove(name)


register_backbone(BackboneSpec("multitrans", MultiTrans, "MultiTrans", "multitrans", paper=True,
                               max_views=lambda config: config.multitrans.max_views))
register_backbone(BackboneSpec("multiasl", MultiASL, "MultiASL", "multiasl", paper=True))
register_backbone(BackboneSpec("multitsf", MultiTSF, "MultiTSF", "multitsf", paper=True,
                               wants_person_scores=lambda config: config.multitsf.human_head))


def paper_backbones() -> tuple[str, ...]:
    """The paper's backbones, in the order of its tables."""
    return tuple(name for name, spec in BACKBONES.items() if spec.paper)


def backbone_spec(name: str) -> BackboneSpec:
    """The registered backbone `name`; an unknown one is a one-line error naming ``model.backbone``."""
    if name not in BACKBONES:
        raise ConfigError(f"model.backbone: {name!r} is not a registered backbone ({', '.join(BACKBONES)})")
    return BACKBONES[name]


def build_backbone(config: ModelConfig, num_classes: int) -> nn.Module:
    """The backbone named by ``config.backbone``, built from its own config section."""
    spec = backbone_spec(config.backbone)
    section: Any = getattr(config, spec.section) if spec.section else None
    return spec.cls(config.dim, num_classes, section, sequence_head=config.sequence_head == "backbone")
