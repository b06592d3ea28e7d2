"""`vicokd reproduce`: a grid of runs (environment × backbone × supervision × method × seed) → tables.

A grid names the paper's table it fills (:data:`GRID_METHODS`). Each cell is one training run
built from the preset's ``teacher.yaml`` / ``student.yaml`` with the cell's choices as overrides;
students distill from the teacher of the same environment, backbone and seed (each seed trains
its own teacher, so the spread over seeds includes the teacher's). Runs live in
``OUT/runs/<env>-<backbone>-<method>[-<supervision>]-s<seed>/``; tables are written to
``OUT/tables/<grid>.md`` and ``.csv`` by :mod:`vicokd.report.tables`, from the runs'
``summary.json`` files only, with the paper's claims scored on them in ``OUT/tables/scorecard.md``
(:mod:`vicokd.report.scorecard`).

Before the runs, every environment is prepared (``vicokd prepare`` into its cache) and scored
for persons (``vicokd detect`` with the preset's detector); both steps resume.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vicokd.backbone_registry import check_backbones, paper_backbones
from vicokd.config import Config, load_config, preset_root
from vicokd.data.cache import INDEX_FILE, cache_settings, read_index
from vicokd.data.person_scores import person_scores_path
from vicokd.data.prepare import prepare
from vicokd.data.workers import die_with_parent
from vicokd.detect import check_detector, detect_dataset
from vicokd.errors import VicokdError
from vicokd.io import write_text
from vicokd.methods import get_method
from vicokd.pipeline.steps import Step, StepLog, run_training, training_state
from vicokd.report.regime import RegimeRow, regime_markdown, regime_rows
from vicokd.report.scorecard import Claim, paper_home, score_claims, scorecard_markdown
from vicokd.report.tables import (
    SUPERVISIONS,
    TABLE1_EXTRA_METHODS,
    TABLE1_METHODS,
    TABLE4_METHODS,
    CellKey,
    ComputedTable,
    Metric,
    RunResult,
    TableLayout,
    compute_table,
    result_from_summary,
    table1_layout,
    table2_layout,
    table3_layout,
    table4_layout,
    write_tables,
)

PRESETS = ("demo", "paper")
PAPER_BACKBONES = paper_backbones()
GRID_METHODS: dict[str, tuple[str, ...]] = {
    "table1": TABLE1_METHODS,
    "table2": ("vicokd",),
    "table3": ("teacher", "teacher-vc"),
    "table4": TABLE4_METHODS,
}
# Methods a grid runs when --methods names them, beyond its default rows (the paper's).
GRID_EXTRA_METHODS: dict[str, tuple[str, ...]] = {"table1": TABLE1_EXTRA_METHODS}
GRID_BACKBONES: dict[str, tuple[str, ...]] = {"table1": PAPER_BACKBONES, "table2": PAPER_BACKBONES,
                                              "table3": PAPER_BACKBONES, "table4": ("multiasl",)}


def preset_dir(preset: str) -> Path:
    """The shipped ``configs/<preset>/`` (teacher.yaml, student.yaml, base.yaml, model.yaml), inside
    the installed package (:func:`vicokd.config.preset_root`)."""
    if preset not in PRESETS:
        raise VicokdError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    directory = preset_root() / preset
    if not (directory / "teacher.yaml").is_file():
        raise VicokdError(f"{directory}: preset configs not found (the package is incomplete: reinstall vicokd)")
    return directory


@dataclass(frozen=True)
class EnvData:
    """One environment: its name in the tables, its dataset root, its prepared cache and (for runs
    from frozen encoders) its feature cache."""

    name: str
    root: Path
    cache: Path
    features: Path | None = None  # data.features of its runs (None: the runs compute the encoders)


def parse_data_arg(text: str, out: Path) -> EnvData:
    """``ENV=DIR[,CACHE]`` → :class:`EnvData` (cache default ``OUT/cache/ENV``)."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise VicokdError(f"--data {text!r}: expected ENV=DIR[,CACHE], e.g. home1=data/home1")
    if any(ch in name for ch in "/\\ "):
        raise VicokdError(f"--data {text!r}: the environment name {name!r} must not contain '/', '\\' or spaces")
    root, _, cache = rest.partition(",")
    return EnvData(name.strip(), Path(root.strip()), Path(cache.strip()) if cache.strip() else out / "cache" / name)


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    env: EnvData
    backbone: str
    supervision: str
    method: str
    seed: int
    variant: str = ""  # a student's named extra overrides (GridPlan.variants); teachers have none

    @property
    def is_teacher(self) -> bool:
        return get_method(self.method).role == "teacher"

    @property
    def name(self) -> str:
        sup = "" if self.is_teacher else f"-{self.supervision}"
        variant = f"{self.variant}-" if self.variant else ""
        return f"{self.env.name}-{self.backbone}-{variant}{self.method}{sup}-s{self.seed}"

    @property
    def key(self) -> CellKey:
        return CellKey(self.env.name, self.backbone, self.supervision, self.method)

    def teacher(self) -> Cell:
        return Cell(self.env, self.backbone, "frame", "teacher", self.seed)


