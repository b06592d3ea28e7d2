"""`vicokd demo`: the paper's tables on two synthetic homes on a CPU, ending in ``OUT/report.md``.

The demo rebuilds the paper's regime at CPU scale: teacher and student start from a visual
encoder pretrained without action labels (the analogue of ImageNet pretraining), and every
method is trained over several seeds so that differences can be told from noise.

Steps (each reused when finished, see :mod:`vicokd.pipeline.steps`):

1. synthesise each home into ``OUT/<home>/data`` (:func:`vicokd.synthetic.generate_home`,
   generator seed ``--data-seed``): ``home1`` and ``home2`` act the same scripts under two camera
   layouts, like the paper's Home-1 (views that overlap little) and Home-2 (views close in what
   they capture);
2. pretrain the visual encoder on a separate home (:mod:`vicokd.pipeline.pretrain`: its own
   generator seed, never the demo's clips, filmed by both layouts; supervised by what the simulator
   knows per frame, never by action labels) into ``OUT/pretrain/encoder.safetensors``, and the audio encoder (the
   AST) on the same home's audio, supervised by the kinds of sound in each chunk, into
   ``OUT/pretrain-audio/encoder.safetensors`` (the analogue of the paper's AudioSet AST); both
   homes' runs start from them;
3. prepare each home's ``OUT/<home>/cache``; person scores from the generator's ground-truth
   visibility (the ``groundtruth`` detector: no detector is run on the synthetic frames);
4. frozen encoders (the default): the features of the pretrained visual and audio encoders
   for every grid frame, ``OUT/<home>/features``; with ``--finetune`` (the paper's regime, every
   run trains the top :data:`FINETUNE_BLOCKS` block of the visual encoder) the tokens below that
   block, ``OUT/<home>/features-top1``, and the audio encoder's features
   (``--finetune --set model.visual.trainable_blocks=-1`` trains the whole visual encoder from
   pixels instead, far slower);
5. the runs of every chosen part (``--only``), as one queue, ``--workers`` runs at a time in
   worker processes (:func:`vicokd.pipeline.grid.run_plans`): Table 1 (teacher and every student
   method, V_F and V_S, on every ``--backbones`` backbone and home; Table 2 is ViCoKD's rows of
   it), Table 3 (the teacher with view consistency), Table 4 (ViCoKD's five ablations on
   MultiASL) and Fig. 3 (test mAP per epoch of the student, LogitKD, CoKD and ViCoKD on
   MultiASL, logged by ``train.test_curve``, which only these runs pay for); teachers are shared
   between parts;
6. every teacher of Table 1 on the test split with its audio, with half of it and without it;
7. the report: the homes' co-visibility and view disparity, the regime block (the baseline rows
   against the paper's, met or missed), Tables 1-4 as mean ± std over seeds
   (the same table code as ``vicokd reproduce``), the claim scorecard against the paper's
   numbers, per home what the teacher hears, the transfer and what view consistency can act
   on, the gradient share of every loss term, per-class AP, Fig. 3, the floor plans, the time of
   every step and the configs used.

The demo homes act MultiSensor-Home's 16 Home-1 classes (:data:`vicokd.pipeline.home.DEMO_CLASSES`);
the pretraining home films with both camera layouts in turn. ``--only baselines`` runs only the rows
the world was calibrated on (the teacher and the plain student, every backbone and home) and the
report's regime block (:mod:`vicokd.report.regime`): docs/experiments/world.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vicokd.data.cache import read_index
from vicokd.data.features import feature_path, features_are_current
from vicokd.errors import VicokdError
from vicokd.models.backbones import BACKBONES
from vicokd.pipeline.demo_report import write_report
from vicokd.pipeline.grid import (
    GRID_METHODS,
    PAPER_BACKBONES,
    Cell,
    EnvData,
    GridPlan,
    make_plan,
    prepare_env,
    run_plans,
)
from vicokd.pipeline.home import demo_synth_options, synthesise_or_reuse
from vicokd.pipeline.pretrain import ENCODER_FILE, REPORT_FILE, PretrainOptions, run_pretrain
from vicokd.pipeline.steps import StepLog
from vicokd.report.tables import TABLE1_EXTRA_METHODS, TABLE1_METHODS
from vicokd.synthetic import SynthOptions
from vicokd.synthetic.scene import LAYOUTS
from vicokd.training.encoder_features import compute_features

DEMO_HOMES = ("home1", "home2")  # camera layouts (vicokd.synthetic.scene.LAYOUTS), one environment each
DEMO_METHODS = TABLE1_METHODS  # the paper's rows of Table 1; --beyond-paper adds TABLE1_EXTRA_METHODS
DEMO_PARTS = ("table1", "table3", "table4", "figures", "baselines")  # what --only can choose
DEFAULT_PARTS = DEMO_PARTS[:4]  # baselines: Table 1's rows without a distillation method (inside table1)
BASELINE_METHODS = ("teacher", "student")  # the rows the world is calibrated on (docs/experiments/world.md)
FIG3_BACKBONE = "multiasl"  # the paper's Fig. 3 (test mAP per epoch) and Table 4 (ablations) are on MultiASL
FIG3_METHODS = ("teacher", "student", "logitkd", "cokd", "vicokd")
TABLE4_BACKBONE = FIG3_BACKBONE
DEFAULT_CLIPS = 300  # 89 test clips: seed-to-seed std of one method 0.5-1.0 points (docs/experiments/demo-regime.md)
DEFAULT_SEEDS = 3
FAST_CLIPS = 16  # --fast: a smoke run through every step; its numbers mean little
FAST_EPOCHS = 2
FAST_SEEDS = 2
FAST_PRETRAIN = {"clips": 6, "epochs": 1}
# --finetune: the top block of the demo's 2-block ViT trains in every run, from the tokens below it
# (the class-token block makes such a run cost 2-3x a frozen one, not 15x; docs/experiments/finetune.md)
FINETUNE_BLOCKS = 1


@dataclass(frozen=True)
class DemoOptions:
    """What `vicokd demo` makes; None = the preset's value (or the --fast one)."""

    out: Path = Path("demo")
    clips: int | None = None
    epochs: int | None = None
    seeds: int | None = None  # training seeds 0 .. seeds-1
    backbone: str = "multitsf"  # the backbone of the report's detailed sections
    backbones: tuple[str, ...] = PAPER_BACKBONES  # Tables 1-3
    homes: tuple[str, ...] = DEMO_HOMES
    only: tuple[str, ...] = DEFAULT_PARTS
    fast: bool = False
    finetune: bool = False  # the paper's regime: every run trains the top block(s) of the visual encoder
    beyond_paper: bool = False  # Table 1 also runs the methods beyond the paper (ViCoKD-ML)
    views: int = 5
    data_seed: int = 0  # generator seed of the demo homes (the same scripts in both layouts)
    workers: int = 2  # processes rendering (synth), decoding (prepare) and training (runs)
    overrides: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for home in self.homes:
            if home not in LAYOUTS:
                raise VicokdError(f"--homes: unknown home {home!r} (known: {', '.join(LAYOUTS)})")
        for part in self.only:
            if part not in DEMO_PARTS:
                raise VicokdError(f"--only: unknown part {part!r} (choose from {', '.join(DEMO_PARTS)})")
        for backbone in (*self.backbones, self.backbone):
            if backbone not in BACKBONES:
                raise VicokdError(f"--backbones: unknown backbone {backbone!r} (known: {', '.join(BACKBONES)})")
        if not self.homes or not self.only or not self.backbones:
            raise VicokdError("--homes, --only and --backbones each need at least one name")

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
    def detail_backbone(self) -> str:
        """The backbone of the detailed sections: ``backbone`` when Table 1 runs it, else the first."""
        return self.backbone if self.backbone in self.backbones else self.backbones[0]

    @property
    def encoder_path(self) -> Path:
        return self.out / "pretrain" / ENCODER_FILE

    @property
    def audio_encoder_path(self) -> Path:
        return self.out / "pretrain-audio" / ENCODER_FILE

    @property
    def trainable_blocks(self) -> int:
        """``model.visual.trainable_blocks`` of the runs: as set with ``--set``, else
        :data:`FINETUNE_BLOCKS` with ``--finetune``, else 0 (frozen encoders); -1 = every block."""
        chosen = self.pretrain_options().load_config().model.visual.trainable_blocks
        return chosen if chosen is not None else (FINETUNE_BLOCKS if self.finetune else 0)

    @property
    def encoders_change(self) -> bool:
        """Whether the runs train (part of) the visual encoder, so each model looks its own way."""
        return self.trainable_blocks != 0

    def features_dir(self, home: str) -> Path | None:
        """What the runs of `home` train from: frozen features, the tokens below the trained blocks,
        or None (pixels: every block trains)."""
        blocks = self.trainable_blocks
        if blocks == -1:
            return None
        return self.out / home / ("features" if blocks == 0 else f"features-top{blocks}")

    def envs(self) -> list[EnvData]:
        """One environment per home: ``OUT/<home>/data``, ``cache`` and its :meth:`features_dir`."""
        return [EnvData(home, self.out / home / "data", self.out / home / "cache", self.features_dir(home))
                for home in self.homes]

    def synth_options(self, home: str = "home1") -> SynthOptions:
        return demo_synth_options(self.num_clips, self.views, self.data_seed, layout=home)

    def pretrain_options(self, modality: str = "visual") -> PretrainOptions:
        """Options of the visual or audio pretraining; both use the home of ``OUT/pretrain``."""
        sizes = FAST_PRETRAIN if self.fast else {}
        out = self.out / ("pretrain" if modality == "visual" else "pretrain-audio")
        return PretrainOptions(out=out, home=self.out / "pretrain" / "home", data_seed=self.data_seed,
                               views=self.views, modality=modality, workers=self.workers, overrides=self.overrides,
                               **sizes)  # type: ignore[arg-type]

    def _grid(self, grid: str, backbones: Sequence[str], methods: Sequence[str], test_curve: bool = False
              ) -> GridPlan:
        overrides = [f"optim.epochs={self.num_epochs}"] if self.num_epochs else []
        overrides.append(f"model.visual.pretrained={self.encoder_path}")
        overrides.append(f"model.audio.pretrained={self.audio_encoder_path}")
        if self.finetune:  # as set with --set if it was (self.overrides come last)
            overrides.append(f"model.visual.trainable_blocks={self.trainable_blocks}")
        if test_curve:  # Fig. 3: test mAP per epoch (logged only, the weights are the same, tested)
            overrides.append("train.test_curve=true")
        return make_plan(grid, self.envs(), seeds=self.num_seeds, preset="demo", out=self.out,
                         backbones=list(dict.fromkeys(backbones)), methods=methods,
                         overrides=[*overrides, *self.overrides], workers=self.workers,
                         parallel_runs=self.workers)

    def plan(self) -> GridPlan:
        """Table 1: the teacher and the paper's student methods (with ``--beyond-paper`` also ViCoKD-ML)
        under V_F and V_S on every backbone and home; with ``--only baselines`` (and no table1) its rows
        without a distillation method, the teacher and the plain student (what the world is calibrated
        on); with neither, the detailed backbone's teachers only, for the other tables."""
        if "table1" in self.only:
            methods: tuple[str, ...] = (*DEMO_METHODS, *(TABLE1_EXTRA_METHODS if self.beyond_paper else ()))
        else:
            methods = BASELINE_METHODS if "baselines" in self.only else ("teacher",)
        whole = "table1" in self.only or "baselines" in self.only
        return self._grid("table1", self.backbones if whole else [self.detail_backbone], methods)

    def table_plans(self) -> list[GridPlan]:
        """The other parts chosen with ``--only``: Table 2 (ViCoKD's mean ± std, from Table 1's runs),
        Table 3 (the teacher with view consistency) on the backbones, Table 4 (the ablations) and the
        Fig. 3 runs on MultiASL; teachers are shared with Table 1."""
        plans = []
        if "table1" in self.only:
            plans.append(self._grid("table2", self.backbones, GRID_METHODS["table2"]))
        if "table3" in self.only:
            plans.append(self._grid("table3", self.backbones, GRID_METHODS["table3"]))
        if "table4" in self.only:
            plans.append(self._grid("table4", [TABLE4_BACKBONE], GRID_METHODS["table4"]))
        return plans

    def figure_plan(self) -> GridPlan | None:
        """The runs of Fig. 3 (MultiASL: teacher, student, LogitKD, CoKD, ViCoKD) when ``--only`` has
        figures; they are Table 1's cells of MultiASL, so with table1 they are run once. Only they
        evaluate the test split after every epoch (``train.test_curve``: 89 more clips an epoch)."""
        return self._grid("table1", [FIG3_BACKBONE], FIG3_METHODS, test_curve=True) if "figures" in self.only \
            else None

    def all_plans(self) -> list[GridPlan]:
        """Every plan whose cells this demo runs: Fig. 3's first (a cell two plans share runs with
        the first plan's config, here its test curve), then Table 1 and the others."""
        figure = self.figure_plan()
        return [*([figure] if figure else []), self.plan(), *self.table_plans()]


