"""Peak memory of `vicokd prepare` against the length of a clip (issue 15, item 10).

For each clip duration a dataset of one clip (V views, H.264 + AAC, MultiSensor-Home layout,
``train.json``) is written in a temporary folder, and ``prepare(..., workers=1)`` decodes it in
a process spawned for that duration alone (:func:`vicokd.bench.common.run_isolated`): the
peak is the kernel's high-water mark of resident memory (``VmHWM``) of that process, which is
the memory one worker of a ``--workers N`` run needs (each worker decodes one clip at a time).
The resident memory of the same process just before ``prepare`` (interpreter, torch, PyAV,
vicokd imported) is reported too, so "prepare" is what decoding the clip added.

Target: the peak at 1,200 s within +200 MB of the peak at 75 s. The views are one encoded video
copied V times (the content does not change the memory a decode needs; encoding 20 minutes once
is what takes time here); frames are 224x224 as the paper preset, from a small 10-FPS source.

example:
  .venv/bin/vicokd benchmark --size full --only prepare_memory   # full size (75, 300, 1200 s)
  .venv/bin/vicokd benchmark --only prepare_memory
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vicokd.bench.common import BenchResult, Target, current_rss, machine_info, resolve_size, run_isolated
from vicokd.config import DataConfig
from vicokd.data.video_io import write_mp4
from vicokd.errors import VicokdError

MB = 1e6
MIB = 2**20
TARGET_MB = 200.0  # issue 15: peak at the longest clip within +200 MB of the peak at the shortest


@dataclass(frozen=True)
class PrepareMemorySize:
    """Clip durations and the shape of their views."""

    seconds: tuple[float, ...]  # one clip per duration, each prepared in its own process
    views: int = 5
    source_fps: float = 10.0  # grid interval round(10 / 2.5) = 4
    source_size: tuple[int, int] = (48, 64)  # (H, W) of the mp4 files
    image_size: tuple[int, int] = (224, 224)  # (H, W) of the cached frames (the paper preset)
    sample_rate: int = 16000


PREPARE_MEMORY_SIZES = {
    "full": PrepareMemorySize(seconds=(75.0, 300.0, 1200.0)),
    "small": PrepareMemorySize(seconds=(15.0, 120.0), views=2),
}


def write_long_clip(root: str | Path, seconds: float, size: PrepareMemorySize, seed: int = 0) -> None:
    """One clip of `seconds` under `root`: view 1 encoded, views 2..V copies of it, ``train.json``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    count = round(seconds * size.source_fps)
    height, width = size.source_size
    ramp = (np.arange(width)[None, :] * 4 + np.arange(height)[:, None] * 2).astype(np.int64)
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for i in range(count):  # a gradient sliding sideways, so every frame differs
        frames[i] = ((ramp + 3 * i) % 256).astype(np.uint8)[..., None]
    samples = round(seconds * size.sample_rate)
    t = np.arange(samples, dtype=np.float64) / size.sample_rate
    wave = (0.05 * np.sin(2 * np.pi * 440.0 * t) + rng.normal(0.0, 0.01, samples)).astype(np.float32)
    first = root / "01" / "00-View1-Part1.mp4"
    write_mp4(first, frames, size.source_fps, wave, size.sample_rate)
    del frames, wave, t
    record: dict[str, Any] = {"video_url_1": "01/00-View1-Part1.mp4"}
    for view in range(2, size.views + 1):
        name = f"01/00-View{view}-Part1.mp4"
        shutil.copyfile(first, root / name)
        record[f"video_url_{view}"] = name
    record["tricks"] = [{"start": 1.0, "end": min(seconds, 5.0), "labels": ["Walk"]}]
    (root / "train.json").write_text(json.dumps([record]))


def measure_prepare(root: str, cache: str, config: DataConfig) -> dict[str, Any]:
    """Run in a fresh process: `prepare` of the one-clip dataset at `root` (workers=1, in this process)."""
    from vicokd.data.prepare import prepare

    before = current_rss()
    started = time.perf_counter()
    prepare(root, cache, config, workers=1, progress=False)
    return {"rss_before_bytes": before, "prepare_s": time.perf_counter() - started}


def run_prepare_memory_benchmark(size: str | PrepareMemorySize = "small", *, threads: int | None = None,
                                 frames: int | None = None, work_dir: str | Path | None = None) -> BenchResult:
    """Peak memory of prepare per clip duration (module docstring); `frames` is unused (no T here)."""
    del frames
    bench = resolve_size(size, PREPARE_MEMORY_SIZES)
    if len(bench.seconds) < 2:
        raise VicokdError("prepare-memory benchmark: give at least two clip durations")
    threads = threads or torch.get_num_threads()
    machine = machine_info()
    rows = []
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="vicokd-bench-prepare-") as tmp:
        for seconds in bench.seconds:
            root, cache = Path(tmp) / f"data-{seconds:g}", Path(tmp) / f"cache-{seconds:g}"
            made = time.perf_counter()
            write_long_clip(root, seconds, bench)
            made = time.perf_counter() - made
            config = DataConfig(root=str(root), cache=str(cache), image_size=bench.image_size,
                                sample_rate=bench.sample_rate)
            measured = run_isolated(measure_prepare, str(root), str(cache), config, threads=threads)
            cache_bytes = sum(f.stat().st_size for f in cache.rglob("*.npy"))
            rows.append({"run": f"{seconds:g} s", "seconds": seconds,
                         "grid_frames": int(np.ceil(round(seconds * bench.source_fps) / 4)),
                         "peak_mib": measured["peak_rss_bytes"] / MIB,
                         "before_mib": measured["rss_before_bytes"] / MIB,
                         "added_mib": (measured["peak_rss_bytes"] - measured["rss_before_bytes"]) / MIB,
                         "cache_mib": cache_bytes / MIB, "prepare_s": measured["prepare_s"], "synthesis_s": made,
                         **measured})
            shutil.rmtree(root)
            shutil.rmtree(cache)
    short, long = rows[0], rows[-1]
    growth = (long["peak_rss_bytes"] - short["peak_rss_bytes"]) / MB
    per_second = growth / (long["seconds"] - short["seconds"])
    h, w = bench.image_size
    return BenchResult(
        name="prepare_memory", size=size if isinstance(size, str) else "custom", machine=machine,
        settings={**asdict(bench), "threads": threads, "workers": 1},
        columns=[("run", "clip"), ("grid_frames", "grid frames"), ("before_mib", "start MiB"),
                 ("peak_mib", "peak MiB"), ("added_mib", "prepare adds MiB"), ("cache_mib", "cache MiB"),
                 ("prepare_s", "prepare s")],
        rows=rows,
        targets=[Target(f"peak at {long['run']} within +{TARGET_MB:g} MB of the peak at {short['run']}",
                        f"{growth:+.0f} MB ({per_second * 1e3:.0f} kB per clip-second)", growth <= TARGET_MB)],
        notes=[
            f"{bench.views} views per clip (H.264 + AAC, {bench.source_size[1]}x{bench.source_size[0]} at "
            f"{bench.source_fps:g} FPS, {bench.sample_rate} Hz mono), cached at {w}x{h}; each duration prepared "
            "with workers=1 in a process of its own; peak = VmHWM of that process",
            "'start' is that process's resident memory just before prepare (imports); the cache files are "
            "written, not held: the page cache they occupy is not resident memory of the process",
        ],
    )
