"""From-features runs against their own compute (FLOPs / matmul rate).

Demo preset through the real engine: a synthetic home of 300 clips x 5 views (the demo's) is made, prepared,
scored and given its frozen-encoder features in a temporary folder; then, in one process as the
demo runs them, a teacher and a ViCoKD student per seed (2 seeds), each a complete run. The table
gives each run's wall time, its FLOPs and its floor (FLOPs / fp32 matmul rate).
Target (issue 21): a run within 3x of its floor.
Prints a table and writes results/runs.json (runs-small.json for --size small).

example:
  .venv/bin/python benchmarks/runs.py           # full size (about 6 minutes on 2 cores)
  .venv/bin/python benchmarks/runs.py --size small
"""

import sys
from pathlib import Path

from vicokd.bench import script_main

if __name__ == "__main__":
    sys.exit(script_main("runs", __doc__, Path(__file__).parent / "results"))
