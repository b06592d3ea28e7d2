"""Tiny runs for the training, feature, reproduce, predict and export tests (seconds on 2 CPU cores).

The media_helpers dataset (three clips of 10 grid frames, 3 views) prepared for the demo preset
at 48×64 and T = 6, with the overrides every such test shares.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vicokd.config import load_config
from vicokd.data.prepare import prepare
from vicokd.models.checkpoint import sidecar_path
from vicokd.training.run import fit

from media_helpers import make_dataset

CONFIGS = Path(__file__).parent.parent / "configs" / "demo"
NUM_FRAMES = 6  # T of the tiny runs; the test clips have 10 grid frames
IMAGE_SIZE = (48, 64)
TINY_RUN = [f"data.image_size=[{IMAGE_SIZE[0]},{IMAGE_SIZE[1]}]", f"data.num_frames={NUM_FRAMES}",
            "data.val_fraction=0.5", "optim.batch_size=2"]


def set_args(overrides: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` → ``["--set", "a=1", "--set", "b=2"]``."""
    return [arg for item in overrides for arg in ("--set", item)]


def prepared_workspace(base: Path) -> list[str]:
    """Make the dataset under `base`, prepare its cache; the overrides that point a run at them."""
    make_dataset(base / "data")
    overrides = [f"data.root={base / 'data'}", f"data.cache={base / 'cache'}", *TINY_RUN,
                 f"train.out_dir={base / 'runs'}"]
    config = load_config(CONFIGS / "teacher.yaml", overrides)
    prepare(base / "data", config.data.cache, config.data, workers=1, progress=False)
    return overrides


def train_tiny_student(base: Path) -> Path:
    """A `student` trained 1 epoch on a prepared workspace under `base`; its best checkpoint."""
    overrides = [*prepared_workspace(base), "optim.epochs=1", "distill.method=student",
                 "model.multitsf.human_head=false", "train.name=student"]
    return Path(fit(load_config(CONFIGS / "student.yaml", overrides), progress=False)["best_checkpoint"])


def fake_teacher(student: Path, out: Path) -> Path:
    """A copy of `student` whose sidecar says teacher: enough for the role checks, which read only the sidecar."""
    shutil.copy(student, out)
    sidecar = json.loads(sidecar_path(student).read_text())
    sidecar["vicokd"]["role"] = "teacher"
    sidecar["vicokd"]["config"]["model"]["mode"] = "teacher"
    sidecar_path(out).write_text(json.dumps(sidecar))
    return out
