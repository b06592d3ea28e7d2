"""`vicokd demo` on a tiny setting: every step runs, the report and plots appear; re-runs reuse or resume."""

import hashlib
import json
from pathlib import Path

import pytest

from vicokd.cli import main

TINY = ["--set", "data.num_frames=4", "--set", "data.val_fraction=0.3", "--set", "optim.batch_size=2"]
STUDENTS = ("student", "logitkd", "modalkd", "dualkd", "cokd", "vicokd", "vicokd-ml")  # the fixture asks for ML
PAPER_STUDENTS = STUDENTS[:-1]
HOMES = ("home1", "home2")
RUNS = [f"{home}-multitsf-{name}" for home in HOMES for name in [f"teacher-s{seed}" for seed in (0, 1)] + [
    f"{m}-{s}-s{seed}" for m in STUDENTS for s in ("frame", "sequence") for seed in (0, 1)]]
# Table 3 on the demo's backbone (its teachers are Table 1's), Table 4 and Fig. 3 on MultiASL
ABLATIONS = ("vicokd", "vicokd-no-confw", "vicokd-no-mask", "vicokd-kl", "vicokd-no-fd", "vicokd-no-ld")
TABLE_RUNS = [f"{home}-{name}" for home in HOMES for name in [f"multitsf-teacher-vc-s{seed}" for seed in (0, 1)] + [
    f"multiasl-teacher-s{seed}" for seed in (0, 1)] + [
    f"multiasl-{m}-{s}-s{seed}" for m in (*ABLATIONS, "student", "logitkd", "cokd") for s in ("frame", "sequence")
    for seed in (0, 1)]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    args = ["demo", "--out", str(out), "--fast", "--clips", "8", "--epochs", "1", "--backbones", "multitsf",
            "--workers", "2", "--quiet", "--beyond-paper", *TINY]
    assert main(args) == 0
    return out, args


@pytest.mark.slow
def test_demo_writes_report_tables_and_plots(demo):
    out, _ = demo
    report = (out / "report.md").read_text()
    for heading in ("## What the runs measured", "## Table 1", "## Table 2", "## Table 3", "## Table 4",
                    "## Claim scorecard", "## What the teacher hears — home1", "## What the teacher hears — home2",
                    "## Transfer from the teacher — home2", "## Per class: the teacher's lead", "## Per-class AP",
                    "## Fig. 3: test mAP per epoch", "## What view consistency can act on — home2",
                    "## Gradient share of each loss term", "## Attention maps", "## The synthetic homes",
                    "## Steps and times", "## Configs used"):
        assert heading in report, heading
    assert "groundtruth" in report and "sequence mAP" in report and "frame mAP" in report
    # the regime block (baseline rows against their targets) comes before Table 1 and the claims
    assert "## Is the world the paper's?" in report
    where = report.index
    assert where("## Is the world the paper's?") < where("## Table 1") < where("## Claim scorecard")
    assert "targets met (" in report and "The same claims under frame mAP: " in report
    scorecard = (out / "tables" / "scorecard.md").read_text()
    assert scorecard.index("Is the world the paper's?") < scorecard.index("## Test sequence mAP (the headline)") \
        < scorecard.index("## The same claims under test frame mAP")
    assert "ViCoKD-ML (beyond the paper)" in report and "seeds 0, 1" in report
    # Table 1 cells are mean ± std over the two seeds; the findings compare them against the spread
    assert " ± " in (out / "tables" / "table1.md").read_text()
    assert "ViCoKD " in report and ("no difference" in report or "by more than the larger std" in report)
    # frozen encoders: every run trained from the cached features of the pretrained visual encoder
    encoder = out / "pretrain" / "encoder.safetensors"
    config = json.loads((out / "runs" / "home2-multitsf-vicokd-frame-s1" / "summary.json").read_text())
    assert encoder.is_file() and config["grad_share"]["every"] > 0
    assert (out / "home1" / "features").is_dir() and (out / "home2" / "features").is_dir()
    # the teacher hears through the AST pretrained on the pretraining home's sounds
    audio = out / "pretrain-audio" / "encoder.safetensors"
    teacher_run = out / "runs" / "home2-multitsf-teacher-s0"
    teacher = json.loads((teacher_run / "checkpoints" / "best.json").read_text())
    assert audio.is_file() and teacher["vicokd"]["pretrained"]["audio"] == str(audio)
    for condition in ("av", "audio-missing", "visual"):
        assert (teacher_run / "eval" / f"test-{condition}.json").is_file()
    # only Fig. 3's runs (MultiASL) evaluate the test split after every epoch
    curve = (out / "runs" / "home1-multiasl-vicokd-frame-s0" / "metrics.csv").read_text().splitlines()[0]
    plain = (out / "runs" / "home1-multitsf-vicokd-frame-s0" / "metrics.csv").read_text().splitlines()[0]
    assert "test_curve/seq_map" in curve and "test_curve" not in plain and "val/seq_map" in plain
    # transfer diagnostics in every distillation run's summary
    assert config["init"]["student_init"] == "teacher" and 0 <= config["init"]["seq_map"] <= 100
    assert 0 <= config["transfer"]["frame_decision_agreement"] <= 1 and config["transfer"]["teacher_test"]["per_class"]
    for name in RUNS + TABLE_RUNS:
        assert (out / "runs" / name / "summary.json").is_file(), name
    # the scorecard tests Table 3 and Table 4 claims on both homes (with 2 seeds: a paired std to judge by)
    headline, _, frame = (out / "tables" / "scorecard.md").read_text().partition("## The same claims under test frame")
    scorecard = headline  # sequence mAP; the same claims follow under frame mAP
    assert frame.count("| Table 4, Home-1 MultiASL") == 10 and "of 104 claims tested" in frame
    for home in ("Home-1", "Home-2"):
        assert f"Table 3, {home} MultiTSF V_F: Teacher + VC above Teacher" in scorecard
        assert scorecard.count(f"| Table 4, {home} MultiASL") == 10
    assert "of 104 claims tested" in scorecard and "(56 not run)" in scorecard  # MultiTrans and most of MultiASL
    stems = ["per-class-ap", "floorplan-home1", "floorplan-home2"]
    stems += [f"fig3-{home}-{sup}" for home in HOMES for sup in ("frame", "sequence")]
    for stem in stems:
        assert (out / "plots" / f"{stem}.png").is_file() and (out / "plots" / f"{stem}.csv").is_file(), stem
    # Fig. 3 draws test mAP per epoch; at the epoch chosen on validation it is the run's test mAP
    curve = (out / "plots" / "fig3-home1-frame.csv").read_text()
    vicokd = json.loads((out / "runs" / "home1-multiasl-vicokd-frame-s0" / "summary.json").read_text())
    assert f"ViCoKD,{vicokd['best_epoch'] + 1},{vicokd['test']['seq_map']:.4f}" in curve
    # the homes differ as the paper's do: home2's views see the actor together more, disparity is lower
    assert "| home1 | like Home-1" in report and "| home2 | like Home-2" in report
    assert not list((out / "plots").glob("fig4-attention-*.png"))  # frozen encoders: left out, and said so
    assert "Left out: with frozen encoders" in report
    for link in ("tables/table1.md", "tables/table2.md", "tables/table3.md", "tables/table4.md",
                 "tables/scorecard.md", "plots/floorplan-home1.png", "home1/data/README.md", "home2/data/README.md"):
        assert link in report and (out / link).is_file(), link
    table = (out / "tables" / "table1.md").read_text()
    teachers = [json.loads((out / "runs" / f"home1-multitsf-teacher-s{seed}" / "summary.json").read_text())
                for seed in (0, 1)]
    mean = sum(t["test"]["seq_map"] for t in teachers) / 2
    assert f"{mean:.2f}" in table and f"{mean:.2f}" in report


@pytest.mark.slow
def test_demo_pretraining_never_reads_the_demo_clips(demo):
    out, _ = demo

    def digests(root):
        return {hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.mp4")}

    demo_videos, pretrain_videos = digests(out / "home1" / "data"), digests(out / "pretrain" / "home")
    assert demo_videos and pretrain_videos and not demo_videos & pretrain_videos
    # the audio encoder learnt from the pretraining home's files only (by content, not by name)
    heard = json.loads((out / "pretrain-audio" / "pretrain.json").read_text())
    audio_videos = {hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in heard["videos"]}
    assert audio_videos and audio_videos <= pretrain_videos and not audio_videos & demo_videos
    made = json.loads((out / "pretrain" / "pretrain.json").read_text())
    assert made["generator_seed"] != json.loads((out / "home1" / "data" / "synth.json").read_text())["options"]["seed"]
    assert str(out / "pretrain" / "home") in made["home"] and str(out / "home1") not in made["home"]


@pytest.mark.slow
def test_demo_rerun_reuses_and_resumes(demo, capsys):
    out, args = demo
    capsys.readouterr()
    run = out / "runs" / "home2-multitsf-vicokd-sequence-s0"
    kept = out / "runs" / "home1-multitsf-cokd-frame-s0" / "summary.json"
    before = kept.stat().st_mtime_ns
    (run / "summary.json").unlink()  # as if killed after its last checkpoint
    assert main(args) == 0
    printed = capsys.readouterr().out
    # per home synth, prepare, person scores, features; visual and audio pretraining (and their own 4 steps
    # each); the teacher's audio conditions; the finished runs
    assert printed.count(": reused") == 2 * 4 + 2 + 4 + 4 + 1 + len(RUNS) + len(TABLE_RUNS) - 1
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
    from vicokd.pipeline.demo_options import (
        DEFAULT_CLIPS,
        DEFAULT_SEEDS,
        FAST_CLIPS,
        FAST_EPOCHS,
        FAST_SEEDS,
        DemoOptions,
    )

    default = DemoOptions()
    assert default.num_clips == DEFAULT_CLIPS and default.num_epochs is None and default.num_seeds == DEFAULT_SEEDS
    assert len(default.plan().cells) == 2 * 3 * DEFAULT_SEEDS * (1 + 2 * len(PAPER_STUDENTS))  # homes × backbones
    assert "vicokd-ml" not in {c.method for c in default.plan().cells}
    assert [p.grid for p in default.all_plans()] == ["table1", "table1", "table2", "table3", "table4"]
    figure = default.all_plans()[0]  # Fig. 3's runs come first: the shared cells get its test curve
    assert figure.backbones == ["multiasl"] and "train.test_curve=true" in figure.overrides
    assert all("train.test_curve=true" not in p.overrides for p in default.all_plans()[1:])
    fast = DemoOptions(out=tmp_path, fast=True)
    assert fast.num_clips == FAST_CLIPS and fast.num_epochs == FAST_EPOCHS and fast.num_seeds == FAST_SEEDS
    assert f"optim.epochs={FAST_EPOCHS}" in fast.plan().overrides
    assert [env.features for env in fast.plan().envs] == [tmp_path / "home1" / "features",
                                                           tmp_path / "home2" / "features"]
    assert fast.synth_options("home2").layout == "home2" and fast.synth_options("home1").seed == 0
    assert f"model.visual.pretrained={tmp_path / 'pretrain' / 'encoder.safetensors'}" in fast.plan().overrides
    explicit = DemoOptions(out=tmp_path, fast=True, clips=30, epochs=7, seeds=1, backbone="multiasl", data_seed=4,
                           finetune=True, backbones=("multiasl",), homes=("home1",), beyond_paper=True)
    assert explicit.synth_options().clips == 30 and explicit.synth_options().seed == 4
    assert explicit.pretrain_options().data_seed == 4
    assert "optim.epochs=7" in explicit.plan().overrides
    # --finetune: every run trains the top visual block from the tokens below it; -1 = end to end from pixels
    assert explicit.trainable_blocks == 1 and explicit.encoders_change
    assert explicit.plan().envs[0].features == tmp_path / "home1" / "features-top1"
    assert "model.visual.trainable_blocks=1" in explicit.plan().overrides
    whole = DemoOptions(out=tmp_path, finetune=True, overrides=("model.visual.trainable_blocks=-1",))
    assert whole.trainable_blocks == -1 and whole.plan().envs[0].features is None
    assert not default.encoders_change and default.trainable_blocks == 0
    plan = explicit.plan()
    assert plan.backbones == ["multiasl"] and plan.cells[0].name == "home1-multiasl-teacher-s0"
    assert len(plan.cells) == 1 + 2 * len(STUDENTS)
    # --only table4: the ablations, and only the detailed backbone's teachers of Table 1
    ablations = DemoOptions(out=tmp_path, only=("table4",), seeds=1)
    assert [p.grid for p in ablations.all_plans()] == ["table1", "table4"]  # no figures: no Fig. 3 plan
    assert {c.method for c in ablations.plan().cells} == {"teacher"}
    assert {c.backbone for c in ablations.plan().cells} == {"multitsf"}
    # --only baselines: Table 1's rows without a method (teacher, plain student V_F and V_S), every backbone
    baselines = DemoOptions(out=tmp_path, only=("baselines",), seeds=2)
    assert [p.grid for p in baselines.all_plans()] == ["table1"]
    assert {(c.method, c.supervision) for c in baselines.plan().cells} == {
        ("teacher", "frame"), ("student", "frame"), ("student", "sequence")}
    assert len(baselines.plan().cells) == 2 * 3 * 3 * 2  # homes x backbones x rows x seeds


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--homes", "home3", "--homes: unknown home 'home3'"), ("--only", "tables", "--only: unknown part 'tables'"),
    ("--backbones", "resnet", "--backbones: unknown backbone 'resnet'")])
