"""Model size and cost for a preset: parameters and FLOPs per clip (``vicokd models``)."""

from __future__ import annotations

import torch
from torch import nn

from vicokd.backbone_registry import paper_backbones
from vicokd.config import ModelConfig, replace
from vicokd.models.model import MultiViewActionModel

__all__ = ["count_parameters", "model_costs"]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def model_costs(config: ModelConfig, num_classes: int, *, num_views: int, num_frames: int,
                image_size: tuple[int, int], audio_rows: int | None = None) -> list[tuple[str, int, float]]:
    """(component, parameters, FLOPs per clip) for this preset, built on the meta device.

    Counts one clip (B = 1) of `num_views` × `num_frames` frames; FLOPs are those of matrix
    products, convolutions and attention (torch's FlopCounterMode, 2 per multiply-add).
    Rows: the encoders, adapter, cross-attention, each backbone, then the whole model for
    teacher and student with each backbone. Pretrained paths are not read.
    """
    from torch.utils.flop_counter import FlopCounterMode

    config = replace(config, **{"visual.pretrained": None, "audio.pretrained": None})
    rows = audio_rows or config.audio.max_rows
    h, w = image_size
    batch = {
        "video": torch.empty(1, num_views, num_frames, 3, h, w, device="meta"),
        "audio": torch.empty(1, num_views, num_frames, rows, config.audio.num_mel_bins, device="meta"),
    }
    parts: dict[str, tuple[int, float]] = {}
    totals: list[tuple[str, int, float]] = []
    for backbone in paper_backbones():
        for mode in ("teacher", "student"):
            with torch.device("meta"):
                model = MultiViewActionModel(replace(config, backbone=backbone, mode=mode), num_classes)
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                model(batch)
            flops = counter.get_flop_counts()
            for name, child in model.named_children():
                label = f"backbone {backbone}" if name == "backbone" else name.replace("_", " ")
                module_flops = sum(flops.get(f"MultiViewActionModel.{name}", {}).values())
                parts[label] = (count_parameters(child), float(module_flops))
            totals.append((f"{mode} {backbone}", count_parameters(model), float(counter.get_total_flops())))
    order = ["visual encoder", "audio encoder", "adapter", "cross attention",
             *(f"backbone {backbone}" for backbone in paper_backbones())]
    return [(name, *parts[name]) for name in order] + totals
