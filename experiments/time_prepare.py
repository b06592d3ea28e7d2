"""Seconds per clip of `prepare`'s decoding (frames and fbank of every view) on a synthetic home.

Decodes clips 1..N of the home's train split with :func:`vicokd.data.cache_writer.decode_clip` (clip 0
first, untimed) in one process at one thread, and in `--workers` processes as `prepare` runs it,
and prints one JSON line. Run it on the old and the new code in turn (``PYTHONPATH``).

    python experiments/time_prepare.py --data demo/home1/data --clips 20
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from vicokd.config import DataConfig, load_config
from vicokd.data.annotations import Clip, read_clips, split_file
from vicokd.data.cache_writer import decode_clip
from vicokd.data.workers import run_in_workers


def _decode(clip: Clip, config: DataConfig, out: Path) -> None:
    decode_clip(clip, config, Path(tempfile.mkdtemp(dir=out)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a synthetic home's data folder")
    parser.add_argument("--clips", type=int, default=20, help="clips timed (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="processes of the parallel pass (default 2)")
    parser.add_argument("--config", default="configs/demo/student.yaml", help="whose data settings (default demo)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config).data
    clips = read_clips(split_file(args.data, "train"), args.data)[: args.clips + 1]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        _decode(clips[0], config, out)
        begin = time.perf_counter()
        for clip in clips[1:]:
            _decode(clip, config, out)
        serial = (time.perf_counter() - begin) / args.clips
        begin = time.perf_counter()
        for _, future in run_in_workers(_decode, [(clip, config, out) for clip in clips[1:]], args.workers):
            future.result()
        parallel = (time.perf_counter() - begin) / args.clips
    print(json.dumps({"clips": args.clips, "s_per_clip_one_process": round(serial, 4),
                      f"s_per_clip_{args.workers}_workers": round(parallel, 4)}))


if __name__ == "__main__":
    main()
