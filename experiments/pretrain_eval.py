"""Encoder comparison on a demo-like home: a plain `student` per seed, from frozen features or end to end.

For one encoder (a `vicokd pretrain` checkpoint, or `none` for the random initialisation) and each
seed, runs the CLI exactly as a user would:

    vicokd prepare DATA --out CACHE --config configs/demo/student.yaml --features FDIR --no-audio \\
        --set model.visual.pretrained=CKPT --set model.visual.freeze=true --set train.seed=S ...
    vicokd train --config configs/demo/student.yaml --set distill.method=student --set data.features=FDIR \\
        --set model.visual.pretrained=CKPT --set model.visual.freeze=true --set train.seed=S ...

(`--e2e`: no feature cache and no freezing, the encoder is fine-tuned from CKPT / trained from scratch).
A random encoder's features depend on the seed (`compute_features` seeds it with train.seed), so
`none` gets one feature directory per seed. Rows go to OUT/NAME.json: the validation sequence mAP
of the chosen epoch (`val_seq_best`, biased upward by the choice) and of the last epoch, the last
epoch's validation frame mAP, and the test mAP of the chosen epoch (reported, never used to choose).

    python experiments/pretrain_eval.py --name frozen-pt --ckpt pretrain/encoder.safetensors \\
        --data demo/data --cache demo/cache --out experiments/out/pretrain --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "demo" / "student.yaml"


def _run(args: list[str]) -> None:
    print("+ vicokd " + " ".join(args), flush=True)
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    subprocess.run(["nice", "-n", "10", sys.executable, "-m", "vicokd", *args], check=True, env=env)


def _last_val(metrics: Path) -> tuple[float, float]:
    rows = [r for r in csv.DictReader(metrics.open()) if r.get("val/seq_map")]
    return float(rows[-1]["val/seq_map"]), float(rows[-1]["val/frame_map"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--ckpt", required=True, help="encoder .safetensors, or none (random initialisation)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="prepared cache of DATA (with person scores)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--e2e", action="store_true", help="train the encoder end to end (no feature cache)")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="more overrides of every run")
    args = parser.parse_args()
    results = args.out / f"{args.name}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    rows = json.loads(results.read_text()) if results.is_file() else []
    for seed in (int(s) for s in args.seeds.split(",")):
        if any(r["seed"] == seed for r in rows):
            continue
        sets = [f"data.root={args.data}", f"data.cache={args.cache}", f"train.seed={seed}",
                "distill.method=student", f"train.out_dir={args.out / 'runs'}", *args.extra]
        if args.ckpt != "none":
            sets.append(f"model.visual.pretrained={args.ckpt}")
        started = time.perf_counter()
        if not args.e2e:
            sets.append("model.visual.freeze=true")
            features = args.out / "features" / (args.name if args.ckpt != "none" else f"{args.name}-s{seed}")
            _run(["prepare", str(args.data), "--out", str(args.cache), "--config", str(CONFIG), "--features",
                  str(features), "--no-audio", "--workers", "1", *(x for s in sets for x in ("--set", s))])
            sets.append(f"data.features={features}")
        run = f"{args.name}-s{seed}"
        _run(["train", "--config", str(CONFIG), *(x for s in [*sets, f"train.name={run}"] for x in ("--set", s))])
        summary = json.loads((args.out / "runs" / run / "summary.json").read_text())
        seq_last, frame_last = _last_val(args.out / "runs" / run / "metrics.csv")
        rows.append({"seed": seed, "best_epoch": summary["best_epoch"],
                     "val_seq_best": summary["val"]["seq_map"], "val_frame_best": summary["val"]["frame_map"],
                     "val_seq_last": seq_last, "val_frame_last": frame_last,
                     "test_seq": summary["test"]["seq_map"], "test_frame": summary["test"]["frame_map"],
                     "seconds": round(time.perf_counter() - started, 1)})
        results.write_text(json.dumps(rows, indent=1))
        print(args.name, rows[-1], flush=True)


if __name__ == "__main__":
    main()
