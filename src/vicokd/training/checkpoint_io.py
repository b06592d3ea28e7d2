"""Lightning's checkpoint I/O on vicokd's pickle-free format (:mod:`vicokd.models.checkpoint`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

from vicokd.models.checkpoint import load_tree, save_tree, sidecar_path


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning checkpoint I/O to safetensors + JSON (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        save_tree(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        return load_tree(path, map_location or "cpu")

    def remove_checkpoint(self, path: Any) -> None:
        for file in (Path(path), sidecar_path(path)):
            file.unlink(missing_ok=True)
