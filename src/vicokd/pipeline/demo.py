"""`vicokd demo`: the synthetic home end to end on a CPU, ending in ``OUT/report.md``.

The demo rebuilds the paper's regime at CPU scale: teacher and student start from a visual
encoder pretrained without action labels (the analogue of ImageNet pretraining), and every
Table 1 method is trained over several seeds so that differences can be told from noise.

Steps (each reused when finished, see :mod:`vicokd.pipeline.steps`):

1. synthesise the home into ``OUT/data`` (:func:`vicokd.data.synthetic.generate_home`, generator
   seed ``--data-seed``);
2. pretrain the visual encoder on a separate home (:mod:`vicokd.pipeline.pretrain`: its own
   generator seed, never the demo's clips; supervised by what the simulator knows per frame,
   never by action labels) into ``OUT/pretrain/encoder.safetensors``;
3. prepare ``OUT/cache``; person scores from the generator's ground-truth visibility (the
   ``groundtruth`` detector: no detector is run on the synthetic frames);
4. frozen encoders (the default): the features of the pretrained visual encoder and of a
   seeded, randomly initialised audio encoder for every grid frame, ``OUT/features``
   (``--finetune`` trains the encoders end to end instead, starting from the same weights);
5. the Table-1 grid of :mod:`vicokd.pipeline.grid` for one backbone and ``--seeds`` seeds:
   teacher, then every student method (:data:`DEMO_METHODS`) with frame (V_F) and sequence (V_S)
   labels;
6. the report: Table 1 as mean ± std over seeds (the same table code as ``vicokd reproduce``),
   the gradient share of every loss term, per-class AP, Fig. 3-style validation curves, the floor
   plan, the time of every step and the configs used.

The demo home acts only the look-alike pairs whose sound tells them apart (CleanVacuum vs Clean,
UsePhone vs ReadBook, Drink vs Eat) plus Sitdown and Standup (:data:`DEMO_CLASSES`): with
few clips, fewer classes leave more examples per class.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vicokd.config import config_to_yaml
from vicokd.data.annotations import frame_labels
from vicokd.data.cache import load_images, read_index
from vicokd.data.features import feature_path
from vicokd.data.person_scores import read_person_scores
from vicokd.data.synthetic import SynthOptions
from vicokd.data.synthetic.scene import build_home
from vicokd.engine.data import person_scores_path
from vicokd.engine.features import compute_features
from vicokd.engine.grad_share import format_shares
from vicokd.engine.run import model_from_checkpoint
from vicokd.methods import method_label
from vicokd.pipeline.grid import (
    Cell,
    EnvData,
    GridPlan,
    collect_results,
    compute_tables,
    make_plan,
    prepare_env,
    run_cells,
    step_count,
)
from vicokd.pipeline.home import demo_synth_options, synthesise_or_reuse
from vicokd.pipeline.pretrain import ENCODER_FILE, REPORT_FILE, PretrainOptions, run_pretrain
from vicokd.pipeline.steps import StepLog
from vicokd.report._io import write_csv, write_text
from vicokd.report.attention import attention_maps, plot_attention_grid
from vicokd.report.curves import plot_curves, plot_grouped_bars, read_last_epoch, read_metric_curve
from vicokd.report.tables import (
    METRIC_NAMES,
    SUPERVISION_NAMES,
    Metric,
    RunResult,
    Stat,
    markdown_table,
    stat_of,
    table_markdown,
    write_tables,
)

DEMO_ENV = "synthetic-home"
DEMO_METHODS = ("teacher", "student", "logitkd", "modalkd", "dualkd", "cokd", "vicokd", "vicokd-ml")
DEFAULT_CLIPS = 300  # 89 test clips: seed-to-seed std of one method 0.5-1.0 points (docs/experiments/demo-regime.md)
DEFAULT_SEEDS = 3
FAST_CLIPS = 16  # --fast: a smoke run through every step; its numbers mean little
FAST_EPOCHS = 2
FAST_SEEDS = 2
FAST_PRETRAIN = {"clips": 6, "epochs": 1}
ATTENTION_CLIPS = 2  # test clips shown in the attention figure


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
    def features_dir(self) -> Path:
        return self.out / "features"

    def synth_options(self) -> SynthOptions:
        return demo_synth_options(self.num_clips, self.views, self.data_seed)

    def pretrain_options(self) -> PretrainOptions:
        sizes = FAST_PRETRAIN if self.fast else {}
        return PretrainOptions(out=self.out / "pretrain", data_seed=self.data_seed, views=self.views,
                               workers=self.workers, overrides=self.overrides, **sizes)  # type: ignore[arg-type]

    def plan(self) -> GridPlan:
        env = EnvData(DEMO_ENV, self.out / "data", self.out / "cache")
        overrides = [f"optim.epochs={self.num_epochs}"] if self.num_epochs else []
        overrides.append(f"model.visual.pretrained={self.encoder_path}")
        if not self.finetune:
            overrides.append(f"data.features={self.features_dir}")
        return make_plan("table1", [env], seeds=self.num_seeds, preset="demo", out=self.out,
                         backbones=[self.backbone], methods=DEMO_METHODS, overrides=[*overrides, *self.overrides],
                         workers=self.workers)


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


def pretrain(options: DemoOptions, log: StepLog, progress: bool = True) -> None:
    """Step: the visual encoder pretrained on a separate home, without action labels."""
    pretrain_options = options.pretrain_options()
    with log.step(f"pretrain the visual encoder ({pretrain_options.clips} clips of another home, "
                  f"{pretrain_options.epochs} epochs)") as step:
        reused = (pretrain_options.out / REPORT_FILE).is_file() and options.encoder_path.is_file()
        report = run_pretrain(pretrain_options, progress=progress)
        if reused:
            step.status = "reused"
        step.seconds = sum(s or 0.0 for s in report.get("step_seconds", {}).values()) or None
        step.detail = f"{options.encoder_path}, targets {', '.join(report['request']['targets'])}"


def encoder_features(options: DemoOptions, plan: GridPlan, log: StepLog, progress: bool = True) -> None:
    """Step: frozen-encoder features of every grid frame (pretrained visual, seeded random audio)."""
    with log.step("encoder features (frozen encoders)") as step:
        config = plan.env_config(plan.envs[0])
        index = read_index(config.data.cache)
        done = all(feature_path(options.features_dir, key, kind).is_file()
                   for key in index.clips for kind in ("visual", "audio"))
        compute_features(config, options.features_dir, progress=progress)
        step.status = "reused" if done else "done"
        step.detail = f"{len(index.clips)} clips into {options.features_dir}"


# ------------------------------------------------------------------------------------ report


def _cell(plan: GridPlan, method: str, supervision: str = "frame", seed: int | None = None) -> Cell:
    return Cell(plan.envs[0], plan.backbones[0], supervision, method, plan.seeds[0] if seed is None else seed)


def _stat(results: Sequence[RunResult], plan: GridPlan, method: str, supervision: str, metric: Metric
          ) -> Stat | None:
    return stat_of(results, _cell(plan, method, supervision).key, metric)[0]


def _text(stat: Stat) -> str:
    return f"{stat.mean:.2f}" + (f" ± {stat.std:.2f}" if stat.std is not None else "")


def compare(name_a: str, a: Stat | None, name_b: str, b: Stat | None) -> str | None:
    """``A m ± s vs B m ± s: +d, more than the larger std`` (or ``within the larger std``)."""
    if a is None or b is None:
        return None
    diff = a.mean - b.mean
    spread = max(a.std or 0.0, b.std or 0.0)
    if a.std is None or b.std is None:
        verdict = "one seed: no spread to judge by"
    elif abs(diff) > spread:
        verdict = f"{'above' if diff > 0 else 'below'} by more than the larger std ({spread:.2f})"
    else:
        verdict = f"within the larger std ({spread:.2f}): no difference"
    return f"{name_a} {_text(a)} vs {name_b} {_text(b)}: {diff:+.2f}, {verdict}."


def findings(plan: GridPlan, results: Sequence[RunResult]) -> list[str]:
    """Plain statements of what the runs measured: test mAP, mean ± std over seeds."""
    lines = []
    pairs = (("teacher", "student"), ("cokd", "student"), ("vicokd", "student"), ("vicokd", "cokd"),
             ("vicokd-ml", "cokd"))
    for metric in ("seq_map", "frame_map"):
        for sup, tag in (("frame", "V_F"), ("sequence", "V_S")):
            for a, b in pairs:
                stat_a = _stat(results, plan, a, "frame" if a == "teacher" else sup, metric)
                line = compare(method_label(a), stat_a, method_label(b), _stat(results, plan, b, sup, metric))
                if line:
                    lines.append(f"{tag}, {METRIC_NAMES[metric]}: {line}")
    return lines


def per_class_section(plan: GridPlan, summaries: dict[Cell, dict[str, Any]], plots: Path) -> str:
    """Per-class test AP (sequence level) of teacher, student and ViCoKD (V_F), table + bar chart."""
    chosen = {"Teacher": _cell(plan, "teacher"), "Student V_F": _cell(plan, "student"),
              "ViCoKD V_F": _cell(plan, "vicokd")}
    tables = {label: {row["class"]: row["ap"] for row in summaries[cell]["test"]["per_class"]}
              for label, cell in chosen.items() if cell in summaries}
    if not tables:
        return ""
    classes = list(next(iter(tables.values())))
    series = {label: [table.get(c) for c in classes] for label, table in tables.items()}
    png, csv = plot_grouped_bars(classes, series, plots / "per-class-ap.png", title="Test AP per class (sequence)",
                                 ylabel="AP [%]")
    rows = [[c, *("—" if v is None else f"{v:.2f}" for v in (series[label][i] for label in series))]
            for i, c in enumerate(classes)]
    return (f"## Per-class AP (test, sequence level, seed {plan.seeds[0]})\n\n"
            + markdown_table(["class", *series], rows)
            + f"\n![per-class AP]({png.relative_to(plots.parent)}) ([data]({csv.relative_to(plots.parent)}))\n")


def loss_terms_section(plan: GridPlan, summaries: dict[Cell, dict[str, Any]]) -> str:
    """Each first-seed run's unweighted loss terms in its last training epoch (what the optimiser saw)."""
    cells = [cell for cell in summaries if cell.seed == plan.seeds[0]]
    terms = {cell: read_last_epoch(plan.out / "runs" / cell.name / "metrics.csv") for cell in cells}
    names = [n for n in ("frame", "seq", "fd", "ld", "modal", "vc", "human", "loss")
             if any(n in t for t in terms.values())]
    rows = [[cell.name, *(f"{terms[cell][n]:.4g}" if n in terms[cell] else "" for n in names)] for cell in cells]
    return (f"## Loss terms in the last training epoch (seed {plan.seeds[0]})\n\n"
            "Unweighted terms, mean over the epoch; `loss` is their weighted sum.\n\n"
            + markdown_table(["run", *names], rows))


