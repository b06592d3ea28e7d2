"""`vicokd demo`: the synthetic home end to end on a CPU, ending in ``OUT/report.md``.

Steps (each reused when finished, see :mod:`vicokd.pipeline.steps`):

1. synthesise the home into ``OUT/data`` (:func:`vicokd.data.synthetic.generate_home`);
2. prepare ``OUT/cache``; person scores from the generator's ground-truth visibility
   (the ``groundtruth`` detector: no detector is run on the synthetic frames);
3. the Table-1 grid of :mod:`vicokd.pipeline.grid` for one backbone and one seed: teacher, then
   ``student``, ``logitkd``, ``cokd``, ``vicokd`` with frame (V_F) and sequence (V_S) labels;
4. the report: Table 1 (the same table code as ``vicokd reproduce``), per-class AP of teacher vs
   student vs ViCoKD, Fig. 3-style validation curves, Fig. 4-style attention maps, the floor
   plan with the cameras, the time of every step and the configs used.

The demo home acts only the look-alike pairs whose sound tells them apart (CleanVacuum vs Clean,
UsePhone vs ReadBook, Drink vs Eat) plus Sitdown and Standup (:data:`DEMO_CLASSES`): with
few clips, fewer classes leave more examples per class.
"""

from __future__ import annotations

import json
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
from vicokd.data.person_scores import read_person_scores
from vicokd.data.synthetic import SynthOptions, generate_home
from vicokd.data.synthetic.generate import MANIFEST
from vicokd.data.synthetic.scene import build_home
from vicokd.engine.data import person_scores_path
from vicokd.engine.grad_share import format_shares
from vicokd.engine.run import model_from_checkpoint
from vicokd.errors import VicokdError
from vicokd.methods import method_label
from vicokd.pipeline.grid import (
    Cell,
    EnvData,
    GridPlan,
    collect_results,
    compute_tables,
    make_plan,
    run_plan,
    step_count,
)
from vicokd.pipeline.steps import StepLog
from vicokd.report._io import write_csv, write_text
from vicokd.report.attention import attention_maps, plot_attention_grid
from vicokd.report.curves import plot_curves, plot_grouped_bars, read_last_epoch, read_metric_curve
from vicokd.report.tables import RunResult, markdown_table, table_markdown, write_tables

DEMO_ENV = "synthetic-home"
DEMO_METHODS = ("teacher", "student", "logitkd", "cokd", "vicokd")
DEMO_CLASSES = ("Clean", "CleanVacuum", "Drink", "Eat", "ReadBook", "UsePhone", "Sitdown", "Standup")
DEFAULT_CLIPS = 100
FAST_CLIPS = 16  # --fast: a smoke run through every step; its numbers mean little
FAST_EPOCHS = 2
ATTENTION_CLIPS = 2  # test clips shown in the attention figure


@dataclass(frozen=True)
class DemoOptions:
    """What `vicokd demo` makes; None = the preset's value (or the --fast one)."""

    out: Path = Path("demo")
    clips: int | None = None
    epochs: int | None = None
    backbone: str = "multitsf"
    fast: bool = False
    views: int = 5
    seed: int = 0
    workers: int = 2  # processes rendering (synth) and decoding (prepare) clips
    overrides: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_clips(self) -> int:
        return self.clips or (FAST_CLIPS if self.fast else DEFAULT_CLIPS)

    @property
    def num_epochs(self) -> int | None:
        return self.epochs or (FAST_EPOCHS if self.fast else None)

    def synth_options(self) -> SynthOptions:
        """The generator's options: small frames at the 2.5-FPS grid rate, 20-40 s clips."""
        return SynthOptions(clips=self.num_clips, views=self.views, seed=self.seed, size=(80, 60), fps=2.5,
                            duration=(20.0, 40.0), classes=DEMO_CLASSES, supersample=1)

    def plan(self) -> GridPlan:
        env = EnvData(DEMO_ENV, self.out / "data", self.out / "cache")
        overrides = [f"optim.epochs={self.num_epochs}"] if self.num_epochs else []
        return make_plan("table1", [env], seeds=1, preset="demo", out=self.out, backbones=[self.backbone],
                         methods=DEMO_METHODS, overrides=[*overrides, *self.overrides], workers=self.workers)


def synthesise(options: DemoOptions, log: StepLog, progress: bool = True) -> None:
    """Step: the synthetic home in ``OUT/data`` (reused when finished with the same options)."""
    data = options.out / "data"
    synth = options.synth_options()
    with log.step(f"synthesise the home ({synth.clips} clips, {synth.views} views)") as step:
        manifest = data / MANIFEST
        if manifest.is_file():
            made = json.loads(manifest.read_text()).get("options")
            if made != synth.to_json():
                differing = [k for k, v in synth.to_json().items() if made is None or made.get(k) != v]
                raise VicokdError(f"{data}: made with other generator options ({', '.join(differing)}); "
                                  "choose another --out, or delete it")
            if (data / "README.md").is_file() and (data / "test.json").is_file():
                step.status = "reused"
                return
        elif data.exists() and any(data.iterdir()):
            raise VicokdError(f"{data}: exists and was not made by the demo; choose another --out")
        summary = generate_home(data, synth, workers=options.workers, progress=progress)
        step.detail = f"{summary.train} train / {summary.test} test clips, {summary.seconds / 60:.1f} min per view"


# ------------------------------------------------------------------------------------ report


