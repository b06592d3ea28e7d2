"""`vicokd reproduce`: a 2-cell grid on tiny mp4 data; tables equal the runs' summaries; reuse; errors."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from run_helpers import TINY_RUN, set_args
from vicokd.cli import main
from vicokd.data.person_scores import write_person_scores
from vicokd.detect.run import dataset_clips
from vicokd.errors import VicokdError
from vicokd.pipeline.grid import EnvData, make_plan, parse_data_arg, write_plan_tables
from vicokd.report.tables import MISSING

from media_helpers import make_dataset

TINY = [*TINY_RUN, "optim.epochs=1", "train.log_every_n_steps=1"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A finished 2-cell grid (teacher + student V_F) on three tiny clips; returns (data, out, output)."""
    base = tmp_path_factory.mktemp("reproduce")
    data, out = base / "data", base / "out"
    make_dataset(data)
    # the demo preset reads person scores from the generator's ground truth: write one for these clips
    visible = {clip.key: np.ones((3, 10), np.float32) for clip in dataset_clips(data)}
    write_person_scores(data / "visibility.npz", visible, detector="groundtruth")
    args = ["reproduce", "--grid", "table1", "--data", f"toy={data}", "--seeds", "1", "--backbones", "multitsf",
            "--methods", "teacher,student", "--supervisions", "frame", "--out", str(out), "--workers", "1", "--quiet",
            *set_args(TINY)]
    assert main(args) == 0
    return data, out, args


