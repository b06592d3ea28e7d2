"""Frozen-encoder mode: training epochs from cached encoder features vs end to end from pixels.

Demo preset through the real engine (`vicokd train` / `distill` code): a synthetic home of 100
clips x 5 views is made, prepared and scored in a temporary folder; the teacher and the ViCoKD
student are trained end to end and from cached features (`vicokd prepare --features`) for the
preset's 15 epochs each; the table gives the median training time per epoch, the speedup of the
same method, and the test mAP next to it. Then one training step of the paper architecture
(ViT-S/32 at 224, AST) from pixels vs from features, batch 1, T=16.
Target: an epoch from features >= 20x faster than end to end (same method).
Prints a table and writes results/features.json (features-small.json for --size small).

example:
  .venv/bin/python benchmarks/features.py           # full size (about 15 minutes on 2 cores)
  .venv/bin/python benchmarks/features.py --size small
"""

import sys
from pathlib import Path

from vicokd.bench import script_main

if __name__ == "__main__":
    sys.exit(script_main("features", __doc__, Path(__file__).parent / "results"))
