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
   run trains the top :data:`~vicokd.pipeline.demo_options.FINETUNE_BLOCKS` block of the visual
   encoder) the tokens below that block, ``OUT/<home>/features-top1``, and the audio encoder's features
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

from pathlib import Path

from vicokd.data.cache import read_index
from vicokd.data.features import feature_path, features_are_current
from vicokd.pipeline.demo_options import AUDIO_CONDITIONS, DemoOptions
from vicokd.pipeline.demo_report import write_report
from vicokd.pipeline.grid import (
    Cell,
    EnvData,
    GridPlan,
    prepare_env,
    run_plans,
)
from vicokd.pipeline.home import synthesise_or_reuse
from vicokd.pipeline.pretrain import ENCODER_FILE, REPORT_FILE, run_pretrain
from vicokd.pipeline.steps import StepLog
from vicokd.training.encoder_features import compute_features


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
