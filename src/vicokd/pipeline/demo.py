"""`vicokd demo`: the synthetic home end to end on a CPU, ending in ``OUT/report.md``.

The demo rebuilds the paper's regime at CPU scale: teacher and student start from a visual
encoder pretrained without action labels (the analogue of ImageNet pretraining), and every
Table 1 method is trained over several seeds so that differences can be told from noise.

Steps (each reused when finished, see :mod:`vicokd.pipeline.steps`):

1. synthesise the home into ``OUT/data`` (:func:`vicokd.data.synthetic.generate_home`, generator
   seed ``--data-seed``);
2. pretrain the visual encoder on a separate home (:mod:`vicokd.pipeline.pretrain`: its own
   generator seed, never the demo's clips; supervised by what the simulator knows per frame,
   never by action labels) into ``OUT/pretrain/encoder.safetensors``, and the audio encoder (the
   AST) on the same home's audio, supervised by the kinds of sound in each chunk, into
   ``OUT/pretrain-audio/encoder.safetensors`` (the analogue of the paper's AudioSet AST);
3. prepare ``OUT/cache``; person scores from the generator's ground-truth visibility (the
   ``groundtruth`` detector: no detector is run on the synthetic frames);
4. frozen encoders (the default): the features of the pretrained visual and audio encoders
   for every grid frame, ``OUT/features``
   (``--finetune`` trains the encoders end to end instead, starting from the same weights);
5. the Table-1 grid of :mod:`vicokd.pipeline.grid` for one backbone and ``--seeds`` seeds:
   teacher, then every student method (:data:`DEMO_METHODS`) with frame (V_F) and sequence (V_S)
   labels; then the Table-3 grid (the teacher with view consistency, same backbone) and the
   Table-4 grid (ViCoKD's five ablations on MultiASL, with its own teachers);
6. every teacher on the test split with its audio, with half of it and without it;
7. the report: Tables 1, 3 and 4 as mean ± std over seeds (the same table code as ``vicokd
   reproduce``), the claim scorecard against the paper's numbers, the gradient share of every
   loss term, per-class AP, Fig. 3-style validation curves, the floor plan, the time of every
   step and the configs used.

The demo home acts only the look-alike pairs whose sound tells them apart (CleanVacuum vs Clean,
UsePhone vs ReadBook, Drink vs Eat) plus Sitdown and Standup (:data:`DEMO_CLASSES`): with
few clips, fewer classes leave more examples per class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vicokd.data.cache import read_index
from vicokd.data.features import feature_path, features_are_current
from vicokd.data.synthetic import SynthOptions
from vicokd.engine.features import compute_features
from vicokd.pipeline.demo_report import write_report
from vicokd.pipeline.grid import (
    GRID_METHODS,
    Cell,
    EnvData,
    GridPlan,
    make_plan,
    prepare_env,
    run_cells,
    step_count,
)
from vicokd.pipeline.home import demo_synth_options, synthesise_or_reuse
from vicokd.pipeline.pretrain import ENCODER_FILE, REPORT_FILE, PretrainOptions, run_pretrain
from vicokd.pipeline.steps import StepLog

DEMO_ENV = "synthetic-home"
DEMO_METHODS = ("teacher", "student", "logitkd", "modalkd", "dualkd", "cokd", "vicokd", "vicokd-ml")
TABLE4_BACKBONE = "multiasl"  # the paper's ablations (Table 4) are on MultiASL
DEFAULT_CLIPS = 300  # 89 test clips: seed-to-seed std of one method 0.5-1.0 points (docs/experiments/demo-regime.md)
DEFAULT_SEEDS = 3
FAST_CLIPS = 16  # --fast: a smoke run through every step; its numbers mean little
FAST_EPOCHS = 2
FAST_SEEDS = 2
FAST_PRETRAIN = {"clips": 6, "epochs": 1}


@dataclass(frozen=True)
class DemoOptions:
    """What `vicokd demo` makes; None = the preset's value (or the --fast one)."""

    out: Path = Path("demo")
    clips: int | None = None
    epochs: int | None = None
    seeds: int | None = None  # training seeds 0 .. seeds-1
    backbone: str = "multitsf"
    fast: bool = False
    finetune: bool = False  # train the encoders end to end instead of from cached frozen features
    views: int = 5
    data_seed: int = 0  # generator seed of the demo home
    workers: int = 2  # processes rendering (synth) and decoding (prepare) clips
    overrides: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_clips(self) -> int:
        return self.clips or (FAST_CLIPS if self.fast else DEFAULT_CLIPS)

    @property
    def num_epochs(self) -> int | None:
        return self.epochs or (FAST_EPOCHS if self.fast else None)

    @property
    def num_seeds(self) -> int:
        return self.seeds or (FAST_SEEDS if self.fast else DEFAULT_SEEDS)

    @property
    def encoder_path(self) -> Path:
        return self.out / "pretrain" / ENCODER_FILE

    @property
    def audio_encoder_path(self) -> Path:
        return self.out / "pretrain-audio" / ENCODER_FILE

    @property
    def trainable_blocks(self) -> int:
        """``model.visual.trainable_blocks`` of the runs (0: frozen encoders)."""
        return self.pretrain_options().load_config().model.visual.trainable_blocks or 0

    @property
    def encoders_change(self) -> bool:
        """Whether the runs train (part of) the visual encoder, so each model looks its own way."""
        return self.finetune or self.trainable_blocks != 0

    @property
    def features_dir(self) -> Path:
        blocks = self.trainable_blocks
        return self.out / ("features" if blocks == 0 else f"features-top{blocks}")

    def synth_options(self) -> SynthOptions:
        return demo_synth_options(self.num_clips, self.views, self.data_seed)

    def pretrain_options(self, modality: str = "visual") -> PretrainOptions:
        """Options of the visual or audio pretraining; both use the home of ``OUT/pretrain``."""
        sizes = FAST_PRETRAIN if self.fast else {}
        out = self.out / ("pretrain" if modality == "visual" else "pretrain-audio")
        return PretrainOptions(out=out, home=self.out / "pretrain" / "home", data_seed=self.data_seed,
                               views=self.views, modality=modality, workers=self.workers, overrides=self.overrides,
                               **sizes)  # type: ignore[arg-type]

    def _grid(self, grid: str, backbone: str, methods: tuple[str, ...]) -> GridPlan:
        env = EnvData(DEMO_ENV, self.out / "data", self.out / "cache")
        overrides = [f"optim.epochs={self.num_epochs}"] if self.num_epochs else []
        overrides.append(f"model.visual.pretrained={self.encoder_path}")
        overrides.append(f"model.audio.pretrained={self.audio_encoder_path}")
        if not self.finetune:
            overrides.append(f"data.features={self.features_dir}")
        return make_plan(grid, [env], seeds=self.num_seeds, preset="demo", out=self.out, backbones=[backbone],
                         methods=methods, overrides=[*overrides, *self.overrides], workers=self.workers)

    def plan(self) -> GridPlan:
        """Table 1 on the demo's backbone: the teacher and every student method under V_F and V_S."""
        return self._grid("table1", self.backbone, DEMO_METHODS)

    def table_plans(self) -> list[GridPlan]:
        """Table 3 (the teacher with view consistency) on the demo's backbone and Table 4 (the
        ablations) on MultiASL, the paper's backbone of Table 4; their teachers of the demo's
        backbone are Table 1's."""
        return [self._grid("table3", self.backbone, GRID_METHODS["table3"]),
                self._grid("table4", TABLE4_BACKBONE, GRID_METHODS["table4"])]


