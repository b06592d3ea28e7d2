"""Pretrained weights from local disk only: a file, a directory, or a Hugging Face cache folder
``models--org--name`` (:func:`resolve_pretrained`), read without unpickling code
(:func:`load_weights`). Nothing here downloads (the ``vicokd`` command also switches the hub
libraries to offline mode); a configured path that does not exist is an error naming it, never a
random init."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from vicokd.errors import VicokdError

__all__ = ["WEIGHT_FILES", "WEIGHT_SUFFIXES", "first_error_line", "load_weights", "resolve_pretrained"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def resolve_pretrained(path: str, where: str) -> Path:
    """The weights file behind a configured local path.

    Accepts a weights file (.safetensors, .bin, .pth, .pt), a directory holding
    ``model.safetensors`` or ``pytorch_model.bin``, or a Hugging Face cache folder
    (``models--org--name`` with ``refs/main`` and ``snapshots/``). `where` names the config
    field in errors.
    """
    location = Path(path).expanduser()
    if not location.exists():
        raise VicokdError(f"{where}: {location}: not found (weights are read from local disk only; "
                          f"copy them there, or set {where}: null to train from scratch)")
    if location.is_file():
        if location.suffix not in WEIGHT_SUFFIXES:
            raise VicokdError(f"{where}: {location}: not a weights file ({', '.join(WEIGHT_SUFFIXES)})")
        return location
    snapshots = location / "snapshots"
    if snapshots.is_dir():
        ref = location / "refs" / "main"
        candidates = [snapshots / ref.read_text().strip()] if ref.is_file() else sorted(snapshots.iterdir())
        if len(candidates) != 1:
            raise VicokdError(f"{where}: {location}: cannot tell which snapshot to use (no refs/main)")
        location = candidates[0]
    for name in WEIGHT_FILES:
        if (location / name).is_file():
            return location / name
    raise VicokdError(f"{where}: {location}: no {' or '.join(WEIGHT_FILES)} in this directory")


def load_weights(file: Path, where: str) -> dict[str, Tensor]:
    """A state dict from a .safetensors file, or a .bin/.pth pickle with ``weights_only=True``.

    A checkpoint that nests its weights under ``state_dict`` or ``model`` is unwrapped.
    """
    try:
        if file.suffix == ".safetensors":
            return load_file(str(file))
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VicokdError(f"{where}: {file}: cannot read weights ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise VicokdError(f"{where}: {file}: expected a state dict, found {type(state).__name__}")
    return state


def first_error_line(exc: Exception) -> str:
    """The first line of a load error, short enough for a one-line message."""
    return str(exc).strip().splitlines()[0][:300]
