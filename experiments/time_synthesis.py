"""Seconds per clip of the demo home's synthesis, by phase, in one process.

Makes clips 1..N of the demo's home (80x60 at 2.5 fps, 20-40 s, 5 views; clip 0 first, untimed,
to build the renderers) into OUT and prints one JSON line: the mean seconds per clip of the audio
(`microphone_audio`), rendering (`render_view`), encoding (`write_mp4`) and view measures
(`clip_measures`), the steps of `make_clip`. Run it on the old and the new code in turn.

    python experiments/time_synthesis.py --out /tmp/synth-time --clips 12
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vicokd.data.video_io import write_mp4
from vicokd.pipeline.home import demo_synth_options
from vicokd.synthetic import generate
from vicokd.synthetic.audio import SAMPLE_RATE, microphone_audio
from vicokd.synthetic.render import render_view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the clips are written")
    parser.add_argument("--clips", type=int, default=12, help="clips timed (default 12)")
    parser.add_argument("--layout", default="home1", help="camera layout (home1 or home2)")
    args = parser.parse_args()
    options = demo_synth_options(clips=300, views=5, seed=0, layout=args.layout)
    home, jobs = generate.plan_dataset(options)
    generate.make_clip(home, options, jobs[0], args.out)
    seconds = dict.fromkeys(("audio", "render", "encode", "measures"), 0.0)
    begin = time.perf_counter()
    for job in jobs[1 : args.clips + 1]:
        tick = time.perf_counter()
        audio = microphone_audio(home, job.script, job.audio_seed, SAMPLE_RATE)
        seconds["audio"] += time.perf_counter() - tick
        for renderer, video, track in zip(generate._renderers(home, options.size, options.supersample),
                                          job.videos, audio):
            tick = time.perf_counter()
            frames = render_view(renderer, job.script, options.fps)
            seconds["render"] += time.perf_counter() - tick
            tick = time.perf_counter()
            write_mp4(args.out / video, frames, options.fps, track, SAMPLE_RATE, audio_codec=generate.AUDIO_CODEC)
            seconds["encode"] += time.perf_counter() - tick
        tick = time.perf_counter()
        generate.clip_measures(home, job.script, options)
        seconds["measures"] += time.perf_counter() - tick
    total = time.perf_counter() - begin
    print(json.dumps({"clips": args.clips, "per_clip_s": round(total / args.clips, 3),
                      **{k: round(v / args.clips, 3) for k, v in seconds.items()}}))


if __name__ == "__main__":
    main()
