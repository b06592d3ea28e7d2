"""A tiny trained student checkpoint for the predict / export tests (seconds on 2 CPU cores)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vicokd.config import load_config
from vicokd.data.cache import prepare
from vicokd.engine.checkpoint import sidecar_path
from vicokd.engine.run import fit

from media_helpers import make_dataset

CONFIGS = Path(__file__).parent.parent / "configs" / "demo"
NUM_FRAMES = 6  # T of the tiny student; the test clips have 10 grid frames
IMAGE_SIZE = (48, 64)


def train_tiny_student(base: Path) -> Path:
    """Make the media_helpers dataset under `base`, prepare it, train a `student` 1 epoch; its best checkpoint."""
    make_dataset(base / "data")
    overrides = [f"data.root={base / 'data'}", f"data.cache={base / 'cache'}",
                 f"data.image_size=[{IMAGE_SIZE[0]},{IMAGE_SIZE[1]}]", f"data.num_frames={NUM_FRAMES}",
                 "data.val_fraction=0.5", "optim.epochs=1", "optim.batch_size=2", "distill.method=student",
                 "model.multitsf.human_head=false", f"train.out_dir={base / 'runs'}", "train.name=student"]
    config = load_config(CONFIGS / "student.yaml", overrides)
    prepare(base / "data", config.data.cache, config.data, workers=1, progress=False)
    return Path(fit(config, progress=False)["best_checkpoint"])


def fake_teacher(student: Path, out: Path) -> Path:
    """A copy of `student` whose sidecar says teacher: enough for the role checks, which read only the sidecar."""
    shutil.copy(student, out)
    sidecar = json.loads(sidecar_path(student).read_text())
    sidecar["vicokd"]["role"] = "teacher"
    sidecar["vicokd"]["config"]["model"]["mode"] = "teacher"
    sidecar_path(out).write_text(json.dumps(sidecar))
    return out
