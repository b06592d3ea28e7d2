"""A training run: `train` (teacher or plain student) and `distill` (student from a frozen teacher).

A run lives in ``<train.out_dir>/<train.name>/``::

    config.yaml                      the resolved config
    metrics.csv, tb/                 per-epoch metrics (CSV) and TensorBoard events
    checkpoints/last.safetensors     + last.json (sidecar): weights, optimizer, scheduler, RNG, …
    checkpoints/best.safetensors     + best.json: best on the validation split (``train.monitor``)
    summary.json                     best epoch, validation and test mAP, per-class AP, timings

Model selection uses the validation split carved from train; the test split is evaluated once,
at the end, with the best checkpoint. ``train.select_on_test`` reproduces the earlier code's
test-set selection and is recorded as such in the summary. ``resume=True`` continues from
``checkpoints/last.safetensors`` and ends with the same weights and metrics as an uninterrupted
run (deterministic CPU).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from vicokd.backbone_registry import backbone_spec
from vicokd.calibration import calibrate
from vicokd.config import Config, config_hash, config_to_yaml
from vicokd.data.cache import CacheIndex, read_index
from vicokd.data.person_scores import person_scores_path
from vicokd.errors import VicokdError
from vicokd.io import write_json_atomic, write_text
from vicokd.methods import Method, get_method
from vicokd.metrics import per_class_ap_table
from vicokd.models import MultiViewActionModel
from vicokd.models.checkpoint import load_state_dict, model_from_checkpoint, read_meta, update_meta
from vicokd.training.allocator import use_training_mmap_threshold
from vicokd.training.datamodule import ClipsDataModule
from vicokd.training.encoder_features import apply_feature_cache, load_cached_encoders
from vicokd.training.grad_share import summarize as summarize_grad_shares
from vicokd.training.module import ViCoKDModule
from vicokd.training.run_lock import run_folder_lock
from vicokd.training.trainer import build_trainer, run_dir
from vicokd.training.transfer import transfer_diagnostics

INIT_FILE = "init.json"  # test mAP of the weights a run starts from


def load_teacher(path: str | Path, config: Config, classes: list[str]) -> tuple[MultiViewActionModel, dict[str, Any]]:
    """The frozen teacher for distillation, with compatibility checks against the student config."""
    teacher, meta = model_from_checkpoint(path)
    if meta.mode != "teacher":
        raise VicokdError(f"{path}: this is a {meta.mode} checkpoint, not a teacher")
    if list(meta.classes) != classes:
        raise VicokdError(f"{path}: teacher classes {list(meta.classes)} differ from the dataset's {classes}")
    teacher_model = meta.config.model
    if teacher_model.backbone != config.model.backbone:
        raise VicokdError(f"{path}: teacher backbone {teacher_model.backbone!r} differs from the student's "
                          f"model.backbone {config.model.backbone!r}")
    teacher_features = meta.config.data.features
    if teacher_features != config.data.features:
        raise VicokdError(f"{path}: teacher was trained on data.features={teacher_features!r}, the student uses "
                          f"{config.data.features!r}; both must read the same inputs")
    if teacher_model.dim != config.model.dim:
        raise VicokdError(f"{path}: teacher width model.dim={teacher_model.dim} differs from the student's "
                          f"{config.model.dim}; feature distillation needs equal widths")
    teacher.eval().requires_grad_(False)
    return teacher, {"checkpoint": str(path), "metrics": dict(meta.metrics), "model_hash": meta.model_hash}


def dataset_classes(config: Config, index: CacheIndex) -> list[str]:
    """The cache's class list; ``data.classes``, when set, must be the list the cache was prepared with."""
    cached = list(index.classes)
    if config.data.classes is not None and list(config.data.classes) != cached:
        raise VicokdError(f"data.classes: {list(config.data.classes)} differs from {cached}, the classes "
                          f"{config.data.cache} was prepared with; prepare it again with these classes "
                          "(into another --out) or drop data.classes")
    return cached


def _check_person_scores(config: Config, needed: bool, method: str) -> bool:
    path = person_scores_path(config.data)
    if needed and not path.is_file():
        raise VicokdError(f"{path}: method {method!r} needs person scores; make them with "
                          f"`vicokd detect {config.data.root} --cache {config.data.cache}`")
    return path.is_file()


def fit(config: Config, *, teacher_checkpoint: str | Path | None = None, resume: bool = False,
        progress: bool = True) -> dict[str, Any]:
    """Train `config.distill.method` (teacher, student, or a KD method with `teacher_checkpoint`).

    The run folder is locked for the whole run (:mod:`vicokd.training.run_lock`).
    """
    started = time.perf_counter()
    method = get_method(config.distill.method)
    config = apply_feature_cache(method.resolve(config))  # the role and any distribution the method fixes
    if method.needs_teacher and teacher_checkpoint is None:
        raise VicokdError(f"method {method.name!r} distills from a teacher: pass --teacher CKPT")
    if not method.needs_teacher and teacher_checkpoint is not None and method.role == "student":
        raise VicokdError(f"method {method.name!r} uses no teacher; drop --teacher or choose a KD method")
    with run_folder_lock(run_dir(config)):
        return _fit_locked(config, method, teacher_checkpoint, resume, progress, started)


