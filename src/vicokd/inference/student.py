"""A visual-only student loaded for use: one type, whichever of its three forms it was read from.

- a student checkpoint (``X.safetensors`` + ``X.json``): :func:`load_student`, PyTorch;
- an export directory's weights (``model.safetensors`` + ``config.yaml`` + ``classes.json``):
  :func:`load_exported`, PyTorch;
- an export directory's ONNX parts (``encoder.onnx`` + ``window.onnx``): :func:`load_onnx_student`,
  onnxruntime (what ``vicokd stream --onnx`` runs).

Each returns a :class:`LoadedStudent`: the model, its :class:`~vicokd.models.checkpoint.CheckpointMeta`
(read and checked once; an export's files are checked against each other the same way) and its
:class:`~vicokd.inference.decisions.Decisions` (the calibrated probabilities and thresholds it was
given on validation). What ``stream`` runs of it is its :attr:`LoadedStudent.parts`, one interface
(:class:`StudentParts`) for PyTorch and ONNX: per-frame features, then frame logits of a window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from vicokd.config import config_hash, load_config
from vicokd.errors import VicokdError
from vicokd.inference.decisions import Decisions
from vicokd.models import MultiViewActionModel
from vicokd.models.checkpoint import (
    CheckpointMeta,
    check_calibration,
    model_from_checkpoint,
    model_from_weights,
    read_meta,
    read_safetensors,
)

__all__ = ["LoadedStudent", "OnnxParts", "StudentParts", "TorchParts", "load_exported", "load_onnx_student",
           "load_student", "read_export_meta"]


class StudentParts(Protocol):
    """The two steps ``stream`` runs: features of each new frame, then frame logits of a window."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 3, H, W) → visual features (N, W)."""

    def frame_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Features of one window (1, V, T, W) → frame logits (T, C)."""


class TorchParts:
    """:class:`StudentParts` of a PyTorch student."""

    def __init__(self, model: MultiViewActionModel) -> None:
        self.model = model.eval()

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.visual_features(images)

    @torch.inference_mode()
    def frame_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.model({"visual_features": features}).frame_logits[0].float()


class OnnxParts:
    """:class:`StudentParts` from the ``encoder.onnx`` and ``window.onnx`` of a ``vicokd export``
    directory, run by onnxruntime."""

    def __init__(self, directory: str | Path) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise VicokdError("stream --onnx needs onnxruntime: pip install 'vicokd[export]'") from None
        directory = Path(directory)
        sessions = []
        for name in ("encoder.onnx", "window.onnx"):
            if not (directory / name).is_file():
                raise VicokdError(f"{directory}: no {name} (export the student again with `vicokd export`)")
            sessions.append(onnxruntime.InferenceSession(str(directory / name), providers=["CPUExecutionProvider"]))
        self.encoder, self.window = sessions
        self.directory = directory

    def check(self, image_size: tuple[int, int] | list[int], num_classes: int) -> None:
        """The traced graphs take images of `image_size` (H, W) and give `num_classes` outputs, as the
        export's ``config.yaml`` and ``classes.json`` say (one line naming the file otherwise)."""
        traced = [int(d) if isinstance(d, int) else None for d in self.encoder.get_inputs()[0].shape[2:]]
        if traced != [int(v) for v in image_size]:
            raise VicokdError(f"{self.directory / 'encoder.onnx'}: traced for {traced[0]}x{traced[1]} images, but "
                              f"config.yaml says data.image_size {list(image_size)}: one of the two files is not "
                              "this export's; export the student again")
        outputs = self.window.get_outputs()[0].shape[-1]
        if isinstance(outputs, int) and outputs != num_classes:
            raise VicokdError(f"{self.directory / 'window.onnx'}: gives {outputs} class outputs, but classes.json "
                              f"lists {num_classes}: one of the two files is not this export's")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.encoder.run(["features"], {"images": images.numpy()})[0])

    def frame_logits(self, features: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.window.run(["frame_logits"], {"features": features.numpy()})[0][0]).float()


