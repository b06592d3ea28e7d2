"""Peak memory of `vicokd prepare` at a long vs a short clip (issue 15, item 10).

Writes a one-clip dataset per duration (5 views, H.264 + AAC) in a temporary folder and prepares
each in a process of its own (workers=1); the peak is that process's VmHWM. Target: the peak at
1,200 s within +200 MB of the peak at 75 s. Prints a table and writes
results/prepare_memory.json and .md (prepare_memory-small.* for --size small).

example:
  nice -n 10 .venv/bin/python benchmarks/prepare_memory.py                # 75, 300, 1200 s (~5 min)
  .venv/bin/python benchmarks/prepare_memory.py --size small
"""

import sys
from pathlib import Path

from vicokd.bench import script_main

if __name__ == "__main__":
    sys.exit(script_main("prepare_memory", __doc__, Path(__file__).parent / "results"))