@dataclass
class GridPlan:
    """What a grid runs and how its tables are laid out."""

    grid: str
    envs: list[EnvData]
    backbones: list[str]
    supervisions: list[str]
    methods: list[str]
    seeds: list[int]
    preset: str
    out: Path
    overrides: list[str] = field(default_factory=list)
    # named student variants: extra overrides of the students only, each variant a copy of every
    # student cell distilled from the same teachers ({"": []}: the plain grid)
    variants: dict[str, list[str]] = field(default_factory=lambda: {"": []})
    teacher_overrides: list[str] = field(default_factory=list)  # of the teachers only
    workers: int = 2  # processes decoding clips in `prepare`
    parallel_runs: int = 1  # training runs at once, each in its own process (see run_plans)

    @property
    def cells(self) -> list[Cell]:
        """Every run, teachers first; the teachers the students need are added."""
        wanted: list[Cell] = []
        for env in self.envs:
            for backbone in self.backbones:
                for seed in self.seeds:
                    for method in self.methods:
                        role = get_method(method).role
                        variants = [""] if role == "teacher" else list(self.variants)
                        for sup in (["frame"] if role == "teacher" else self.supervisions):
                            for variant in variants:
                                cell = Cell(env, backbone, sup, method, seed, variant)
                                if get_method(method).needs_teacher:
                                    wanted.append(cell.teacher())
                                wanted.append(cell)
        unique = list(dict.fromkeys(wanted))
        return [c for c in unique if c.is_teacher] + [c for c in unique if not c.is_teacher]

    def config(self, cell: Cell) -> Config:
        """The run config of `cell`: the preset's teacher/student YAML + the cell + --set overrides
        (+ the teachers' own, or the student's variant's)."""
        directory = preset_dir(self.preset)
        overrides = [f"data.root={cell.env.root}", f"data.cache={cell.env.cache}",
                     f"model.backbone={cell.backbone}", f"distill.method={cell.method}",
                     f"distill.supervision={cell.supervision}", f"train.seed={cell.seed}",
                     f"train.out_dir={self.out / 'runs'}", f"train.name={cell.name}",
                     *([f"data.features={cell.env.features}"] if cell.env.features else []), *self.overrides,
                     *(self.teacher_overrides if cell.is_teacher else self.variants.get(cell.variant, []))]
        return load_config(directory / ("teacher.yaml" if cell.is_teacher else "student.yaml"), overrides)

    def env_config(self, env: EnvData) -> Config:
        """Data and detector settings of an environment (from the preset's teacher config)."""
        return self.config(Cell(env, self.backbones[0], "frame", "teacher", self.seeds[0]))

    def layouts(self) -> list[TableLayout]:
        envs = [e.name for e in self.envs]
        if self.grid == "table1":
            return [table1_layout(env, self.backbones, self.methods, self.supervisions) for env in envs]
        if self.grid == "table2":
            return [table2_layout(envs, self.backbones, self.supervisions)]
        if self.grid == "table3":
            return [table3_layout(envs, self.backbones)]
        return [table4_layout(envs, backbone, self.methods, self.supervisions) for backbone in self.backbones]


