"""Gradient share of each loss term under each open reading of the paper (issue: distillation that acts).

Runs ViCoKD on a finished demo (its data, cache, person scores and teacher) for a few epochs per
option and supervision, measuring gradient shares every `--every` steps, and writes one JSON line
per run to OUT/results.jsonl and the table to OUT/table.md. Finished runs are reused.

    python experiments/grad_shares.py --demo demo --out experiments/out/grad-shares --epochs 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vicokd.config import load_config
from vicokd.training.run import fit

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "demo"
OPTIONS: dict[str, list[str]] = {
    "defaults (today)": [],
    "sequence_head=frame_pool": ["model.sequence_head=frame_pool"],
    "ld_logits=fused": ["distill.ld_logits=fused"],
    "distribution=sigmoid": ["distill.distribution=sigmoid"],
    "vc_tau=0.25": ["distill.vc_tau=0.25"],
    "fd_reduction=mean": ["distill.fd_reduction=mean"],
    "student_init=teacher": ["distill.student_init=teacher"],
    "all of the above": ["model.sequence_head=frame_pool", "distill.ld_logits=fused", "distill.distribution=sigmoid",
                         "distill.vc_tau=0.25", "distill.fd_reduction=mean", "distill.student_init=teacher"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=Path("demo"), help="a finished `vicokd demo --out` folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--method", default="vicokd")
    args = parser.parse_args()
    teacher = next((args.demo / "runs").glob("*teacher*/checkpoints/best.safetensors"))
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    done = {(r["option"], r["supervision"]) for r in map(json.loads, results.read_text().splitlines())} \
        if results.is_file() else set()
    for supervision in ("frame", "sequence"):
        for k, (option, overrides) in enumerate(OPTIONS.items()):
            if (option, supervision) in done:
                continue
            name = f"{args.method}-{supervision}-opt{k}"
            config = load_config(CONFIGS / "student.yaml", [
                f"data.root={args.demo / 'data'}", f"data.cache={args.demo / 'cache'}",
                f"train.out_dir={args.out / 'runs'}", f"train.name={name}", f"optim.epochs={args.epochs}",
                f"train.grad_share_every={args.every}", f"distill.method={args.method}",
                f"distill.supervision={supervision}", *overrides])
            summary = fit(config, teacher_checkpoint=teacher, progress=False)
            record = {"option": option, "supervision": supervision, "overrides": overrides, "name": name,
                      "grad_share": summary["grad_share"], "val": summary["val"], "seconds": summary["seconds"]}
            with results.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(option, supervision, {t: round(100 * s, 2) for t, s in summary["grad_share"]["share"].items()},
                  flush=True)
    write_table(results, args.out / "table.md")


def write_table(results: Path, out: Path) -> None:
    """Shares in percent: of all trainable parameters, and of the heads and backbone groups."""
    records = [json.loads(line) for line in results.read_text().splitlines()]
    header = ["option", "sup", "LD", "VC", "LD on heads", "VC on heads", "LD on backbone", "VC on backbone", "FD",
              "L_S", "L_F"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.2f}"

    for r in records:
        share, by_group = r["grad_share"]["share"], r["grad_share"]["share_by_group"]
        heads, backbone = by_group.get("heads", {}), by_group.get("backbone", {})
        lines.append(f"| {r['option']} | {'V_F' if r['supervision'] == 'frame' else 'V_S'} | {pct(share.get('ld'))} | "
                     f"{pct(share.get('vc'))} | {pct(heads.get('ld'))} | {pct(heads.get('vc'))} | "
                     f"{pct(backbone.get('ld'))} | {pct(backbone.get('vc'))} | {pct(share.get('fd'))} | "
                     f"{pct(share.get('seq'))} | {pct(share.get('frame'))} |")
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
