"""Runs: `train` (teacher or plain student), `distill` (student from a frozen teacher), `evaluate`.

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

import csv
import dataclasses
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from vicokd.calibration import Calibration, calibrate, f1_at
from vicokd.config import Config, config_from_dict, config_hash, config_to_yaml
from vicokd.data.cache import CacheIndex, read_index
from vicokd.data.dataset import split_keys
from vicokd.data.person_scores import person_scores_path
from vicokd.errors import VicokdError
from vicokd.inference.decisions import Decisions
from vicokd.inference.predict import segment_f1
from vicokd.io import write_json_atomic, write_text
from vicokd.methods import Method, get_method
from vicokd.metrics import frame_rows, per_class_ap_table
from vicokd.models import MultiViewActionModel
from vicokd.models.backbones import backbone_spec
from vicokd.models.checkpoint import load_state_dict, model_from_checkpoint, read_meta, update_meta
from vicokd.training.allocator import use_training_mmap_threshold
from vicokd.training.checkpoint_io import SafetensorsCheckpointIO
from vicokd.training.datamodule import ClipsDataModule
from vicokd.training.encoder_features import apply_feature_cache, load_cached_encoders
from vicokd.training.grad_share import summarize as summarize_grad_shares
from vicokd.training.module import Condition, ViCoKDModule
from vicokd.training.run_lock import run_folder_lock

INIT_FILE = "init.json"  # test mAP of the weights a run starts from


class SafetensorsModelCheckpoint(ModelCheckpoint):
    """Lightning's checkpoint callback writing ``best``/``last`` as safetensors + JSON."""

    FILE_EXTENSION = ".safetensors"


class Throughput(Callback):
    """Clips per second of the training loop, and each epoch's training time.

    ``time/train_epoch_s`` and ``time/clips_per_s`` (one value per epoch in ``metrics.csv``): the
    wall time from the start of the epoch to the end of its last optimizer step (data loading
    and training steps, without the validation pass and checkpoint writing that follow) and the
    clips trained per second of it. With a progress bar, the running rate is also shown on it
    each step (a `log` call costs about 0.5 ms, so it is only made when someone sees it).
    """

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start, self._clips = time.perf_counter(), 0
        self._last_step_end = self._start

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._last_step_end = time.perf_counter()
        self._clips += int(batch["labels"].shape[0])
        if trainer.progress_bar_callback is not None:
            module.log("clips_per_s", self._rate(), prog_bar=True, logger=False, on_step=True, on_epoch=False,
                       batch_size=1)

    def _rate(self) -> float:
        return self._clips / max(self._last_step_end - self._start, 1e-9)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        module.log("time/train_epoch_s", self._last_step_end - self._start, on_step=False, on_epoch=True, batch_size=1)
        module.log("time/clips_per_s", self._rate(), on_step=False, on_epoch=True, batch_size=1)


class RunCSVLogger(CSVLogger):
    """``metrics.csv`` in the run directory; on resume keeps the rows of the finished epochs.

    (Lightning's CSV logger deletes an existing file when it starts.)
    """

    def __init__(self, directory: Path, keep_through_epoch: int | None = None) -> None:
        super().__init__(save_dir=directory, name="", version="")
        self._keep_through_epoch = keep_through_epoch

    @property
    def experiment(self) -> Any:
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / "metrics.csv"
        kept: list[dict[str, str]] = []
        if self._keep_through_epoch is not None and path.is_file():
            with path.open(newline="") as handle:
                kept = [row for row in csv.DictReader(handle)
                        if row.get("epoch", "") != "" and int(float(row["epoch"])) <= self._keep_through_epoch]
        experiment = super().experiment
        if kept and experiment is not None:
            experiment.metrics_keys = sorted({key for row in kept for key in row})
            with path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=experiment.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
        return experiment