def grad_share_section(plan: GridPlan, summaries: dict[Cell, dict[str, Any]]) -> str:
    """Mean gradient share per weighted term of each method and supervision over seeds; inert terms called out."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cell, summary in summaries.items():
        groups.setdefault((cell.method, cell.supervision), []).append(summary.get("grad_share", {}))
    names = list(dict.fromkeys(t for shares in groups.values() for s in shares for t in s.get("share", {})))
    if not names:
        return ""
    rows, inert = [], []
    for (method, sup), shares in groups.items():
        means = {n: [s["share"][n] for s in shares if n in s.get("share", {})] for n in names}
        mean = {n: sum(v) / len(v) for n, v in means.items() if v}
        label = f"{method_label(method)} {SUPERVISION_NAMES[sup]}"
        rows.append([label, *(f"{100 * mean[n]:.2f}" if n in mean else "" for n in names)])
        inert += [f"- {label}: {line}" for line in format_shares({"share": mean, "steps": 0})[1:]]
    return ("## Gradient share of each loss term\n\n"
            "‖∂(w·L_k)/∂θ‖ / Σ_j ‖∂(w·L_j)/∂θ‖ on the trainable parameters, in percent, mean over the measured "
            f"steps (every `train.grad_share_every`) and over {len(plan.seeds)} seeds; per parameter group in each "
            "run's `summary.json`. A term under 1 % is present but does not train the model.\n\n"
            + markdown_table(["method", *names], rows) + "\n" + ("\n".join(inert) + "\n" if inert else ""))


def curves_section(plan: GridPlan, summaries: dict[Cell, dict[str, Any]], plots: Path) -> str:
    """Fig. 3-style: validation sequence mAP per epoch of each student method, per supervision."""
    out = plan.out
    parts = [f"## mAP per epoch (validation split, Fig. 3 style, seed {plan.seeds[0]})\n",
             "Validation sequence mAP after every epoch (the split carved from train for model selection; "
             "the paper's Fig. 3 plots test mAP). Dashed: the teacher's best validation mAP.\n"]
    teacher = summaries.get(_cell(plan, "teacher"))
    reference = {"Teacher (best val)": teacher["val"]["seq_map"]} if teacher and "seq_map" in teacher["val"] else {}
    for sup, tag in (("frame", "V_F"), ("sequence", "V_S")):
        curves = {}
        for method in plan.methods:
            cell = _cell(plan, method, sup)
            if method != "teacher" and cell in summaries:
                curves[method_label(method)] = read_metric_curve(out / "runs" / cell.name / "metrics.csv")
        png, csv = plot_curves(curves, plots / f"fig3-curves-{sup}.png", reference=reference,
                               title=f"{DEMO_ENV}, {plan.backbones[0]}, AV_F → {tag}: validation sequence mAP",
                               ylabel="val sequence mAP [%]")
        parts.append(f"![curves {tag}]({png.relative_to(out)}) ([data]({csv.relative_to(out)}))\n")
    return "\n".join(parts)


def _pick_moment(frames_labels: np.ndarray, visible: np.ndarray) -> int:
    """The grid frame with an action seen by the most views (ties: the earliest)."""
    score = visible.sum(axis=0) + 100 * frames_labels.any(axis=1)
    return int(np.argmax(score))


def attention_section(plan: GridPlan, summaries: dict[Cell, dict[str, Any]], plots: Path) -> str:
    """Fig. 4-style: views × {teacher, student, ViCoKD} CLS attention on chosen test clips."""
    chosen = {"Teacher": _cell(plan, "teacher"), "Student V_F": _cell(plan, "student"),
              "ViCoKD V_F": _cell(plan, "vicokd")}
    if not all(cell in summaries for cell in chosen.values()):
        return ""
    config = plan.config(chosen["Teacher"])
    models = {label: model_from_checkpoint(summaries[cell]["best_checkpoint"])[0] for label, cell in chosen.items()}
    index = read_index(config.data.cache)
    scores, _ = read_person_scores(person_scores_path(config))
    test = sorted(index.splits["test"])
    picks = [test[i] for i in np.linspace(0, len(test) - 1, min(ATTENTION_CLIPS, len(test))).round().astype(int)]
    parts = ["## Attention maps (test clips, Fig. 4 style)\n",
             "CLS attention of the last ViT block of each model's visual encoder (mean over heads), "
             "scaled to [0, 1] per image, on one moment of the clip in every view.\n"]
    for key in dict.fromkeys(picks):
        meta = index.clips[key]
        labels = frame_labels(meta.segments, meta.length, index.classes, index.fps)
        moment = _pick_moment(labels, scores[key][:, : meta.length] > config.data.person_threshold)
        frames = np.asarray(load_images(config.data.cache, key)[:, moment])  # (V, H, W, 3)
        maps = {label: attention_maps(model, frames, config.data.mean, config.data.std)
                for label, model in models.items()}
        actions = [c for c, on in zip(index.classes, labels[moment]) if on] or ["no labelled action"]
        notes = ["person" if s > config.data.person_threshold else "no person" for s in scores[key][:, moment]]
        stem = key.replace("/", "_")
        png, csv = plot_attention_grid(frames, maps, plots / f"fig4-attention-{stem}.png", view_notes=notes,
                                       title=f"{key} at {moment / index.fps:.1f} s: {', '.join(actions)}")
        parts.append(f"![attention {key}]({png.relative_to(plan.out)}) ([data]({csv.relative_to(plan.out)}))\n")
    return "\n".join(parts)


def floorplan_section(options: DemoOptions, plots: Path) -> str:
    """The generator's floor plan, copied beside the other plots, with the cameras as CSV."""
    source = options.out / "data" / "floorplan.png"
    if not source.is_file():
        return ""
    png = plots / "floorplan.png"
    shutil.copyfile(source, png)
    cameras = build_home(options.views).cameras
    csv = write_csv(plots / "floorplan.csv", ("view", "name", "x", "y", "z", "target_x", "target_y", "target_z",
                                              "hfov_deg"),
                    [{"view": k + 1, "name": cam.name, "x": cam.position[0], "y": cam.position[1],
                      "z": cam.position[2], "target_x": cam.target[0], "target_y": cam.target[1],
                      "target_z": cam.target[2], "hfov_deg": cam.hfov} for k, cam in enumerate(cameras)])
    return (f"## The synthetic home\n\n![floor plan]({png.relative_to(options.out)}) "
            f"(cameras: [{csv.name}]({csv.relative_to(options.out)}); "
            "generator notes: [data/README.md](data/README.md))\n")


