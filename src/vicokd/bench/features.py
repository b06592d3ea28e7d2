"""Frozen-encoder benchmark: training epochs from cached encoder features vs end to end from pixels.

**Demo preset, real training.** A synthetic home is made in a work folder (the demo's generator
settings: 80×60 at the 2.5-FPS grid, 20-40 s clips), prepared, given ground-truth person
scores, and trained with :func:`vicokd.training.run.fit` and ``configs/demo`` (tiny encoders from
scratch, 48×48, T = 16, batch 4), each run for the same epochs:

1. teacher (AV_F) end to end from pixels and fbank (the demo preset);
2. teacher from features of its encoders *at initialisation*, frozen (the same initial weights
   as run 1: the same method and start, only the encoders never learn);
3. teacher from features of run 1's trained encoders, frozen (the reuse workflow: train once
   end to end, then iterate on the rest of the network from features);
4. ViCoKD student end to end, distilled from run 1;
5. ViCoKD student from features, distilled from run 3 (teacher and student read the same
   features, as training requires; the student's frozen visual encoder is run 1's).

An epoch's time is ``time/train_epoch_s`` of the run's ``metrics.csv`` (data loading and training
steps; validation and checkpoint writing excluded), the median over the epochs after the first
(the first includes start-up). The speedup compares runs of the same method; the one-off cost of
``prepare --features`` is reported beside it. Test mAP comes from each run's ``summary.json``.

**Paper architecture.** For ViT-S/32 at 224² and the AST (random init, as in
:mod:`vicokd.bench.train_step`), one training step of batch 1 from pixels vs from features of
the same shapes, each in a fresh process, with the FLOPs of both.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vicokd.bench.common import BenchResult, Target, machine_info, resolve_size, run_isolated, stopwatch, use_threads
from vicokd.bench.paper import Shape, count_flops, encoder_widths, step_loss
from vicokd.bench.train_step import StepSpec, measure_train_step, train_flops
from vicokd.config import Config, load_config
from vicokd.data.person_scores import person_scores_path
from vicokd.data.prepare import prepare
from vicokd.detect import detect_dataset
from vicokd.pipeline.demo_options import DemoOptions
from vicokd.pipeline.grid import preset_dir
from vicokd.report.curves import read_metric_curve
from vicokd.synthetic import generate_home
from vicokd.training.encoder_features import compute_features
from vicokd.training.run import fit


@dataclass(frozen=True)
class FeatureBenchSize:
    """The synthetic home, the training length and the paper-architecture shape of one size."""

    clips: int
    views: int
    epochs: int | None  # None: the demo preset's
    duration: tuple[float, float] | None = None  # clip length range in seconds; None: the demo's
    paper_frames: int = 16  # T of the paper-architecture steps (batch 1)
    workers: int = 2  # processes rendering and decoding clips
    paper_views: int = 5
    model: dict[str, Any] = field(default_factory=dict, hash=False)  # dotted overrides of the paper model (tests)


FEATURE_SIZES = {
    "full": FeatureBenchSize(clips=100, views=5, epochs=None),
    "small": FeatureBenchSize(clips=16, views=3, epochs=3, duration=(10.0, 14.0), paper_frames=4),
}


@dataclass(frozen=True)
class _Run:
    """One training run of the demo benchmark."""

    name: str
    method: str  # "teacher" or "vicokd"
    inputs: str  # shown in the table
    features: str | None = None  # feature folder name under the work folder
    teacher: str | None = None  # run whose best checkpoint is the teacher


_RUNS = (
    _Run("teacher-pixels", "teacher", "pixels + fbank, encoders trained"),
    _Run("teacher-frozen-init", "teacher", "features, frozen encoders at init", features="features-init"),
    _Run("teacher-frozen-trained", "teacher", "features, frozen encoders of run 1", features="features-trained"),
    _Run("vicokd-pixels", "vicokd", "pixels, visual encoder trained", teacher="teacher-pixels"),
    _Run("vicokd-frozen-trained", "vicokd", "features, frozen encoders of run 1", features="features-trained",
         teacher="teacher-frozen-trained"),
)
# The runs the target is judged on, one per method: the reuse workflow against end to end.
_JUDGED = ("teacher-frozen-trained", "vicokd-frozen-trained")


def epoch_seconds(run_directory: Path) -> list[float]:
    """``time/train_epoch_s`` of every epoch in the run's ``metrics.csv``, in epoch order."""
    return [seconds for _, seconds in read_metric_curve(run_directory / "metrics.csv", "time/train_epoch_s")]


