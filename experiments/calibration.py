"""Reliability of a trained run's probabilities before and after calibration (issue: the student
in deployment). For each checkpoint: the calibration fitted on its validation frames (per-class
scaling, per-class F1 thresholds, ECE before/after), then the test frames: ECE of the plain
sigmoid and of the calibrated probabilities, and the frame-level F1 at 0.5 and at the validation
thresholds.

example:
  python experiments/calibration.py demo/runs/*-student-frame-s*/checkpoints/best.safetensors --out calib.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vicokd.calibration import calibrate, expected_calibration_error, f1_at
from vicokd.models.checkpoint import model_from_checkpoint
from vicokd.training.datamodule import ClipsDataModule
from vicokd.training.module import ViCoKDModule
from vicokd.training.trainer import build_trainer


def frame_outputs(checkpoint: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    model, meta = model_from_checkpoint(checkpoint)
    config = meta.config
    module = ViCoKDModule(config, list(meta.classes), model=model)
    data = ClipsDataModule(config, load_audio=config.model.mode == "teacher", person=False, test_split=split)
    trainer, _ = build_trainer(config, None, epochs=1, progress=False)
    trainer.test(module, datamodule=data, verbose=False)
    result = module.last_eval
    classes = list(meta.classes)
    return (np.asarray(result["frame_logits"]).reshape(-1, len(classes)),
            np.asarray(result["frame_labels"]).reshape(-1, len(classes)), classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one per checkpoint")
    args = parser.parse_args()
    for checkpoint in args.checkpoints:
        val_logits, val_labels, classes = frame_outputs(checkpoint, "val")
        calibration = calibrate(val_logits, val_labels, classes)
        logits, labels, _ = frame_outputs(checkpoint, "test")
        before = torch.as_tensor(logits).sigmoid().numpy()
        after = calibration.probabilities(torch.as_tensor(logits), classes).numpy()
        row = {
            "checkpoint": str(checkpoint), "scale": calibration.scale, "bias": calibration.bias,
            "val_ece_before": calibration.ece_before, "val_ece_after": calibration.ece_after,
            "test_ece_before": expected_calibration_error(before, labels),
            "test_ece_after": expected_calibration_error(after, labels),
            "test_frame_f1_at_0.5": float(np.nanmean(f1_at(before, labels, np.full(len(classes), 0.5)))),
            "test_frame_f1_at_val_thresholds": float(np.nanmean(f1_at(after, labels,
                                                                       calibration.threshold_array(classes)))),
            "test_prob_range": [float(before.min()), float(before.max())],
            "thresholds": calibration.thresholds,
        }
        print(json.dumps(row), flush=True)
        with args.out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
