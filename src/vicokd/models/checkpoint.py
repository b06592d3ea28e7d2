"""Checkpoints without pickle: every tensor in ``X.safetensors``, everything else in ``X.json``.

Lightning hands a checkpoint as a nested dict (weights, optimizer and scheduler states, loop
and callback states, our own ``vicokd`` entry). :func:`save_tree` (through the training's
``SafetensorsCheckpointIO``) stores the tensors of that tree under path-like names in a
safetensors file and the rest of the tree in a JSON sidecar (tensors replaced by
``{"__tensor__": name}``; tuples and dicts with non-string keys encoded so that they come back
exactly). Both files are written to temporary names and
renamed, sidecar last, so a crash leaves the previous checkpoint intact. Loading never
unpickles anything, so a checkpoint from someone else is safe to open.

The sidecar's ``vicokd`` entry (format version, role, method, resolved config, class list,
config hash, epoch, step, metrics) makes a checkpoint self-describing for ``evaluate``,
``distill --teacher``, ``predict`` and ``export``: :func:`model_from_checkpoint` rebuilds the
model from it (the config there records the architecture; no pretrained file is read) without
Lightning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from vicokd.config import Config, config_from_dict, config_to_dict, replace
from vicokd.errors import VicokdError
from vicokd.io import write_safetensors, write_text
from vicokd.models.model import MultiViewActionModel

FORMAT_VERSION = 1
SIDECAR_SUFFIX = ".json"


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(SIDECAR_SUFFIX)


def _encode(value: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    if isinstance(value, torch.Tensor):
        name = path or "tensor"
        tensors[name] = value.detach().cpu().contiguous()
        return {"__tensor__": name}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and "__tensor__" not in value:
            return {k: _encode(v, tensors, f"{path}/{k}") for k, v in value.items()}
        return {"__items__": [[_encode(k, tensors, f"{path}/#k{i}"), _encode(v, tensors, f"{path}/{i}")]
                              for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{path}/{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{path}/{i}") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"checkpoint entry {path or '/'} has a type safetensors/JSON cannot hold: {type(value)}")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__tuple__" in value:
            return tuple(_decode(v, tensors) for v in value["__tuple__"])
        if "__items__" in value:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__items__"]}
        return {k: _decode(v, tensors) for k, v in value.items()}
    return value


def save_tree(tree: dict[str, Any], path: str | Path) -> None:
    """Write a nested checkpoint dict as ``path`` (safetensors) + its JSON sidecar, atomically."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(tree, tensors, "")
    # safetensors refuses tensors that share memory; store independent copies.
    seen: set[int] = set()
    for name, tensor in tensors.items():
        if tensor.data_ptr() in seen and tensor.numel():
            tensors[name] = tensor.clone()
        seen.add(tensors[name].data_ptr())
    write_safetensors(tensors, path)
    write_text(sidecar_path(path), json.dumps(structure))


