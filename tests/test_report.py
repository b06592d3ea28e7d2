"""Report layer: table formatting on hand-made summaries, and figures written as PNG + CSV."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vicokd.config import load_config
from vicokd.errors import VicokdError
from vicokd.models import MultiViewActionModel
from vicokd.report.attention import attention_maps, plot_attention_grid
from vicokd.report.curves import plot_curves, plot_grouped_bars, read_last_epoch, read_metric_curve
from vicokd.report.tables import (
    MISSING,
    CellKey,
    RunResult,
    Stat,
    compute_table,
    result_from_summary,
    table1_layout,
    table3_layout,
    table_csv_rows,
    table_markdown,
    write_tables,
)

CONFIGS = Path(__file__).parent.parent / "configs" / "demo"


def result(method: str, sup: str, seed: int, seq: float, frame: float = 50.0, backbone: str = "multitsf") -> RunResult:
    return RunResult(CellKey("home1", backbone, sup, method), seed, seq, frame)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_stat_mean_and_sample_std():
    stat = Stat((70.0, 72.0, 74.0))
    assert stat.mean == pytest.approx(72.0)
    assert stat.std == pytest.approx(2.0)  # ddof 1
    assert Stat((61.5,)).std is None


def test_table1_mean_std_delta_bold_and_missing():
    results = [
        result("teacher", "frame", 0, 80.0), result("teacher", "frame", 1, 82.0),
        result("student", "frame", 0, 60.0), result("student", "frame", 1, 62.0),
        result("cokd", "frame", 0, 64.0), result("cokd", "frame", 1, 66.0),
        result("vicokd", "frame", 0, 70.0), result("vicokd", "frame", 1, 74.0),
        result("student", "sequence", 0, 50.0), result("student", "sequence", 1, 52.0),
        result("vicokd", "sequence", 0, 55.0),  # one seed only
    ]
    layout = table1_layout("home1", ["multitsf"], ["teacher", "student", "cokd", "vicokd"])
    table = compute_table(layout, results, "seq_map")
    text = table_markdown(table)
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in text.splitlines() if line.startswith("| ") and "---" not in line}
    assert lines["Teacher"] == ["81.00 ± 1.41 (+20.00)", ""]  # not applicable under V_S: blank
    assert lines["Student"] == ["61.00 ± 1.41", "51.00 ± 1.41"]
    assert lines["CoKD"] == ["65.00 ± 1.41 (+4.00)", MISSING]
    assert lines["ViCoKD"] == ["**72.00 ± 2.83** (+11.00)", "**55.00** (+4.00) (n=1)"]
    assert "sequence mAP" in text


def test_best_ignores_the_teacher_and_ties_are_all_bold():
    results = [result("teacher", "frame", 0, 99.0), result("student", "frame", 0, 60.0),
               result("cokd", "frame", 0, 70.0), result("vicokd", "frame", 0, 70.0)]
    layout = table1_layout("home1", ["multitsf"], ["teacher", "student", "cokd", "vicokd"], ["frame"])
    cells = compute_table(layout, results, "seq_map").cells
    assert [cells[(r, 0)].best for r in range(4)] == [False, False, True, True]


def test_frame_metric_and_csv_rows():
    results = [result("student", "frame", 0, 60.0, frame=40.0), result("vicokd", "frame", 0, 65.0, frame=47.5)]
    layout = table1_layout("home1", ["multitsf"], ["student", "vicokd"], ["frame"])
    rows = table_csv_rows(compute_table(layout, results, "frame_map"))
    by_method = {row["method"]: row for row in rows}
    assert by_method["vicokd"]["mean"] == "47.5000" and by_method["vicokd"]["delta"] == "7.5000"
    assert by_method["student"]["delta"] == "" and by_method["vicokd"]["best"] == 1
    assert by_method["vicokd"]["std"] == "" and by_method["vicokd"]["seeds"] == "0"


def test_table3_delta_to_teacher_and_missing_env():
    results = [RunResult(CellKey("home1", "multiasl", "frame", "teacher"), 0, 73.0, 50.0),
               RunResult(CellKey("home1", "multiasl", "frame", "teacher-vc"), 0, 75.5, 50.0)]
    table = compute_table(table3_layout(["home1", "home2"], ["multiasl"]), results, "seq_map")
    row = next(line for line in table_markdown(table).splitlines() if line.startswith("| MultiASL"))
    cells = [c.strip() for c in row.split("|")[2:-1]]
    assert cells == ["73.00", "75.50 (+2.50)", MISSING, MISSING]


def test_duplicate_seed_is_an_error():
    results = [result("student", "frame", 0, 60.0), result("student", "frame", 0, 61.0)]
    with pytest.raises(VicokdError, match="same seed"):
        compute_table(table1_layout("home1", ["multitsf"], ["student"], ["frame"]), results, "seq_map")


def test_result_from_summary_and_write_tables(tmp_path):
    summary = {"method": "vicokd", "supervision": "sequence", "backbone": "multiasl",
               "test": {"seq_map": 65.23, "frame_map": 41.0}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    loaded = result_from_summary(tmp_path / "summary.json", "home1", 2)
    assert loaded.key == CellKey("home1", "multiasl", "sequence", "vicokd") and loaded.seed == 2
    assert loaded.seq_map == 65.23 and loaded.frame_map == 41.0
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(VicokdError, match="bad.json"):
        result_from_summary(tmp_path / "bad.json", "home1", 0)
    layout = table1_layout("home1", ["multiasl"], ["student", "vicokd"], ["sequence"])
    tables = [compute_table(layout, [loaded], metric) for metric in ("seq_map", "frame_map")]
    md, csv_path = write_tables(tables, tmp_path / "out", "table1", note="# note")
    text = md.read_text()
    assert text.startswith("# note") and "65.23" in text and "41.00" in text and MISSING in text
    rows = csv_rows(csv_path)
    assert {(r["metric"], r["method"], r["mean"]) for r in rows} == {
        ("seq_map", "student", ""), ("seq_map", "vicokd", "65.2300"),
        ("frame_map", "student", ""), ("frame_map", "vicokd", "41.0000")}


def test_curves_from_metrics_csv(tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("epoch,step,train/loss_epoch,val/seq_map,val/frame_map\n"
                       "0,3,1.0,,\n0,3,,40.0,20.0\n1,7,,45.5,22.0\n")
    curve = read_metric_curve(metrics)
    assert curve == [(1, 40.0), (2, 45.5)]
    assert read_metric_curve(metrics, "val/frame_map") == [(1, 20.0), (2, 22.0)]
    assert read_last_epoch(metrics) == {"loss": 1.0}
    with pytest.raises(VicokdError, match="no column"):
        read_metric_curve(metrics, "test/seq_map")
    png, data = plot_curves({"Student": curve, "ViCoKD": [(1, 42.0), (2, 50.0)]}, tmp_path / "fig3.png",
                            title="t", ylabel="mAP", reference={"Teacher": 60.0})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = csv_rows(data)
    assert [(r["series"], r["epoch"], r["value"]) for r in rows] == [
        ("Student", "1", "40.0000"), ("Student", "2", "45.5000"), ("ViCoKD", "1", "42.0000"),
        ("ViCoKD", "2", "50.0000"), ("Teacher", "", "60.0000")]


def test_grouped_bars(tmp_path):
    png, data = plot_grouped_bars(["Drink", "Eat"], {"Teacher": [80.0, None], "Student": [60.0, 55.5]},
                                  tmp_path / "bars.png", title="t", ylabel="AP")
    assert png.stat().st_size > 1000
    assert csv_rows(data) == [{"group": "Drink", "Teacher": "80.0000", "Student": "60.0000"},
                              {"group": "Eat", "Teacher": "", "Student": "55.5000"}]


def test_attention_maps_and_grid(tmp_path):
    torch.manual_seed(0)
    config = load_config(CONFIGS / "student.yaml")
    model = MultiViewActionModel(config.model, num_classes=3)
    frames = np.random.default_rng(0).integers(0, 255, (2, 32, 48, 3), dtype=np.uint8)
    maps = attention_maps(model, frames)
    patch = config.model.visual.timm_kwargs["patch_size"]
    assert maps.shape == (2, 32 // patch, 48 // patch)
    assert np.all(maps >= 0) and np.all(maps.sum(axis=(1, 2)) <= 1 + 1e-5)
    png, data = plot_attention_grid(frames, {"Student": maps, "ViCoKD": maps * 0.5}, tmp_path / "fig4.png",
                                    title="clip", view_notes=["person", "no person"])
    assert png.read_bytes()[:4] == b"\x89PNG"
    rows = csv_rows(data)
    assert len(rows) == 2 * maps.size
    assert math.isclose(float(rows[0]["attention"]), float(maps[0, 0, 0]), rel_tol=1e-4, abs_tol=1e-6)


def test_attention_inside_a_region_against_a_hand_computed_case():
    from vicokd.report.attention import attention_inside

    maps = np.array([[[0.5, 0.1], [0.1, 0.1]], [[0.0, 0.2], [0.2, 0.4]]])  # two images, 2×2 patches
    coverage = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.5], [0.0, 1.0]]])
    inside, chance = attention_inside(maps, coverage)
    assert inside == pytest.approx((0.5 + 0.2 * 0.5 + 0.4) / 1.6)  # Σ a·m / Σ a
    assert chance == pytest.approx((1.0 + 1.5) / 8)  # mean coverage: uniform attention
    with pytest.raises(ValueError, match="must be the same"):
        attention_inside(maps, coverage[:, :1])


# ------------------------------------------------------------------------------ claim scorecard


def test_paper_values_transcribe_the_tables():
    from vicokd.report.scorecard import paper_values

    paper = paper_values()
    assert paper[("Home-1", "multitsf", "frame", "vicokd")] == 82.91  # Table 1
    assert paper[("Home-2", "multitrans", "sequence", "logitkd")] == 85.55
    assert paper[("Home-1", "multiasl", "frame", "teacher")] == 73.81
    assert ("Home-1", "multiasl", "sequence", "teacher") not in paper  # the teacher has V_F only
    assert paper[("Home-2", "multitsf", "frame", "teacher-vc")] == 92.61  # Table 3
    assert paper[("Home-2", "multiasl", "frame", "vicokd-no-ld")] == 92.02  # Table 4
    assert len(paper) == 2 * (3 + 6 * 6) + 2 * 3 + 4 * 5


def _result(method, seed, value, sup="frame", env="toy", backbone="multitsf"):
    from vicokd.report.tables import CellKey, RunResult

    return RunResult(CellKey(env, backbone, sup, method), seed, value, 0.0)


def test_scorecard_verdicts_by_hand():
    from vicokd.report.scorecard import counts_line, score_claims, scorecard_markdown, verdict_counts

    results = [
        *(_result("student", s, v) for s, v in enumerate((60.0, 62.0, 61.0))),
        # CoKD: +3, +3, +3 over the student: paired std 0, holds (paper: CoKD above the student)
        *(_result("cokd", s, v) for s, v in enumerate((63.0, 65.0, 64.0))),
        # ViCoKD: −1, +1, 0 → d = 0, paired std 1: within noise
        *(_result("vicokd", s, v) for s, v in enumerate((59.0, 63.0, 61.0))),
        # LogitKD: −5 each: below; Home-1 MultiTSF V_F LogitKD 70.08 < student 73.17 → holds
        *(_result("logitkd", s, v) for s, v in enumerate((55.0, 57.0, 56.0))),
        # ModalKD: −5 each, the paper has it above (73.67 > 73.17): contradicted
        *(_result("modalkd", s, v) for s, v in enumerate((55.0, 57.0, 56.0))),
        _result("dualkd", 0, 50.0),  # one seed against three: pairs on seed 0 only
    ]
    claims = {(c.table, c.backbone, c.supervision, c.method, c.against): c
              for c in score_claims(results, {"toy": "Home-1"})}
    cokd = claims[("Table 1", "multitsf", "frame", "cokd", "student")]
    assert (cokd.ours_diff, cokd.spread, cokd.verdict) == (pytest.approx(3.0), pytest.approx(0.0), "holds")
    assert (cokd.paper_a, cokd.paper_b) == (76.89, 73.17)
    vicokd = claims[("Table 1", "multitsf", "frame", "vicokd", "student")]
    assert (vicokd.ours_diff, vicokd.spread, vicokd.verdict) == (pytest.approx(0.0), pytest.approx(1.0),
                                                                   "within noise")
    assert claims[("Table 1", "multitsf", "frame", "logitkd", "student")].verdict == "holds"
    assert claims[("Table 1", "multitsf", "frame", "modalkd", "student")].verdict == "contradicted"
    assert claims[("Table 1", "multitsf", "frame", "dualkd", "student")].verdict == "one seed"
    # ViCoKD best: our best other row is CoKD (64.0 mean); d = 61 − 64 = −3, paired std of (−4, −2, −3) = 1
    best = claims[("Table 1", "multitsf", "frame", "vicokd", "best")]
    assert best.ours_against == "cokd" and best.paper_b == 76.89  # the paper's best other row is CoKD too
    assert (best.ours_diff, best.spread, best.verdict) == (pytest.approx(-3.0), pytest.approx(1.0), "contradicted")
    assert claims[("Table 1", "multitsf", "frame", "teacher", "student")].verdict == "not run"
    counts = verdict_counts(list(claims.values()))
    assert counts == {"holds": 2, "contradicted": 2, "within noise": 1, "one seed": 1,
                      "not run": len(claims) - 6}
    text = scorecard_markdown(list(claims.values()))
    assert text.count("\n| Table") == 6 and counts_line(list(claims.values())) in text
