"""FLOPs of one demo clip when the top ViT block trains (K = 1), with the class-token block and with the whole block.

Counts, on the meta device, the FLOPs of one clip's training step, its forward pass and a teacher's
forward (as `vicokd benchmark --only runs` does) for the demo preset's teacher and ViCoKD student:
at K = 0 (frozen features), at K = 1 with the last block computed for the class token only
(:mod:`vicokd.models.class_token_block`, what runs use), and at K = 1 with the whole last block
(the folding switched off here, as the code before issue 31 ran it). One JSON line, MFLOP.

    python experiments/top_block_flops.py
"""

from __future__ import annotations

import json

import vicokd.models.vit as vit
from vicokd.bench.runs import clip_flops
from vicokd.config import load_config
from vicokd.pipeline.grid import preset_dir

VIEWS = 5


def main() -> None:
    rows = {}
    for method in ("teacher", "vicokd"):
        preset = preset_dir("demo") / ("teacher.yaml" if method == "teacher" else "student.yaml")
        frozen = load_config(preset, [f"distill.method={method}"])
        top = load_config(preset, [f"distill.method={method}", "model.visual.trainable_blocks=1"])
        rows[f"{method} K=0"] = clip_flops(frozen, VIEWS)
        rows[f"{method} K=1 class-token block"] = clip_flops(top, VIEWS)
        folds = vit.folds
        vit.folds = lambda block: False  # the whole last block, every token
        try:
            rows[f"{method} K=1 whole block"] = clip_flops(top, VIEWS)
        finally:
            vit.folds = folds
    print(json.dumps({name: {"step": round(step / 1e6, 1), "forward": round(forward / 1e6, 1),
                             "teacher_forward": round(teacher / 1e6, 1)}
                      for name, (step, forward, teacher) in rows.items()}))


if __name__ == "__main__":
    main()
