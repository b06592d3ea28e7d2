"""What a distilled student took from its teacher (``summary.json``'s ``transfer``): the teacher on
the same test clips, per-class AP of both, and the agreement of their frame decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vicokd.calibration import Calibration
from vicokd.config import Config
from vicokd.errors import VicokdError
from vicokd.inference.decisions import Decisions
from vicokd.metrics import frame_rows, per_class_ap_table
from vicokd.models import MultiViewActionModel
from vicokd.models.checkpoint import read_meta
from vicokd.training.datamodule import ClipsDataModule
from vicokd.training.module import ViCoKDModule
from vicokd.training.trainer import build_trainer

__all__ = ["transfer_diagnostics"]


def transfer_diagnostics(config: Config, module: ViCoKDModule, teacher: MultiViewActionModel,
                         teacher_checkpoint: str | Path, data: ClipsDataModule, test: dict[str, Any],
                         calibration: Calibration | None) -> dict[str, Any]:
    """How much of the teacher the student took: the teacher on the same test clips, the agreement of
    their frame decisions, per-class AP of both.

    Decisions (:class:`~vicokd.inference.decisions.Decisions`): p ≥ θ per class, each model at its
    own calibrated thresholds (the default where it has none); agreement = share of (test frame,
    class) pairs decided alike.
    """
    classes = module.classes
    teacher_module = ViCoKDModule(config, classes, model=teacher)
    trainer, _ = build_trainer(config, None, epochs=1, progress=False)
    trainer.test(teacher_module, datamodule=data, verbose=False)
    taught = teacher_module.last_eval
    if not np.array_equal(taught["ids"], test["ids"]):
        raise VicokdError("transfer diagnostics: teacher and student saw different test clips")
    fps = config.data.fps

    def decided(logits: np.ndarray, decisions: Decisions) -> np.ndarray:
        return decisions.active(decisions.probabilities(frame_rows(torch.as_tensor(logits))).numpy())

    student_says = decided(test["frame_logits"], Decisions.of(classes, calibration, fps))
    teacher_says = decided(taught["frame_logits"], Decisions.from_meta(read_meta(teacher_checkpoint)))
    return {
        "teacher_test": {"seq_map": taught["seq_map"], "frame_map": taught["frame_map"],
                         "per_class": per_class_ap_table(taught["seq_logits"], taught["labels"], classes)},
        "frame_decision_agreement": float((student_says == teacher_says).mean()),
    }
