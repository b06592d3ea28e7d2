"""Stream benchmark: `vicokd stream` on the paper's student (5 views, T = 70, 224x224, random weights):
the rate at which it keeps up (target >= 3x real time), the delay of each frame's probabilities
(p95 beyond the stride <= 1 s), and predict on the same frames. Prints a table and writes
results/stream.json and .md (stream-small.* for --size small).

example:
  .venv/bin/python benchmarks/stream.py                # full size (a few minutes on 2 cores)
  .venv/bin/python benchmarks/stream.py --size small
"""

import sys
from pathlib import Path

from vicokd.bench import script_main

if __name__ == "__main__":
    sys.exit(script_main("stream", __doc__, Path(__file__).parent / "results"))
