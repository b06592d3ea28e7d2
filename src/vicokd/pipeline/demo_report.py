"""The demo's ``OUT/report.md``: what the runs measured, Table 1, per-class AP, curves, loss terms,
gradient shares, attention maps (with ``--finetune``), the floor plan, step times and configs.

Reads the finished runs of a :class:`vicokd.pipeline.demo_options.DemoOptions` grid; writes the report,
``OUT/plots/*`` and ``OUT/tables/*``. Every number in it is read from the runs' files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import replace as replace_plan
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vicokd.config import config_to_yaml, replace
from vicokd.data.annotations import frame_labels
from vicokd.data.cache import load_images, read_index
from vicokd.data.person_scores import person_mask, person_scores_path, read_person_scores
from vicokd.errors import VicokdError
from vicokd.io import write_csv, write_text
from vicokd.methods import method_label
from vicokd.models import MultiViewActionModel
from vicokd.models.checkpoint import model_from_checkpoint
from vicokd.pipeline.demo_options import AUDIO_CONDITIONS, FIG3_BACKBONE, FIG3_METHODS, DemoOptions
from vicokd.pipeline.demo_probes import (
    ACTOR_STRIDE,
    actor_frames,
    attention_grid,
    attention_on_actor,
    view_pair_divergence,
)
from vicokd.pipeline.grid import (
    Cell,
    EnvData,
    GridPlan,
    collect_results,
    compute_tables,
    homes_compared,
    plan_claims,
    plan_regime,
    write_scorecard,
)
from vicokd.pipeline.steps import StepLog
from vicokd.report.attention import attention_maps, plot_attention_grid
from vicokd.report.curves import plot_curves, plot_grouped_bars, read_last_epoch, read_metric_curve
from vicokd.report.regime import RegimeRow, regime_markdown
from vicokd.report.scorecard import Claim, attention_claim, counts_line, scorecard_markdown
from vicokd.report.tables import (
    METRIC_NAMES,
    SUPERVISION_NAMES,
    Metric,
    RunResult,
    Stat,
    backbone_label,
    markdown_table,
    stat_of,
    table_markdown,
    write_tables,
)
from vicokd.synthetic.scene import LAYOUTS, build_home, pairwise_disparity
from vicokd.training.grad_share import format_shares

ATTENTION_CLIPS = 2  # test clips shown in the attention figure
FIG4_BACKBONE = "multiasl"  # the paper's Fig. 4 shows MultiASL models
FIG4_MODELS = (("Teacher", "teacher"), ("Student V_F", "student"), ("CoKD V_F", "cokd"), ("ViCoKD V_F", "vicokd"))


def _cell(plan: GridPlan, method: str, supervision: str = "frame", seed: int | None = None) -> Cell:
    return Cell(plan.envs[0], plan.backbones[0], supervision, method, plan.seeds[0] if seed is None else seed)


def _stat(results: Sequence[RunResult], plan: GridPlan, method: str, supervision: str, metric: Metric
          ) -> Stat | None:
    return stat_of(results, _cell(plan, method, supervision).key, metric)[0]


def _text(stat: Stat, fmt: str = ".2f") -> str:
    spread = fmt.lstrip("+")
    return f"{stat.mean:{fmt}}" + (f" ± {stat.std:{spread}}" if stat.std is not None else "")


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


def teacher_audio(plan: GridPlan) -> dict[tuple[str, str], tuple[dict[int, float], dict[int, float]]]:
    """Per (environment, backbone) the teachers' test sequence mAP per seed with their audio and under
    ``audio-missing``, where ``vicokd demo`` evaluated them."""
    found = {}
    for env in plan.envs:
        for backbone in plan.backbones:
            found[(env.name, backbone)] = tuple(
                {seed: r["seq_map"] for seed in plan.seeds
                 if (r := _eval_report(plan, Cell(env, backbone, "frame", "teacher", seed), condition))}
                for condition in ("av", "audio-missing"))
    return found  # type: ignore[return-value]


def regime_section(rows: Sequence[RegimeRow]) -> str:
    """Is the world the paper's? The baseline rows beside the paper's, each met or missed
    (:mod:`vicokd.report.regime`), before any claim about a method."""
    return ("## Is the world the paper's? (baseline rows only)\n\n"
            "Before the claims about the methods: the statistics of the rows that involve no distillation "
            "method (the teacher, the plain student under V_F and V_S, the teacher without half its audio), "
            "test sequence mAP, ours the mean ± std over the seeds of the per-seed difference, each against "
            "the target the demo's world was calibrated to on another data seed "
            "(`docs/experiments/world.md` of the source tree). Where a target is missed, the scorecard below "
            "measures the world as much as the method.\n\n" + regime_markdown(rows))


def scorecard_section(plan: GridPlan, results: Sequence[RunResult], extra: Sequence[Claim] = (),
                      regime: Sequence[RegimeRow] = ()) -> str:
    """The paper's claims that this run can test, ours beside the paper's (:mod:`vicokd.report.scorecard`),
    under test sequence mAP (the headline) and the counts under frame mAP; `extra`: claims measured outside
    the tables (Fig. 4's)."""
    claims = [*plan_claims(plan, results), *extra]
    frame_claims = plan_claims(plan, results, "frame_map")
    write_scorecard(plan, claims, frame_claims, regime)
    return ("## Claim scorecard\n\n"
            "Every comparison of the paper's Tables 1, 3 and 4 that this run's cells can test, and Fig. 4's where "
            "the encoders train "
            f"({homes_compared(plan)}; test sequence mAP). *std of diff*: the std over seeds of the paired "
            "per-seed difference. "
            "**holds**: our difference has the paper's sign and is larger than its std; **contradicted**: the "
            "other sign, larger than its std; **within noise**: not larger than its std; claims of cells this "
            "run left out (`--only`, `--backbones`, `--homes`) count as not run; "
            "file: [tables/scorecard.md](tables/scorecard.md), as `vicokd reproduce` writes it for its grid, "
            "with the same claims under test frame mAP.\n\n"
            + scorecard_markdown(claims)
            + "\nThe paper does not say over what its mAP is taken; the authors' code's headline is the clip-level "
            f"(sequence) mAP, used above. The same claims under frame mAP: {counts_line(frame_claims)}.\n")


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
    cells = [cell for cell in plan.cells if cell in summaries and cell.seed == plan.seeds[0]]
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
    for cell in plan.cells:
        if cell in summaries:
            groups.setdefault((cell.method, cell.supervision), []).append(summaries[cell].get("grad_share", {}))
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
    """Fig. 3: test sequence mAP per epoch (``train.test_curve``) of the student, LogitKD, CoKD and
    ViCoKD on MultiASL, per home and supervision; the models are still chosen on validation."""

    out = plan.out
    parts = [f"## Fig. 3: test mAP per epoch ({backbone_label(FIG3_BACKBONE)}, seed {plan.seeds[0]})\n",
             "Test sequence mAP after every epoch, as the paper's Fig. 3 draws it (logged by `train.test_curve`, "
             "which changes no weight: tested); each run's model is still the best *validation* epoch, marked ●. "
             "Dashed: the teacher's test mAP.\n"]
    for env in plan.envs:
        teacher = summaries.get(Cell(env, FIG3_BACKBONE, "frame", "teacher", plan.seeds[0]))
        reference = {"Teacher (test)": teacher["test"]["seq_map"]} if teacher else {}
        for sup, tag in (("frame", "V_F"), ("sequence", "V_S")):
            curves, chosen = {}, {}
            for method in FIG3_METHODS[1:]:
                cell = Cell(env, FIG3_BACKBONE, sup, method, plan.seeds[0])
                if cell not in summaries:
                    continue
                try:
                    curves[method_label(method)] = read_metric_curve(out / "runs" / cell.name / "metrics.csv",
                                                                     "test_curve/seq_map")
                except VicokdError:  # a run made before test curves were logged
                    continue
                chosen[method_label(method)] = summaries[cell]["best_epoch"] + 1
            if not curves:
                continue
            png, csv = plot_curves(curves, plots / f"fig3-{env.name}-{sup}.png", reference=reference,
                                   marks=chosen, title=f"{env.name}, {backbone_label(FIG3_BACKBONE)}, AV_F → {tag}: "
                                   "test sequence mAP per epoch", ylabel="test sequence mAP [%]")
            parts.append(f"![Fig. 3 {env.name} {tag}]({png.relative_to(out)}) ([data]({csv.relative_to(out)}))\n")
    return "\n".join(parts) if len(parts) > 2 else ""


def _pick_moment(frames_labels: np.ndarray, visible: np.ndarray) -> int:
    """The grid frame with an action seen by the most views (ties: the earliest)."""
    score = visible.sum(axis=0) + 100 * frames_labels.any(axis=1)
    return int(np.argmax(score))


def fig4_plans(plan: GridPlan) -> list[GridPlan]:
    """One plan per home on the backbone of the paper's Fig. 4 (MultiASL; the first backbone if it did not run)."""
    backbone = FIG4_BACKBONE if FIG4_BACKBONE in plan.backbones else plan.backbones[0]
    return [replace_plan(plan, envs=[env], backbones=[backbone]) for env in plan.envs]


def attention_section(plan: GridPlan, summaries: dict[Cell, dict[str, Any]], plots: Path) -> str:
    """Fig. 4-style: views × {teacher, student, CoKD, ViCoKD} CLS attention on chosen test clips (first seed)."""
    chosen = {label: _cell(plan, method) for label, method in FIG4_MODELS}
    if not all(cell in summaries for cell in chosen.values()):
        return ""
    config = plan.config(chosen["Teacher"])
    models = {label: model_from_checkpoint(summaries[cell]["best_checkpoint"])[0] for label, cell in chosen.items()}
    index = read_index(config.data.cache)
    scores, _ = read_person_scores(person_scores_path(config.data))
    test = sorted(index.splits["test"])
    picks = [test[i] for i in np.linspace(0, len(test) - 1, min(ATTENTION_CLIPS, len(test))).round().astype(int)]
    parts = ["## Attention maps (test clips, Fig. 4 style)\n",
             f"CLS attention of the last ViT block of each model's visual encoder (mean over heads), "
             f"{backbone_label(plan.backbones[0])}, seed {plan.seeds[0]}, scaled to [0, 1] per image, on one moment "
             "of the clip in every view.\n"]
    for key in dict.fromkeys(picks):
        meta = index.clips[key]
        labels = frame_labels(meta.segments, meta.length, index.classes, index.fps)
        moment = _pick_moment(labels, person_mask(scores[key][:, : meta.length], config.data.person_threshold))
        frames = np.asarray(load_images(config.data.cache, key)[:, moment])  # (V, H, W, 3)
        maps = {label: attention_maps(model, frames)
                for label, model in models.items()}
        actions = [c for c, on in zip(index.classes, labels[moment]) if on] or ["no labelled action"]
        seen = person_mask(scores[key][:, moment], config.data.person_threshold)
        notes = ["person" if person else "no person" for person in seen]
        stem = key.replace("/", "_")
        png, csv = plot_attention_grid(frames, maps, plots / f"fig4-attention-{plan.envs[0].name}-{stem}.png",
                                       view_notes=notes,
                                       title=f"{key} at {moment / index.fps:.1f} s: {', '.join(actions)}")
        parts.append(f"![attention {key}]({png.relative_to(plan.out)}) ([data]({csv.relative_to(plan.out)}))\n")
    return "\n".join(parts)


def homes_section(options: DemoOptions, plan: GridPlan, plots: Path) -> str:
    """The homes: floor plan (copied beside the other plots, cameras as CSV), and what the views
    capture, measured on the generator's ground-truth visibility of the labelled grid frames:
    co-visibility (share seen by at least two views) and view disparity (mean over view pairs of
    1 − Jaccard, :func:`vicokd.synthetic.scene.pairwise_disparity`)."""
    rows, pictures, indexes = [], [], []
    for env in plan.envs:
        config = plan.env_config(env)
        index = read_index(env.cache)
        indexes.append(index)
        scores, _ = read_person_scores(person_scores_path(config.data))
        seen = []
        for key, meta in index.clips.items():
            labelled = frame_labels(meta.segments, meta.length, index.classes, index.fps).any(axis=1)
            seen.append(person_mask(scores[key][:, : meta.length][:, labelled], config.data.person_threshold))
        visible = np.concatenate(seen, axis=1)
        counts = visible.sum(axis=0)
        rows.append([env.name, f"{LAYOUTS[env.name]}", f"{100 * (counts >= 2).mean():.0f} %",
                     f"{counts.mean():.2f}", f"{pairwise_disparity(visible):.2f}"])
        source = env.root / "floorplan.png"
        if source.is_file():
            png = plots / f"floorplan-{env.name}.png"
            shutil.copyfile(source, png)
            cameras = build_home(options.views, env.name).cameras
            csv = write_csv(plots / f"floorplan-{env.name}.csv",
                            ("view", "name", "x", "y", "z", "target_x", "target_y", "target_z", "hfov_deg"),
                            [{"view": k + 1, "name": cam.name, "x": cam.position[0], "y": cam.position[1],
                              "z": cam.position[2], "target_x": cam.target[0], "target_y": cam.target[1],
                              "target_z": cam.target[2], "hfov_deg": cam.hfov} for k, cam in enumerate(cameras)])
            readme = env.root.relative_to(options.out) / "README.md"
            pictures.append(f"![floor plan {env.name}]({png.relative_to(options.out)}) ({env.name} cameras: "
                            f"[{csv.name}]({csv.relative_to(options.out)}); generator notes: [{readme}]({readme}))\n")
    first = indexes[0]
    per_class = {name: {split: 0 for split in ("train", "test")} for name in first.classes}
    for split in ("train", "test"):
        for key in first.splits[split]:
            for name in {label for segment in first.clips[key].segments for label in segment["labels"]}:
                per_class[name][split] += 1
    class_rows = [[name, str(count["train"]), str(count["test"])] for name, count in per_class.items()]
    return ("## The synthetic homes\n\n"
            "The same scripts (data seed, actions, sounds at their sources) filmed by two camera layouts; the paper's "
            "Home-1 has \"greater view disparity\", its Home-2 views closer in what they capture. Measured on the "
            "labelled grid frames from the generator's ground-truth visibility: *co-visible*, the share seen by at "
            "least two views; *views seeing*, the mean number of views that see the actor; *view disparity*, the "
            "mean over view pairs of 1 − |A ∩ B| / |A ∪ B| of the frames each view sees the actor in (0: always "
            "together, 1: never).\n\n"
            + markdown_table(["home", "cameras", "co-visible", "views seeing", "view disparity"], rows) + "\n"
            + "\n".join(pictures)
            + f"\nClips in which each class is acted ({plan.envs[0].name}; every home acts the same scripts), "
            "of the training split (a fifth of it held out for validation) and the test split:\n\n"
            + markdown_table(["class", "train clips", "test clips"], class_rows))


def actor_attention_section(options: DemoOptions, plan: GridPlan, summaries: dict[Cell, dict[str, Any]]
                            ) -> tuple[str, Claim | None]:
    """The share of each visual encoder's attention that falls on the actor (the simulator's mask), and,
    where the encoders train, the Fig. 4 claim (ViCoKD's share above the student's, paired over seeds)."""
    config = plan.config(_cell(plan, "vicokd"))
    index = read_index(config.data.cache)
    classes = len(index.classes)
    encoders = {"pretrained without action labels (every run's)": MultiViewActionModel(config.model, classes)}
    torch.manual_seed(config.train.seed)
    encoders["randomly initialised (seed of the runs)"] = MultiViewActionModel(
        replace(config.model, **{"visual.pretrained": None}), classes)
    trained: dict[str, dict[int, MultiViewActionModel]] = {}
    if options.encoders_change:  # every seed's encoder: the share is a mean ± std over seeds
        for label, method in FIG4_MODELS:
            for seed in plan.seeds:
                cell = _cell(plan, method, seed=seed)
                if cell in summaries:
                    trained.setdefault(label, {})[seed] = model_from_checkpoint(summaries[cell]["best_checkpoint"])[0]
    grid = attention_grid(next(iter(encoders.values())), index.image_size)
    frames, coverage = actor_frames(options, Path(config.data.cache), set(index.splits["test"]), grid)
    if not len(frames):
        return "## Where the visual encoder looks\n\nNo test frame shows the actor: nothing to measure.\n", None
    rows, chance = [], 0.0

    def share(model: MultiViewActionModel) -> float:
        nonlocal chance
        inside, chance = attention_on_actor(model, frames, coverage)
        return 100 * inside

    for label, model in encoders.items():
        rows.append([label, f"{share(model):.1f}"])
    shares = {label: {seed: share(model) for seed, model in models.items()} for label, models in trained.items()}
    for label, values in shares.items():
        rows.append([f"{label} (trained, {len(values)} seeds)", _text(Stat(tuple(values.values())), ".1f")])
    paired = []
    for other in ("Student V_F", "CoKD V_F"):
        if "ViCoKD V_F" in shares and other in shares:
            seeds = sorted(set(shares["ViCoKD V_F"]) & set(shares[other]))
            diffs = Stat(tuple(shares["ViCoKD V_F"][s] - shares[other][s] for s in seeds))
            paired.append(f"- ViCoKD − {other.split()[0]}, paired over seeds {', '.join(map(str, seeds))}: "
                          f"{_text(diffs, '+.1f')} points"
                          + (" (the paper's Fig. 4 claim: ViCoKD attends more to the person)."
                             if other == "Student V_F" else "."))
    claim = (attention_claim(plan.envs[0].name, shares["ViCoKD V_F"], shares["Student V_F"])
             if "ViCoKD V_F" in shares and "Student V_F" in shares else None)
    if claim is not None:
        paired.append(f"- Scorecard (Fig. 4): **{claim.verdict}**.")
    return "\n".join([
        "## Where the visual encoder looks\n",
        f"Share of the last-block CLS attention (mean over heads) of each {backbone_label(plan.backbones[0])} "
        f"model's visual encoder that falls on the actor, weighted by the part "
        f"of each patch (a {grid[0]}×{grid[1]} grid) the actor covers (the simulator's mask), pooled over "
        f"{len(frames):,} test images (every {ACTOR_STRIDE}th grid frame of every test clip, each view that sees "
        f"the actor); mean ± std over seeds. Uniform "
        f"attention would give {100 * chance:.1f} %.\n",
        markdown_table(["visual encoder", "attention on the actor [%]"], rows), "", *paired, "",
    ]), claim


def _eval_report(plan: GridPlan, cell: Cell, condition: str) -> dict[str, Any] | None:
    import json

    path = plan.out / "runs" / cell.name / "eval" / f"test-{condition}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def teacher_audio_section(plan: GridPlan) -> str:
    """The teacher with its audio, with half the views' audio dropped and with none: mean ± std over
    seeds, and per class the AP the audio adds (which classes the sound carries)."""

    reports = {c: [r for seed in plan.seeds if (r := _eval_report(plan, _cell(plan, "teacher", seed=seed), c))]
               for c in AUDIO_CONDITIONS}
    if not reports["av"]:
        return ""
    names = {"av": "with audio", "audio-missing": "audio-missing (each view's audio dropped with p = ½)",
             "visual": "no audio at all"}
    rows = []
    for condition, found in reports.items():
        if found:
            rows.append([names[condition], _text(Stat(tuple(r["seq_map"] for r in found))),
                         _text(Stat(tuple(r["frame_map"] for r in found))), str(len(found))])
    av = Stat(tuple(r["seq_map"] for r in reports["av"]))
    lines = ["## What the teacher hears\n",
             "The teacher's test mAP with its audio and without it (`vicokd evaluate --condition ...`), mean ± std "
             "over the seeds. Its audio encoder is the AST pretrained on the kinds of sound of a separate home "
             "([pretrain-audio/pretrain.json](pretrain-audio/pretrain.json)), frozen.\n",
             markdown_table(["teacher", "sequence mAP", "frame mAP", "seeds"], rows), ""]
    for condition in ("audio-missing", "visual"):
        if reports[condition]:
            line = compare("With audio", av, names[condition].split(" (")[0],
                           Stat(tuple(r["seq_map"] for r in reports[condition])))
            lines.append(f"- Sequence mAP: {line}")
    if reports["visual"]:
        classes = [row["class"] for row in reports["av"][0]["per_class_seq"]]
        rows = []
        for i, name in enumerate(classes):
            cells = []
            for key in ("per_class_seq", "per_class_frame"):
                gains = [a[key][i]["ap"] - v[key][i]["ap"] for a, v in zip(reports["av"], reports["visual"])
                         if not (a[key][i]["excluded"] or v[key][i]["excluded"])]
                cells.append(_text(Stat(tuple(gains))) if gains else "—")
            rows.append([name, *cells])
        lines += ["", "Per class: AP with audio minus AP without any (test, mean ± std over seeds).\n",
                  markdown_table(["class", "sequence AP gain", "frame AP gain"], rows)]
    return "\n".join(lines) + "\n"


def transfer_section(plan: GridPlan, summaries: dict[Cell, dict[str, Any]]) -> str:
    """Per distillation method: the student's test mAP at step 0 and at its best epoch, the share of the
    teacher-student gap it closes, and the agreement of its frame decisions with the teacher's."""
    rows = []
    gaps: dict[tuple[str, str], list[float]] = {}
    for sup, tag in (("frame", "V_F"), ("sequence", "V_S")):
        for method in plan.methods:
            if method in ("teacher", "student"):
                continue
            init, best, closed, agree = [], [], [], []
            for seed in plan.seeds:
                summary = summaries.get(_cell(plan, method, sup, seed))
                base = summaries.get(_cell(plan, "student", sup, seed))
                teacher = summaries.get(_cell(plan, "teacher", seed=seed))
                if summary is None or not summary.get("transfer"):
                    continue
                if summary.get("init"):
                    init.append(summary["init"]["seq_map"])
                best.append(summary["test"]["seq_map"])
                agree.append(100 * summary["transfer"]["frame_decision_agreement"])
                if base and teacher and teacher["test"]["seq_map"] != base["test"]["seq_map"]:
                    closed.append(100 * (summary["test"]["seq_map"] - base["test"]["seq_map"])
                                  / (teacher["test"]["seq_map"] - base["test"]["seq_map"]))
            if not best:
                continue
            gaps[(method, sup)] = closed
            rows.append([f"{method_label(method)} {tag}", _text(Stat(tuple(init))) if init else "—",
                         _text(Stat(tuple(best))), _text(Stat(tuple(closed))) if closed else "—",
                         _text(Stat(tuple(agree)))])
    if not rows:
        return ""
    return ("## Transfer from the teacher\n\n"
            "Test sequence mAP of each distilled student at step 0 (its initialisation: "
            "`distill.student_init`) and at its best epoch (chosen on validation); the teacher-student gap "
            "closed, (student_KD − student) / (teacher − student) per seed in percent (the plain student and the "
            "teacher of the same seed); and the share of (test frame, class) decisions on which student and "
            "teacher agree (each at its calibrated thresholds). Mean ± std over seeds.\n\n"
            + markdown_table(["method", "step 0", "best epoch", "gap closed [%]", "decision agreement [%]"], rows))


def per_class_transfer_section(plan: GridPlan, summaries: dict[Cell, dict[str, Any]]) -> str:
    """Per class: the teacher's lead over the student and how much of it CoKD and ViCoKD recovered (V_F, V_S)."""
    def per_class(cell: Cell) -> dict[str, float] | None:
        summary = summaries.get(cell)
        return None if summary is None else {row["class"]: row["ap"] for row in summary["test"]["per_class"]
                                             if not row["excluded"]}

    rows = []
    for sup, tag in (("frame", "V_F"), ("sequence", "V_S")):
        lead: dict[str, list[float]] = {}
        won: dict[tuple[str, str], list[float]] = {}
        for seed in plan.seeds:
            teacher, base = per_class(_cell(plan, "teacher", seed=seed)), per_class(_cell(plan, "student", sup, seed))
            if teacher is None or base is None:
                continue
            for name in teacher:
                if name in base:
                    lead.setdefault(name, []).append(teacher[name] - base[name])
            for method in ("cokd", "vicokd"):
                kd = per_class(_cell(plan, method, sup, seed))
                for name in (kd or {}):
                    if name in base:
                        won.setdefault((method, name), []).append(kd[name] - base[name])
        for name, values in lead.items():
            rows.append([tag, name, _text(Stat(tuple(values))),
                         *(_text(Stat(tuple(won[(m, name)]))) if won.get((m, name)) else "—"
                           for m in ("cokd", "vicokd"))])
    if not rows:
        return ""
    return ("## Per class: the teacher's lead and what distillation recovered\n\n"
            "Test sequence AP, mean ± std over seeds of the per-seed differences: teacher − student, and "
            "KD student − student (the part of the lead recovered; negative = lost).\n\n"
            + markdown_table(["supervision", "class", "teacher − student", "CoKD − student", "ViCoKD − student"],
                             rows))


def view_agreement_section(plan: GridPlan, summaries: dict[Cell, dict[str, Any]]) -> str:
    """What VC can act on: views' disagreement on co-visible frames against frames one view misses."""
    chosen = {"Teacher": "teacher", "Student V_F": "student", "CoKD V_F": "cokd", "ViCoKD V_F": "vicokd"}
    student_config = plan.config(_cell(plan, "vicokd"))
    rows, counts = [], None
    for label, method in chosen.items():
        values: dict[str, list[float]] = {}
        for seed in plan.seeds:
            cell = _cell(plan, method, seed=seed)
            if cell not in summaries:
                continue
            config = replace(plan.config(cell), distill=student_config.distill)  # VC's distribution for all
            found = view_pair_divergence(config, summaries[cell]["best_checkpoint"], method == "teacher")
            counts = counts or found
            for name in ("both", "one", "neither", "weight_both"):
                values.setdefault(name, []).append(found[name])
        if values:
            rows.append([label, *(_text(Stat(tuple(values[n])), ".2e") for n in ("both", "one", "neither")),
                         _text(Stat(tuple(values["weight_both"])), ".3f")])
    if not rows or counts is None:
        return ""
    d = student_config.distill
    return ("## What view consistency can act on\n\n"
            f"Mean Jensen-Shannon divergence (nats; at most ln 2 = 0.693) between two views' frame distributions "
            f"({d.distribution} of the per-view frame logits at τ = {d.vc_tau:g}, as VC forms them), on the "
            "test split (T uniformly sampled frames per clip), by the pair's person masks: both views see the "
            "actor (co-visible: the only frames VC acts on), exactly one does, neither does; and the mean "
            "confidence weight w of Eq. 9 on co-visible pairs. Mean ± std over seeds; pairs of one seed: "
            f"{counts['pairs_both']:,} co-visible, {counts['pairs_one']:,} one-sided, "
            f"{counts['pairs_neither']:,} neither. VC can only lower the first column; when it is already "
            "near 0, or w is small, it has nothing to act on.\n\n"
            + markdown_table(["model", "JS co-visible", "JS one view sees", "JS neither", "w co-visible"], rows))


def table_plans_section(table_plans: Sequence[tuple[GridPlan, list[RunResult]]]) -> str:
    """Tables 2, 3 and 4 (``OUT/tables/table{2,3,4}.*``), from each plan's finished runs."""
    parts = []
    for extra, extra_results in table_plans:
        tables = compute_tables(extra, extra_results)
        write_tables(tables, extra.out / "tables", extra.grid)
        number = extra.grid.removeprefix("table")
        what = {"table2": "ViCoKD's mean ± std over the seeds on every backbone and home (Table 1's runs)",
                "table3": "The teacher trained with view consistency against the teacher",
                "table4": f"ViCoKD's ablations on {backbone_label(extra.backbones[0])}, the paper's backbone of "
                          "Table 4"}[extra.grid]
        files = f"[tables/{extra.grid}.md](tables/{extra.grid}.md), [tables/{extra.grid}.csv](tables/{extra.grid}.csv)"
        parts += [f"## Table {number}\n",
                  f"{what}; same code as `vicokd reproduce --grid {extra.grid}` (files: {files}).\n",
                  *[table_markdown(table) for table in tables if table.metric == "seq_map"]]
    return "\n".join(parts)


def _in_home(section: str, env: EnvData, homes: int) -> str:
    """`section` with its heading naming the home (when the demo has more than one)."""
    if not section or homes == 1:
        return section
    heading, _, rest = section.partition("\n")
    return f"{heading} — {env.name}\n{rest}"


def write_report(options: DemoOptions, plan: GridPlan, table_plans: Sequence[GridPlan],
                 summaries: dict[Cell, dict[str, Any]], log: StepLog) -> Path:
    """``OUT/report.md`` with ``OUT/plots/*``, ``OUT/tables/table{1,2,3,4}.*`` and the scorecard.

    Tables and scorecard cover every home and backbone; the detailed sections (the teacher's audio,
    transfer, per class, view consistency) are per home on the detailed backbone
    (``options.detail_backbone``), the rest on the first home.
    """
    out = options.out
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    results = collect_results(plan)
    table_results = [(extra, collect_results(extra)) for extra in table_plans]
    # Tables 2 and 3 share Table 1's runs: each run once
    every_result = list({r.source: r for r in [*results, *(r for _, rs in table_results for r in rs)]}.values())
    tables = compute_tables(plan, results)
    write_tables(tables, out / "tables", plan.grid)
    regime = plan_regime(plan, results, teacher_audio(plan))
    details = [replace_plan(plan, envs=[env], backbones=[options.detail_backbone]) for env in plan.envs]
    first = details[0]
    homes = len(details)
    index = read_index(first.envs[0].cache)
    teacher_config = first.config(_cell(first, "teacher"))
    student_config = first.config(_cell(first, "vicokd"))
    load = os.getloadavg()
    per_home = []
    for detail in details:
        env = detail.envs[0]
        per_home += [_in_home(section, env, homes) for section in (
            teacher_audio_section(detail), transfer_section(detail, summaries),
            per_class_transfer_section(detail, summaries), view_agreement_section(detail, summaries))]
    measured = [f"- {env.name}, {line}" if homes > 1 else f"- {line}"
                for detail in details for env in detail.envs for line in findings(detail, results)]
    attention, fig4_claims = [], []  # Fig. 4 per home: the maps (encoders that train) and the share on the actor
    for fig4 in fig4_plans(plan):
        env = fig4.envs[0]
        if options.encoders_change:
            attention.append(_in_home(attention_section(fig4, summaries, plots), env, homes))
        section, claim = actor_attention_section(options, fig4, summaries)
        attention.append(_in_home(section, env, homes))
        fig4_claims += [claim] if claim is not None else []
    if not options.encoders_change:
        attention.insert(0, "## Attention maps\n\nLeft out: with frozen encoders every model shares the pretrained "
                         "visual encoder, so the Fig. 4 maps of teacher, student and ViCoKD would be the same picture. "
                         "`vicokd demo --finetune` trains the top block of the encoders and draws them.\n")
    sections = [
        "# ViCoKD demo: the synthetic homes\n",
        f"{', '.join(options.homes)}: {len(index.splits['train'])} train / {len(index.splits['test'])} test clips "
        f"each, {options.views} views, classes {', '.join(index.classes)}; data seed {options.data_seed}; backbones "
        f"{', '.join(plan.backbones)} (detailed sections: {options.detail_backbone}); training seeds "
        f"{', '.join(map(str, plan.seeds))}"
        + (", **--fast: a smoke run, too short to mean much**" if options.fast else "") + ".\n",
        "Teacher and students start from a visual encoder pretrained without action labels on a separate "
        "synthetic home ([pretrain/pretrain.json](pretrain/pretrain.json)); "
        + ("the visual encoder trains end to end from pixels (`model.visual.trainable_blocks: -1`). "
           if options.trainable_blocks == -1 else
           f"the top {options.trainable_blocks} block(s) of the visual encoder train in every run from the cached "
           "tokens below them (`--finetune`, the paper's regime of an encoder that learns), "
           "the rest of the encoders is frozen; the teacher's audio encoder is an AST pretrained on the kinds of "
           "sound of that home, never its action labels "
           "([pretrain-audio/pretrain.json](pretrain-audio/pretrain.json)). " if options.trainable_blocks else
           "the encoders are frozen and the runs train from their cached features; the teacher's audio encoder "
           "is an AST pretrained on the kinds of sound of that home, never its action labels "
           "([pretrain-audio/pretrain.json](pretrain-audio/pretrain.json)). ")
        + "Person masks come from the generator's ground-truth visibility (`groundtruth` detector), "
        "not from a detector run on the frames. Models are chosen on the validation split; "
        "all numbers below are on the test split, measured by this run, mean ± sample std over the seeds.\n",
        homes_section(options, plan, plots),
        regime_section(regime),
        f"## What the runs measured ({options.detail_backbone})\n", *measured, "",
        "## Table 1\n",
        "Same code as `vicokd reproduce --grid table1` (files: [tables/table1.md](tables/table1.md), "
        "[tables/table1.csv](tables/table1.csv)).\n",
        *[table_markdown(table) for table in tables],
        table_plans_section(table_results),
        scorecard_section(plan, every_result, fig4_claims, regime),
        *per_home,
        per_class_section(first, summaries, plots),
        curves_section(plan, summaries, plots),
        loss_terms_section(first, summaries),
        grad_share_section(first, summaries),
        *attention,
        "## Steps and times\n",
        markdown_table(["step", "status", "seconds"],
                       [[name, status, "—" if seconds is None else f"{seconds:.1f}"]
                        for name, status, seconds in log.table_rows()]),
        f"\nSum of step times {sum(s or 0.0 for _, _, s in log.table_rows()):.0f} s; this invocation "
        f"{log.wall_seconds:.0f} s wall clock on {os.cpu_count()} CPU cores (load average at report time "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}); {plan.parallel_runs} training runs at a time.\n",
        "## Configs used\n",
        f"Teacher (`configs/demo/teacher.yaml` + overrides `{' '.join(plan.overrides) or 'none'}`):\n",
        f"```yaml\n{config_to_yaml(teacher_config)}```\n",
        "Students: `configs/demo/student.yaml`, the same data and optimiser settings; method and supervision "
        f"per run (e.g. ViCoKD V_F):\n\n```yaml\n{config_to_yaml(student_config)}```\n",
    ]
    return write_text(out / "report.md", "\n".join(s for s in sections if s is not None))