def _cell(plan: GridPlan, method: str, supervision: str = "frame") -> Cell:
    return Cell(plan.envs[0], plan.backbones[0], supervision, method, plan.seeds[0])


def _result(results: Sequence[RunResult], cell: Cell) -> RunResult | None:
    return next((r for r in results if r.key == cell.key and r.seed == cell.seed), None)


def findings(plan: GridPlan, results: Sequence[RunResult]) -> list[str]:
    """Plain statements of what the runs measured (test sequence mAP)."""
    lines = []
    teacher = _result(results, _cell(plan, "teacher"))
    for sup, tag in (("frame", "V_F"), ("sequence", "V_S")):
        found = {m: _result(results, _cell(plan, m, sup)) for m in ("student", "cokd", "vicokd")}
        student, cokd, vicokd = found["student"], found["cokd"], found["vicokd"]
        if teacher and student:
            verdict = "beats" if teacher.seq_map > student.seq_map else "does not beat"
            lines.append(f"{tag}: the audio-visual teacher ({teacher.seq_map:.2f}) {verdict} the non-distilled "
                         f"student ({student.seq_map:.2f}) by {teacher.seq_map - student.seq_map:+.2f}.")
        if vicokd and student and cokd:
            lines.append(f"{tag}: ViCoKD {vicokd.seq_map:.2f} vs CoKD {cokd.seq_map:.2f} "
                         f"({vicokd.seq_map - cokd.seq_map:+.2f}) vs student {student.seq_map:.2f} "
                         f"({vicokd.seq_map - student.seq_map:+.2f}).")
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
    return ("## Per-class AP (test, sequence level)\n\n" + markdown_table(["class", *series], rows)
            + f"\n![per-class AP]({png.relative_to(plots.parent)}) ([data]({csv.relative_to(plots.parent)}))\n")


def loss_terms_section(plan: GridPlan, summaries: dict[Cell, dict[str, Any]]) -> str:
    """Each run's unweighted loss terms in its last training epoch (what the optimiser saw)."""
    terms = {cell: read_last_epoch(plan.out / "runs" / cell.name / "metrics.csv") for cell in summaries}
    names = [n for n in ("frame", "seq", "fd", "ld", "vc", "human", "loss") if any(n in t for t in terms.values())]
    rows = [[cell.name, *(f"{terms[cell][n]:.4g}" if n in terms[cell] else "" for n in names)] for cell in summaries]
    return ("## Loss terms in the last training epoch\n\n"
            "Unweighted terms, mean over the epoch (all weights are 1.0, as in the paper); `loss` is their sum.\n\n"
            + markdown_table(["run", *names], rows))


def grad_share_section(summaries: dict[Cell, dict[str, Any]]) -> str:
    """Each run's mean gradient share per weighted term; terms under 1 % are called out as inert."""
    shares = {cell: summary.get("grad_share", {}) for cell, summary in summaries.items()}
    names = list(dict.fromkeys(t for s in shares.values() for t in s.get("share", {})))
    if not names:
        return ""
    rows = [[cell.name, *(f"{100 * s['share'][n]:.2f}" if n in s.get("share", {}) else "" for n in names)]
            for cell, s in shares.items()]
    inert = [f"- {cell.name}: {line}" for cell, s in shares.items() for line in format_shares(s)[1:]]
    return ("## Gradient share of each loss term\n\n"
            "Mean over the measured steps of ‖∂(w·L_k)/∂θ‖ / Σ_j ‖∂(w·L_j)/∂θ‖ on the trainable parameters, "
            "in percent (`train.grad_share_every`; per parameter group in each run's `summary.json`). "
            "A term under 1 % is present but does not train the model.\n\n"
            + markdown_table(["run", *names], rows) + "\n" + ("\n".join(inert) + "\n" if inert else ""))


def curves_section(plan: GridPlan, summaries: dict[Cell, dict[str, Any]], plots: Path) -> str:
    """Fig. 3-style: validation sequence mAP per epoch of each student method, per supervision."""
    out = plan.out
    parts = ["## mAP per epoch (validation split, Fig. 3 style)\n",
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
        f"classes {', '.join(index.classes)}; backbone {plan.backbones[0]}, seed {plan.seeds[0]}"
        + (", **--fast: a smoke run, too short to mean much**" if options.fast else "") + ".\n",
        "Person masks come from the generator's ground-truth visibility (`groundtruth` detector), "
        "not from a detector run on the frames. Models are chosen on the validation split; "
        "all numbers below are on the test split, measured by this run.\n",
        "## What the runs measured\n", *[f"- {line}" for line in findings(plan, results)], "",
        "## Table 1 (synthetic home)\n",
        "Same code as `vicokd reproduce --grid table1` (files: [tables/table1.md](tables/table1.md), "
        "[tables/table1.csv](tables/table1.csv)).\n",
        *[table_markdown(table) for table in tables],
        per_class_section(plan, summaries, plots),
        curves_section(plan, summaries, plots),
        loss_terms_section(plan, summaries),
        grad_share_section(summaries),
        attention_section(plan, summaries, plots),
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
    log = StepLog(options.out / "steps.json", 1 + step_count(plan) + 1)
    synthesise(options, log, progress)
    summaries = run_plan(plan, log, progress)
    with log.step("report") as step:
        report = write_report(options, plan, summaries, log)
        step.detail = str(report)
    print(f"report: {report} (this invocation {log.wall_seconds:.0f} s)")
    return report
