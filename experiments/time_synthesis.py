"""Seconds per clip of the demo home's synthesis, by phase, in one process.

Makes clips 1..N of the demo's home (80x60 at 2.5 fps, 20-40 s, 5 views; clip 0 first, untimed,
to build the renderers) into OUT and prints one JSON line: the mean seconds per clip of the audio
(`microphone_audio`), rendering (`render_view`), encoding (`write_mp4`) and view measures
(`clip_measures`): `make_clip` itself, with a timer around each of the functions it calls.
Run it on the old and the new code in turn.

    python experiments/time_synthesis.py --out /tmp/synth-time --clips 12
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vicokd.pipeline.home import demo_synth_options
from vicokd.synthetic import generate

PHASES = {"audio": "microphone_audio", "render": "render_view", "encode": "write_mp4", "measures": "clip_measures"}


def _timed(function: Callable[..., Any], phase: str, seconds: dict[str, float]) -> Callable[..., Any]:
    """`function`, adding the seconds of each call to ``seconds[phase]``."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tick = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[phase] += time.perf_counter() - tick

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the clips are written")
    parser.add_argument("--clips", type=int, default=12, help="clips timed (default 12)")
    parser.add_argument("--layout", default="home1", help="camera layout (home1 or home2)")
    args = parser.parse_args()
    options = demo_synth_options(clips=300, views=5, seed=0, layout=args.layout)
    _, jobs = generate.plan_dataset(options)
    generate.make_clip(options, jobs[0], args.out)
    seconds = dict.fromkeys(PHASES, 0.0)
    for phase, name in PHASES.items():  # the names make_clip calls, each wrapped in a timer
        setattr(generate, name, _timed(getattr(generate, name), phase, seconds))
    begin = time.perf_counter()
    for job in jobs[1 : args.clips + 1]:
        generate.make_clip(options, job, args.out)
    total = time.perf_counter() - begin
    print(json.dumps({"clips": args.clips, "per_clip_s": round(total / args.clips, 3),
                      **{k: round(v / args.clips, 3) for k, v in seconds.items()}}))


if __name__ == "__main__":
    main()
