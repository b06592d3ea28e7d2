"""The baseline rows of a `vicokd demo --only baselines` folder, compact, for the calibration log.

Prints per home and backbone the test sequence mAP (mean ± std over seeds) of the teacher, the teacher
under audio-missing, the plain student V_F and V_S, then the regime block's counts and misses
(:mod:`vicokd.report.regime`). Reads the runs' files only.

    python experiments/world_table.py /work/cal/w1 --data-seed 7
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vicokd.pipeline.demo_options import DemoOptions
from vicokd.pipeline.demo_report import teacher_audio
from vicokd.pipeline.grid import collect_results, plan_regime
from vicokd.report.regime import regime_counts
from vicokd.report.tables import CellKey, Stat, backbone_label, markdown_table, stat_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data-seed", type=int, default=7)
    args = parser.parse_args()
    plan = DemoOptions(out=args.out, data_seed=args.data_seed, only=("baselines",)).plan()
    results = collect_results(plan)
    audio = teacher_audio(plan)

    def text(stat: Stat | None) -> str:
        return "—" if stat is None else f"{stat.mean:.1f} ± {stat.std or 0.0:.1f}"

    rows = []
    for env in plan.envs:
        for backbone in plan.backbones:
            cells = [stat_of(results, CellKey(env.name, backbone, sup, method), "seq_map")[0]
                     for method, sup in (("teacher", "frame"), ("student", "frame"), ("student", "sequence"))]
            missing = audio[(env.name, backbone)][1]
            rows.append([env.name, backbone_label(backbone), text(cells[0]),
                         text(Stat(tuple(missing.values())) if missing else None), text(cells[1]), text(cells[2])])
    print(markdown_table(["home", "backbone", "teacher", "teacher audio-missing", "student V_F", "student V_S"], rows))
    regime = plan_regime(plan, results, audio)
    print(regime_counts(regime) + "; missed:")
    for row in regime:
        if row.state == "missed" and row.ours is not None:
            where = f"{row.env} {backbone_label(row.backbone) if row.backbone else 'all'}"
            print(f"- {row.statistic}, {where}: {row.ours.mean:+.2f} (target {row.target})")


if __name__ == "__main__":
    main()