def synthesise(options: DemoOptions, home: str, log: StepLog, progress: bool = True) -> None:
    """Step: the synthetic home `home` (its camera layout) in ``OUT/<home>/data`` (reused when finished)."""
    data = options.out / home / "data"
    synth = options.synth_options(home)
    with log.step(f"synthesise {home} ({synth.clips} clips, {synth.views} views)") as step:
        summary = synthesise_or_reuse(data, synth, step, retry_hint="choose another --out, or delete it",
                                      workers=options.workers, progress=progress)
        if summary is None:
            return
        step.detail = (f"{summary.train} train / {summary.test} test clips, co-visibility "
                       f"{100 * sum(summary.seen_by[2:]):.0f} %, view disparity {summary.view_disparity:.2f}")


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


def encoder_features(options: DemoOptions, plan: GridPlan, env: EnvData, log: StepLog, progress: bool = True
                     ) -> None:
    """Step: frozen-encoder features of every grid frame of one home (pretrained visual and audio encoders),
    or with ``--finetune`` the visual tokens below the blocks the runs train."""
    assert env.features is not None
    blocks = options.trainable_blocks
    what = "frozen encoders" if blocks == 0 else f"visual tokens below the top {blocks} block(s)"
    with log.step(f"encoder features {env.name} ({what})") as step:
        config = plan.env_config(env)
        index = read_index(config.data.cache)
        done = all(feature_path(env.features, key, kind).is_file()
                   for key in index.clips for kind in ("visual", "audio")) and all(
            features_are_current(env.features, meta) for meta in index.clips.values())
        compute_features(config, env.features, progress=progress)
        step.status = "reused" if done else "done"
        step.detail = f"{len(index.clips)} clips into {env.features}"