def load_tree(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_tree` (no unpickling)."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file() or not side.is_file():
        raise VicokdError(f"{path}: checkpoint not found (needs {path.name} and {side.name})")
    try:
        device = map_location if isinstance(map_location, (str, torch.device)) else "cpu"
        tensors = load_file(str(path), device=str(device))
        structure = json.loads(side.read_text())
    except (OSError, ValueError, SafetensorError) as exc:  # JSONDecodeError is a ValueError
        raise VicokdError(_unreadable(path, exc)) from None
    try:
        return _decode(structure, tensors)
    except KeyError as exc:
        raise VicokdError(f"{path}: checkpoint and sidecar do not match (missing tensor {exc})") from None


@dataclass(frozen=True)
class CheckpointMeta:
    """The ``vicokd`` entry of a checkpoint's sidecar, read once and checked (:func:`read_meta`):
    what every reader of a checkpoint (or of an export, :mod:`vicokd.inference.student`) gets.

    The training module writes it (:meth:`entry`); `config` is the run's config, self-contained
    (its architecture rebuilds the model without reading a pretrained file); `calibration` is the
    JSON form of :class:`vicokd.calibration.Calibration` (per-class ``scale``, ``bias``,
    ``thresholds``), checked to name exactly `classes`; `source` is the file it was read from.
    """

    role: str  # "teacher" | "student"
    method: str
    config: Config
    classes: tuple[str, ...]
    model_hash: str = ""
    epoch: int | None = None  # None for an export (it keeps no training state)
    metrics: Mapping[str, float] = field(default_factory=dict)  # the logged scalars at the checkpoint's epoch
    step: int | None = None
    views: int | None = None  # the most views of a training clip (predict and stream warn on others)
    pretrained: Mapping[str, Any] = field(default_factory=dict)  # the encoders' files as configured (never read)
    teacher: Mapping[str, Any] | None = None  # the teacher a student was distilled from
    calibration: Mapping[str, Any] | None = None  # per-class scaling and thresholds chosen on validation
    source: str = "checkpoint"

    @property
    def mode(self) -> str:
        """``model.mode`` of the recorded config: "teacher" (audio-visual) or "student" (visual only)."""
        return self.config.model.mode

    def entry(self) -> dict[str, Any]:
        """The sidecar's JSON form (what :func:`read_meta` reads back)."""
        return {"format": FORMAT_VERSION, "role": self.role, "method": self.method,
                "config": config_to_dict(self.config), "pretrained": dict(self.pretrained),
                "model_hash": self.model_hash, "classes": list(self.classes),
                "views": self.views, "epoch": self.epoch, "step": self.step, "metrics": dict(self.metrics),
                "teacher": self.teacher, "calibration": self.calibration}

    @classmethod
    def from_entry(cls, meta: Any, side: Path, path: str | Path) -> CheckpointMeta:
        """Check a sidecar's ``vicokd`` entry and type it; one line naming `side` and the field otherwise."""
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            raise VicokdError(f"{path}: not a vicokd checkpoint of format {FORMAT_VERSION}")
        for name, kind in _META_FIELDS.items():
            if not isinstance(meta.get(name), kind):
                raise VicokdError(f"{side}: damaged checkpoint sidecar: vicokd.{name} should be a "
                                  f"{getattr(kind, '__name__', 'value')}, found {type(meta.get(name)).__name__}")
        if not all(isinstance(name, str) for name in meta["classes"]):
            raise VicokdError(f"{side}: damaged checkpoint sidecar: vicokd.classes should be a list of names")
        for section, fields in RECORDED_CONFIG.items():  # what the model was trained on: never a default
            recorded = meta["config"].get(section)
            missing = [f for f in fields if not isinstance(recorded, dict) or f not in recorded]
            if missing:
                raise VicokdError(f"{side}: damaged checkpoint sidecar: vicokd.config.{section}.{missing[0]} is "
                                  "missing (the model was trained with a value this file no longer records)")
        check_calibration(meta.get("calibration"), meta["classes"], side)
        return cls(role=meta["role"], method=meta["method"],
                   config=config_from_dict(meta["config"], f"{path} (sidecar config)"),
                   classes=tuple(meta["classes"]), model_hash=meta["model_hash"], epoch=meta["epoch"],
                   metrics=dict(meta["metrics"]), step=meta.get("step"), views=meta.get("views"),
                   pretrained=meta.get("pretrained") or {}, teacher=meta.get("teacher"),
                   calibration=meta.get("calibration"), source=str(path))


def read_meta(path: str | Path) -> CheckpointMeta:
    """The checked, typed ``vicokd`` entry of a checkpoint's sidecar (:class:`CheckpointMeta`)."""
    path = Path(path)
    side = sidecar_path(path)
    if not side.is_file():
        raise VicokdError(f"{path}: checkpoint not found (no sidecar {side.name})")
    try:
        sidecar = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VicokdError(f"{side}: unreadable checkpoint sidecar ({exc})") from None
    return CheckpointMeta.from_entry(sidecar.get("vicokd") if isinstance(sidecar, dict) else None, side, path)


# The config fields that decide what a model sees and outputs: a sidecar must record them
RECORDED_CONFIG = {"data": ("num_frames", "image_size", "fps"), "model": ("mode", "backbone", "dim")}


def check_calibration(calibration: Any, classes: Sequence[str], side: Path, field: str = "vicokd.calibration",
                      classes_field: str = "vicokd.classes", kind: str = "checkpoint sidecar") -> None:
    """A recorded calibration (None, or per-class ``scale``, ``bias`` and ``thresholds``) gives a number
    for every class of `classes`, and no other class; the error names the file `side` and the fields."""
    if calibration is None:
        return
    names = set(classes)
    for part in ("scale", "bias", "thresholds"):
        values = calibration.get(part) if isinstance(calibration, dict) else None
        if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
            raise VicokdError(f"{side}: damaged {kind}: {field}.{part} should map each class to a number")
        if set(values) != names:
            odd = sorted(set(values) - names) or sorted(names - set(values))
            what = f"names classes that {classes_field} does not" if set(values) - names else \
                f"lacks classes of {classes_field}"
            raise VicokdError(f"{side}: damaged {kind}: {field}.{part} {what} "
                              f"({', '.join(map(repr, odd[:3]))}): one of the two lists is damaged")


def update_meta(path: str | Path, **fields: Any) -> None:
    """Add or replace fields of a checkpoint's ``vicokd`` sidecar entry (atomically)."""
    side = sidecar_path(path)
    read_meta(path)  # a valid vicokd checkpoint
    sidecar = json.loads(side.read_text())
    sidecar["vicokd"].update(fields)
    write_text(side, json.dumps(sidecar))


_META_FIELDS: dict[str, type] = {"role": str, "method": str, "config": dict, "model_hash": str, "classes": list,
                                 "epoch": int, "metrics": dict}


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file; a damaged or truncated file is a one-line error."""
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise VicokdError(_unreadable(path, exc)) from None


def _unreadable(path: str | Path, exc: Exception) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{path}: unreadable safetensors file ({reason}); it may be truncated or damaged"


def load_state_dict(path: str | Path, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """Model weights of a checkpoint with `prefix` stripped (only the tensors, never a pickle)."""
    path = Path(path)
    if not path.is_file():
        raise VicokdError(f"{path}: checkpoint not found")
    head = f"/state_dict/{prefix}"
    try:
        with safe_open(str(path), framework="pt") as handle:  # read the weights only, not optimizer states
            return {name[len(head):]: handle.get_tensor(name) for name in handle.keys()  # noqa: SIM118
                    if name.startswith(head)}
    except (OSError, SafetensorError) as exc:
        raise VicokdError(_unreadable(path, exc)) from None


def model_from_checkpoint(path: str | Path, mode: str | None = None, meta: CheckpointMeta | None = None
                          ) -> tuple[MultiViewActionModel, CheckpointMeta]:
    """Rebuild the model a checkpoint was trained with and load its weights (no unpickling).

    `mode` ("teacher" / "student") overrides the recorded role's architecture; `meta` is the
    checkpoint's :func:`read_meta`, when the caller has read it already (the sidecar is read once).
    Returns the model (train mode, as built) and the meta.
    """
    meta = read_meta(path) if meta is None else meta
    config = meta.config
    if mode is not None:
        config = replace(config, model=replace(config.model, mode=mode))
    return model_from_weights(config, len(meta.classes), load_state_dict(path), f"{path}"), meta


def model_from_weights(config: Config, num_classes: int, state: dict[str, torch.Tensor], where: str
                       ) -> MultiViewActionModel:
    """Build ``config.model`` and load `state` strictly (a checkpoint's or an export's weights).

    Weights saved before the model normalised its own video have no ``pixel_mean`` /
    ``pixel_std``: they are taken from the config's ``model.visual.mean`` / ``.std`` (its ``data.mean``
    / ``data.std`` then, moved by :func:`vicokd.config.upgrade_config_values`).
    """
    model = MultiViewActionModel(config.model, num_classes)
    for name, values in (("pixel_mean", config.model.visual.mean), ("pixel_std", config.model.visual.std)):
        state.setdefault(name, torch.tensor(values, dtype=torch.float32).view(3, 1, 1))
    own = model.state_dict()
    mismatched = [(key, tuple(state[key].shape), tuple(value.shape)) for key, value in own.items()
                  if key in state and tuple(state[key].shape) != tuple(value.shape)]
    for key, theirs, ours in mismatched:  # a class list that is not the one the weights were trained for
        differ = [(t, o) for t, o in zip(theirs, ours) if t != o]
        if len(theirs) == len(ours) and len(differ) == 1 and differ[0][1] == num_classes:
            raise VicokdError(f"{where}: the weights output {differ[0][0]} classes, its class list names "
                              f"{num_classes} ({key}); the class list must be the one the model was trained with")
    if mismatched:
        key, theirs, ours = mismatched[0]
        raise VicokdError(f"{where}: weights do not match the architecture in its config ({key}: {list(theirs)} in "
                          f"the weights, {list(ours)} built from the config)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise VicokdError(f"{where}: weights do not match the architecture in its config ({first})") from None
    return model
