"""Training end to end on tiny real mp4 data: teacher, distillation, evaluate, resume, errors."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from run_helpers import CONFIGS, set_args
from vicokd.cli import main
from vicokd.config import load_config
from vicokd.data.cache import read_index
from vicokd.data.person_scores import write_person_scores
from vicokd.errors import VicokdError
from vicokd.models.checkpoint import load_state_dict, read_meta
from vicokd.training.run import fit


@pytest.fixture(scope="module")
def workspace(tiny_workspace):
    base, overrides = tiny_workspace
    overrides = [*overrides, "optim.epochs=2", "train.log_every_n_steps=1"]
    index = read_index(base / "cache")
    rng = np.random.default_rng(0)
    scores = {key: (rng.random((meta.num_views, meta.length)) > 0.3).astype(np.float32)
              for key, meta in index.clips.items()}
    write_person_scores(base / "cache" / "person_scores.npz", scores, detector="test")
    return base, overrides


@pytest.fixture(scope="module")
def teacher(workspace):
    _, overrides = workspace
    config = load_config(CONFIGS / "teacher.yaml", overrides)
    summary = fit(config, progress=False)
    return Path(summary["best_checkpoint"]), summary


def test_teacher_run_directory(teacher, workspace):
    checkpoint, summary = teacher
    run = checkpoint.parent.parent
    for name in ("config.yaml", "metrics.csv", "summary.json", "checkpoints/last.safetensors",
                 "checkpoints/last.json", "checkpoints/best.safetensors", "checkpoints/best.json"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    meta = read_meta(checkpoint)
    assert meta.role == "teacher" and meta.classes == ("Drink", "Enter", "Sitdown", "UsePhone")
    assert summary["selection_split"] == "val" and 0 <= summary["test"]["seq_map"] <= 100
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {"train/loss_epoch", "train/frame", "train/seq", "val/seq_map", "val/frame_map"} <= set(rows[0])
    # epoch means, one row per epoch; the teacher's weights are all 1, so the mean loss is the sum of the term means
    epoch_rows = [row for row in rows if row["train/loss_epoch"]]
    assert [row["epoch"] for row in epoch_rows] == ["0", "1"]
    for row in epoch_rows:
        term_means = [float(v) for k, v in row.items()
                      if k.startswith("train/") and not k.endswith(("_epoch", "_step")) and v]
        assert len(term_means) >= 2 and float(row["train/loss_epoch"]) == pytest.approx(sum(term_means), rel=1e-5)
    assert sorted({row["epoch"] for row in rows if row["val/seq_map"]}) == ["0", "1"]
    sidecar = json.loads((run / "checkpoints" / "last.json").read_text())
    assert sidecar["optimizer_states"] and sidecar["lr_schedulers"] and "rng" in sidecar


@pytest.mark.parametrize(("method", "supervision", "terms"), [
    ("vicokd", "frame", {"frame", "seq", "fd", "ld", "vc"}),
    ("cokd", "sequence", {"seq", "fd", "ld"}),
    ("modalkd", "frame", {"frame", "seq", "modal"}),
])
def test_distill_methods_log_their_terms(teacher, workspace, method, supervision, terms):
    base, overrides = workspace
    ckpt, _ = teacher
    code = main(["distill", "--config", str(CONFIGS / "student.yaml"), "--teacher", str(ckpt), "--method", method,
                 "--supervision", supervision, *set_args(overrides),
                 "--set", f"train.name={method}-{supervision}", "--set", "optim.epochs=1"])
    assert code == 0
    run = base / "runs" / f"{method}-{supervision}"
    with (run / "metrics.csv").open() as handle:
        logged = {k.split("/", 1)[1] for k in next(csv.DictReader(handle)) if k.startswith("train/")}
    backbone_terms = {"human"}  # MultiTSF's human head trains on the person scores
    assert logged - {"loss_step", "loss_epoch"} == terms | backbone_terms
    student = load_file(str(run / "checkpoints" / "best.safetensors"))
    assert not any("audio_encoder" in name for name in student), "student checkpoint holds no audio encoder"
    assert read_meta(run / "checkpoints" / "best.safetensors").teacher["checkpoint"] == str(ckpt)


def test_distill_logs_gradient_shares_and_calls_out_an_inert_term(teacher, workspace, capsys):
    base, overrides = workspace
    ckpt, _ = teacher
    code = main(["distill", "--config", str(CONFIGS / "student.yaml"), "--teacher", str(ckpt), "--method", "vicokd",
                 "--supervision", "sequence", *set_args(overrides), "--set", "train.name=vicokd-shares",
                 "--set", "optim.epochs=1", "--set", "train.grad_share_every=1", "--set", "distill.weight_vc=1e-9",
                 "--set", "model.sequence_head=frame_pool"])
    assert code == 0
    out = capsys.readouterr().out
    run = base / "runs" / "vicokd-shares"
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    columns = {k for k in rows[0] if k.startswith("grad/")}
    for term in ("seq", "fd", "ld", "vc", "human"):
        assert {f"grad/{term}/{group}" for group in ("visual", "cross_modal", "backbone", "heads")} <= columns, term
    measured = [row for row in rows if row["grad/seq/heads"]]
    steps = read_meta(run / "checkpoints" / "last.safetensors").step
    assert steps >= 1 and len(measured) == steps and all(row["epoch"] == "0" for row in measured)  # every step
    assert all(float(row["grad/fd/backbone"]) == 0 < float(row["grad/fd/cross_modal"]) for row in measured)
    summary = json.loads((run / "summary.json").read_text())["grad_share"]
    assert summary["steps"] == steps and summary["every"] == 1 and summary["seconds"] > 0
    assert sum(summary["share"].values()) == pytest.approx(1.0)
    assert summary["share"]["vc"] < 1e-6 < summary["share"]["ld"]
    assert "vicokd-shares: gradient share: " in out
    assert "vicokd-shares: vc: " in out and "of the gradient: inert" in out


def test_measuring_gradient_shares_leaves_training_unchanged(workspace):
    base, overrides = workspace
    weights = {}
    for every in (0, 1):
        config = load_config(CONFIGS / "teacher.yaml", [*overrides, "optim.epochs=1", f"train.grad_share_every={every}",
                                                       f"train.name=teacher-every{every}"])
        summary = fit(config, progress=False)
        assert summary["grad_share"]["steps"] == (0 if every == 0 else summary_steps(config))
        weights[every] = load_state_dict(base / "runs" / f"teacher-every{every}" / "checkpoints" / "last.safetensors")
    assert weights[0].keys() == weights[1].keys() and weights[0]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_test_curve_is_logged_and_leaves_training_unchanged(workspace):
    """train.test_curve logs test mAP per epoch (Fig. 3) without touching the weights, the selection
    or the final test numbers; at the selected epoch the curve equals the summary's test mAP."""
    from vicokd.report.curves import read_metric_curve

    base, overrides = workspace
    summaries, weights = {}, {}
    for curve in (False, True):
        name = f"teacher-curve-{curve}"
        config = load_config(CONFIGS / "teacher.yaml", [*overrides, "optim.epochs=2", f"train.test_curve={curve}",
                                                       f"train.name={name}"])
        summaries[curve] = fit(config, progress=False)
        weights[curve] = load_state_dict(base / "runs" / name / "checkpoints" / "last.safetensors")
    assert all(torch.equal(weights[False][k], weights[True][k]) for k in weights[False])
    assert summaries[False]["test"] == summaries[True]["test"]
    assert summaries[False]["best_epoch"] == summaries[True]["best_epoch"]
    curve = dict(read_metric_curve(base / "runs" / "teacher-curve-True" / "metrics.csv", "test_curve/seq_map"))
    assert sorted(curve) == [1, 2]
    assert curve[summaries[True]["best_epoch"] + 1] == pytest.approx(summaries[True]["test"]["seq_map"], abs=1e-4)
    with pytest.raises(VicokdError, match="no column 'test_curve/seq_map'"):
        read_metric_curve(base / "runs" / "teacher-curve-False" / "metrics.csv", "test_curve/seq_map")


