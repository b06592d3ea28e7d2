"""Training-step benchmark: time per sample against the FLOP floor, and peak memory at batch 12.

For the paper architecture (:mod:`vicokd.bench.paper`) each configuration runs in a fresh
process: build the model (and, for ViCoKD, the frozen teacher), the training module's Adam, a warm-up step on a
one-frame batch, then one timed step (forward, the method's losses, backward, optimizer step)
at the configured shape. The machine's fp32 matmul rate is measured in the same process right
before and after the step. The FLOPs of the step are counted on the meta device (forward +
backward, recomputation under checkpointing included). The floor is FLOPs ÷ matmul rate.

Memory: the peak resident memory of each process. Batch 12 × T = 70 is not run: on this CPU a
checkpointed teacher step of that size takes over an hour, and without checkpointing it needs far
more than the machine has. Peak memory is linear in the number of frames B·V·T (stored inputs
and activations) plus a constant (weights, gradients, Adam state, one chunk of recomputation),
so it is fitted on batch-1 runs of several T and extrapolated to B = 12, T = 70; the fit's largest
residual is reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

import torch

from vicokd.bench.common import (
    GIB,
    BenchResult,
    Target,
    against_floor,
    current_rss,
    linear_extrapolation,
    machine_info,
    resolve_size,
    run_isolated,
    time_against_matmul,
)
from vicokd.bench.paper import (
    Role,
    Shape,
    build_models,
    count_flops,
    encoder_widths,
    paper_config,
    step_loss,
    synthetic_batch,
)
from vicokd.config import Config
from vicokd.training.allocator import TRAINING_MMAP_THRESHOLD, set_mmap_threshold
from vicokd.training.module import build_optimizer


@dataclass(frozen=True)
class StepSpec:
    """One measured configuration: role, batch, frames and the encoders' memory settings."""

    role: Role
    batch: int
    frames: int
    checkpointing: bool = False
    chunk_size: int = 256  # frames per encoder call; 0 = all frames of the batch in one call
    views: int = 5
    model: dict[str, Any] = field(default_factory=dict, hash=False)  # dotted model overrides
    mmap_threshold: int | None = None  # glibc malloc setting of the process (vicokd.training.allocator); None = default
    features: bool = False  # frozen encoders, batches of cached features instead of pixels and fbank

    @cached_property
    def shape(self) -> Shape:
        """The batch shape (feature widths read from the model built on the meta device, once)."""
        widths = encoder_widths(self.config()) if self.features else None
        return Shape(self.batch, self.frames, self.views, feature_widths=widths)

    def config(self) -> Config:
        chunk = self.chunk_size or self.batch * self.views * self.frames
        frozen = {"visual.freeze": True, "audio.freeze": True} if self.features else {}
        return paper_config(self.role, checkpointing=self.checkpointing, chunk_size=chunk,
                            model={**self.model, **frozen})

    @property
    def label(self) -> str:
        if self.features:
            return f"{self.role} B={self.batch} T={self.frames} (frozen encoders, from features)"
        memory = f"ckpt, chunk {self.chunk_size}" if self.checkpointing else (
            "one encoder call" if self.chunk_size == 0 else f"chunk {self.chunk_size}")
        allocator = f", mmap >= {self.mmap_threshold // 2**20} MiB" if self.mmap_threshold else ""
        return f"{self.role} B={self.batch} T={self.frames} ({memory}{allocator})"


@dataclass(frozen=True)
class TrainBenchSize:
    """Which configurations one benchmark size runs."""

    frames: int  # T of the timed batch-1 runs of every role
    ckpt_chunk: int  # encoder chunk with activation checkpointing
    ckpt_frames: tuple[int, ...]  # teacher, batch 1, checkpointed: T of the memory fit
    plain_frames: tuple[int, ...]  # teacher, batch 1, no checkpointing, one encoder call: T of the fit
    glibc_frames: tuple[int, ...] = ()  # teacher, batch 1, checkpointed, glibc's default malloc: T of a 2nd fit
    roles: tuple[Role, ...] = ("teacher", "student", "vicokd")
    views: int = 5
    model: dict[str, Any] = field(default_factory=dict)  # dotted model overrides (tests: a tiny model)
    target_batch: int = 12
    target_frames: int = 70
    memory_goal_gib: float = 16.0


