"""The claim scorecard: every comparison the paper's tables make, beside the paper's number and ours.

A claim is "A above B" (or below) in one cell of the paper: its sign is the sign of the paper's
difference ``d_paper = paper(A) − paper(B)``. The claims, from the tables of ``docs/reference/PAPER.md``:

* Table 1, per environment × backbone × supervision: each distillation method against the
  non-distilled student (LogitKD, ModalKD, DualKD, CoKD, ViCoKD), the teacher against the student
  (V_F), and "ViCoKD best": ViCoKD against the best other student row of the cell;
* Table 3, per environment × backbone: the teacher trained with view consistency against the teacher;
* Table 4 (MultiASL), per environment × supervision: each ablation against full ViCoKD;
* Fig. 4 (MultiASL, V_F), per environment, where the visual encoders train: ViCoKD's attention
  falls more on the person than the student's (a claim without numbers in the paper: its sign is
  that of the picture; ours is the share of attention on the actor, :func:`attention_claim`).

Ours: ``d = mean_s(A_s) − mean_s(B_s)`` over seeds; its spread is the sample std over seeds of
the paired differences ``A_s − B_s`` (seeds both sides ran; the larger of the two stds when the
seeds do not pair). Verdict: **holds** when d has the paper's sign and |d| > spread;
**contradicted** when it has the other sign and |d| > spread; **within noise** otherwise;
**one seed** when there is no spread to judge by; **not run** when either side has no run.
Nothing is filled in for a cell that was not run.

Which paper environment an environment of ours is held against (:func:`paper_home`): one named
``home2`` / ``Home-2`` (any case, ``-`` or ``_`` ignored) against Home-2, every other against
Home-1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from vicokd.methods import method_label
from vicokd.report.tables import SUPERVISION_NAMES, CellKey, Metric, RunResult, Stat, backbone_label, markdown_table

Verdict = Literal["holds", "contradicted", "within noise", "one seed", "not run"]
VERDICTS: tuple[Verdict, ...] = ("holds", "contradicted", "within noise", "one seed", "not run")
PAPER_HOMES = ("Home-1", "Home-2")
_BACKBONES = ("multitrans", "multiasl", "multitsf")
_TABLE1_ROWS = ("teacher", "student", "logitkd", "modalkd", "dualkd", "cokd", "vicokd")
_DISTILLED = ("logitkd", "modalkd", "dualkd", "cokd", "vicokd")
_ABLATIONS = ("vicokd-no-confw", "vicokd-no-mask", "vicokd-kl", "vicokd-no-fd", "vicokd-no-ld")

# Table 1 of the paper, sequence mAP [%]: rows of _TABLE1_ROWS, columns (backbone × V_F, V_S) in
# _BACKBONES order; the teacher has V_F only (None under V_S).
_TABLE1_TEXT = {
    "Home-1": ((61.40, None, 73.81, None, 76.12, None),
               (60.77, 57.59, 63.24, 55.91, 73.17, 61.17),
               (61.28, 60.48, 65.26, 58.78, 70.08, 60.67),
               (58.22, 54.04, 69.50, 58.92, 73.67, 62.88),
               (58.84, 55.57, 68.42, 60.45, 73.12, 63.22),
               (61.34, 60.65, 75.33, 64.52, 76.89, 63.27),
               (66.27, 62.66, 76.83, 65.23, 82.91, 65.28)),
    "Home-2": ((86.60, None, 90.14, None, 92.12, None),
               (84.06, 80.83, 82.25, 81.67, 86.89, 79.16),
               (86.70, 85.55, 87.59, 84.94, 88.60, 84.73),
               (85.43, 83.35, 91.45, 87.98, 90.92, 87.56),
               (86.41, 84.63, 85.58, 81.88, 87.71, 85.36),
               (88.64, 86.12, 91.77, 86.97, 88.42, 87.75),
               (90.86, 89.31, 91.80, 89.89, 91.27, 89.21)),
}
# Table 3: (teacher, teacher + VC) per home, backbones in _BACKBONES order.
_TABLE3_TEXT = {"Home-1": ((61.40, 66.31), (73.81, 75.99), (76.12, 78.25)),
                "Home-2": ((86.60, 88.88), (90.14, 91.78), (92.12, 92.61))}
# Table 4 (MultiASL): ViCoKD then _ABLATIONS, each (Home-1 V_F, Home-1 V_S, Home-2 V_F, Home-2 V_S).
_TABLE4_TEXT = {"vicokd": (76.83, 65.23, 91.80, 89.89), "vicokd-no-confw": (73.15, 62.27, 90.51, 88.90),
                "vicokd-no-mask": (72.33, 63.34, 90.08, 89.19), "vicokd-kl": (75.50, 64.87, 90.11, 89.62),
                "vicokd-no-fd": (76.52, 64.85, 90.44, 88.90), "vicokd-no-ld": (76.23, 61.51, 92.02, 88.76)}


def paper_home(env: str) -> str:
    """The paper environment our environment `env` is compared with (module docstring)."""
    return "Home-2" if env.lower().replace("-", "").replace("_", "") == "home2" else "Home-1"


def paper_values() -> dict[tuple[str, str, str, str], float]:
    """The paper's sequence mAP by (home, backbone, supervision, method), from Tables 1, 3 and 4."""
    values: dict[tuple[str, str, str, str], float] = {}
    for home, rows in _TABLE1_TEXT.items():
        for method, row in zip(_TABLE1_ROWS, rows):
            for column, value in enumerate(row):
                if value is not None:
                    values[(home, _BACKBONES[column // 2], ("frame", "sequence")[column % 2], method)] = value
    for home, pairs in _TABLE3_TEXT.items():
        for backbone, (_, with_vc) in zip(_BACKBONES, pairs):
            values[(home, backbone, "frame", "teacher-vc")] = with_vc
    for method, row in _TABLE4_TEXT.items():
        for column, value in enumerate(row):
            key = (PAPER_HOMES[column // 2], "multiasl", ("frame", "sequence")[column % 2], method)
            if method == "vicokd":
                assert values[key] == value, key  # Table 4's ViCoKD row is Table 1's
            values[key] = value
    return values


@dataclass(frozen=True)
class Claim:
    """One comparison of the paper in one cell, the paper's numbers, ours and the verdict."""

    table: str  # "Table 1", "Table 3", "Table 4", "Fig. 4"
    env: str  # our environment
    home: str  # the paper's environment it is compared with
    backbone: str
    supervision: str
    method: str  # A
    against: str  # B (for "best": the best other row, in the paper and in ours)
    paper_a: float | None  # None: a claim the paper makes without numbers (its sign is `paper_sign`)
    paper_b: float | None
    ours_a: float | None
    ours_b: float | None
    ours_diff: float | None
    spread: float | None
    verdict: Verdict
    ours_against: str | None = None  # "best": our best other row, when it is not the paper's
    paper_sign: int = 0  # +1 / -1 for a claim without numbers
    quantity: str = ""  # what is compared, when it is not the test sequence mAP

    @property
    def paper_diff(self) -> float:
        if self.paper_a is None or self.paper_b is None:
            return float(self.paper_sign)
        return self.paper_a - self.paper_b

    def text(self) -> str:
        cell = f"{backbone_label(self.backbone)} {SUPERVISION_NAMES[self.supervision]}"
        against = "the best other student" if self.against == "best" else method_label(self.against)
        relation = "above" if self.paper_diff > 0 else "below"
        quantity = f"{self.quantity} of " if self.quantity else ""
        return f"{self.table}, {self.home} {cell}: {quantity}{method_label(self.method)} {relation} {against}"


def by_seed(results: Sequence[RunResult], key: CellKey, metric: Metric) -> dict[int, float]:
    """The `metric` of the runs of cell `key`, by training seed."""
    return {r.seed: r.metric(metric) for r in results if r.key == key}


def _judge(a: dict[int, float], b: dict[int, float], paper_diff: float
           ) -> tuple[float | None, float | None, float | None, float | None, Verdict]:
    """(mean A, mean B, d, spread, verdict) of the module docstring."""
    if not a or not b:
        return (Stat(tuple(a.values())).mean if a else None, Stat(tuple(b.values())).mean if b else None,
                None, None, "not run")
    mean_a, mean_b = Stat(tuple(a.values())), Stat(tuple(b.values()))
    diff = mean_a.mean - mean_b.mean
    paired = sorted(set(a) & set(b))
    if len(paired) >= 2:
        spread = Stat(tuple(a[s] - b[s] for s in paired)).std
    elif mean_a.std is not None and mean_b.std is not None:
        spread = max(mean_a.std, mean_b.std)
    else:
        return mean_a.mean, mean_b.mean, diff, None, "one seed"
    assert spread is not None
    if abs(diff) <= spread:
        verdict: Verdict = "within noise"
    else:
        verdict = "holds" if math.copysign(1.0, diff) == math.copysign(1.0, paper_diff) else "contradicted"
    return mean_a.mean, mean_b.mean, diff, spread, verdict


def score_claims(results: Sequence[RunResult], homes: Mapping[str, str], metric: Metric = "seq_map"
                 ) -> list[Claim]:
    """Every claim of the module docstring for each of our environments (`homes`: env → paper home).

    Claims are listed for every backbone and supervision the paper reports, run or not (a cell
    not run is "not run").
    """
    paper = paper_values()
    claims: list[Claim] = []

    def add(table: str, env: str, home: str, backbone: str, sup: str, method: str, against: str,
            sup_a: str | None = None) -> None:
        key_a = CellKey(env, backbone, sup_a or sup, method)
        a = by_seed(results, key_a, metric)
        if against == "best":
            others = [m for m in ("student", *_DISTILLED) if m != method]
            paper_best = max(others, key=lambda m: paper[(home, backbone, sup, m)])
            ours = {m: by_seed(results, CellKey(env, backbone, sup, m), metric) for m in others}
            ran = {m: v for m, v in ours.items() if v}
            ours_best = max(ran, key=lambda m: Stat(tuple(ran[m].values())).mean) if len(ran) == len(others) else None
            b = ours[ours_best] if ours_best else {}
            paper_b = paper[(home, backbone, sup, paper_best)]
        else:
            ours_best = None
            b = by_seed(results, CellKey(env, backbone, sup, against), metric)
            paper_b = paper[(home, backbone, sup, against)]
        paper_a = paper[(home, backbone, sup_a or sup, method)]
        mean_a, mean_b, diff, spread, verdict = _judge(a, b, paper_a - paper_b)
        claims.append(Claim(table, env, home, backbone, sup, method, against, paper_a, paper_b, mean_a, mean_b,
                            diff, spread, verdict, ours_best))

    for env, home in homes.items():
        for backbone in _BACKBONES:
            add("Table 1", env, home, backbone, "frame", "teacher", "student")
            for sup in ("frame", "sequence"):
                for method in _DISTILLED:
                    add("Table 1", env, home, backbone, sup, method, "student")
                add("Table 1", env, home, backbone, sup, "vicokd", "best")
        for backbone in _BACKBONES:
            add("Table 3", env, home, backbone, "frame", "teacher-vc", "teacher")
        for sup in ("frame", "sequence"):
            for method in _ABLATIONS:
                add("Table 4", env, home, "multiasl", sup, method, "vicokd")
    return claims


def attention_claim(env: str, vicokd: Mapping[int, float], student: Mapping[int, float]) -> Claim:
    """Fig. 4's claim in `env`: the share of ViCoKD's attention on the person (per seed, %) above the
    student's (MultiASL, V_F), judged as every other claim (paired over seeds)."""
    mean_a, mean_b, diff, spread, verdict = _judge(dict(vicokd), dict(student), 1.0)
    return Claim("Fig. 4", env, paper_home(env), "multiasl", "frame", "vicokd", "student", None, None, mean_a,
                 mean_b, diff, spread, verdict, paper_sign=1, quantity="attention on the person [%]")


def verdict_counts(claims: Sequence[Claim]) -> dict[Verdict, int]:
    """How many claims got each verdict (every verdict listed, zeros included)."""
    return {verdict: sum(c.verdict == verdict for c in claims) for verdict in VERDICTS}


def counts_line(claims: Sequence[Claim]) -> str:
    """``12 claims tested: 3 hold, 2 contradicted, 7 within noise (30 not run)``."""
    counts = verdict_counts(claims)
    tested = len(claims) - counts["not run"]
    return (f"{tested} of {len(claims)} claims tested: {counts['holds']} hold, {counts['contradicted']} "
            f"contradicted, {counts['within noise']} within noise, {counts['one seed']} with one seed "
            f"({counts['not run']} not run)")


def scorecard_markdown(claims: Sequence[Claim], include_not_run: bool = False) -> str:
    """The claims as a Markdown table (those not run left out unless asked), then the counts."""
    def number(value: float | None, sign: bool = False) -> str:
        return "—" if value is None else f"{value:+.2f}" if sign else f"{value:.2f}"

    rows = []
    for claim in claims:
        if claim.verdict == "not run" and not include_not_run:
            continue
        against = (f" (ours: {method_label(claim.ours_against)})"
                   if claim.ours_against and claim.against == "best" else "")
        qualitative = claim.paper_a is None or claim.paper_b is None
        rows.append([claim.text() + against, claim.env,
                     "shown, not measured" if qualitative else f"{claim.paper_a:.2f} vs {claim.paper_b:.2f}",
                     "+" if qualitative and claim.paper_sign > 0 else "−" if qualitative
                     else number(claim.paper_diff, sign=True),
                     f"{number(claim.ours_a)} vs {number(claim.ours_b)}", number(claim.ours_diff, sign=True),
                     number(claim.spread), claim.verdict])
    table = markdown_table(["claim (paper)", "ours", "paper", "paper diff", "ours", "our diff", "std of diff",
                            "verdict"], rows) if rows else "(no claim could be tested: no cell was run)\n"
    return table + f"\n{counts_line(claims)}.\n"