def make_plan(grid: str, envs: Sequence[EnvData], *, seeds: int = 3, preset: str = "demo", out: Path,
              backbones: Sequence[str] | None = None, methods: Sequence[str] | None = None,
              supervisions: Sequence[str] | None = None, overrides: Sequence[str] = (), workers: int = 2,
              parallel_runs: int = 1) -> GridPlan:
    """Check the choices and build the plan of `grid` (methods/backbones default to the paper's)."""
    if grid not in GRID_METHODS:
        raise VicokdError(f"--grid {grid!r}: choose one of {', '.join(GRID_METHODS)}")
    if not envs:
        raise VicokdError("--data: give at least one environment, e.g. --data home1=data/home1")
    if len({e.name for e in envs}) != len(envs):
        raise VicokdError("--data: environment names must differ")
    if seeds < 1:
        raise VicokdError(f"--seeds {seeds}: need at least 1")
    chosen_backbones = list(backbones or GRID_BACKBONES[grid])
    check_backbones(chosen_backbones)
    chosen_methods = list(methods or GRID_METHODS[grid])
    for method in chosen_methods:
        get_method(method)
        allowed = GRID_METHODS[grid] + GRID_EXTRA_METHODS.get(grid, ())
        if method not in allowed:
            raise VicokdError(f"--methods: {method!r} is not in {grid} (it has {', '.join(allowed)})")
    chosen_sups = list(supervisions or SUPERVISIONS)
    for sup in chosen_sups:
        if sup not in SUPERVISIONS:
            raise VicokdError(f"--supervisions: {sup!r} is not one of {', '.join(SUPERVISIONS)}")
    if workers < 1:
        raise VicokdError(f"--workers {workers}: need at least 1")
    if parallel_runs < 1:
        raise VicokdError(f"--parallel-runs {parallel_runs}: need at least 1")
    preset_dir(preset)
    plan = GridPlan(grid, list(envs), chosen_backbones, chosen_sups, chosen_methods, list(range(seeds)), preset,
                    Path(out), list(overrides), workers=workers, parallel_runs=parallel_runs)
    if plan.cells:  # before any step runs
        check_detector(plan.config(plan.cells[0]).detect.detector)
    return plan


def step_count(plan: GridPlan) -> int:
    """Steps :func:`run_plan` will print: prepare + detect per environment, one per run."""
    return 2 * len(plan.envs) + len(plan.cells)


def prepare_env(plan: GridPlan, env: EnvData, log: StepLog, progress: bool = True) -> None:
    """Steps: decode the environment into its cache; person scores with the preset's detector."""
    config = plan.env_config(env)
    with log.step(f"prepare {env.name}") as step:
        if (env.cache / INDEX_FILE).is_file():
            made_with = read_index(env.cache).data
            if made_with != cache_settings(config.data):
                raise VicokdError(f"{env.cache}: prepared with other settings ({made_with}); the preset wants "
                                  f"{cache_settings(config.data)}; give another cache with --data ENV=DIR,CACHE")
            step.status = "reused"
        else:
            index = prepare(env.root, env.cache, config.data, workers=plan.workers, progress=progress)
            step.detail = f"{len(index.clips)} clips into {env.cache}"
    detector = config.detect.detector
    with log.step(f"person scores {env.name} ({detector})") as step:
        summary = detect_dataset(env.root, person_scores_path(config.data), env.cache, config=config, progress=progress)
        step.status = "done" if summary.computed else "reused"
        step.detail = ("ground-truth visibility written by the synthetic generator, no detector run"
                       if detector == "groundtruth" else f"{detector} on {summary.clips} clips")


def run_plan(plan: GridPlan, log: StepLog, progress: bool = True) -> dict[Cell, dict[str, Any]]:
    """Prepare every environment, then run every cell (reuse / resume / start); summaries by cell."""
    for env in plan.envs:
        prepare_env(plan, env, log, progress)
    return run_cells(plan, log, progress)


def run_cells(plan: GridPlan, log: StepLog, progress: bool = True,
              done: dict[Cell, dict[str, Any]] | None = None) -> dict[Cell, dict[str, Any]]:
    """Run every cell of a plan whose environments are prepared; summaries by cell.

    Cells in `done` (the summaries of another plan that ran them in this invocation) are taken
    from it, without a step of their own.
    """
    return run_plans([plan], log, progress, done)


def run_plans(plans: Sequence[GridPlan], log: StepLog, progress: bool = True,
              done: dict[Cell, dict[str, Any]] | None = None) -> dict[Cell, dict[str, Any]]:
    """Run the cells of several plans as one queue (a cell two plans share runs once, with the
    first plan's config); summaries by cell.

    With ``plan.parallel_runs`` = P > 1 (the first plan's), P worker processes train P runs at
    once, each with 1/P of the CPU threads; a student starts once its teacher has finished. On a
    CPU the tiny from-features runs are bound by per-operation overhead, so two one-thread runs
    finish in about the time of one two-thread run.
    """
    owners: dict[Cell, GridPlan] = {}
    for plan in plans:
        for cell in plan.cells:
            owners.setdefault(cell, plan)
    queue = [c for c in owners if c.is_teacher] + [c for c in owners if not c.is_teacher]
    summaries: dict[Cell, dict[str, Any]] = {c: done[c] for c in queue if done is not None and c in done}
    queue = [c for c in queue if c not in summaries]
    processes = plans[0].parallel_runs if plans else 1
    finished = [c for c in queue if training_state(owners[c].config(c)) == "done"]
    for cell in (queue if processes <= 1 else finished):  # reused runs need no worker
            with log.step(f"train {cell.name}") as step:
                summary = run_training(owners[cell].config(cell), _teacher_of(cell, summaries), step, progress)
                step.detail = _run_detail(summary)
            summaries[cell] = summary
    if processes > 1:
        _run_in_processes([c for c in queue if c not in summaries], owners, summaries, log, processes)
    return summaries


