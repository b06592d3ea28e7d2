"""Inference benchmark: student latency per 5-view clip and throughput at batch 8, vs the teacher.

Each configuration runs in a fresh process (:mod:`vicokd.bench.paper` models, eval mode,
``torch.inference_mode``): a warm-up call on a one-frame batch, then timed forward passes of
uint8 clips (normalisation included) at the configured shape. The student needs no audio: no
audio encoder runs, and its pseudo-audio comes from the small adapter. FLOPs are counted on
the meta device; the FLOPs of the teacher with the old code's 1024-row audio padding are
counted too (not run), to show what padding every 0.4 s chunk to 1024 rows would cost an AST.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch

from vicokd.bench.common import (
    GIB,
    OLD_FBANK_ROWS,
    BenchResult,
    Target,
    against_floor,
    machine_info,
    resolve_size,
    run_isolated,
    time_against_matmul,
)
from vicokd.bench.paper import Shape, build_models, count_flops, forward_logits, paper_config, synthetic_batch
from vicokd.config import Config


@dataclass(frozen=True)
class PredictSpec:
    """One measured inference configuration."""

    role: Literal["teacher", "student"]
    batch: int
    frames: int
    repeats: int = 1  # timed forward passes (their mean is reported)
    views: int = 5
    model: dict[str, Any] = field(default_factory=dict, hash=False)  # dotted model overrides

    @property
    def shape(self) -> Shape:
        return Shape(self.batch, self.frames, self.views)

    def config(self) -> Config:
        return paper_config(self.role, model=self.model)

    @property
    def label(self) -> str:
        return f"{self.role} B={self.batch} T={self.frames}"


@dataclass(frozen=True)
class PredictBenchSize:
    frames: int  # T
    latency_repeats: int  # timed batch-1 passes of the student (the teacher's: 1)
    throughput_batch: int = 8
    views: int = 5
    model: dict[str, Any] = field(default_factory=dict)  # dotted model overrides (tests: a tiny model)


PREDICT_SIZES = {
    "full": PredictBenchSize(frames=70, latency_repeats=3),
    "small": PredictBenchSize(frames=4, latency_repeats=2),
}


def measure_predict(spec: PredictSpec) -> dict[str, Any]:
    """Run in a fresh process: warm-up, then `spec.repeats` timed forward passes (module docstring)."""
    torch.manual_seed(0)
    config = spec.config()
    model, _ = build_models(config)
    model.eval()
    batch = synthetic_batch(spec.shape)
    with torch.inference_mode():
        forward_logits(model, synthetic_batch(Shape(1, 1, spec.views)))
        return time_against_matmul(lambda: forward_logits(model, batch), spec.repeats)


def predict_flops(spec: PredictSpec, model: dict[str, Any] | None = None) -> float:
    """FLOPs of one forward pass of `spec` (meta device); `model` adds dotted model overrides."""
    config = paper_config(spec.role, model={**spec.model, **(model or {})})
    return count_flops(config, spec.shape, lambda config, model, teacher, batch: forward_logits(model, batch))


def _row(spec: PredictSpec, measured: dict[str, Any], flops: float) -> dict[str, Any]:
    return {"run": spec.label, **asdict(spec), **measured, **against_floor(flops, measured),
            "s_per_clip": measured["wall_s"] / spec.batch, "clips_per_s": spec.batch / measured["wall_s"],
            "gflops_per_clip": flops / spec.batch / 1e9, "peak_gib": measured["peak_rss_bytes"] / GIB}


def run_predict_benchmark(size: str | PredictBenchSize = "small", *, threads: int | None = None,
                          frames: int | None = None) -> BenchResult:
    """Student latency and throughput vs the teacher (module docstring).

    `size`: "small", "full" or a custom :class:`PredictBenchSize`; `threads`: torch threads of
    each measured process (default: this process's); `frames` overrides T.
    """
    bench = resolve_size(size, PREDICT_SIZES)
    bench = bench if frames is None else replace(bench, frames=frames)
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    machine = machine_info()
    common = {"frames": bench.frames, "views": bench.views, "model": bench.model}
    student = PredictSpec("student", 1, repeats=bench.latency_repeats, **common)
    batched = PredictSpec("student", bench.throughput_batch, **common)
    teacher = PredictSpec("teacher", 1, **common)
    rows = [_row(spec, run_isolated(measure_predict, spec, threads=threads), predict_flops(spec))
            for spec in (student, batched, teacher)]
    old_flops = predict_flops(teacher, {"audio.max_rows": OLD_FBANK_ROWS})
    rows.append({"run": f"teacher B=1 T={bench.frames}, AST on {OLD_FBANK_ROWS}-row padding (old)",
                 "gflops_per_clip": old_flops / 1e9})
    time_ratio = rows[2]["s_per_clip"] / rows[0]["s_per_clip"]
    flops_ratio = rows[2]["gflops_per_clip"] / rows[0]["gflops_per_clip"]
    return BenchResult(
        name="predict", size=size if isinstance(size, str) else "custom", machine=machine,
        settings={**asdict(bench), "threads": threads, "image_size": 224,
                  "model": "ViT-S/32 (+ AST 768×12 on 48 rows for the teacher) + MultiTSF, D=384, random init"},
        columns=[("run", "run"), ("wall_s", "s per call"), ("s_per_clip", "s/clip"), ("clips_per_s", "clips/s"),
                 ("gflops_per_clip", "GFLOP/clip"), ("matmul_gflops", "matmul GFLOP/s"), ("vs_floor", "× floor"),
                 ("vs_floor_cpu", "× floor CPU"), ("cpu_share", "CPU/wall"), ("peak_gib", "peak GiB")],
        rows=rows,
        targets=[Target("the student is cheaper than the teacher per clip (batch 1)",
                        f"{time_ratio:.1f}x less time, {flops_ratio:.1f}x fewer FLOPs", time_ratio > 1.0)],
        notes=[
            f"{bench.views} views × T={bench.frames} frames at 224x224 per clip; model only (uint8 clip in memory, "
            "normalisation included), eval mode, torch.inference_mode",
            f"student batch 1: mean of {bench.latency_repeats} passes; batch {bench.throughput_batch} and the "
            "teacher: one pass each, after a one-frame warm-up",
            f"an AST on the old code's {OLD_FBANK_ROWS}-row padding would make the teacher "
            f"{old_flops / 1e9 / rows[2]['gflops_per_clip']:.0f}x costlier (FLOPs; not run)",
        ],
    )
