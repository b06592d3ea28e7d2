"""The paper's results tables (Table 1-4) from run summaries: mean ± std over seeds, deltas, bold best.

A table is a :class:`TableLayout`: row labels, column labels, and for each (row, column) the
:class:`CellKey` of the runs that fill it (absent = not applicable, printed blank, e.g. the
teacher under V_S). :func:`compute_table` gathers the :class:`RunResult` records of every cell
over seeds; :func:`table_markdown` and :func:`table_csv_rows` format it. Rules:

* a cell shows ``mean ± std`` over its seeds (sample std, ddof 1); with one seed only the mean;
  with fewer seeds than the table's most-filled cell, ``(n=k)`` is added;
* a cell with no finished run is shown as missing, ``—``; nothing is ever filled in;
* the delta is ``mean(cell) − mean(baseline cell)`` (the non-distilled student in Table 1,
  the teacher in Table 3, full ViCoKD in Table 4), shown only when both exist;
* in each column the best mean among the ranked rows is bold (ties: all of them). The teacher
  row of Table 1 is a reference, not ranked, as in the paper.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vicokd.backbone_registry import BACKBONES
from vicokd.errors import VicokdError
from vicokd.io import write_csv, write_text
from vicokd.methods import method_label

Metric = Literal["seq_map", "frame_map"]
METRIC_NAMES: dict[str, str] = {"seq_map": "sequence mAP [%]", "frame_map": "frame mAP [%]"}
MISSING = "—"

SUPERVISION_NAMES = {"frame": "V_F", "sequence": "V_S"}


def backbone_label(name: str) -> str:
    """A backbone's name in tables (its registered label; the name itself when unknown)."""
    spec = BACKBONES.get(name)
    return spec.label if spec else name


@dataclass(frozen=True)
class CellKey:
    """Which runs fill a table cell (one per seed)."""

    env: str
    backbone: str
    supervision: str  # "frame" or "sequence"; a teacher is always "frame"
    method: str


@dataclass(frozen=True)
class RunResult:
    """The test mAP of one finished run, as its summary.json recorded it."""

    key: CellKey
    seed: int
    seq_map: float
    frame_map: float
    source: str = ""  # the summary file it was read from

    def metric(self, name: Metric) -> float:
        return self.seq_map if name == "seq_map" else self.frame_map


def result_from_summary(path: str | Path, env: str, seed: int) -> RunResult:
    """Read a run's ``summary.json`` (written by :func:`vicokd.training.run.fit`) into a :class:`RunResult`."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text())
        key = CellKey(env, summary["backbone"], summary["supervision"], summary["method"])
        return RunResult(key, seed, float(summary["test"]["seq_map"]), float(summary["test"]["frame_map"]),
                         str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VicokdError(f"{path}: not a readable run summary ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class TableLayout:
    """Rows × columns of one table; `cells` and `baselines` map (row, column) to the runs."""

    name: str  # file stem, e.g. "table1-home1"
    title: str
    corner: str  # header of the row-label column
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: dict[tuple[int, int], CellKey]
    baselines: dict[tuple[int, int], CellKey] = field(default_factory=dict)
    ranked_rows: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Stat:
    """Mean and sample std of a cell's per-seed values (std None for one value)."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    @property
    def std(self) -> float | None:
        if len(self.values) < 2:
            return None
        mean = self.mean
        return math.sqrt(math.fsum((v - mean) ** 2 for v in self.values) / (len(self.values) - 1))


