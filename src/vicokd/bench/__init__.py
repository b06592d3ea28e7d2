"""Speed and memory benchmarks (``vicokd benchmark``, ``benchmarks/*.py``); not tests.

Each benchmark is a function ``run(size, *, threads, frames) -> BenchResult`` registered in
:data:`BENCHMARKS` under the name ``--only`` uses; it prints nothing and returns the measured
rows, the targets of issue 8 (met or missed) and notes; :func:`run_benchmarks` prints each table
and writes ``<out>/<result name>.json`` (``-small`` appended for the small size) with the
machine it ran on. Sizes: ``small`` (minutes on 2 cores, the default) and ``full`` (the paper's
shapes; the numbers in ``benchmarks/README.md``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

from vicokd.bench.common import BenchResult
from vicokd.errors import VicokdError

__all__ = ["BENCHMARKS", "BenchResult", "get_benchmark", "parse_only", "run_benchmarks"]


# name → "module:function" (imported when run), in the order they run.
BENCHMARKS: dict[str, str] = {
    "data": "vicokd.bench.data:run_data_benchmark",
    "train": "vicokd.bench.train_step:run_train_benchmark",
    "features": "vicokd.bench.features:run_features_benchmark",
    "runs": "vicokd.bench.runs:run_runs_benchmark",
    "predict": "vicokd.bench.predict:run_predict_benchmark",
    "prepare_memory": "vicokd.bench.prepare_memory:run_prepare_memory_benchmark",
    "stream": "vicokd.bench.stream:run_stream_benchmark",
}


def get_benchmark(name: str) -> Callable[..., BenchResult]:
    """The run function registered as `name`."""
    module, _, function = BENCHMARKS[name].partition(":")
    return getattr(importlib.import_module(module), function)


def parse_only(text: str | None) -> list[str]:
    """``"data,predict"`` → ``["data", "predict"]`` (all when None); unknown names are an error."""
    if not text:
        return list(BENCHMARKS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise VicokdError(f"--only {text!r}: unknown benchmark {unknown[0]!r} (known: {', '.join(BENCHMARKS)})")
    return names


def run_benchmarks(names: list[str], size: str = "small", out: str | Path = "benchmarks/results",
                   threads: int | None = None, frames: int | None = None,
                   work_dir: str | Path | None = None) -> list[BenchResult]:
    """Run the named benchmarks, print each table and write its JSON under `out`.

    `work_dir`: where the benchmarks that write a dataset put it (a temporary folder by default).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    for name in names:
        extra = {"work_dir": work_dir} if work_dir is not None else {}
        result = get_benchmark(name)(size, threads=threads, frames=frames, **extra)
        path = result.write(out)
        print(result.table())
        print(f"written to {path}\n", flush=True)
        results.append(result)
    return results
