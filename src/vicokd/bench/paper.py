"""The paper architecture at random initialisation, synthetic batches of its shapes, FLOP counts.

The model section is the package default, which is the paper preset (``configs/paper/model.yaml``)
without its local weight paths: timm ViT-S/32 at 224×224 (D = 384), an AST with the
architecture of ``MIT/ast-finetuned-audioset-10-10-0.4593`` (hidden 768, 12 layers, 12 heads,
patch 16, strides 10) on ``max_rows = 48`` fbank rows, MultiTSF. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from vicokd.config import Config, DistillConfig, ModelConfig, replace
from vicokd.methods import batch_objective, get_method
from vicokd.models import MultiViewActionModel
from vicokd.models.vit import vit_tokens

NUM_CLASSES = 16  # Home-1
FBANK_ROWS = 38  # real rows of a 0.4 s chunk; the AST pads them to model.audio.max_rows
Role = Literal["teacher", "student", "vicokd"]
# role → (model mode, method): teacher training, a student without KD, ViCoKD distillation
# (the student plus the frozen teacher's forward pass in every step).
ROLES: dict[str, tuple[str, str]] = {"teacher": ("teacher", "teacher"), "student": ("student", "student"),
                                     "vicokd": ("student", "vicokd")}


@dataclass(frozen=True)
class Shape:
    """Input shape of a batch: B clips of V views × T frames of S×S pixels.

    With `feature_widths` = (visual, audio) the batch holds cached frozen-encoder features
    (B, V, T, width) in place of video and fbank (``vicokd prepare --features``); with
    `visual_tokens` = N as well, the visual ones are the tokens a ViT's top blocks train from
    (``model.visual.trainable_blocks`` K >= 1), (B, V, T, N, width).
    """

    batch: int
    frames: int
    views: int = 5
    image_size: int = 224
    feature_widths: tuple[int, int] | None = None
    visual_tokens: int | None = None

    @property
    def images(self) -> int:
        return self.batch * self.views * self.frames


def paper_config(role: Role, *, checkpointing: bool = False, chunk_size: int = 256,
                 model: Mapping[str, Any] | None = None) -> Config:
    """The run config of `role` with the paper model, random init, given encoder memory settings.

    `model` holds dotted overrides of the model section (``{"audio.max_rows": 1024}``; smaller
    architectures in tests).
    """
    mode, method = ROLES[role]
    changes = {"visual.pretrained": None, "audio.pretrained": None, **(model or {}), "mode": mode,
               "visual.checkpointing": checkpointing, "audio.checkpointing": checkpointing,
               "visual.chunk_size": chunk_size, "audio.chunk_size": chunk_size}
    return Config(model=replace(ModelConfig(), **changes), distill=DistillConfig(method=method))


def build_models(config: Config) -> tuple[MultiViewActionModel, MultiViewActionModel | None]:
    """The trained model and, for a distillation method, the frozen teacher (default memory settings)."""
    model = MultiViewActionModel(config.model, NUM_CLASSES)
    if not get_method(config.distill.method).needs_teacher:
        return model, None
    teacher_model = replace(config.model, mode="teacher", **{"visual.checkpointing": False,
                                                              "audio.checkpointing": False})
    teacher = MultiViewActionModel(teacher_model, NUM_CLASSES).eval().requires_grad_(False)
    return model, teacher


def encoder_widths(config: Config) -> tuple[int, int]:
    """Widths of the visual and audio encoder outputs (the cached feature widths) of `config`."""
    with torch.device("meta"):
        model = MultiViewActionModel(replace(config.model, mode="teacher"), NUM_CLASSES)
    return model.visual_encoder.width, model.audio_encoder.width


def visual_token_count(config: Config) -> int:
    """Tokens per frame (prefix + patches) of `config`'s ViT at ``data.image_size``: what the token
    cache of ``model.visual.trainable_blocks`` K >= 1 holds per frame."""
    with torch.device("meta"):
        model = MultiViewActionModel(replace(config.model, mode="teacher"), NUM_CLASSES)
        images = torch.zeros(1, 3, *config.data.image_size)
        return int(vit_tokens(model.visual_encoder.net, images, 0).shape[1])


def synthetic_batch(shape: Shape, seed: int = 0, device: str = "cpu") -> dict[str, Tensor]:
    """A random batch with every key a training step reads (uint8 video, as the data loader gives)."""
    g = torch.Generator().manual_seed(seed)
    b, v, t, s = shape.batch, shape.views, shape.frames, shape.image_size
    if shape.feature_widths is None:
        inputs = {"video": torch.randint(0, 256, (b, v, t, 3, s, s), dtype=torch.uint8, generator=g),
                  "audio": torch.randn(b, v, t, FBANK_ROWS, 128, generator=g) * 0.5}
    else:
        visual, audio = shape.feature_widths
        tokens = () if shape.visual_tokens is None else (shape.visual_tokens,)
        inputs = {"visual_features": torch.randn(b, v, t, *tokens, visual, generator=g),
                  "audio_features": torch.randn(b, v, t, audio, generator=g)}
    batch = {
        **inputs,
        "audio_present": torch.ones(b, v, dtype=torch.bool),
        "frame_labels": (torch.rand(b, t, NUM_CLASSES, generator=g) < 0.1).float(),
        "labels": (torch.rand(b, NUM_CLASSES, generator=g) < 0.2).float(),
        "person": torch.rand(b, v, t, generator=g),
        "index": torch.arange(b),
    }
    return {key: value.to(device) for key, value in batch.items()}


def step_loss(config: Config, model: MultiViewActionModel, teacher: MultiViewActionModel | None,
              batch: dict[str, Tensor]) -> Tensor:
    """The training objective of one batch, the training module's own (:func:`vicokd.methods.batch_objective`)."""
    return batch_objective(get_method(config.distill.method), model, teacher, batch, config).total


def forward_logits(model: MultiViewActionModel, batch: dict[str, Tensor]) -> Tensor:
    """Inference: sequence logits of a batch (the model normalises uint8 video itself)."""
    return model(batch).seq_logits


def count_flops(config: Config, shape: Shape, run: Callable[..., object]) -> float:
    """FLOPs of ``run(config, model, teacher, batch)`` on the meta device (nothing computed).

    Matrix products, convolutions and attention, 2 per multiply-add (torch's FlopCounterMode);
    a backward pass inside `run` is counted, recomputation under checkpointing included.
    """
    with torch.device("meta"):
        model, teacher = build_models(config)
    batch = synthetic_batch(shape, device="meta")
    counter = FlopCounterMode(display=False)
    with counter:
        run(config, model, teacher, batch)
    return float(counter.get_total_flops())
