"""Option sweep on a prepared environment: teacher per seed, then students per (variant, method, supervision, seed).

Every run's validation and test mAP and gradient shares go to OUT/results.jsonl (one line per
run, finished runs reused), and OUT/table.md summarises mean ± std over seeds, validation first
(choose on validation; test is reported, never used to choose).

    python experiments/sweep.py --data D --cache C --out OUT --seeds 0,1,2 --methods student,cokd,vicokd \\
        --variant base= --variant pooled=model.sequence_head=frame_pool,distill.vc_tau=0.25 \\
        --set data.features=F
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from vicokd.config import load_config
from vicokd.training.run import fit

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "demo"


def _variant(text: str) -> tuple[str, list[str]]:
    name, _, rest = text.partition("=")
    return name, [item for item in rest.split(",") if item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default="student,cokd,vicokd")
    parser.add_argument("--sups", default="frame,sequence")
    parser.add_argument("--variant", action="append", default=[], help="NAME=k=v,k=v (student overrides)")
    parser.add_argument("--set", dest="common", action="append", default=[], help="overrides of every run")
    parser.add_argument("--teacher-set", action="append", default=[], help="overrides of the teachers only")
    args = parser.parse_args()
    variants = dict(_variant(v) for v in args.variant) or {"base": []}
    seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    done = {r["name"] for r in map(json.loads, results.read_text().splitlines())} if results.is_file() else set()
    common = [f"data.root={args.data}", f"data.cache={args.cache}", f"train.out_dir={args.out / 'runs'}",
              *args.common]

    def run(name: str, config_file: str, overrides: list[str], teacher: Path | None, record: dict) -> Path:
        summary_path = args.out / "runs" / name / "summary.json"
        if name not in done:
            summary = fit(load_config(CONFIGS / config_file, [*common, f"train.name={name}", *overrides]),
                          teacher_checkpoint=teacher, progress=False)
            entry = {**record, "name": name, "val": summary["val"], "test": {k: summary["test"][k] for k in
                                                                              ("seq_map", "frame_map")},
                     "best_epoch": summary["best_epoch"], "grad_share": summary["grad_share"],
                     "seconds": summary["seconds"], "init": summary.get("init"),
                     "agreement": (summary.get("transfer") or {}).get("frame_decision_agreement")}
            with results.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")
            print(name, "val", {k: round(v, 2) for k, v in summary["val"].items()}, "test",
                  round(summary["test"]["seq_map"], 2), round(summary["test"]["frame_map"], 2),
                  f"{summary['seconds']:.0f}s", flush=True)
        return Path(json.loads(summary_path.read_text())["best_checkpoint"])

    for seed in seeds:
        teacher = run(f"teacher-s{seed}", "teacher.yaml", [f"train.seed={seed}", *args.teacher_set], None,
                      {"variant": "-", "method": "teacher", "supervision": "frame", "seed": seed})
        for variant, overrides in variants.items():
            for method in args.methods.split(","):
                for sup in args.sups.split(","):
                    needs_teacher = method not in ("student",)
                    run(f"{variant}-{method}-{sup}-s{seed}", "student.yaml",
                        [f"train.seed={seed}", f"distill.method={method}", f"distill.supervision={sup}", *overrides],
                        teacher if needs_teacher else None,
                        {"variant": variant, "method": method, "supervision": sup, "seed": seed})
    write_table(results, args.out / "table.md")


def _stat(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def write_table(results: Path, out: Path) -> None:
    records = [json.loads(line) for line in results.read_text().splitlines()]
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["variant"], r["method"], r["supervision"]), []).append(r)
    lines = ["| variant | method | sup | n | val seq mAP | val frame mAP | test seq mAP | test frame mAP | "
             "test seq mAP at step 0 | VC share % | LD share % |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (variant, method, sup), rows in groups.items():
        shares = [r["grad_share"]["share"] for r in rows]
        vc = [100 * s["vc"] for s in shares if "vc" in s]
        ld = [100 * s["ld"] for s in shares if "ld" in s]
        lines.append(f"| {variant} | {method} | {'V_F' if sup == 'frame' else 'V_S'} | {len(rows)} | "
                     f"{_stat([r['val']['seq_map'] for r in rows])} | {_stat([r['val']['frame_map'] for r in rows])} | "
                     f"{_stat([r['test']['seq_map'] for r in rows])} | "
                     f"{_stat([r['test']['frame_map'] for r in rows])} | "
                     f"{_stat([r['init']['seq_map'] for r in rows if r.get('init')])} | {_stat(vc)} | {_stat(ld)} |")
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