def typical_epoch(seconds: list[float]) -> float:
    """Median epoch time, leaving out the first epoch when there are others (start-up)."""
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def _say(message: str) -> None:
    """One progress line on stderr (the benchmark runs for minutes)."""
    print(f"[features] {message}", file=sys.stderr, flush=True)


def make_home(config: Config, bench: FeatureBenchSize) -> dict[str, float]:
    """Synthesise, prepare and score persons at `config`'s data paths; seconds of each step."""
    synth = DemoOptions(clips=bench.clips, views=bench.views).synth_options()
    if bench.duration is not None:
        synth = replace(synth, duration=bench.duration)
    _say(f"synthesising {synth.clips} clips x {synth.views} views, preparing the cache")
    with stopwatch() as made:
        generate_home(config.data.root, synth, workers=bench.workers, progress=False)
    with stopwatch() as prepared:
        prepare(config.data.root, config.data.cache, config.data, workers=bench.workers, progress=False)
    detect_dataset(config.data.root, person_scores_path(config.data), config.data.cache, config=config, progress=False)
    return {"synthesis_s": made.wall, "prepare_s": prepared.wall}


def _run_config(run: _Run, work: Path, overrides: list[str]) -> Config:
    preset = "teacher.yaml" if run.method == "teacher" else "student.yaml"
    extra = [f"train.name={run.name}", f"distill.method={run.method}"]
    if run.features is not None:
        extra.append(f"data.features={work / run.features}")
    return load_config(preset_dir("demo") / preset, [*overrides, *extra])


def _demo_runs(work: Path, overrides: list[str], teacher_config: Config
               ) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """The five runs of the module docstring: their rows by run name, and the feature-caching seconds."""
    rows: dict[str, dict[str, Any]] = {}
    feature_seconds: dict[str, float] = {}
    for run in _RUNS:
        if run.features is not None and run.features not in feature_seconds:
            encoders_from = None
            if run.features == "features-trained":
                encoders_from = rows["teacher-pixels"]["best_checkpoint"]
            _say(f"caching features ({run.features})")
            with stopwatch() as cached:
                compute_features(teacher_config, work / run.features, encoders_from=encoders_from, progress=False)
            feature_seconds[run.features] = cached.wall
        config = _run_config(run, work, overrides)
        teacher = rows[run.teacher]["best_checkpoint"] if run.teacher else None
        _say(f"run {len(rows) + 1}/{len(_RUNS)}: {run.method}, {run.inputs} ({config.optim.epochs} epochs)")
        summary = fit(config, teacher_checkpoint=teacher, progress=False)
        seconds = epoch_seconds(Path(config.train.out_dir) / run.name)
        rows[run.name] = {
            "run": f"{len(rows) + 1}. {run.method}", "inputs": run.inputs, "epochs": len(seconds),
            "epoch_s": typical_epoch(seconds), "epoch_seconds": seconds, "fit_s": summary["seconds"],
            "seq_map": summary["test"]["seq_map"], "frame_map": summary["test"]["frame_map"],
            "best_checkpoint": summary["best_checkpoint"], "features_s": feature_seconds.get(run.features or ""),
        }
    for run in _RUNS:
        baseline = rows[f"{run.method}-pixels"]["epoch_s"]
        rows[run.name]["speedup"] = baseline / rows[run.name]["epoch_s"]
    return rows, feature_seconds


def _demo_flops(config: Config, overrides: list[str], views: int) -> tuple[float, float]:
    """FLOPs of one demo teacher training step (batch of the preset) from pixels and from features."""
    frozen = load_config(preset_dir("demo") / "teacher.yaml",
                         [*overrides, "model.visual.freeze=true", "model.audio.freeze=true"])
    pixels = Shape(config.optim.batch_size, config.data.num_frames, views, config.data.image_size[0])
    features = replace(pixels, feature_widths=encoder_widths(config))

    def step(cfg: Config, model: Any, teacher: Any, batch: dict[str, torch.Tensor]) -> None:
        step_loss(cfg, model, teacher, batch).backward()

    return count_flops(config, pixels, step), count_flops(frozen, features, step)