def summary_steps(config) -> int:
    return read_meta(Path(config.train.out_dir) / config.train.name / "checkpoints" / "last.safetensors").step


def test_teacher_is_frozen_during_distillation(teacher, workspace):
    from vicokd.training.module import ViCoKDModule
    from vicokd.training.run import load_teacher

    _, overrides = workspace
    ckpt, _ = teacher
    config = load_config(CONFIGS / "student.yaml", overrides)
    model, meta = load_teacher(ckpt, config, read_index(config.data.cache).classes)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    module = ViCoKDModule(config, read_index(config.data.cache).classes, model, meta)
    assert all(not p.requires_grad for p in model.parameters())
    assert not any(name.startswith("_teacher") for name, _ in module.named_parameters())
    optimizer = module.configure_optimizers()["optimizer"]
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == sum(
        p.numel() for p in module.model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_evaluate_cli_and_conditions(teacher, capsys):
    ckpt, summary = teacher
    assert main(["evaluate", "--ckpt", str(ckpt), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "sequence mAP" in out and "Sitdown" in out
    report = json.loads((ckpt.parent.parent / "eval" / "test-av.json").read_text())
    assert report["seq_map"] == pytest.approx(summary["test"]["seq_map"])
    assert report["frame_map"] == pytest.approx(summary["test"]["frame_map"])
    assert main(["evaluate", "--ckpt", str(ckpt), "--condition", "visual"]) == 0
    assert (ckpt.parent.parent / "eval" / "test-visual.json").is_file()


def test_resume_gives_the_same_result(workspace, monkeypatch):
    import lightning as L

    from vicokd.training import run as run_module

    base, overrides = workspace
    config = load_config(CONFIGS / "teacher.yaml", [*overrides, "optim.epochs=3", "train.name=full"])
    fit(config, progress=False)

    class Crash(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch == 2:
                raise KeyboardInterrupt

    original = run_module.build_trainer

    def crashing(*args, **kwargs):
        trainer, checkpoint = original(*args, **kwargs)
        trainer.callbacks.append(Crash())
        return trainer, checkpoint

    killed = load_config(CONFIGS / "teacher.yaml", [*overrides, "optim.epochs=3", "train.name=killed"])
    monkeypatch.setattr(run_module, "build_trainer", crashing)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        fit(killed, progress=False)
    monkeypatch.setattr(run_module, "build_trainer", original)
    assert read_meta(base / "runs" / "killed" / "checkpoints" / "last.safetensors").epoch == 1
    summary = fit(killed, resume=True, progress=False)
    full = load_file(str(base / "runs" / "full" / "checkpoints" / "last.safetensors"))
    resumed = load_file(str(base / "runs" / "killed" / "checkpoints" / "last.safetensors"))
    weights = [k for k in full if k.startswith("/state_dict/")]
    assert weights and all(torch.equal(full[k], resumed[k]) for k in weights)
    full_summary = json.loads((base / "runs" / "full" / "summary.json").read_text())
    assert summary["test"]["seq_map"] == full_summary["test"]["seq_map"]
    with (base / "runs" / "killed" / "metrics.csv").open() as handle:
        epochs = sorted({row["epoch"] for row in csv.DictReader(handle) if row["val/seq_map"]})
    assert epochs == ["0", "1", "2"]


def test_clear_errors(teacher, workspace, tmp_path, capsys):
    base, overrides = workspace
    ckpt, _ = teacher
    sets = set_args(overrides)
    # a run that exists is not overwritten
    assert main(["train", "--config", str(CONFIGS / "teacher.yaml"), *sets]) == 2
    assert "run exists; use --resume" in capsys.readouterr().err
    # a student checkpoint is not a teacher (this test makes its own, whatever ran before it)
    assert main(["distill", "--config", str(CONFIGS / "student.yaml"), "--teacher", str(ckpt), *sets,
                 "--set", "train.name=clear-errors-student", "--set", "optim.epochs=1"]) == 0
    student = base / "runs" / "clear-errors-student" / "checkpoints" / "best.safetensors"
    capsys.readouterr()
    assert main(["distill", "--config", str(CONFIGS / "student.yaml"), "--teacher", str(student), *sets,
                 "--set", "train.name=x"]) == 2
    assert "not a teacher" in capsys.readouterr().err
    # width mismatch
    assert main(["distill", "--config", str(CONFIGS / "student.yaml"), "--teacher", str(ckpt), *sets,
                 "--set", "model.dim=32", "--set", "train.name=y"]) == 2
    assert "feature distillation needs equal widths" in capsys.readouterr().err
    # missing person scores for a masked method
    assert main(["distill", "--config", str(CONFIGS / "student.yaml"), "--teacher", str(ckpt), *sets,
                 "--set", f"data.person_scores={tmp_path / 'none.npz'}", "--set", "train.name=z"]) == 2
    err = capsys.readouterr().err
    assert "needs person scores; make them with `vicokd detect" in err and "Traceback" not in err
    # a class list other than the cache's
    assert main(["train", "--config", str(CONFIGS / "teacher.yaml"), *sets, "--set", "data.classes=[Sitdown]",
                 "--set", "train.name=w"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.classes: ['Sitdown'] differs from [") and len(err.splitlines()) == 1, err
    # missing checkpoint
    assert main(["evaluate", "--ckpt", str(tmp_path / "nope.safetensors")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


@pytest.mark.parametrize("poison, message", [("seq", "loss term 'seq' is nan"),
                                             ("total", "loss term 'loss' is inf")])  # finite terms, overflowed sum
def test_nan_loss_stops_and_names_the_term(workspace, monkeypatch, poison, message):
    from vicokd.training import module as module_lib

    base, overrides = workspace
    original = module_lib.batch_objective

    def poisoned(*args, **kwargs):
        losses = original(*args, **kwargs)
        if poison == "total":
            losses.total = losses.total * float("inf")
        else:
            losses.terms[poison] = losses.terms[poison] * float("nan")
        return losses

    monkeypatch.setattr(module_lib, "batch_objective", poisoned)
    config = load_config(CONFIGS / "teacher.yaml", [*overrides, f"train.name=nan-{poison}"])
    with pytest.raises(VicokdError, match=message):
        fit(config, progress=False)
    assert not (base / "runs" / f"nan-{poison}" / "checkpoints" / "last.safetensors").exists()


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(teacher, workspace, tmp_path):
    import os
    import subprocess
    import sys

    base, overrides = workspace
    ckpt, _ = teacher
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for split in ("test", "val"):
        single, double = tmp_path / f"single-{split}.json", tmp_path / f"ddp-{split}.json"
        assert main(["evaluate", "--ckpt", str(ckpt), "--split", split, "--out", str(single)]) == 0
        done = subprocess.run([*torchrun, "-m", "vicokd", "evaluate", "--ckpt", str(ckpt), "--split", split,
                               "--out", str(double)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        one, two = json.loads(single.read_text()), json.loads(double.read_text())
        assert two["clips"] == one["clips"]  # the sampler's padding duplicate was removed
        assert (two["seq_map"], two["frame_map"]) == (one["seq_map"], one["frame_map"])
    # distillation itself runs under torchrun (DDP, gloo)
    done = subprocess.run([*torchrun, "-m", "vicokd", "distill", "--config", str(CONFIGS / "student.yaml"),
                           "--teacher", str(ckpt), "--method", "vicokd", *set_args(overrides),
                           "--set", "train.name=ddp", "--set", "optim.epochs=1"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (base / "runs" / "ddp" / "summary.json").is_file()
    assert done.stdout.count("ddp: vicokd best epoch") == 1, done.stdout  # rank 0 alone speaks for the run


def test_checkpoints_need_no_pretrained_file(workspace, tmp_path, capsys):
    """Teacher and student trained from pretrained weights still evaluate, teach and predict once the
    weights are gone: the sidecar records the architecture (here an AST whose qkv_bias only its
    config.json sets) and rebuilding reads no file."""
    import shutil

    import timm
    from safetensors.torch import save_file
    from transformers import ASTConfig, ASTModel

    from vicokd.models.checkpoint import model_from_checkpoint

    base, overrides = workspace
    teacher_config = load_config(CONFIGS / "teacher.yaml", overrides)
    visual, audio = teacher_config.model.visual, teacher_config.model.audio
    vit = timm.create_model(visual.name, num_classes=0, **visual.timm_kwargs)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, tmp_path / "vit.safetensors")
    ast_dir = tmp_path / "ast"
    ast_dir.mkdir()
    ast_config = ASTConfig(**audio.ast_kwargs, max_length=audio.max_rows, num_mel_bins=audio.num_mel_bins,
                           qkv_bias=False)
    save_file({k: v.contiguous() for k, v in ASTModel(ast_config).state_dict().items()},
              ast_dir / "model.safetensors")
    ast_config.to_json_file(str(ast_dir / "config.json"))
    weights = [f"model.visual.pretrained={tmp_path / 'vit.safetensors'}", "optim.epochs=1"]
    teacher = fit(load_config(CONFIGS / "teacher.yaml", [*overrides, *weights, f"model.audio.pretrained={ast_dir}",
                                                         "train.name=pretrained-teacher"]), progress=False)
    student_sets = set_args([*overrides, *weights, "train.name=pretrained-student"])
    (tmp_path / "vit.safetensors").unlink()  # the student's own weights go later, once it has trained
    shutil.rmtree(ast_dir)

    meta = read_meta(teacher["best_checkpoint"])
    assert meta.config.model.audio.ast_kwargs["qkv_bias"] is False
    assert meta.pretrained == {"visual": str(tmp_path / "vit.safetensors"), "audio": str(ast_dir)}
    model, _ = model_from_checkpoint(teacher["best_checkpoint"])
    assert not model.audio_encoder.net.model.config.qkv_bias
    assert main(["evaluate", "--ckpt", teacher["best_checkpoint"], "--split", "test"]) == 0
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, tmp_path / "vit.safetensors")
    assert main(["distill", "--config", str(CONFIGS / "student.yaml"), "--teacher", teacher["best_checkpoint"],
                 *student_sets]) == 0
    (tmp_path / "vit.safetensors").unlink()
    student = base / "runs" / "pretrained-student" / "checkpoints" / "best.safetensors"
    videos = sorted((base / "data").rglob("*.mp4"))[:2]
    capsys.readouterr()
    assert main(["predict", "--ckpt", str(student), *map(str, videos), "--quiet"]) == 0, capsys.readouterr().err


def test_a_run_folder_is_held_by_one_process(workspace, capsys):
    """A second run on a folder in use fails at once naming the folder and its holder; the lock of a
    killed holder blocks nothing."""
    import signal
    import subprocess
    import sys

    from vicokd.training.run_lock import run_folder_lock

    base, overrides = workspace
    folder = base / "runs" / "locked"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from vicokd.training.run_lock import run_folder_lock\n"
         "with run_folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)", str(folder)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["train", "--config", str(CONFIGS / "teacher.yaml"), *set_args(overrides),
                     "--set", "train.name=locked"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert f"{folder}: in use by process {holder.pid} on " in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert f"process {holder.pid}" in (folder / ".lock").read_text()  # stale: its holder is dead
    with run_folder_lock(folder):
        pass


@pytest.mark.parametrize(("damage", "message"), [
    ("truncated weights", "unreadable safetensors file (Error while deserializing header"),
    ("sidecar is a list", "not a vicokd checkpoint of format"),
    ("classes is a string", "damaged checkpoint sidecar: vicokd.classes should be a list, found str"),
    ("config missing", "damaged checkpoint sidecar: vicokd.config should be a dict, found NoneType"),
    ("no num_frames", "damaged checkpoint sidecar: vicokd.config.data.num_frames is missing"),
    ("no image_size", "damaged checkpoint sidecar: vicokd.config.data.image_size is missing"),
    ("unknown threshold class", "vicokd.calibration.thresholds names classes that vicokd.classes does not ('Dance')"),
])
def test_a_damaged_checkpoint_is_one_line(teacher, tmp_path, capsys, damage, message):
    import shutil

    from vicokd.models.checkpoint import sidecar_path

    ckpt, _ = teacher
    copy = tmp_path / "best.safetensors"
    shutil.copyfile(ckpt, copy)
    shutil.copyfile(sidecar_path(ckpt), sidecar_path(copy))
    sidecar = json.loads(sidecar_path(copy).read_text())
    if damage == "truncated weights":
        copy.write_bytes(copy.read_bytes()[: copy.stat().st_size // 2])
    elif damage == "sidecar is a list":
        sidecar = [sidecar]
    elif damage == "classes is a string":
        sidecar["vicokd"]["classes"] = "Sitdown"
    elif damage.startswith("no "):  # a run would fall back to the defaults (T = 70, 224×224)
        del sidecar["vicokd"]["config"]["data"][damage.removeprefix("no ")]
    elif damage == "unknown threshold class":
        thresholds = sidecar["vicokd"]["calibration"]["thresholds"]
        thresholds["Dance"] = thresholds.pop(sorted(thresholds)[0])
    else:
        del sidecar["vicokd"]["config"]
    sidecar_path(copy).write_text(json.dumps(sidecar))
    assert main(["evaluate", "--ckpt", str(copy)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_a_sidecar_one_class_short_names_both_counts(teacher, tmp_path):
    """The weights say how many classes they output: a class list one short is said so (it was cut to
    "weights do not match the architecture" without the counts)."""
    import shutil

    from vicokd.models.checkpoint import model_from_checkpoint, sidecar_path

    ckpt, _ = teacher
    copy = tmp_path / "best.safetensors"
    shutil.copyfile(ckpt, copy)
    sidecar = json.loads(sidecar_path(ckpt).read_text())
    sidecar["vicokd"]["classes"] = sidecar["vicokd"]["classes"][:-1]
    sidecar["vicokd"]["calibration"] = None  # else the calibration's classes tell first
    sidecar_path(copy).write_text(json.dumps(sidecar))
    with pytest.raises(VicokdError, match=r"the weights output 4 classes, its class list names 3 \("):
        model_from_checkpoint(copy)


def test_training_ends_with_a_calibration_that_evaluate_and_predict_read(teacher, capsys):
    ckpt, summary = teacher
    calibration = read_meta(ckpt).calibration
    assert calibration == summary["calibration"]
    classes = read_meta(ckpt).classes
    assert set(calibration["thresholds"]) == set(classes) and min(calibration["scale"].values()) > 0
    assert calibration["val_frames"] > 0 and 0 <= calibration["ece_after"] <= 1
    assert main(["evaluate", "--ckpt", str(ckpt), "--split", "test"]) == 0
    assert "frame F1" in capsys.readouterr().out
    report = json.loads((ckpt.parent.parent / "eval" / "test-av.json").read_text())
    assert set(report["per_class_frame_f1"]) == set(classes)
    scored = [v for v in report["per_class_frame_f1"].values() if v is not None]
    assert report["frame_f1"] == pytest.approx(sum(scored) / len(scored))


def test_a_full_disk_while_a_checkpoint_is_written_is_one_line_and_the_run_resumes(workspace, monkeypatch, capsys):
    """safetensors reports a full disk as its own error type; the command says it in one line (the file,
    'No space left on device', what to do), the checkpoints written before stay whole, --resume goes on."""
    import safetensors.torch
    from safetensors import SafetensorError

    base, overrides = workspace
    written = []
    save_file = safetensors.torch.save_file

    def fills_the_disk(tensors, filename, *args, **kwargs):
        if len(written) == 3:  # three checkpoint files written, then the disk is full
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        written.append(filename)
        return save_file(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", fills_the_disk)
    args = ["train", "--config", str(CONFIGS / "teacher.yaml"),
            *set_args([*overrides, "optim.epochs=3", "train.name=full-disk"])]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: ") and "No space left on device; free some space and re-run" in err
    assert ".safetensors" in err
    checkpoints = base / "runs" / "full-disk" / "checkpoints"
    assert read_meta(checkpoints / "last.safetensors").epoch < 2  # the last whole checkpoint, readable
    assert not [p for p in checkpoints.iterdir() if p.name.startswith(".")]  # no temporary file left
    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    assert main([*args, "--resume"]) == 0
    assert read_meta(checkpoints / "last.safetensors").epoch == 2
