"""The Lightning side of a run: the trainer with its checkpoints (safetensors), CSV and TensorBoard
logs and throughput callback (:func:`build_trainer`), and where a run lives (:func:`run_dir`)."""

from __future__ import annotations

import csv
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from vicokd.config import Config
from vicokd.training.checkpoint_io import SafetensorsCheckpointIO

__all__ = ["RunCSVLogger", "SafetensorsModelCheckpoint", "Throughput", "build_trainer", "run_dir"]


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
