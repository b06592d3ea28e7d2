"""Inference: student latency per 5-view clip of 70 frames and clips/s at batch 8, vs the teacher.

ViT-S/32 at 224 + MultiTSF, random init, eval mode; the student runs no audio encoder. Reports
how much cheaper the student is than the teacher in time and FLOPs (and what an AST on the old
1024-row audio padding would cost). Prints a table and writes results/predict.json
(predict-small.json for --size small).

example:
  .venv/bin/python benchmarks/predict.py              # full size (about 10 minutes on 2 cores)
  .venv/bin/python benchmarks/predict.py --size small
"""

import sys
from pathlib import Path

from vicokd.bench import script_main

if __name__ == "__main__":
    sys.exit(script_main("predict", __doc__, Path(__file__).parent / "results"))
