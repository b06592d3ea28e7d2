"""The temporal backbones by name: the one list of what ``model.backbone`` accepts.

Each backbone is declared once, by a :class:`BackboneSpec`: its name, its class, its label in
tables, the config section holding its own settings, and what it needs from the rest of the
pipeline (person scores for an auxiliary head; a limit on the number of views). A new backbone is
its own module plus one :func:`register_backbone` line. The paper's three are registered here with
their classes named as ``"module:Class"``, imported when a backbone is first built
(:func:`vicokd.models.backbones.build_backbone`), so that a config is checked against this list
(:func:`vicokd.config.check_ranges`) without importing the models.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vicokd.errors import ConfigError

__all__ = ["BACKBONES", "BackboneSpec", "backbone_spec", "check_backbones", "paper_backbones", "register_backbone",
           "unregister_backbone"]


def _never(model: Any) -> bool:
    return False


def _unlimited(model: Any) -> int | None:
    return None


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone as the pipeline knows it.

    name: the ``model.backbone`` value. cls: the module class, or ``"module:Class"`` imported when
    first built. label: its name in tables. section: the ``model.<section>`` config of its own
    settings, or None. wants_person_scores: whether a run must load person scores for it (an
    auxiliary head), from the ``model`` config. max_views: the most views it can take (None: any
    number), for export and checks. paper: one of the paper's three backbones (the rows of Tables 1-3).
    """

    name: str
    cls: type | str
    label: str
    section: str | None = None
    wants_person_scores: Callable[[Any], bool] = _never
    max_views: Callable[[Any], int | None] = _unlimited
    paper: bool = False

    def module_class(self) -> type:
        """The backbone's class (imported now when it was given as ``"module:Class"``)."""
        if not isinstance(self.cls, str):
            return self.cls
        module, _, name = self.cls.partition(":")
        return getattr(importlib.import_module(module), name)


BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Make `spec` available as ``model.backbone: <spec.name>`` (replaces one of the same name)."""
    BACKBONES[spec.name] = spec
    return spec


def unregister_backbone(name: str) -> None:
    """Remove a registered backbone (a plugin's, a test's)."""
    BACKBONES.pop(name, None)


def paper_backbones() -> tuple[str, ...]:
    """The paper's backbones, in the order of its tables."""
    return tuple(name for name, spec in BACKBONES.items() if spec.paper)


def backbone_spec(name: str) -> BackboneSpec:
    """The registered backbone `name`; an unknown one is a one-line error naming ``model.backbone``."""
    if name not in BACKBONES:
        raise ConfigError(f"model.backbone: {name!r} is not a registered backbone ({', '.join(BACKBONES)})")
    return BACKBONES[name]


def check_backbones(names: Iterable[str], option: str = "--backbones") -> None:
    """Every name of `names` (a command's `option`) is a registered backbone; one line otherwise."""
    for name in names:
        if name not in BACKBONES:
            raise ConfigError(f"{option}: unknown backbone {name!r} (known: {', '.join(BACKBONES)})")


register_backbone(BackboneSpec("multitrans", "vicokd.models.backbones.multitrans:MultiTrans", "MultiTrans",
                               "multitrans", paper=True, max_views=lambda model: model.multitrans.max_views))
register_backbone(BackboneSpec("multiasl", "vicokd.models.backbones.multiasl:MultiASL", "MultiASL", "multiasl",
                               paper=True))
register_backbone(BackboneSpec("multitsf", "vicokd.models.backbones.multitsf:MultiTSF", "MultiTSF", "multitsf",
                               paper=True, wants_person_scores=lambda model: model.multitsf.human_head))