def _teacher_of(cell: Cell, summaries: dict[Cell, dict[str, Any]]) -> str | None:
    """The best checkpoint of the cell's teacher (None for a method that needs none)."""
    return summaries[cell.teacher()]["best_checkpoint"] if get_method(cell.method).needs_teacher else None


def _run_detail(summary: dict[str, Any]) -> str:
    return f"test seq mAP {summary['test']['seq_map']:.2f}, frame mAP {summary['test']['frame_map']:.2f}"


def _training_worker_init(parent: int, threads: int) -> None:
    """A training worker: `threads` torch threads, and it ends when its parent (the grid) dies,
    SIGKILL included (:func:`vicokd.data.workers.die_with_parent`)."""
    import torch

    torch.set_num_threads(threads)
    die_with_parent(parent)


def training_pool(processes: int) -> ProcessPoolExecutor:
    """The worker processes of :func:`run_plans`: spawned (no forked OpenMP state), each with 1/`processes`
    of this process's torch threads, none outliving this process."""
    import multiprocessing

    import torch

    threads = max(1, torch.get_num_threads() // processes)
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_training_worker_init, initargs=(os.getpid(), threads))


def _train_in_worker(config: Config, teacher: str | None) -> tuple[dict[str, Any], str, float | None, float]:
    """One run in a worker process: (summary, step status, seconds when reused, seconds here)."""
    step = Step(0, config.train.name)
    started = time.perf_counter()
    summary = run_training(config, teacher, step, progress=False)
    return summary, step.status, step.seconds, time.perf_counter() - started


def _run_in_processes(queue: list[Cell], owners: dict[Cell, GridPlan], summaries: dict[Cell, dict[str, Any]],
                      log: StepLog, processes: int) -> None:
    """:func:`run_plans` with `processes` workers (:func:`training_pool`)."""
    pending = list(queue)
    running: dict[Future, Cell] = {}
    with training_pool(processes) as pool:
        try:
            while pending or running:
                for cell in [c for c in pending if not get_method(c.method).needs_teacher
                             or c.teacher() in summaries][:max(0, processes - len(running))]:
                    pending.remove(cell)
                    running[pool.submit(_train_in_worker, owners[cell].config(cell),
                                        _teacher_of(cell, summaries))] = cell
                if not running:
                    raise VicokdError(f"{pending[0].name}: its teacher {pending[0].teacher().name} is not in the grid")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    cell = running.pop(future)
                    step = Step(0, f"train {cell.name}")
                    try:
                        summary, step.status, step.seconds, seconds = future.result()
                    except BaseException:
                        step.status = "failed"
                        log.finished_elsewhere(step, 0.0)
                        raise
                    step.detail = _run_detail(summary)
                    log.finished_elsewhere(step, seconds)
                    summaries[cell] = summary
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def collect_results(plan: GridPlan) -> list[RunResult]:
    """Results of every cell whose summary.json exists (the others are missing in the tables)."""
    results = []
    for cell in plan.cells:
        path = plan.out / "runs" / cell.name / "summary.json"
        if path.is_file():
            result = result_from_summary(path, cell.env.name, cell.seed)
            if result.key != cell.key:
                raise VicokdError(f"{path}: summary is of {result.key}, expected {cell.key}")
            results.append(result)
    return results


def compute_tables(plan: GridPlan, results: Sequence[RunResult]) -> list[ComputedTable]:
    """Every layout of the plan, sequence mAP first, then frame mAP."""
    layouts = plan.layouts()
    return [compute_table(layout, results, metric) for metric in ("seq_map", "frame_map") for layout in layouts]


