"""Option sweep on a prepared environment: teacher per seed, then students per (variant, method, supervision, seed).

The runs are a :class:`vicokd.pipeline.grid.GridPlan` (one environment, the demo preset, the
variants as named student overrides): finished runs are reused, students start after their
teacher, ``--parallel-runs`` trains several at once. Every run's validation and test mAP and
gradient shares go to OUT/results.jsonl (one line per run), and OUT/table.md summarises mean ±
std over seeds, validation first (choose on validation; test is reported, never used to choose).

    python experiments/sweep.py --data D --cache C --out OUT --seeds 0,1,2 --methods student,cokd,vicokd \\
        --variant base= --variant pooled=model.sequence_head=frame_pool,distill.vc_tau=0.25 \\
        --set data.features=F
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from vicokd.pipeline.grid import EnvData, GridPlan, run_plans
from vicokd.pipeline.steps import StepLog


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
    parser.add_argument("--backbone", default="multitsf")
    parser.add_argument("--variant", action="append", default=[], help="NAME=k=v,k=v (student overrides)")
    parser.add_argument("--set", dest="common", action="append", default=[], help="overrides of every run")
    parser.add_argument("--teacher-set", action="append", default=[], help="overrides of the teachers only")
    parser.add_argument("--parallel-runs", type=int, default=1)
    args = parser.parse_args()
    # the runs are pipeline.grid's cells (reused when finished, students after their teachers)
    plan = GridPlan(grid="table1", envs=[EnvData("sweep", args.data, args.cache)], backbones=[args.backbone],
                    supervisions=args.sups.split(","), methods=["teacher", *args.methods.split(",")],
                    seeds=[int(s) for s in args.seeds.split(",")], preset="demo", out=args.out,
                    overrides=args.common, variants=dict(_variant(v) for v in args.variant) or {"base": []},
                    teacher_overrides=args.teacher_set, parallel_runs=args.parallel_runs)
    summaries = run_plans([plan], StepLog(args.out / "steps.json", len(plan.cells)), progress=False)
    results = args.out / "results.jsonl"
    with results.open("w") as handle:
        for cell, summary in summaries.items():
            entry = {"variant": cell.variant or "-", "method": cell.method, "supervision": cell.supervision,
                     "seed": cell.seed, "name": cell.name, "val": summary["val"],
                     "test": {k: summary["test"][k] for k in ("seq_map", "frame_map")},
                     "best_epoch": summary["best_epoch"], "grad_share": summary["grad_share"],
                     "seconds": summary["seconds"], "init": summary.get("init"),
                     "agreement": (summary.get("transfer") or {}).get("frame_decision_agreement")}
            handle.write(json.dumps(entry) + "\n")
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