def _paper_rows(bench: FeatureBenchSize, threads: int) -> list[dict[str, Any]]:
    """Batch-1 training steps of the paper architecture from pixels and from features."""
    rows = []
    _say(f"paper architecture: training steps at T={bench.paper_frames} from pixels and from features")
    for role in ("teacher", "vicokd"):
        timed = {}
        for features in (False, True):
            spec = StepSpec(role, 1, bench.paper_frames, views=bench.paper_views, model=bench.model, features=features)
            measured = run_isolated(measure_train_step, spec, threads=threads)
            timed[features] = {"run": f"paper {role}", "inputs": "features" if features else "pixels + fbank",
                               "step_s": measured["wall_s"], "gflops": train_flops(spec) / 1e9,
                               "peak_gib": measured["peak_rss_bytes"] / 2**30}
        timed[True]["speedup"] = timed[False]["step_s"] / timed[True]["step_s"]
        timed[False]["speedup"] = 1.0
        rows += [timed[False], timed[True]]
    return rows


def run_features_benchmark(size: str | FeatureBenchSize = "small", *, threads: int | None = None,
                           frames: int | None = None, work_dir: str | Path | None = None) -> BenchResult:
    """Measure the demo runs and the paper-architecture steps of the module docstring.

    `size`: "small", "full" or a custom :class:`FeatureBenchSize`; `threads`: torch threads;
    `frames` overrides T of the demo runs (the paper steps keep the size's T); `work_dir`: where
    the temporary work folder is made.
    """
    bench = resolve_size(size, FEATURE_SIZES)
    threads = use_threads(threads)
    machine = machine_info()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="vicokd-bench-features-") as tmp:
        work = Path(tmp)
        overrides = [f"data.root={work / 'data'}", f"data.cache={work / 'cache'}", f"train.out_dir={work / 'runs'}"]
        overrides += [f"optim.epochs={bench.epochs}"] if bench.epochs else []
        overrides += [f"data.num_frames={frames}"] if frames else []
        config = load_config(preset_dir("demo") / "teacher.yaml", overrides)
        made = make_home(config, bench)
        rows, feature_seconds = _demo_runs(work, overrides, config)
    pixel_flops, feature_flops = _demo_flops(config, overrides, bench.views)
    paper = _paper_rows(bench, threads)
    speedups = {run.method: rows[run.name]["speedup"] for run in _RUNS if run.name in _JUDGED}
    worst = min(speedups.values())
    data = config.data
    return BenchResult(
        name="features", size=size if isinstance(size, str) else "custom", machine=machine,
        settings={**asdict(bench), "num_frames": data.num_frames, "image_size": list(data.image_size),
                  "batch_size": config.optim.batch_size, "epochs_run": config.optim.epochs, "threads": threads,
                  **made, "features_s": feature_seconds, "demo_step_gflops": {"pixels": pixel_flops / 1e9,
                                                                               "features": feature_flops / 1e9},
                  "total_s": time.perf_counter() - started},
        columns=[("run", "run"), ("inputs", "inputs"), ("epoch_s", "s/epoch"), ("speedup", "× faster"),
                 ("seq_map", "test mAP"), ("frame_map", "frame mAP"), ("step_s", "s/step"), ("gflops", "GFLOP/step")],
        rows=[*rows.values(), *paper],
        targets=[Target("an epoch of the demo preset from features >= 20x faster than end to end, same method",
                        ", ".join(f"{method} {value:.1f}x" for method, value in speedups.items()), worst >= 20.0)],
        notes=[
            f"demo preset: {bench.clips} synthetic clips × {bench.views} views, T={data.num_frames}, "
            f"{data.image_size[1]}x{data.image_size[0]}, batch {config.optim.batch_size}, "
            f"{config.optim.epochs} epochs per run; s/epoch = median time/train_epoch_s after the first epoch "
            "(data loading + steps, no validation); test mAP = sequence mAP of the best-on-validation checkpoint",
            "caching the features once (`vicokd prepare --features`, every grid frame of every clip): "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in feature_seconds.items()),
            f"FLOPs of one demo teacher step: {pixel_flops / 1e9:.2f} GFLOP from pixels, "
            f"{feature_flops / 1e9:.3f} GFLOP from features ({pixel_flops / feature_flops:.0f}x fewer): "
            "the FLOP ceiling of the speedup; what is left from features is many small operations whose "
            "per-call cost, not arithmetic, sets the time",
            f"paper architecture (ViT-S/32 224², AST, MultiTSF, random init): one training step of batch 1, "
            f"T={bench.paper_frames}, V={bench.paper_views}, each in a fresh process",
            "run 2 starts from the same encoder weights as run 1 but never trains them; runs 3 and 5 reuse the "
            "encoders run 1 learned on the same training clips, so their mAP is not an independent result",
        ],
    )
