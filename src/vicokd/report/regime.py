"""Is the world the paper's? The baseline rows of a run beside the paper's, each against a target.

Before the claim scorecard can say anything about a method, the world it runs in has to be in the
paper's regime. That is judged on the **baseline rows only** (no distillation method): the
teacher and the plain student under V_F and V_S, and the teacher without part of its audio.
Every statistic is on the test sequence mAP [%]; ours is the mean over training seeds of the
per-seed (paired) difference, ± its sample std. Per environment ``e`` and backbone ``b``:

* ``teacher_lead``: T − S_F (teacher minus student V_F), target ``+1 ≤ d ≤ +11``
  (the paper: 0.6-10.6 points);
* ``frame_labels``: S_F − S_S (student V_F minus V_S), target ``+0.5 ≤ d ≤ +12``
  (the paper: 0.6-12.0), and per environment its mean over the backbones ``≥ +3``;
* ``home2_easier`` (per backbone, when both homes ran): S_F(home2) − S_F(home1) ``≥ +8``
  (the paper: 13.7-23.3);
* ``audio``: the teacher with its audio minus the teacher under ``--condition audio-missing``,
  above the larger of the two stds over seeds (the paper reports no such row: "—").

A statistic whose runs are missing is "not run" and counts as neither met nor missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from vicokd.report.scorecard import by_seed, paper_home, paper_values
from vicokd.report.tables import CellKey, RunResult, Stat, backbone_label, markdown_table

State = Literal["met", "missed", "not run"]
TEACHER_LEAD = (1.0, 11.0)
FRAME_LABELS = (0.5, 12.0)
FRAME_LABELS_MEAN = 3.0
HOME2_EASIER = 8.0
HOME_ENVS = ("home1", "home2")  # the environments compared by home2_easier


@dataclass(frozen=True)
class RegimeRow:
    """One statistic of the regime in one environment (and backbone; None: over the backbones)."""

    statistic: str  # what is measured, e.g. "Teacher − Student V_F"
    env: str
    backbone: str | None
    paper: float | None  # the paper's value (None: the paper has no such number)
    ours: Stat | None  # per-seed differences (None: not run)
    target: str
    state: State


def _difference(a: Mapping[int, float], b: Mapping[int, float]) -> Stat | None:
    """The per-seed differences a − b over the seeds both have (None without any)."""
    seeds = sorted(set(a) & set(b))
    return Stat(tuple(a[s] - b[s] for s in seeds)) if seeds else None


def _within(stat: Stat | None, low: float, high: float = float("inf")) -> State:
    if stat is None:
        return "not run"
    return "met" if low <= stat.mean <= high else "missed"


def regime_rows(results: Sequence[RunResult], envs: Sequence[str], backbones: Sequence[str],
                audio: Mapping[tuple[str, str], tuple[Mapping[int, float], Mapping[int, float]]] | None = None
                ) -> list[RegimeRow]:
    """The rows of the module docstring for `envs` × `backbones`; `audio[(env, backbone)]` = the
    teacher's per-seed test sequence mAP (with audio, audio-missing) where it was evaluated."""
    paper = paper_values()
    audio = audio or {}
    rows: list[RegimeRow] = []

    def student(env: str, backbone: str, supervision: str) -> dict[int, float]:
        return by_seed(results, CellKey(env, backbone, supervision, "student"), "seq_map")

    def paper_labels_gap(home: str, backbone: str) -> float:
        return paper[(home, backbone, "frame", "student")] - paper[(home, backbone, "sequence", "student")]

    for env in envs:
        home = paper_home(env)
        labels_gaps = []
        for backbone in backbones:
            teacher = by_seed(results, CellKey(env, backbone, "frame", "teacher"), "seq_map")
            lead = _difference(teacher, student(env, backbone, "frame"))
            paper_lead = paper[(home, backbone, "frame", "teacher")] - paper[(home, backbone, "frame", "student")]
            rows.append(RegimeRow("Teacher − Student V_F", env, backbone, paper_lead, lead,
                                  f"+{TEACHER_LEAD[0]:g} to +{TEACHER_LEAD[1]:g}", _within(lead, *TEACHER_LEAD)))
        for backbone in backbones:
            gap = _difference(student(env, backbone, "frame"), student(env, backbone, "sequence"))
            labels_gaps.append(gap)
            rows.append(RegimeRow("Student V_F − Student V_S", env, backbone, paper_labels_gap(home, backbone),
                                  gap, f"+{FRAME_LABELS[0]:g} to +{FRAME_LABELS[1]:g}", _within(gap, *FRAME_LABELS)))
        ran = [gap.mean for gap in labels_gaps if gap is not None]
        mean = Stat((sum(ran) / len(ran),)) if ran and len(ran) == len(backbones) else None
        paper_mean = sum(paper_labels_gap(home, b) for b in backbones) / len(backbones)
        rows.append(RegimeRow("Student V_F − Student V_S, mean over the backbones", env, None, paper_mean, mean,
                              f"≥ +{FRAME_LABELS_MEAN:g}", _within(mean, FRAME_LABELS_MEAN)))
        for backbone in backbones:
            with_audio, missing = audio.get((env, backbone), ({}, {}))
            drop = _difference(with_audio, missing)
            if drop is None:
                state: State = "not run"
            else:
                larger = max(Stat(tuple(with_audio.values())).std or 0.0, Stat(tuple(missing.values())).std or 0.0)
                state = "met" if drop.mean > larger else "missed"
            rows.append(RegimeRow("Teacher − Teacher audio-missing", env, backbone, None, drop,
                                  "> the larger std", state))
    if all(env in envs for env in HOME_ENVS):
        for backbone in backbones:
            gain = _difference(student(HOME_ENVS[1], backbone, "frame"), student(HOME_ENVS[0], backbone, "frame"))
            rows.append(RegimeRow("Student V_F: home2 − home1", "both", backbone,
                                  paper[("Home-2", backbone, "frame", "student")]
                                  - paper[("Home-1", backbone, "frame", "student")],
                                  gain, f"≥ +{HOME2_EASIER:g}", _within(gain, HOME2_EASIER)))
    return rows


def regime_counts(rows: Sequence[RegimeRow]) -> str:
    """``11 of 13 targets met (2 missed, 0 not run)``."""
    met = sum(r.state == "met" for r in rows)
    missed = sum(r.state == "missed" for r in rows)
    return f"{met} of {met + missed} targets met ({missed} missed, {len(rows) - met - missed} not run)"


def regime_markdown(rows: Sequence[RegimeRow]) -> str:
    """The rows as a Markdown table (ours mean ± std over seeds beside the paper's), then the counts."""
    body = []
    for row in rows:
        ours = "—" if row.ours is None else f"{row.ours.mean:+.2f}" + (
            f" ± {row.ours.std:.2f}" if row.ours.std is not None else "")
        body.append([row.statistic, row.env, "all" if row.backbone is None else backbone_label(row.backbone),
                     "—" if row.paper is None else f"{row.paper:+.2f}", ours, row.target,
                     {"met": "**met**", "missed": "**missed**", "not run": "not run"}[row.state]])
    return (markdown_table(["statistic", "home", "backbone", "paper", "ours", "target", ""], body)
            + f"\n{regime_counts(rows)}.\n")