TRAIN_SIZES = {
    "full": TrainBenchSize(frames=70, ckpt_chunk=64, ckpt_frames=(35, 70), plain_frames=(7, 14, 28),
                           glibc_frames=(35, 70)),
    # Small: the timed runs only, at T = 4 (a batch-12 memory fit needs far-apart T: full size only).
    "small": TrainBenchSize(frames=4, ckpt_chunk=8, ckpt_frames=(), plain_frames=()),
}


def _train_step(config: Config, model: Any, teacher: Any, optimizer: torch.optim.Optimizer,
                batch: dict[str, torch.Tensor]) -> None:
    step_loss(config, model, teacher, batch).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure_train_step(spec: StepSpec) -> dict[str, Any]:
    """Run in a fresh process: one warm-up and one timed training step of `spec` (module docstring)."""
    if spec.mmap_threshold:
        set_mmap_threshold(spec.mmap_threshold)
    torch.manual_seed(0)
    config = spec.config()
    model, teacher = build_models(config)
    model.train()
    optimizer = build_optimizer(model, config.optim)
    _train_step(config, model, teacher, optimizer, synthetic_batch(replace(spec.shape, batch=1, frames=1)))
    batch = synthetic_batch(spec.shape)
    ready = current_rss()
    measured = time_against_matmul(lambda: _train_step(config, model, teacher, optimizer, batch))
    return {**measured, "rss_before_step_bytes": ready}


def train_flops(spec: StepSpec) -> float:
    """FLOPs of one training step of `spec` (forward + backward, meta device)."""
    return count_flops(spec.config(), spec.shape,
                       lambda config, model, teacher, batch: step_loss(config, model, teacher, batch).backward())


def _row(spec: StepSpec, purpose: str, measured: dict[str, Any], flops: float) -> dict[str, Any]:
    ratios = against_floor(flops, measured)
    return {
        "run": spec.label, "purpose": purpose, **asdict(spec), **measured, **ratios, "flops": flops,
        "s_per_sample": measured["wall_s"] / spec.batch, "tflops_per_sample": flops / spec.batch / 1e12,
        "floor_s_per_sample": ratios["floor_s"] / spec.batch, "peak_gib": measured["peak_rss_bytes"] / GIB,
    }


def _extrapolate(rows: list[dict[str, Any]], size: TrainBenchSize, label: str) -> dict[str, Any]:
    """Peak memory line over frames (B·T) of `rows`, evaluated at the target batch and T."""
    frames = [r["batch"] * r["frames"] for r in rows]
    target = size.target_batch * size.target_frames
    peak, slope, residual = linear_extrapolation(frames, [r["peak_gib"] for r in rows], target)
    points = ", ".join(f"T={r['frames']}: {r['peak_gib']:.2f}" for r in rows)
    return {"run": f"{label} B={size.target_batch} T={size.target_frames}", "purpose": "extrapolated",
            "peak_gib": peak, "gib_per_clip_frame": slope, "fit_residual_gib": residual,
            "fit": f"B=1 {points} GiB"}


def _memory(rows: dict[StepSpec, dict[str, Any]], ckpt: list[StepSpec], plain: list[StepSpec],
            glibc: list[StepSpec], size: TrainBenchSize) -> tuple[list[dict[str, Any]], list[Target], list[str]]:
    """Batch-12 peak memory fits, the memory target and notes (nothing without two points per fit)."""
    if len(ckpt) < 2 or len(plain) < 2:
        return [], [], []
    ckpt_fit = _extrapolate([rows[s] for s in ckpt], size, f"teacher ckpt chunk {size.ckpt_chunk}")
    plain_fit = _extrapolate([rows[s] for s in plain], size, "teacher no ckpt")
    fits = [ckpt_fit, plain_fit]
    glibc_text = ""
    if len(glibc) > 1:
        fits.append(_extrapolate([rows[s] for s in glibc], size, f"teacher ckpt chunk {size.ckpt_chunk}, glibc malloc"))
        glibc_text = f"; {fits[-1]['peak_gib']:.0f} GiB with glibc's default malloc settings (extrapolated)"
    ratio = plain_fit["peak_gib"] / ckpt_fit["peak_gib"]
    target = Target(f"peak memory at B={size.target_batch}, T={size.target_frames} with chunked encoders and "
                    f"checkpointing <= {size.memory_goal_gib:g} GiB",
                    f"{ckpt_fit['peak_gib']:.1f} GiB (extrapolated), {ratio:.1f}x less than without "
                    f"({plain_fit['peak_gib']:.0f} GiB, extrapolated){glibc_text}",
                    ckpt_fit["peak_gib"] <= size.memory_goal_gib)
    notes = [
        f"batch {size.target_batch} memory is extrapolated linearly in B·T from batch-1 runs ({ckpt_fit['fit']} "
        f"with checkpointing; {plain_fit['fit']} without) — a real batch-{size.target_batch} step takes hours "
        "on this CPU",
        f"memory runs ('mmap >= {TRAINING_MMAP_THRESHOLD // 2**20} MiB') fix glibc's mmap threshold (mallopt, as "
        "`fit` does), so every "
        "freed activation goes back to the system and the peak follows the tensors alive; with glibc's default "
        "(timed runs) the freed activations of each encoder chunk stay resident, fragmented, and the peak "
        "grows with the number of chunks",
    ]
    return fits, [target], notes