AUDIO_CONDITIONS = ("av", "audio-missing", "visual")  # what the teacher is evaluated under (vicokd evaluate)


def teacher_conditions(options: DemoOptions, plan: GridPlan, summaries: dict[Cell, dict], log: StepLog) -> None:
    """Step: every teacher of Table 1 on the test split with its audio, with half the views' audio
    dropped (``audio-missing``) and with none (``visual``), into ``<run>/eval/test-<condition>.json``
    (the regime block needs every backbone's; the detailed sections read the detailed backbone's)."""
    from vicokd.training.evaluate import evaluate

    with log.step("the teacher with and without its audio (test split)") as step:
        done = 0
        for cell, summary in summaries.items():
            if cell.method != "teacher" or cell.backbone not in plan.backbones:
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
    plan, plans = options.plan(), options.all_plans()
    runs = len(set().union(*(p.cells for p in plans)))
    homes = len(options.homes)
    log = StepLog(options.out / "steps.json", homes * (3 + (0 if plan.envs[0].features is None else 1)) + 2 + runs + 2)
    for home in options.homes:
        synthesise(options, home, log, progress)
    pretrain(options, log, "visual", progress)
    pretrain(options, log, "audio", progress)
    for env in plan.envs:
        prepare_env(plan, env, log, progress)
        if env.features is not None:
            encoder_features(options, plan, env, log, progress)
    summaries = run_plans(plans, log, progress)
    teacher_conditions(options, plan, summaries, log)
    with log.step("report") as step:
        report = write_report(options, plan, options.table_plans(), summaries, log)
        step.detail = str(report)
    print(f"report: {report} (this invocation {log.wall_seconds:.0f} s)")
    return report