def _quiet_lightning() -> None:
    """Keep Lightning's banner lines and known-harmless warnings off the user's screen."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*LeafSpec.*", ".*smaller than the logging interval.*", ".*exists and is not empty.*",
                    ".*does not have many workers.*", ".*litlogger.*", ".*Checkpoint directory .* exists.*",
                    ".*all_gather is deprecated.*", ".*sync_dist=True.*",
                    ".*module\\(s\\) in eval mode at the start of training.*",
                    ".*overridden `transfer_batch_to_device`.*"):  # frozen encoders stay in eval
        warnings.filterwarnings("ignore", message=pattern)


def run_dir(config: Config) -> Path:
    return Path(config.train.out_dir) / config.train.name


def _devices(config: Config) -> tuple[Any, str]:
    """Devices and strategy; under torchrun the local world size decides."""
    local = os.environ.get("LOCAL_WORLD_SIZE")
    if local is not None and int(local) > 1:
        return int(local), "ddp"
    devices = config.train.devices
    return (int(devices) if devices.isdigit() else devices), "auto"


def build_trainer(config: Config, directory: Path | None, *, epochs: int, progress: bool = True,
                  resume_epoch: int | None = None) -> tuple[L.Trainer, SafetensorsModelCheckpoint | None]:
    """A Lightning trainer; with a run `directory`: checkpoints, CSV and TensorBoard logs."""
    _quiet_lightning()
    devices, strategy = _devices(config)
    callbacks: list[Callback] = [Throughput()] if directory else []
    checkpoint = None
    loggers: list[Any] | bool = False
    if directory is not None:
        checkpoint = SafetensorsModelCheckpoint(
            dirpath=directory / "checkpoints", filename="best", monitor=f"val/{config.train.monitor}",
            mode="max", save_top_k=1, enable_version_counter=False)
        # `last` every epoch (Lightning's save_last only follows epochs that improved `best`)
        latest = SafetensorsModelCheckpoint(dirpath=directory / "checkpoints", filename="last", monitor=None,
                                            save_top_k=1, enable_version_counter=False)
        callbacks += [checkpoint, latest]
        loggers = [RunCSVLogger(directory, resume_epoch),
                   TensorBoardLogger(save_dir=directory, name="tb", version="", default_hp_metric=False)]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    trainer = L.Trainer(
        accelerator=config.train.accelerator, devices=devices, strategy=strategy, num_nodes=config.train.num_nodes,
        precision=config.train.precision, max_epochs=epochs, deterministic=config.train.deterministic,
        accumulate_grad_batches=config.optim.accumulate_grad_batches, gradient_clip_val=config.optim.grad_clip,
        log_every_n_steps=config.train.log_every_n_steps, callbacks=callbacks, logger=loggers,
        plugins=[SafetensorsCheckpointIO()], num_sanity_val_steps=0, enable_model_summary=False,
        enable_progress_bar=progress, enable_checkpointing=checkpoint is not None, use_distributed_sampler=True,
    )
    return trainer, checkpoint


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


def _classes(config: Config, index: CacheIndex) -> list[str]:
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
    classes = _classes(config, index)
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
        transfer = _transfer(config, module, teacher, teacher_checkpoint, data, test, calibration)
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


def _transfer(config: Config, module: ViCoKDModule, teacher: MultiViewActionModel, teacher_checkpoint: str | Path,
              data: ClipsDataModule, test: dict[str, Any], calibration: Calibration | None) -> dict[str, Any]:
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

    meta = read_meta(checkpoint)
    if overrides:
        values = merge_dicts(config_to_dict(meta.config), overrides)
        meta = dataclasses.replace(meta, config=config_from_dict(values, f"{checkpoint} (sidecar config + --set)"))
    config = meta.config
    classes = list(meta.classes)
    index = read_index(config.data.cache)
    dataset_classes = _classes(config, index)
    if dataset_classes != classes:
        raise VicokdError(f"{checkpoint}: trained on classes {classes}, but {config.data.cache} has {dataset_classes}")
    if condition != "av" and config.model.mode != "teacher":
        raise VicokdError(f"--condition {condition}: only an audio-visual teacher uses audio; this is a student")
    model, _ = model_from_checkpoint(checkpoint)  # built once, from the architecture the sidecar records
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

