"""`vicokd evaluate`: sequence and frame mAP of a checkpoint on a split, per-class AP, and at the
thresholds chosen on validation its frame (and for a student, segment) F1."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vicokd.calibration import f1_at
from vicokd.config import config_from_dict
from vicokd.data.cache import read_index
from vicokd.data.dataset import split_keys
from vicokd.errors import VicokdError
from vicokd.inference.decisions import Decisions
from vicokd.inference.predict import segment_f1
from vicokd.io import write_json_atomic
from vicokd.metrics import frame_rows, per_class_ap_table
from vicokd.models.checkpoint import model_from_checkpoint, read_meta
from vicokd.training.datamodule import ClipsDataModule
from vicokd.training.module import Condition, ViCoKDModule
from vicokd.training.run import dataset_classes
from vicokd.training.trainer import build_trainer

__all__ = ["evaluate", "format_evaluation"]


def format_evaluation(report: dict[str, Any]) -> str:
    """An :func:`evaluate` report as lines: the headline, a per-class AP table, where it went."""
    def ap(row: dict[str, Any]) -> str:
        return "   n/a" if row["excluded"] else f"{row['ap']:6.2f}"

    f1 = [f"{name} F1 {report[key]:.2f}" for name, key in (("frame", "frame_f1"), ("segment", "segment_f1"))
          if report.get(key) is not None]
    lines = [f"{report['checkpoint']} on {report['split']} ({report['condition']}, {report['clips']} clips): "
             f"sequence mAP {report['seq_map']:.2f}, frame mAP {report['frame_map']:.2f}"
             + (f", {', '.join(f1)} at the thresholds chosen on validation" if f1 else ""),
             f"{'class':<16} {'seq AP':>8} {'frame AP':>9}"]
    lines += [f"{seq['class']:<16} {ap(seq):>8} {ap(frame):>9}"
              for seq, frame in zip(report["per_class_seq"], report["per_class_frame"])]
    if "written_to" in report:
        lines.append(f"written to {report['written_to']}")
    return "\n".join(lines)


def evaluate(checkpoint: str | Path, *, split: str = "test", condition: Condition = "av",
             overrides: dict[str, Any] | None = None, out: str | Path | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Sequence and frame mAP of a checkpoint on `split`, with a per-class AP table.

    `overrides` replace config fields of the checkpoint (e.g. ``{"data": {"cache": ...}}``).
    Writes ``<run>/eval/<split>-<condition>.json`` (or `out`) and returns the same dict.
    """
    from vicokd.config import config_to_dict, merge_dicts

    recorded = meta = read_meta(checkpoint)
    if overrides:
        values = merge_dicts(config_to_dict(meta.config), overrides)
        meta = dataclasses.replace(meta, config=config_from_dict(values, f"{checkpoint} (sidecar config + --set)"))
    config = meta.config
    classes = list(meta.classes)
    index = read_index(config.data.cache)
    cached = dataset_classes(config, index)
    if cached != classes:
        raise VicokdError(f"{checkpoint}: trained on classes {classes}, but {config.data.cache} has {cached}")
    if condition != "av" and config.model.mode != "teacher":
        raise VicokdError(f"--condition {condition}: only an audio-visual teacher uses audio; this is a student")
    model, _ = model_from_checkpoint(checkpoint, meta=recorded)  # the architecture the sidecar records
    module = ViCoKDModule(config, classes, condition=condition, model=model)
    data = ClipsDataModule(config, load_audio=config.model.mode == "teacher", person=False, test_split=split)
    trainer, _ = build_trainer(config, None, epochs=1, progress=progress)
    trainer.test(module, datamodule=data, verbose=False)
    result = module.last_eval
    report = {
        "checkpoint": str(checkpoint), "split": split, "condition": condition, "clips": len(result["ids"]),
        "seq_map": result["seq_map"], "frame_map": result["frame_map"],
        # logits rank exactly as their sigmoid scores, without the ties rounding would create
        "per_class_seq": per_class_ap_table(result["seq_logits"], result["labels"], classes),
        "per_class_frame": per_class_ap_table(frame_rows(result["frame_logits"]), frame_rows(result["frame_labels"]),
                                              classes),
        "config": config_to_dict(config),
    }
    decisions = Decisions.from_meta(meta)
    if decisions.calibrated:  # decisions at the thresholds chosen on validation when it was trained
        probs = frame_rows(decisions.probabilities(torch.as_tensor(result["frame_logits"])))
        f1 = f1_at(probs.numpy(), frame_rows(np.asarray(result["frame_labels"])), decisions.thresholds)
        report["frame_f1"] = float(np.nanmean(f1) * 100) if not np.isnan(f1).all() else None
        report["per_class_frame_f1"] = {name: None if np.isnan(v) else float(v * 100) for name, v in zip(classes, f1)}
        if config.model.mode == "student" and trainer.is_global_zero:  # as `predict` decides, on every grid frame
            keys = split_keys(index, split, config.data.val_fraction, config.data.split_seed)
            per_class = segment_f1(model.eval(), meta, index, keys)
            scored = [v for v in per_class.values() if v is not None]
            report["segment_f1"] = float(np.mean(scored) * 100) if scored else None
            report["per_class_segment_f1"] = {k: None if v is None else v * 100 for k, v in per_class.items()}
    if trainer.is_global_zero:
        target = Path(out) if out else Path(checkpoint).parent.parent / "eval" / f"{split}-{condition}.json"
        write_json_atomic(target, report)
        report["written_to"] = str(target)
    return report
