"""`vicokd demo` on a tiny setting: every step runs, the report and plots appear; re-runs reuse or resume."""

import hashlib
import json
from pathlib import Path

import pytest

from vicokd.cli import main

TINY = ["--set", "data.num_frames=4", "--set", "data.val_fraction=0.3", "--set", "optim.batch_size=2"]
STUDENTS = ("student", "logitkd", "modalkd", "dualkd", "cokd", "vicokd", "vicokd-ml")
RUNS = [f"teacher-s{seed}" for seed in (0, 1)] + [
    f"{m}-{s}-s{seed}" for m in STUDENTS for s in ("frame", "sequence") for seed in (0, 1)]
# Table 3 on the demo's backbone (its teachers are Table 1's), Table 4 on MultiASL
ABLATIONS = ("vicokd", "vicokd-no-confw", "vicokd-no-mask", "vicokd-kl", "vicokd-no-fd", "vicokd-no-ld")
TABLE_RUNS = [f"multitsf-teacher-vc-s{seed}" for seed in (0, 1)] + [f"multiasl-teacher-s{seed}" for seed in (0, 1)] + [
    f"multiasl-{m}-{s}-s{seed}" for m in ABLATIONS for s in ("frame", "sequence") for seed in (0, 1)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    args = ["demo", "--out", str(out), "--fast", "--clips", "8", "--epochs", "1", "--workers", "1", "--quiet", *TINY]
    assert main(args) == 0
    return out, args


@pytest.mark.slow
def test_demo_writes_report_tables_and_plots(demo):
    out, _ = demo
    report = (out / "report.md").read_text()
    for heading in ("## What the runs measured", "## Table 1", "## Table 3", "## Table 4", "## Claim scorecard",
                    "## What the teacher hears",
                    "## Transfer from the teacher", "## Per class: the teacher's lead", "## Per-class AP",
                    "## mAP per epoch",
                    "## Gradient share of each loss term", "## Attention maps", "## The synthetic home",
                    "## Steps and times", "## Configs used"):
        assert heading in report, heading
    assert "groundtruth" in report and "sequence mAP" in report and "frame mAP" in report
    assert "ViCoKD-ML (beyond the paper)" in report and "seeds 0, 1" in report
    # Table 1 cells are mean ± std over the two seeds; the findings compare them against the spread
    assert " ± " in (out / "tables" / "table1.md").read_text()
    assert "ViCoKD " in report and ("no difference" in report or "by more than the larger std" in report)
    # frozen encoders: every run trained from the cached features of the pretrained visual encoder
    encoder = out / "pretrain" / "encoder.safetensors"
    config = json.loads((out / "runs" / "synthetic-home-multitsf-vicokd-frame-s1" / "summary.json").read_text())
    assert encoder.is_file() and (out / "features").is_dir() and config["grad_share"]["every"] > 0
    # the teacher hears through the AST pretrained on the pretraining home's sounds
    audio = out / "pretrain-audio" / "encoder.safetensors"
    teacher_run = out / "runs" / "synthetic-home-multitsf-teacher-s0"
    teacher = json.loads((teacher_run / "checkpoints" / "best.json").read_text())
    assert audio.is_file() and teacher["vicokd"]["pretrained"]["audio"] == str(audio)
    for condition in ("av", "audio-missing", "visual"):
        assert (teacher_run / "eval" / f"test-{condition}.json").is_file()
    # transfer diagnostics in every distillation run's summary
    assert config["init"]["student_init"] == "teacher" and 0 <= config["init"]["seq_map"] <= 100
    assert 0 <= config["transfer"]["frame_decision_agreement"] <= 1 and config["transfer"]["teacher_test"]["per_class"]
    for name in RUNS:
        assert (out / "runs" / f"synthetic-home-multitsf-{name}" / "summary.json").is_file(), name
    for name in TABLE_RUNS:
        assert (out / "runs" / f"synthetic-home-{name}" / "summary.json").is_file(), name
    # the scorecard tests Table 3 and Table 4 claims too (with 2 seeds: a paired std to judge by)
    scorecard = (out / "tables" / "scorecard.md").read_text()
    assert "Table 3, Home-1 MultiTSF V_F: Teacher + VC above Teacher" in scorecard
    assert scorecard.count("| Table 4, Home-1 MultiASL") == 10 and "24 of 52 claims tested" in scorecard
    for stem in ("fig3-curves-frame", "fig3-curves-sequence", "per-class-ap", "floorplan"):
        assert (out / "plots" / f"{stem}.png").is_file() and (out / "plots" / f"{stem}.csv").is_file(), stem
    assert not list((out / "plots").glob("fig4-attention-*.png"))  # frozen encoders: left out, and said so
    assert "Left out: with frozen encoders" in report
    for link in ("tables/table1.md", "tables/table3.md", "tables/table4.md", "tables/scorecard.md",
                 "plots/floorplan.png", "data/README.md"):
        assert link in report and (out / link).is_file(), link
    table = (out / "tables" / "table1.md").read_text()
    teachers = [json.loads((out / "runs" / f"synthetic-home-multitsf-teacher-s{seed}" / "summary.json").read_text())
                for seed in (0, 1)]
    mean = sum(t["test"]["seq_map"] for t in teachers) / 2
    assert f"{mean:.2f}" in table and f"{mean:.2f}" in report


@pytest.mark.slow
def test_demo_pretraining_never_reads_the_demo_clips(demo):
    out, _ = demo

    def digests(root):
        return {hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.mp4")}

    demo_videos, pretrain_videos = digests(out / "data"), digests(out / "pretrain" / "home")
    assert demo_videos and pretrain_videos and not demo_videos & pretrain_videos
    # the audio encoder learnt from the pretraining home's files only (by content, not by name)
    heard = json.loads((out / "pretrain-audio" / "pretrain.json").read_text())
    audio_videos = {hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in heard["videos"]}
    assert audio_videos and audio_videos <= pretrain_videos and not audio_videos & demo_videos
    made = json.loads((out / "pretrain" / "pretrain.json").read_text())
    assert made["generator_seed"] != json.loads((out / "data" / "synth.json").read_text())["options"]["seed"]
    assert str(out / "pretrain" / "home") in made["home"] and str(out / "data") not in made["home"]


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
    # synth, visual and audio pretraining (and their own 4 steps each), prepare, person scores, features,
    # the teacher's audio conditions + finished runs
    assert printed.count(": reused") == 7 + 4 + 4 + len(RUNS) + len(TABLE_RUNS) - 1
    assert "vicokd-sequence-s0: resumed" in printed
    assert (run / "summary.json").is_file() and kept.stat().st_mtime_ns == before
    steps = json.loads((out / "steps.json").read_text())["steps"]
    assert steps["report"]["status"] == "done"


@pytest.mark.slow
def test_demo_refuses_other_generator_options(demo, capsys):
    _, args = demo
    clips = args.index("--clips") + 1
    assert main([*args[:clips], "9", *args[clips + 1:]]) == 2
    assert "--out" in capsys.readouterr().err


def test_demo_options_fast_and_explicit(tmp_path):
    from vicokd.pipeline.demo import DEFAULT_CLIPS, DEFAULT_SEEDS, FAST_CLIPS, FAST_EPOCHS, FAST_SEEDS, DemoOptions

    default = DemoOptions()
    assert default.num_clips == DEFAULT_CLIPS and default.num_epochs is None and default.num_seeds == DEFAULT_SEEDS
    assert len(default.plan().cells) == DEFAULT_SEEDS * (1 + 2 * len(STUDENTS))
    fast = DemoOptions(out=tmp_path, fast=True)
    assert fast.num_clips == FAST_CLIPS and fast.num_epochs == FAST_EPOCHS and fast.num_seeds == FAST_SEEDS
    assert f"optim.epochs={FAST_EPOCHS}" in fast.plan().overrides
    assert f"data.features={tmp_path / 'features'}" in fast.plan().overrides
    assert f"model.visual.pretrained={tmp_path / 'pretrain' / 'encoder.safetensors'}" in fast.plan().overrides
    explicit = DemoOptions(out=tmp_path, fast=True, clips=30, epochs=7, seeds=1, backbone="multiasl", data_seed=4,
                           finetune=True)
    assert explicit.synth_options().clips == 30 and explicit.synth_options().seed == 4
    assert explicit.pretrain_options().data_seed == 4
    assert "optim.epochs=7" in explicit.plan().overrides
    assert not any(o.startswith("data.features=") for o in explicit.plan().overrides)  # --finetune: end to end
    plan = explicit.plan()
    assert plan.backbones == ["multiasl"] and plan.cells[0].name == "synthetic-home-multiasl-teacher-s0"
    assert len(plan.cells) == 1 + 2 * len(STUDENTS)