@dataclass(frozen=True)
class LoadedStudent:
    """A student ready to run: `model` (PyTorch, eval mode; or the ONNX parts of an export), its
    checked `meta` and its `decisions` (the checkpoint's calibration and thresholds; ``predict`` and
    ``stream`` make their own from `meta` when ``--threshold`` or the merge rules are given)."""

    model: MultiViewActionModel | OnnxParts
    meta: CheckpointMeta
    decisions: Decisions

    @property
    def parts(self) -> StudentParts:
        """What ``stream`` runs: the per-frame encoder and the window model."""
        return self.model if isinstance(self.model, OnnxParts) else TorchParts(self.model)


def load_student(path: str | Path, device: str | None = "cpu") -> LoadedStudent:
    """The visual-only student of a checkpoint (eval mode, on `device`; None means CUDA when
    available, else the CPU). A teacher checkpoint is refused: without its audio it is not the model
    it was trained to be."""
    meta = read_meta(path)
    if meta.mode != "student":
        raise VicokdError(f"{path}: this is a {meta.mode} checkpoint; predict and export take a visual-only student "
                          f"(distil one with `vicokd distill`, or train one with --set distill.method=student)")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, meta = model_from_checkpoint(path, meta=meta)
    try:
        model.to(torch.device(device))
    except (RuntimeError, AssertionError) as exc:  # unknown device string, or CUDA not available
        raise VicokdError(f"--device {device}: {str(exc).strip().splitlines()[0]}") from None
    return LoadedStudent(model.eval(), meta, Decisions.from_meta(meta))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise VicokdError(f"{path}: damaged (not valid JSON: {exc.msg} at line {exc.lineno}); export the student "
                          "again with `vicokd export`") from None


def read_export_meta(directory: str | Path, needs: tuple[str, ...] = ()) -> CheckpointMeta:
    """The :class:`CheckpointMeta` of an export directory, checked as a checkpoint's is: ``config.yaml``
    a valid config, ``classes.json`` a list of distinct class names, ``decisions.json`` (when present,
    or when in `needs`) a calibration of exactly those classes; `needs` names further files that must
    exist. One line naming the file otherwise."""
    directory = Path(directory)
    for name in ("config.yaml", "classes.json", *needs):
        if not (directory / name).is_file():
            raise VicokdError(f"{directory}: not an export directory with what this needs (no {name}); export the "
                              "student again with `vicokd export`")
    config = load_config(directory / "config.yaml")
    classes = _read_json(directory / "classes.json")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes) \
            or len(set(classes)) != len(classes):
        raise VicokdError(f"{directory / 'classes.json'}: damaged: should be a list of distinct class names")
    calibration = None
    if (directory / "decisions.json").is_file():
        decisions = _read_json(directory / "decisions.json")
        if not isinstance(decisions, dict) or "calibration" not in decisions:
            raise VicokdError(f"{directory / 'decisions.json'}: damaged: should be an object with a calibration")
        calibration = decisions["calibration"]
        check_calibration(calibration, classes, directory / "decisions.json", "calibration", "classes.json",
                          "export")
    return CheckpointMeta(role="student", method=config.distill.method, config=config, classes=tuple(classes),
                          model_hash=config_hash(config.model), calibration=calibration, source=str(directory))


def load_exported(directory: str | Path) -> LoadedStudent:
    """The PyTorch student of an export directory (model.safetensors + config.yaml + classes.json), in eval mode."""
    meta = read_export_meta(directory, ("model.safetensors",))
    directory = Path(directory)
    model = model_from_weights(meta.config, len(meta.classes), read_safetensors(directory / "model.safetensors"),
                               str(directory))
    return LoadedStudent(model.eval(), meta, Decisions.from_meta(meta))


def load_onnx_student(directory: str | Path) -> LoadedStudent:
    """The ONNX parts of an export directory with its meta, the files checked against each other
    (:func:`read_export_meta`, :meth:`OnnxParts.check`)."""
    meta = read_export_meta(directory, ("decisions.json",))
    parts = OnnxParts(directory)
    parts.check(meta.config.data.image_size, len(meta.classes))
    return LoadedStudent(parts, meta, Decisions.from_meta(meta))
