"""Loss functions: pure tensor functions, one per file; none of them knows a model.

Shapes: B batch, V views, T frames, C classes, D feature width.
"""

from vicokd.losses.distill import feature_distillation_loss, logit_distillation_loss, modal_distillation_loss
from vicokd.losses.gce import generalized_cross_entropy, generalized_cross_entropy_with_logits
from vicokd.losses.human import human_presence_loss
from vicokd.losses.two_way import two_way_loss
from vicokd.losses.view_consistency import view_consistency_loss

__all__ = [
    "feature_distillation_loss",
    "generalized_cross_entropy",
    "generalized_cross_entropy_with_logits",
    "human_presence_loss",
    "logit_distillation_loss",
    "modal_distillation_loss",
    "two_way_loss",
    "view_consistency_loss",
]
