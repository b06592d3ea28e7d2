"""Two demo folders side by side: test sequence mAP of the same cells, mean over their seeds.

Reads every ``runs/<home>-<backbone>-<method>[-<supervision>]-s<seed>/summary.json`` of both
folders (e.g. the frozen default against ``--finetune``) and prints one Markdown row per home and
backbone, ``A → B`` for the teacher, the student (V_F, V_S), CoKD V_F and ViCoKD (V_F, V_S).
A reading of finished runs: nothing is trained.

    python experiments/compare_demos.py docs/demo docs/demo-finetune
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROWS = ("teacher", "student-frame", "student-sequence", "cokd-frame", "vicokd-frame", "vicokd-sequence")


def read_means(folder: Path) -> dict[tuple[str, str, str], float]:
    """(home, backbone, method[-supervision]) → mean test sequence mAP over the seeds that ran."""
    by_cell: dict[tuple[str, str, str], list[float]] = {}
    for summary in folder.glob("runs/*/summary.json"):
        home, backbone, rest = summary.parent.name.split("-", 2)
        cell = rest.rsplit("-s", 1)[0]
        by_cell.setdefault((home, backbone, cell), []).append(json.loads(summary.read_text())["test"]["seq_map"])
    return {cell: statistics.mean(values) for cell, values in by_cell.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = read_means(args.before), read_means(args.after)
    print("| | " + " | ".join(ROWS) + " |\n|---|" + "---|" * len(ROWS))
    for home, backbone in sorted({(h, b) for h, b, _ in before} & {(h, b) for h, b, _ in after}):
        cells = [f"{before[key]:.1f} → {after[key]:.1f}" if key in before and key in after else ""
                 for key in ((home, backbone, row) for row in ROWS)]
        print(f"| {home} {backbone} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
