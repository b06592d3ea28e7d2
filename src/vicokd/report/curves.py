"""Fig. 3-style curves: mAP per epoch of several runs, read from each run's ``metrics.csv``.

Training (:mod:`vicokd.training`) logs ``val/seq_map`` and ``val/frame_map`` once per epoch on the validation split
(carved from train; the paper's Fig. 3 plots test mAP, which this project never looks at
during training). Epochs are counted from 1 in the plot and in the CSV beside it.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vicokd.errors import VicokdError
from vicokd.io import write_csv
from vicokd.report._io import save_figure

Curve = list[tuple[int, float]]


def read_metric_curve(metrics_csv: str | Path, column: str = "val/seq_map") -> Curve:
    """(epoch counted from 1, value) for every epoch that logged `column` (the last row wins)."""
    path = Path(metrics_csv)
    if not path.is_file():
        raise VicokdError(f"{path}: no metrics file (the run has not logged an epoch yet)")
    by_epoch: dict[int, float] = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if column not in (reader.fieldnames or []):
            raise VicokdError(f"{path}: no column {column!r} (has {', '.join(reader.fieldnames or [])})")
        for row in reader:
            if row.get(column) and row.get("epoch"):
                by_epoch[int(float(row["epoch"])) + 1] = float(row[column])
    return sorted(by_epoch.items())


def read_last_epoch(metrics_csv: str | Path, prefix: str = "train/") -> dict[str, float]:
    """The epoch-level values of the columns starting with `prefix` in the last epoch that logged them.

    Step-level columns (``*_step``) are left out; names lose the prefix and an ``_epoch`` suffix.
    """
    path = Path(metrics_csv)
    if not path.is_file():
        raise VicokdError(f"{path}: no metrics file (the run has not logged an epoch yet)")
    last: dict[str, float] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            values = {k[len(prefix):].removesuffix("_epoch"): float(v) for k, v in row.items()
                      if k.startswith(prefix) and not k.endswith("_step") and v}
            if values:
                last = values
    return last


def plot_curves(curves: Mapping[str, Curve], png: str | Path, *, title: str, ylabel: str,
                reference: Mapping[str, float] | None = None, marks: Mapping[str, int] | None = None
                ) -> tuple[Path, Path]:
    """One line per curve (+ dashed horizontal `reference` lines, e.g. the teacher); PNG + CSV.

    `marks` gives a curve's chosen epoch (e.g. selected on validation), drawn as a large dot. The
    CSV beside the PNG (same stem) has one row per point: ``series, epoch, value`` (reference
    lines with an empty epoch).
    """
    png = Path(png)
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.subplots()
    for label, points in curves.items():
        if points:
            epochs, values = zip(*points)
            (line,) = axes.plot(epochs, values, marker="o", markersize=3, label=label)
            chosen = (marks or {}).get(label)
            if chosen in epochs:
                axes.plot([chosen], [values[epochs.index(chosen)]], marker="o", markersize=9, color=line.get_color())
    for label, value in (reference or {}).items():
        axes.axhline(value, linestyle="--", linewidth=1, color="grey", label=label)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if curves or reference:
        axes.legend(fontsize=8)
    save_figure(figure, png)
    rows = [{"series": label, "epoch": epoch, "value": f"{value:.4f}"}
            for label, points in curves.items() for epoch, value in points]
    rows += [{"series": label, "epoch": "", "value": f"{value:.4f}"} for label, value in (reference or {}).items()]
    return png, write_csv(png.with_suffix(".csv"), ("series", "epoch", "value"), rows)


def plot_grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[float | None]], png: str | Path, *,
                      title: str, ylabel: str) -> tuple[Path, Path]:
    """Grouped bars (e.g. per-class AP of teacher / student / ViCoKD); None = no bar. PNG + CSV.

    The CSV beside the PNG has one row per group and one column per series (empty for None).
    """
    png = Path(png)
    figure = Figure(figsize=(max(6.0, 0.6 * len(groups) * max(1, len(series)) / 2), 4.0))
    axes = figure.subplots()
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        axes.bar([x for x, v in zip(xs, values) if v is not None], [v for v in values if v is not None],
                 width=width, label=label)
    axes.set_xticks(range(len(groups)), list(groups), rotation=45, ha="right", fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    if series:
        axes.legend(fontsize=8)
    save_figure(figure, png)
    rows = [{"group": group, **{label: "" if values[g] is None else f"{values[g]:.4f}"
                                for label, values in series.items()}} for g, group in enumerate(groups)]
    return png, write_csv(png.with_suffix(".csv"), ("group", *series), rows)