def table_note(plan: GridPlan, results: Sequence[RunResult]) -> str:
    """What the tables are made of, for the top of the Markdown file."""
    total = len([c for c in plan.cells if c.method in plan.methods])
    done = len([r for r in results if r.key.method in plan.methods])
    return (f"# {plan.grid}: preset {plan.preset}, seeds {plan.seeds}, environments "
            f"{', '.join(f'{e.name} ({e.root})' for e in plan.envs)}\n\n"
            f"{done} of {total} runs finished; cells without a finished run show `—`. Each cell is mean ± std "
            f"(sample std) of the test mAP over seeds, from the runs' summary.json; (+x.xx) is the difference "
            f"to the reference row; bold = best in its column. Model selection: best validation epoch.\n")


def plan_claims(plan: GridPlan, results: Sequence[RunResult], metric: Metric = "seq_map") -> list[Claim]:
    """The paper's claims (:mod:`vicokd.report.scorecard`) for the plan's environments, on `metric`."""
    return score_claims(results, {env.name: paper_home(env.name) for env in plan.envs}, metric)


def plan_regime(plan: GridPlan, results: Sequence[RunResult],
                audio: Mapping[tuple[str, str], tuple[Mapping[int, float], Mapping[int, float]]] | None = None
                ) -> list[RegimeRow]:
    """The regime block (:mod:`vicokd.report.regime`) of the plan's environments and backbones."""
    return regime_rows(results, [env.name for env in plan.envs], plan.backbones, audio)


def homes_compared(plan: GridPlan) -> str:
    """``home1 against the paper's Home-1, ...``: which paper environment each of ours is held against."""
    return ", ".join(f"{env.name} against the paper's {paper_home(env.name)}" for env in plan.envs)


def write_scorecard(plan: GridPlan, claims: Sequence[Claim], frame_claims: Sequence[Claim] = (),
                    regime: Sequence[RegimeRow] = ()) -> Path:
    """``OUT/tables/scorecard.md``: first the regime block (is the world the paper's?, baseline rows
    only), then the paper's claims (:func:`plan_claims`) scored on the finished runs under test
    sequence mAP (the headline) and, when given, under frame mAP."""
    regime_text = ("## Is the world the paper's? Baseline rows only, test sequence mAP\n\n"
                   + regime_markdown(regime) + "\n") if regime else ""
    frame_text = ("\n## The same claims under test frame mAP\n\n" + scorecard_markdown(frame_claims)
                  if frame_claims else "")
    return write_text(plan.out / "tables" / "scorecard.md",
                      f"# The paper's claims ({homes_compared(plan)})\n\n" + regime_text
                      + "## Test sequence mAP (the headline)\n\n" + scorecard_markdown(claims) + frame_text)


def write_plan_tables(plan: GridPlan) -> tuple[Path, Path]:
    """``OUT/tables/<grid>.md`` and ``.csv`` from the finished runs, and ``OUT/tables/scorecard.md``."""
    results = collect_results(plan)
    write_scorecard(plan, plan_claims(plan, results), plan_claims(plan, results, "frame_map"),
                    plan_regime(plan, results))
    return write_tables(compute_tables(plan, results), plan.out / "tables", plan.grid, table_note(plan, results))


def describe_plan(plan: GridPlan) -> list[str]:
    """One line per step of the plan with its state (for --dry-run)."""
    lines = []
    for env in plan.envs:
        config = plan.env_config(env)
        prepared = "done" if (env.cache / INDEX_FILE).is_file() else "todo"
        scores = person_scores_path(config.data)
        scored = "exists (resumes)" if scores.is_file() else "todo"
        lines.append(f"prepare {env.name}: {env.root} → {env.cache} [{prepared}]")
        lines.append(f"person scores {env.name}: {config.detect.detector} → {scores} [{scored}]")
    for cell in plan.cells:
        lines.append(f"train {cell.name} [{training_state(plan.config(cell))}]")
    return lines


def reproduce(plan: GridPlan, *, dry_run: bool = False, progress: bool = True) -> tuple[Path, Path] | None:
    """Run the grid (skipping finished cells) and write its tables; with `dry_run` only print the plan."""
    if dry_run:
        for line in describe_plan(plan):
            print(line)
        print(f"{len(plan.cells)} runs; tables → {plan.out / 'tables' / plan.grid}.md/.csv")
        return None
    log = StepLog(plan.out / "steps.json", step_count(plan) + 1)
    run_plan(plan, log, progress)
    with log.step(f"tables {plan.grid}") as step:
        paths = write_plan_tables(plan)
        step.detail = f"{paths[0]}, {paths[1]}"
    print(f"total {log.wall_seconds:.0f} s in this invocation")
    return paths