def _fit_locked(config: Config, method: Method, teacher_checkpoint: str | Path | None, resume: bool,
                progress: bool, started: float) -> dict[str, Any]:
    use_training_mmap_threshold()
    directory = run_dir(config)
    last = directory / "checkpoints" / "last.safetensors"
    if resume and not last.is_file():
        raise VicokdError(f"{last}: nothing to resume (no last checkpoint)")
    if not resume and last.is_file():
        raise VicokdError(f"{directory}: run exists; use --resume to continue it or choose another train.name")
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    index = read_index(config.data.cache)
    classes = dataset_classes(config, index)
    teacher = teacher_meta = None
    if teacher_checkpoint is not None:
        teacher, teacher_meta = load_teacher(teacher_checkpoint, config, classes)
    wants_human = backbone_spec(config.model.backbone).wants_person_scores(config.model)
    person = _check_person_scores(config, method.needs_person_masks, method.name) and (
        method.needs_person_masks or wants_human)
    module = ViCoKDModule(config, classes, teacher, teacher_meta)
    module.training_views = max((clip.num_views for clip in index.clips.values()), default=None)
    if config.data.features is not None:
        load_cached_encoders(module.model, config.data.features)
    if teacher is not None and config.distill.student_init == "teacher":
        module.model.copy_shared_weights(teacher)
    data = ClipsDataModule(config, load_audio=config.model.mode == "teacher" or teacher is not None,
                           person=person, eval_split="test" if config.train.select_on_test else "val")
    directory.mkdir(parents=True, exist_ok=True)
    write_text(directory / "config.yaml", config_to_yaml(config))
    if not resume:  # the test mAP of the weights the run starts from (kept for a resumed run)
        write_json_atomic(directory / INIT_FILE, _initial_test_metrics(config, module, data))
    resume_epoch = read_meta(last).epoch if resume else None
    trainer, checkpoint = build_trainer(config, directory, epochs=config.optim.epochs,
                                        progress=progress, resume_epoch=resume_epoch)
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None)
    best = Path(checkpoint.best_model_path) if checkpoint and checkpoint.best_model_path else last
    best_meta = read_meta(best)
    module.model.load_state_dict(load_state_dict(best))
    test_trainer, _ = build_trainer(config, None, epochs=1, progress=False)
    calibration = None
    if config.data.val_fraction > 0:  # per-class scaling and thresholds on validation frames
        data.test_split = "val"
        test_trainer.test(module, datamodule=data, verbose=False)
        val = module.last_eval
        calibration = calibrate(val["frame_logits"], val["frame_labels"], classes)
        if trainer.is_global_zero:
            update_meta(best, calibration=calibration.to_json())
        data.test_split = "test"
    test_trainer.test(module, datamodule=data, verbose=False)
    test = module.last_eval
    transfer = None
    if teacher is not None:
        transfer = transfer_diagnostics(config, module, teacher, teacher_checkpoint, data, test, calibration)
    summary = {
        "name": config.train.name, "method": method.name, "role": method.role,
        "supervision": config.distill.supervision if method.role == "student" else "frame",
        "backbone": config.model.backbone, "model_hash": config_hash(config.model),
        "selection_split": "test (reproduces the earlier code's optimistic selection)"
        if config.train.select_on_test else "val",
        "best_checkpoint": str(best), "best_epoch": best_meta.epoch,
        "val": {k.split("/", 1)[1]: v for k, v in best_meta.metrics.items() if k.startswith("val/")},
        "test": {"seq_map": test["seq_map"], "frame_map": test["frame_map"],
                 "per_class": per_class_ap_table(test["seq_logits"], test["labels"], classes)},
        "calibration": calibration.to_json() if calibration else None,
        "init": _read_init(directory),
        "transfer": transfer,
        "teacher": teacher_meta, "epochs": config.optim.epochs, "seconds": round(time.perf_counter() - started, 1),
        "grad_share": {**summarize_grad_shares(directory / "metrics.csv"),
                       "every": config.train.grad_share_every,
                       "seconds": round(module.grad_share_seconds, 2)},
    }
    if trainer.is_global_zero:
        write_json_atomic(directory / "summary.json", summary)
    return summary



def _without_rng_change(function: Any) -> Any:
    """Run `function()` leaving the torch, numpy and Python random states as they were."""
    import random

    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        return function()
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


def _initial_test_metrics(config: Config, module: ViCoKDModule, data: ClipsDataModule) -> dict[str, Any]:
    """Test sequence and frame mAP of the model before its first step (step 0: its initialisation).

    For a student started from the teacher (``distill.student_init: teacher``) this is what the
    copied weights are worth on their own; the run's training starts from exactly these weights
    (the random states are left as they were).
    """
    def measure() -> dict[str, Any]:
        trainer, _ = build_trainer(config, None, epochs=1, progress=False)
        split = data.test_split
        data.test_split = "test"
        try:
            trainer.test(module, datamodule=data, verbose=False)
        finally:
            data.test_split = split
        return {"seq_map": module.last_eval["seq_map"], "frame_map": module.last_eval["frame_map"],
                "student_init": config.distill.student_init if module.teacher is not None else "scratch"}

    return _without_rng_change(measure)


def _read_init(directory: Path) -> dict[str, Any] | None:
    import json

    path = directory / INIT_FILE
    return json.loads(path.read_text()) if path.is_file() else None
