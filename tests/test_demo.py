"""`vicokd demo` on a tiny setting: every step runs, the report and plots appear; re-runs reuse or resume."""

import json

import pytest

from vicokd.cli import main

TINY = ["--set", "data.num_frames=4", "--set", "data.val_fraction=0.3", "--set", "optim.batch_size=2"]
RUNS = ["teacher-s0"] + [f"{m}-{s}-s0" for m in ("student", "logitkd", "cokd", "vicokd") for s in ("frame", "sequence")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    args = ["demo", "--out", str(out), "--clips", "8", "--epochs", "1", "--workers", "1", "--quiet", *TINY]
    assert main(args) == 0
    return out, args


@pytest.mark.slow
def test_demo_writes_report_tables_and_plots(demo):
    out, _ = demo
    report = (out / "report.md").read_text()
    for heading in ("## What the runs measured", "## Table 1", "## Per-class AP", "## mAP per epoch",
                    "## Attention maps", "## The synthetic home", "## Steps and times", "## Configs used"):
        assert heading in report, heading
    assert "groundtruth" in report and "sequence mAP" in report and "frame mAP" in report
    for name in RUNS:
        assert (out / "runs" / f"synthetic-home-multitsf-{name}" / "summary.json").is_file(), name
    for stem in ("fig3-curves-frame", "fig3-curves-sequence", "per-class-ap", "floorplan"):
        assert (out / "plots" / f"{stem}.png").is_file() and (out / "plots" / f"{stem}.csv").is_file(), stem
    attention = sorted((out / "plots").glob("fig4-attention-*.png"))
    assert attention and all(p.with_suffix(".csv").is_file() for p in attention)
    for link in ("tables/table1.md", "plots/floorplan.png", "data/README.md"):
        assert link in report and (out / link).is_file(), link
    table = (out / "tables" / "table1.md").read_text()
    teacher = json.loads((out / "runs" / "synthetic-home-multitsf-teacher-s0" / "summary.json").read_text())
    assert f"{teacher['test']['seq_map']:.2f}" in table and f"{teacher['test']['seq_map']:.2f}" in report


@pytest.mark.slow
def test_demo_rerun_reuses_and_resumes(demo, capsys):
    out, args = demo
    capsys.readouterr()
    run = out / "runs" / "synthetic-home-multitsf-vicokd-sequence-s0"
    kept = out / "runs" / "synthetic-home-multitsf-cokd-frame-s0" / "summary.json"
    before = kept.stat().st_mtime_ns
    (run / "summary.json").unlink()  # as if killed after its last checkpoint
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count(": reused") == 3 + len(RUNS) - 1  # synth, prepare, person scores + finished runs
    assert "vicokd-sequence-s0: resumed" in printed
    assert (run / "summary.json").is_file() and kept.stat().st_mtime_ns == before
    steps = json.loads((out / "steps.json").read_text())["steps"]
    assert steps["report"]["status"] == "done"


@pytest.mark.slow
def test_demo_refuses_other_generator_options(demo, capsys):
    _, args = demo
    assert main([*args[:3], "--clips", "9", *args[5:]]) == 2
    assert "--out" in capsys.readouterr().err


def test_demo_options_fast_and_explicit(tmp_path):
    from vicokd.pipeline.demo import DEFAULT_CLIPS, FAST_CLIPS, FAST_EPOCHS, DemoOptions

    assert DemoOptions().num_clips == DEFAULT_CLIPS and DemoOptions().num_epochs is None
    fast = DemoOptions(out=tmp_path, fast=True)
    assert fast.num_clips == FAST_CLIPS and fast.num_epochs == FAST_EPOCHS
    assert f"optim.epochs={FAST_EPOCHS}" in fast.plan().overrides
    explicit = DemoOptions(out=tmp_path, fast=True, clips=30, epochs=7, backbone="multiasl")
    assert explicit.synth_options().clips == 30 and "optim.epochs=7" in explicit.plan().overrides
    plan = explicit.plan()
    assert plan.backbones == ["multiasl"] and plan.cells[0].name == "synthetic-home-multiasl-teacher-s0"
    assert len(plan.cells) == 9
