"""Training step of the paper architecture on the CPU: time per sample vs the FLOP floor, peak memory.

ViT-S/32 at 224, D=384, V=5, T=70, MultiTSF; the AV teacher (AST 768x12 on 48 fbank rows), a
student without KD, and ViCoKD distillation (student + frozen teacher), random init, batch 1,
each in a fresh process. FLOPs of the step are counted and the fp32 matmul rate is measured in
the same process. Target: time per sample <= 2x FLOPs / matmul rate. Peak memory at batch 12
with chunked encoders and activation checkpointing (extrapolated from batch-1 runs): target
<= 16 GiB, and the ratio to the memory without them.
Prints a table and writes results/train_step.json (train_step-small.json for --size small).

example:
  .venv/bin/python benchmarks/train_step.py           # full size (about an hour on 2 cores)
  .venv/bin/python benchmarks/train_step.py --frames 14
"""

import sys
from pathlib import Path

from vicokd.bench import script_main

if __name__ == "__main__":
    sys.exit(script_main("train", __doc__, Path(__file__).parent / "results"))