def test_demo_bad_choices_are_one_line(tmp_path, capsys, flag, value, message):
    assert main(["demo", "--out", str(tmp_path / "d"), flag, value, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_finetune_demo_draws_fig4_and_scores_its_claim(tmp_path):
    """`--finetune`: the runs train the top ViT block from the token cache, the report draws the Fig. 4
    maps of MultiASL, the share of attention on the actor per seed, and the scorecard has Fig. 4's claim."""
    out = tmp_path / "demo-ft"
    args = ["demo", "--out", str(out), "--fast", "--clips", "8", "--epochs", "1", "--only", "figures",
            "--backbones", "multiasl", "--homes", "home1", "--finetune", "--workers", "2", "--quiet", *TINY]
    assert main(args) == 0
    assert (out / "home1" / "features-top1").is_dir() and not (out / "home1" / "features").exists()
    summary = json.loads((out / "runs" / "home1-multiasl-vicokd-frame-s1" / "summary.json").read_text())
    config = (out / "runs" / "home1-multiasl-vicokd-frame-s1" / "config.yaml").read_text()
    assert "trainable_blocks: 1" in config and summary["test"]["seq_map"] >= 0
    report = (out / "report.md").read_text()
    assert "## Attention maps (test clips, Fig. 4 style)" in report and "Left out" not in report
    assert list((out / "plots").glob("fig4-attention-home1-*.png"))
    assert "ViCoKD V_F (trained, 2 seeds)" in report and "ViCoKD − Student, paired over seeds 0, 1" in report
    scorecard = (out / "tables" / "scorecard.md").read_text()
    assert "Fig. 4, Home-1 MultiASL V_F: attention on the person [%] of ViCoKD above Student" in scorecard
    assert "shown, not measured" in scorecard
