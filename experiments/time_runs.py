"""Wall time of whole runs on a finished demo folder: a teacher and a ViCoKD V_F student per seed, in one process.

Run from the folder that holds the demo output (its configs use paths relative to it); the runs
read DEMO/HOME (``--home``). Its feature cache is computed first when missing (timed): the frozen
features, or with ``--trainable-blocks K`` (K >= 1) the tokens of block L-K in
DEMO/HOME/features-topK, and the runs train the top K blocks. One JSON line: seconds and test
sequence mAP of every run (and of the cache).

    cd /tmp/clone && python experiments/time_runs.py --demo demo --out /tmp/time-runs
    cd /tmp/clone && python experiments/time_runs.py --demo demo --out /tmp/time-k1 --trainable-blocks 1 --seeds 0
    cd /tmp/clone && python experiments/time_runs.py --demo demo --out /tmp/time-k1w --trainable-blocks 1 --whole-block

``--whole-block`` runs the last ViT block for every token, as the code before issue 31 did (the
class-token block, :mod:`vicokd.models.class_token_block`, switched off).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vicokd.config import load_config
from vicokd.training.encoder_features import compute_features
from vicokd.training.run import fit

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "demo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, required=True, help="the demo output folder (relative, as it ran)")
    parser.add_argument("--out", type=Path, required=True, help="where the runs go (must not hold them yet)")
    parser.add_argument("--home", default="home1", help="the demo home whose runs are timed (default home1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--trainable-blocks", type=int, default=0)
    parser.add_argument("--whole-block", action="store_true", help="no class-token block: every token's last block")
    args = parser.parse_args()
    if args.whole_block:
        import vicokd.models.vit as vit

        vit.folds = lambda block: False
    if args.threads:
        torch.set_num_threads(args.threads)
    demo, blocks = args.demo, args.trainable_blocks
    home = demo / args.home
    features = home / ("features" if blocks == 0 else f"features-top{blocks}")
    common = [f"data.root={home / 'data'}", f"data.cache={home / 'cache'}",
              f"model.visual.pretrained={demo / 'pretrain' / 'encoder.safetensors'}",
              f"model.audio.pretrained={demo / 'pretrain-audio' / 'encoder.safetensors'}", f"train.out_dir={args.out}"]
    common += [f"model.visual.trainable_blocks={blocks}"] if blocks else []  # unset (frozen) as the demo runs it
    timings: dict[str, list[float]] = {}
    if not features.is_dir():  # the same with and without --whole-block
        started = time.perf_counter()
        compute_features(load_config(CONFIGS / "teacher.yaml", common), features, progress=False)
        timings["feature cache"] = [round(time.perf_counter() - started, 2)]
    common.append(f"data.features={features}")
    for seed in (int(s) for s in args.seeds.split(",")):
        started = time.perf_counter()
        teacher = fit(load_config(CONFIGS / "teacher.yaml", [*common, f"train.name=teacher-s{seed}",
                                                              f"train.seed={seed}"]), progress=False)
        timings[f"teacher-s{seed}"] = [round(time.perf_counter() - started, 2), round(teacher["test"]["seq_map"], 4)]
        started = time.perf_counter()
        student_config = load_config(CONFIGS / "student.yaml", [*common, f"train.name=vicokd-s{seed}",
                                                                 f"train.seed={seed}", "distill.method=vicokd"])
        student = fit(student_config, teacher_checkpoint=teacher["best_checkpoint"], progress=False)
        timings[f"vicokd-s{seed}"] = [round(time.perf_counter() - started, 2), round(student["test"]["seq_map"], 4)]
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
