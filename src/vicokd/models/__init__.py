"""Networks of ViCoKD: encoders, cross-modal fusion, backbones, teacher / student model.

Entry point: :class:`MultiViewActionModel` (see :mod:`vicokd.models.model` for the batch keys
and the :class:`ModelOutput` fields and shapes).
"""

from vicokd.models.audio_encoder import build_audio_encoder
from vicokd.models.backbones import BackboneOutput, build_backbone
from vicokd.models.cross_modal import CrossModalAdapter, CrossModalAttention
from vicokd.models.encoders import ChunkedEncoder
from vicokd.models.layers import sinusoidal_encoding
from vicokd.models.model import ModelOutput, MultiViewActionModel
from vicokd.models.summary import count_parameters, model_costs
from vicokd.models.visual_encoder import build_visual_encoder

__all__ = [
    "BackboneOutput",
    "ChunkedEncoder",
    "CrossModalAdapter",
    "CrossModalAttention",
    "ModelOutput",
    "MultiViewActionModel",
    "build_audio_encoder",
    "build_backbone",
    "build_visual_encoder",
    "count_parameters",
    "model_costs",
    "sinusoidal_encoding",
]