def run_train_benchmark(size: str | TrainBenchSize = "small", *, threads: int | None = None,
                        frames: int | None = None) -> BenchResult:
    """Time and memory of training steps of the paper architecture (module docstring).

    `size`: "small", "full" or a custom :class:`TrainBenchSize`; `threads`: torch threads of
    each measured process (default: this process's); `frames` overrides T of the timed runs.
    """
    bench = resolve_size(size, TRAIN_SIZES)
    bench = bench if frames is None else replace(bench, frames=frames)
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    machine = machine_info()
    common = {"views": bench.views, "model": bench.model}
    timed = [StepSpec(role, 1, bench.frames, checkpointing=role == "teacher",
                      chunk_size=bench.ckpt_chunk if role == "teacher" else 256, **common) for role in bench.roles]
    ckpt = [StepSpec("teacher", 1, t, checkpointing=True, chunk_size=bench.ckpt_chunk,
                     mmap_threshold=TRAINING_MMAP_THRESHOLD, **common) for t in bench.ckpt_frames]
    plain = [StepSpec("teacher", 1, t, chunk_size=0, mmap_threshold=TRAINING_MMAP_THRESHOLD, **common)
             for t in bench.plain_frames]
    glibc = [StepSpec("teacher", 1, t, checkpointing=True, chunk_size=bench.ckpt_chunk, **common)
             for t in bench.glibc_frames]
    rows: dict[StepSpec, dict[str, Any]] = {}
    for spec, purpose in [*((s, "time") for s in timed), *((s, "memory") for s in ckpt + plain + glibc)]:
        if spec not in rows:
            rows[spec] = _row(spec, purpose, run_isolated(measure_train_step, spec, threads=threads),
                              train_flops(spec))
    fits, memory_targets, memory_notes = _memory(rows, ckpt, plain, glibc, bench)
    targets = [Target(f"{spec.label}: time per sample <= 2x FLOPs / matmul rate",
                      f"{rows[spec]['s_per_sample']:.1f} s per sample = {rows[spec]['vs_floor']:.2f}x the floor "
                      f"{rows[spec]['floor_s_per_sample']:.1f} s (in CPU time {rows[spec]['vs_floor_cpu']:.2f}x)",
                      rows[spec]["vs_floor"] <= 2.0) for spec in timed]
    return BenchResult(
        name="train_step", size=size if isinstance(size, str) else "custom", machine=machine,
        settings={**asdict(bench), "threads": threads, "image_size": 224,
                  "model": "ViT-S/32 + AST (768, 12 layers, 48 rows) + MultiTSF, D=384, random init"},
        columns=[("run", "run"), ("wall_s", "step s"), ("s_per_sample", "s/sample"),
                 ("tflops_per_sample", "TFLOP/sample"), ("matmul_gflops", "matmul GFLOP/s"),
                 ("floor_s_per_sample", "floor s/sample"), ("vs_floor", "× floor"), ("vs_floor_cpu", "× floor CPU"),
                 ("cpu_share", "CPU/wall"), ("peak_gib", "peak GiB")],
        rows=[*rows.values(), *fits],
        targets=targets + memory_targets,
        notes=[
            "floor = FLOPs of the step (matmul, conv, attention; counted on the meta device) ÷ the fp32 "
            "matmul rate measured in the same process just before and after the step; × floor CPU: the same "
            "ratio in CPU seconds (step CPU time ÷ the CPU time the matmul needs for those FLOPs), less "
            "sensitive to other processes on a shared machine",
            "CPU/wall: CPU seconds of the process per wall second (up to the thread count; less when the "
            "cores were shared)",
            *memory_notes,
        ],
    )
