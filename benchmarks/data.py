"""Clips per second delivered to the model: the old decode-every-access path vs the prepared cache.

Makes a synthetic dataset (5-view mp4 clips with audio) in a temporary folder, prepares its
cache, and serves the same clips (same T, V, image size) through the same DataLoader with
spawned workers: (a) decoding every view's video and audio on every access, with the old
code's 1024-row fbank padding; (b) MultiViewClips over the cache. Target: (b) >= 20x (a).
Prints a table and writes results/data.json (data-small.json for --size small).

example:
  .venv/bin/python benchmarks/data.py                 # full size (about 10 minutes on 2 cores)
  .venv/bin/python benchmarks/data.py --size small
"""

import sys
from pathlib import Path

from vicokd.bench import script_main

if __name__ == "__main__":
    sys.exit(script_main("data", __doc__, Path(__file__).parent / "results"))