def synthesise(options: DemoOptions, log: StepLog, progress: bool = True) -> None:
    """Step: the synthetic home in ``OUT/data`` (reused when finished with the same options)."""
    data = options.out / "data"
    synth = options.synth_options()
    with log.step(f"synthesise the home ({synth.clips} clips, {synth.views} views)") as step:
        summary = synthesise_or_reuse(data, synth, step, retry_hint="choose another --out, or delete it",
                                      workers=options.workers, progress=progress)
        if summary is None:
            return
        step.detail = f"{summary.train} train / {summary.test} test clips, {summary.seconds / 60:.1f} min per view"


def pretrain(options: DemoOptions, log: StepLog, modality: str = "visual", progress: bool = True) -> None:
    """Step: the visual or audio encoder pretrained on a separate home, without action labels."""
    pretrain_options = options.pretrain_options(modality)
    encoder = pretrain_options.out / ENCODER_FILE
    with log.step(f"pretrain the {modality} encoder ({pretrain_options.clips} clips of another home, "
                  f"{pretrain_options.epochs} epochs)") as step:
        reused = (pretrain_options.out / REPORT_FILE).is_file() and encoder.is_file()
        report = run_pretrain(pretrain_options, progress=progress)
        if reused:
            step.status = "reused"
        step.seconds = sum(s or 0.0 for s in report.get("step_seconds", {}).values()) or None
        step.detail = f"{encoder}, targets {', '.join(report['request']['targets'])}"