@dataclass(frozen=True)
class CellValue:
    """One computed cell: its stat (None = missing), delta to its baseline, bold flag, seeds."""

    key: CellKey
    stat: Stat | None
    delta: float | None
    best: bool
    seeds: tuple[int, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class ComputedTable:
    layout: TableLayout
    metric: Metric
    cells: dict[tuple[int, int], CellValue]

    @property
    def max_n(self) -> int:
        return max((c.stat.n for c in self.cells.values() if c.stat), default=0)


def stat_of(results: Iterable[RunResult], key: CellKey, metric: Metric) -> tuple[Stat | None, list[RunResult]]:
    """The stat over seeds of the results matching `key` (None when there are none)."""
    chosen = sorted((r for r in results if r.key == key), key=lambda r: r.seed)
    seeds = [r.seed for r in chosen]
    if len(set(seeds)) != len(seeds):
        raise VicokdError(f"two results for the same seed in cell {key}: {[r.source for r in chosen]}")
    return (Stat(tuple(r.metric(metric) for r in chosen)) if chosen else None), chosen


def compute_table(layout: TableLayout, results: Sequence[RunResult], metric: Metric) -> ComputedTable:
    """Fill `layout` from `results` (see the module docstring for the rules)."""
    stats: dict[tuple[int, int], tuple[Stat | None, list[RunResult]]] = {
        pos: stat_of(results, key, metric) for pos, key in layout.cells.items()}
    best: dict[int, float] = {}
    for (row, col), (stat, _) in stats.items():
        if stat is not None and row in layout.ranked_rows:
            best[col] = max(best.get(col, -math.inf), stat.mean)
    cells = {}
    for pos, key in layout.cells.items():
        stat, chosen = stats[pos]
        delta = None
        if stat is not None and pos in layout.baselines:
            base, _ = stat_of(results, layout.baselines[pos], metric)
            delta = None if base is None else stat.mean - base.mean
        is_best = stat is not None and pos[0] in layout.ranked_rows and stat.mean == best.get(pos[1])
        cells[pos] = CellValue(key, stat, delta, is_best, tuple(r.seed for r in chosen),
                               tuple(r.source for r in chosen))
    return ComputedTable(layout, metric, cells)


def format_cell(cell: CellValue, max_n: int, digits: int = 2) -> str:
    """``**76.83 ± 0.80** (+1.50)``; ``—`` when missing; ``(n=k)`` when seeds are short."""
    if cell.stat is None:
        return MISSING
    text = f"{cell.stat.mean:.{digits}f}"
    if cell.stat.std is not None:
        text += f" ± {cell.stat.std:.{digits}f}"
    if cell.best:
        text = f"**{text}**"
    if cell.delta is not None:
        text += f" ({cell.delta:+.{digits}f})"
    if cell.stat.n < max_n:
        text += f" (n={cell.stat.n})"
    return text


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], align_first_left: bool = True) -> str:
    """A GitHub-flavoured Markdown table (first column left-aligned, the others right)."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(":---" if i == 0 and align_first_left else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def table_markdown(table: ComputedTable) -> str:
    """The table as Markdown, titled with its metric; blank where not applicable."""
    layout = table.layout
    body = []
    for r, label in enumerate(layout.rows):
        body.append([label] + [format_cell(table.cells[(r, c)], table.max_n) if (r, c) in table.cells else ""
                               for c in range(len(layout.columns))])
    title = f"**{layout.title}** — test {METRIC_NAMES[table.metric]}"
    return f"{title}\n\n" + markdown_table([layout.corner, *layout.columns], body)


CSV_FIELDS = ("table", "metric", "row", "column", "env", "backbone", "supervision", "method", "n", "mean", "std",
              "delta", "best", "seeds", "values")


def table_csv_rows(table: ComputedTable) -> list[dict[str, Any]]:
    """One CSV row per applicable cell (missing cells have an empty mean), fields :data:`CSV_FIELDS`."""
    rows = []
    layout = table.layout
    for (r, c), cell in sorted(table.cells.items()):
        stat = cell.stat
        rows.append({
            "table": layout.name, "metric": table.metric, "row": layout.rows[r], "column": layout.columns[c],
            "env": cell.key.env, "backbone": cell.key.backbone, "supervision": cell.key.supervision,
            "method": cell.key.method, "n": stat.n if stat else 0,
            "mean": f"{stat.mean:.4f}" if stat else "",
            "std": f"{stat.std:.4f}" if stat and stat.std is not None else "",
            "delta": f"{cell.delta:.4f}" if cell.delta is not None else "", "best": int(cell.best),
            "seeds": " ".join(map(str, cell.seeds)),
            "values": " ".join(f"{v:.4f}" for v in stat.values) if stat else "",
        })
    return rows


# ------------------------------------------------------------------------------ the paper's layouts

TABLE1_METHODS = ("teacher", "student", "logitkd", "modalkd", "dualkd", "cokd", "vicokd")
TABLE1_EXTRA_METHODS = ("vicokd-ml",)  # rows beyond the paper, run when asked for (--methods)
TABLE4_METHODS = ("vicokd", "vicokd-no-confw", "vicokd-no-mask", "vicokd-kl", "vicokd-no-fd", "vicokd-no-ld")
SUPERVISIONS = ("frame", "sequence")


def _sup_columns(backbones: Sequence[str], supervisions: Sequence[str]) -> list[tuple[str, str]]:
    return [(b, s) for b in backbones for s in supervisions]


def table1_layout(env: str, backbones: Sequence[str], methods: Sequence[str] = TABLE1_METHODS,
                  supervisions: Sequence[str] = SUPERVISIONS) -> TableLayout:
    """Table 1 for one environment: methods × (backbone × supervision); deltas to the student."""
    columns = _sup_columns(backbones, supervisions)
    cells, baselines = {}, {}
    for r, method in enumerate(methods):
        for c, (backbone, sup) in enumerate(columns):
            if method.startswith("teacher") and sup != "frame":
                continue  # the teacher is trained with frame labels only (AV_F)
            cells[(r, c)] = CellKey(env, backbone, "frame" if method.startswith("teacher") else sup, method)
            if method != "student":
                baselines[(r, c)] = CellKey(env, backbone, sup, "student")
    return TableLayout(
        name=f"table1-{env}", title=f"Table 1 — {env}: mAP (difference to the non-distilled student)",
        corner=env, rows=tuple(method_label(m) for m in methods),
        columns=tuple(f"{backbone_label(b)} {SUPERVISION_NAMES[s]}" for b, s in columns),
        cells=cells, baselines=baselines,
        ranked_rows=frozenset(r for r, m in enumerate(methods) if not m.startswith("teacher")))


def _env_sup_columns(envs: Sequence[str], supervisions: Sequence[str]) -> tuple[list[tuple[str, str]], tuple[str, ...]]:
    columns = [(e, s) for e in envs for s in supervisions]
    return columns, tuple(f"{e} {SUPERVISION_NAMES[s]}" for e, s in columns)


def table2_layout(envs: Sequence[str], backbones: Sequence[str],
                  supervisions: Sequence[str] = SUPERVISIONS) -> TableLayout:
    """Table 2: ViCoKD mean ± std, backbones × (environment × supervision); no deltas."""
    columns, labels = _env_sup_columns(envs, supervisions)
    cells = {(r, c): CellKey(e, b, s, "vicokd") for r, b in enumerate(backbones) for c, (e, s) in enumerate(columns)}
    return TableLayout(name="table2", title="Table 2 — ViCoKD, mean ± std over seeds", corner="backbone",
                       rows=tuple(backbone_label(b) for b in backbones), columns=labels, cells=cells)


def table3_layout(envs: Sequence[str], backbones: Sequence[str]) -> TableLayout:
    """Table 3: teacher vs teacher trained with VC, per environment; delta of +VC to the teacher."""
    columns = [(e, m) for e in envs for m in ("teacher", "teacher-vc")]
    cells, baselines = {}, {}
    for r, backbone in enumerate(backbones):
        for c, (env, method) in enumerate(columns):
            cells[(r, c)] = CellKey(env, backbone, "frame", method)
            if method == "teacher-vc":
                baselines[(r, c)] = CellKey(env, backbone, "frame", "teacher")
    return TableLayout(
        name="table3", title="Table 3 — view-aware consistency added to the teacher (difference to the teacher)",
        corner="backbone", rows=tuple(backbone_label(b) for b in backbones),
        columns=tuple(f"{e} {method_label(m)}" for e, m in columns), cells=cells, baselines=baselines,
        ranked_rows=frozenset())


def table4_layout(envs: Sequence[str], backbone: str = "multiasl", methods: Sequence[str] = TABLE4_METHODS,
                  supervisions: Sequence[str] = SUPERVISIONS) -> TableLayout:
    """Table 4: ViCoKD ablations on one backbone; delta to full ViCoKD."""
    columns, labels = _env_sup_columns(envs, supervisions)
    cells, baselines = {}, {}
    for r, method in enumerate(methods):
        for c, (env, sup) in enumerate(columns):
            cells[(r, c)] = CellKey(env, backbone, sup, method)
            if method != "vicokd":
                baselines[(r, c)] = CellKey(env, backbone, sup, "vicokd")
    return TableLayout(
        name="table4", title=f"Table 4 — ablations, {backbone_label(backbone)} (difference to ViCoKD)",
        corner="variant", rows=tuple(method_label(m) for m in methods), columns=labels, cells=cells,
        baselines=baselines, ranked_rows=frozenset(range(len(methods))))


def write_tables(tables: Sequence[ComputedTable], out_dir: str | Path, stem: str, note: str = "") -> tuple[Path, Path]:
    """Write ``<stem>.md`` (every table, Markdown, `note` first) and ``<stem>.csv`` (all cells)."""
    out_dir = Path(out_dir)
    parts = [note.rstrip() + "\n"] if note else []
    parts += [table_markdown(table) for table in tables]
    markdown = write_text(out_dir / f"{stem}.md", "\n".join(parts))
    rows = [row for table in tables for row in table_csv_rows(table)]
    return markdown, write_csv(out_dir / f"{stem}.csv", CSV_FIELDS, rows)