def write_report(options: DemoOptions, plan: GridPlan, summaries: dict[Cell, dict[str, Any]], log: StepLog) -> Path:
    """``OUT/report.md`` with ``OUT/plots/*`` and ``OUT/tables/table1.*``."""
    out = options.out
    plots = out / "plots"
    results = collect_results(plan)
    tables = compute_tables(plan, results)
    write_tables(tables, out / "tables", plan.grid)
    index = read_index(plan.envs[0].cache)
    teacher_config = plan.config(_cell(plan, "teacher"))
    student_config = plan.config(_cell(plan, "vicokd"))
    load = os.getloadavg()
    sections = [
        "# ViCoKD demo: the synthetic home\n",
        f"{len(index.splits['train'])} train / {len(index.splits['test'])} test clips, {options.views} views, "
        f"classes {', '.join(index.classes)}; data seed {options.data_seed}; backbone {plan.backbones[0]}; "
        f"training seeds {', '.join(map(str, plan.seeds))}"
        + (", **--fast: a smoke run, too short to mean much**" if options.fast else "") + ".\n",
        "Teacher and students start from a visual encoder pretrained without action labels on a separate "
        "synthetic home ([pretrain/pretrain.json](pretrain/pretrain.json)); "
        + ("the encoders are trained end to end (`--finetune`). " if options.finetune else
           "the encoders are frozen and the runs train from their cached features (the audio encoder of the "
           "teacher is a seeded random AST). ")
        + "Person masks come from the generator's ground-truth visibility (`groundtruth` detector), "
        "not from a detector run on the frames. Models are chosen on the validation split; "
        "all numbers below are on the test split, measured by this run, mean ± sample std over the seeds.\n",
        "## What the runs measured\n", *[f"- {line}" for line in findings(plan, results)], "",
        "## Table 1 (synthetic home)\n",
        "Same code as `vicokd reproduce --grid table1` (files: [tables/table1.md](tables/table1.md), "
        "[tables/table1.csv](tables/table1.csv)).\n",
        *[table_markdown(table) for table in tables],
        per_class_section(plan, summaries, plots),
        curves_section(plan, summaries, plots),
        loss_terms_section(plan, summaries),
        grad_share_section(plan, summaries),
        attention_section(plan, summaries, plots) if options.finetune else
        "## Attention maps\n\nLeft out: with frozen encoders every model shares the pretrained visual encoder, so "
        "the Fig. 4 maps of teacher, student and ViCoKD would be the same picture. `vicokd demo --finetune` "
        "trains the encoders and draws them.\n",
        floorplan_section(options, plots),
        "## Steps and times\n",
        markdown_table(["step", "status", "seconds"],
                       [[name, status, "—" if seconds is None else f"{seconds:.1f}"]
                        for name, status, seconds in log.table_rows()]),
        f"\nSum of step times {sum(s or 0.0 for _, _, s in log.table_rows()):.0f} s; this invocation "
        f"{log.wall_seconds:.0f} s wall clock on {os.cpu_count()} CPU cores (load average at report time "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}).\n",
        "## Configs used\n",
        f"Teacher (`configs/demo/teacher.yaml` + overrides `{' '.join(plan.overrides) or 'none'}`):\n",
        f"```yaml\n{config_to_yaml(teacher_config)}```\n",
        "Students: `configs/demo/student.yaml`, the same data and optimiser settings; method and supervision "
        f"per run (e.g. ViCoKD V_F):\n\n```yaml\n{config_to_yaml(student_config)}```\n",
    ]
    return write_text(out / "report.md", "\n".join(s for s in sections if s is not None))


def run_demo(options: DemoOptions, progress: bool = True) -> Path:
    """Every step of the demo (see the module docstring); returns the report's path."""
    plan = options.plan()
    log = StepLog(options.out / "steps.json", 2 + step_count(plan) + (0 if options.finetune else 1) + 1)
    synthesise(options, log, progress)
    pretrain(options, log, progress)
    prepare_env(plan, plan.envs[0], log, progress)
    if not options.finetune:
        encoder_features(options, plan, log, progress)
    summaries = run_cells(plan, log, progress)
    with log.step("report") as step:
        report = write_report(options, plan, summaries, log)
        step.detail = str(report)
    print(f"report: {report} (this invocation {log.wall_seconds:.0f} s)")
    return report