def test_table_numbers_equal_the_run_summaries(grid):
    _, out, _ = grid
    summaries = {name: json.loads((out / "runs" / name / "summary.json").read_text())
                 for name in ("toy-multitsf-teacher-s0", "toy-multitsf-student-frame-s0")}
    with (out / "tables" / "table1.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4  # 2 cells × 2 metrics
    for row in rows:
        name = "toy-multitsf-teacher-s0" if row["method"] == "teacher" else "toy-multitsf-student-frame-s0"
        expected = summaries[name]["test"][row["metric"]]
        assert float(row["mean"]) == pytest.approx(expected, abs=5e-5)
        assert row["n"] == "1" and row["std"] == "" and row["seeds"] == "0"
    markdown = (out / "tables" / "table1.md").read_text()
    assert f"{summaries['toy-multitsf-student-frame-s0']['test']['seq_map']:.2f}" in markdown
    assert "MultiTSF V_F" in markdown and "V_S" not in markdown
    # the one claim these two cells test: the teacher above the student (one seed: no spread to judge by)
    scorecard = (out / "tables" / "scorecard.md").read_text()
    assert "toy against the paper's Home-1" in scorecard and "Teacher above Student" in scorecard
    assert "1 of 52 claims tested" in scorecard and "| one seed |" in scorecard


def test_rerun_reuses_every_step(grid, capsys):
    _, out, args = grid
    summary = out / "runs" / "toy-multitsf-student-frame-s0" / "summary.json"
    before = summary.stat().st_mtime_ns
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count(": reused") == 4  # prepare, person scores, 2 runs (the tables are rewritten)
    assert summary.stat().st_mtime_ns == before
    steps = json.loads((out / "steps.json").read_text())["steps"]
    assert steps["train toy-multitsf-teacher-s0"]["status"] == "reused"
    assert main([*args, "--dry-run"]) == 0
    assert "train toy-multitsf-student-frame-s0 [done]" in capsys.readouterr().out


def test_cells_not_run_are_missing(grid):
    data, out, _ = grid
    plan = make_plan("table1", [EnvData("toy", data, out / "cache" / "toy")], seeds=1, out=out,
                     backbones=["multitsf"], methods=["teacher", "student", "vicokd"], overrides=TINY)
    markdown, _ = write_plan_tables(plan)
    lines = markdown.read_text().splitlines()
    vicokd = [line for line in lines if line.startswith("| ViCoKD")]
    assert vicokd and all(line.count(MISSING) == 2 for line in vicokd)
    assert "2 of 5 runs finished" in lines[2]  # teacher, student V_F; not: student V_S, vicokd V_F, V_S


def test_changed_setting_is_refused(grid, capsys):
    _, _, args = grid
    assert main([*args, "--set", "optim.lr=0.5"]) == 2
    assert "optim.lr" in capsys.readouterr().err


def test_argument_errors(tmp_path):
    assert parse_data_arg("home1=data/h1,cache/h1", tmp_path) == EnvData("home1", Path("data/h1"), Path("cache/h1"))
    assert parse_data_arg("home2=data/h2", tmp_path).cache == tmp_path / "cache" / "home2"
    for bad in ("data/h1", "=x", "a/b=x"):
        with pytest.raises(VicokdError, match="--data"):
            parse_data_arg(bad, tmp_path)
    env = [EnvData("e", tmp_path, tmp_path)]
    with pytest.raises(VicokdError, match="--methods"):
        make_plan("table3", env, out=tmp_path, methods=["vicokd"])
    with pytest.raises(VicokdError, match="--backbones"):
        make_plan("table1", env, out=tmp_path, backbones=["resnet"])
    with pytest.raises(VicokdError, match="--seeds"):
        make_plan("table1", env, out=tmp_path, seeds=0)


def test_grid_plans_add_teachers_and_lay_out_tables(tmp_path):
    envs = [EnvData("home1", tmp_path, tmp_path), EnvData("home2", tmp_path, tmp_path)]
    plan = make_plan("table2", envs, seeds=2, out=tmp_path, backbones=["multiasl"])
    names = [cell.name for cell in plan.cells]
    assert names[:4] == ["home1-multiasl-teacher-s0", "home1-multiasl-teacher-s1", "home2-multiasl-teacher-s0",
                         "home2-multiasl-teacher-s1"]
    assert len(names) == 4 + 2 * 2 * 2  # teachers + vicokd × env × supervision × seed
    assert [layout.name for layout in plan.layouts()] == ["table2"]
    table4 = make_plan("table4", envs, seeds=1, out=tmp_path)
    assert table4.backbones == ["multiasl"] and len(table4.layouts()[0].rows) == 6
    table3 = make_plan("table3", envs, seeds=1, out=tmp_path)
    assert {cell.method for cell in table3.cells} == {"teacher", "teacher-vc"}


@pytest.mark.slow
def test_parallel_runs_equal_serial_runs_of_the_same_threads(grid, tmp_path, capsys):
    """Two worker processes (one thread each) give the summaries a one-thread serial grid gives,
    students start after their teachers, and every run is a numbered step."""
    import torch

    _, _, args = grid
    parallel_args = [*args, "--parallel-runs", "2", "--seeds", "2"]
    parallel_args[parallel_args.index("--out") + 1] = str(tmp_path / "parallel")
    assert main(parallel_args) == 0
    printed = capsys.readouterr().out
    assert printed.count("train toy-multitsf-") == 4 and "[6/7] train" in printed
    serial_args = [*args, "--seeds", "2"]
    serial_args[serial_args.index("--out") + 1] = str(tmp_path / "serial")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(serial_args) == 0
    finally:
        torch.set_num_threads(threads)
    for seed in (0, 1):
        for name in (f"toy-multitsf-teacher-s{seed}", f"toy-multitsf-student-frame-s{seed}"):
            parallel = json.loads((tmp_path / "parallel" / "runs" / name / "summary.json").read_text())
            serial = json.loads((tmp_path / "serial" / "runs" / name / "summary.json").read_text())
            assert parallel["test"] == serial["test"], name
            assert parallel["best_epoch"] == serial["best_epoch"], name


def test_student_variants_share_their_teachers_and_teacher_overrides_stay_with_teachers(tmp_path):
    from dataclasses import replace

    plan = make_plan("table1", [EnvData("toy", tmp_path / "data", tmp_path / "cache")], seeds=1, out=tmp_path,
                     backbones=["multitsf"], methods=["teacher", "vicokd"], supervisions=["frame"])
    plan = replace(plan, variants={"a": [], "b": ["distill.vc_tau=0.25"]}, teacher_overrides=["optim.lr=0.01"])
    names = [cell.name for cell in plan.cells]
    assert names == ["toy-multitsf-teacher-s0", "toy-multitsf-a-vicokd-frame-s0", "toy-multitsf-b-vicokd-frame-s0"]
    teacher, a, b = (plan.config(cell) for cell in plan.cells)
    assert teacher.optim.lr == 0.01 and a.optim.lr != 0.01 and b.optim.lr != 0.01
    assert b.distill.vc_tau == 0.25 and a.distill.vc_tau != 0.25 and teacher.distill.vc_tau != 0.25


def test_a_run_requested_before_the_normalisation_moved_is_the_same_run():
    """A run folder whose request.json keeps data.mean / data.std (an earlier vicokd) is reused, not
    refused as another setting (issue 33 moved them to model.visual)."""
    from vicokd.config import Config, config_to_dict
    from vicokd.pipeline.steps import request_difference

    new = config_to_dict(Config())
    old = {**new, "data": {**new["data"], "mean": new["model"]["visual"]["mean"], "std": new["model"]["visual"]["std"]},
           "model": {**new["model"], "visual": {k: v for k, v in new["model"]["visual"].items()
                                                if k not in ("mean", "std")}}}
    assert request_difference(old, new) is None
    other = {**old, "data": {**old["data"], "mean": [0.5, 0.5, 0.5]}}
    assert request_difference(other, new) == "model.visual.mean: [0.5, 0.5, 0.5] → [0.485, 0.456, 0.406]"