def encoder_features(options: DemoOptions, plan: GridPlan, log: StepLog, progress: bool = True) -> None:
    """Step: frozen-encoder features of every grid frame (pretrained visual and audio encoders)."""
    with log.step("encoder features (frozen encoders)") as step:
        config = plan.env_config(plan.envs[0])
        index = read_index(config.data.cache)
        done = all(feature_path(options.features_dir, key, kind).is_file()
                   for key in index.clips for kind in ("visual", "audio")) and all(
            features_are_current(options.features_dir, meta) for meta in index.clips.values())
        compute_features(config, options.features_dir, progress=progress)
        step.status = "reused" if done else "done"
        step.detail = f"{len(index.clips)} clips into {options.features_dir}"


AUDIO_CONDITIONS = ("av", "audio-missing", "visual")  # what the teacher is evaluated under (vicokd evaluate)


def teacher_conditions(plan: GridPlan, summaries: dict[Cell, dict], log: StepLog, progress: bool = True) -> None:
    """Step: every teacher seed on the test split with its audio, with half the views' audio dropped
    (``audio-missing``) and with none (``visual``), into ``<run>/eval/test-<condition>.json``."""
    from vicokd.engine.run import evaluate

    with log.step("the teacher with and without its audio (test split)") as step:
        done = 0
        for cell, summary in summaries.items():
            if cell.method != "teacher":
                continue
            for condition in AUDIO_CONDITIONS:
                target = plan.out / "runs" / cell.name / "eval" / f"test-{condition}.json"
                if not target.is_file():
                    evaluate(summary["best_checkpoint"], split="test", condition=condition, out=target,
                             progress=False)
                    done += 1
        step.status = "done" if done else "reused"
        step.detail = f"{done} evaluations"


def run_demo(options: DemoOptions, progress: bool = True) -> Path:
    """Every step of the demo (see the module docstring); returns the report's path."""
    plan, tables = options.plan(), options.table_plans()
    runs = len(set(plan.cells).union(*(extra.cells for extra in tables)))
    log = StepLog(options.out / "steps.json", 3 + step_count(plan) - len(plan.cells) + runs
                  + (0 if options.finetune else 1) + 2)
    synthesise(options, log, progress)
    pretrain(options, log, "visual", progress)
    pretrain(options, log, "audio", progress)
    prepare_env(plan, plan.envs[0], log, progress)
    if not options.finetune:
        encoder_features(options, plan, log, progress)
    summaries = run_cells(plan, log, progress)
    for extra in tables:
        summaries.update(run_cells(extra, log, progress, done=summaries))
    teacher_conditions(plan, summaries, log, progress)
    with log.step("report") as step:
        report = write_report(options, plan, tables, summaries, log)
        step.detail = str(report)
    print(f"report: {report} (this invocation {log.wall_seconds:.0f} s)")
    return report
