"""`vicokd pretrain`: a separate home, simulator targets, a checkpoint `model.visual.pretrained` loads, reuse."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vicokd.cli import main
from vicokd.config import replace
from vicokd.errors import VicokdError
from vicokd.models import MultiViewActionModel
from vicokd.pipeline.home import demo_synth_options
from vicokd.pipeline.pretrain import (
    ENCODER_FILE,
    REPORT_FILE,
    PretrainOptions,
    foreground_cells,
    pretrain_seed,
    run_pretrain,
)
from vicokd.synthetic import SynthOptions, generate_home, plan_dataset
from vicokd.synthetic.render import ViewRenderer, render_view
from vicokd.synthetic.script import SoundEvent
from vicokd.synthetic.targets import SOUND_KINDS, clip_targets, sound_targets
from vicokd.training.pretrain_encoder import PretrainData, PretrainSettings, TargetGroup, pretrain_encoder

TINY = {"clips": 3, "views": 2, "duration": (6.0, 8.0), "epochs": 1, "workers": 1}
CLI_TINY = ["--clips", "3", "--views", "2", "--duration", "6-8", "--epochs", "1", "--workers", "1", "--quiet"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> PretrainOptions:
    options = PretrainOptions(out=tmp_path_factory.mktemp("pretrain") / "pt", **TINY)
    run_pretrain(options, progress=False)
    return options


def _digests(root: Path) -> set[str]:
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.mp4")}


def test_pretrain_home_never_shares_clips_with_the_demo_home(pretrained: PretrainOptions, tmp_path: Path) -> None:
    pretrain = pretrained.synth_options()
    demo = demo_synth_options(pretrain.clips, pretrain.views, pretrained.data_seed)
    demo = SynthOptions(**{**demo.__dict__, "duration": pretrain.duration})
    assert pretrain.seed == pretrain_seed(pretrained.data_seed) != demo.seed
    # the same generator options apart from the seed and the cameras (the pretraining home films with every
    # layout the demo does, in turn): what differs is the clips, not the format
    assert pretrain.layout == "home1+home2"
    assert pretrain.sessions == pretrain.clips // 2
    assert {k: v for k, v in pretrain.to_json().items() if k not in ("seed", "layout", "sessions")} == \
        {k: v for k, v in demo.to_json().items() if k not in ("seed", "sessions")}
    # no clip of one home is a clip of the other: records (timing, labels) and rendered videos differ
    _, ours = plan_dataset(pretrain)
    _, theirs = plan_dataset(demo)
    # (short clips of 16 classes may share a label list by chance, e.g. one Drink from 0 to 7.2 s: what the
    # actor does is told by the keyframes of its path and pose, which no two clips share)
    def acted(job):
        return json.dumps({name: values.round(4).tolist() for name, (_, values) in sorted(job.script.channels.items())})

    assert not {acted(j) for j in ours} & {acted(j) for j in theirs}
    assert {j.audio_seed for j in ours}.isdisjoint(j.audio_seed for j in theirs)
    generate_home(tmp_path / "demo", demo, workers=1, progress=False)
    made = _digests(pretrained.home_dir / "data")
    assert len(made) == pretrain.clips * pretrain.views
    assert made.isdisjoint(_digests(tmp_path / "demo"))
    # other data seeds get other pretraining homes, none of them a small demo seed
    assert len({pretrain_seed(s) for s in range(100)}) == 100
    assert all(pretrain_seed(s) >= 1000 for s in range(100))


def test_checkpoint_loads_through_model_visual_pretrained(pretrained: PretrainOptions) -> None:
    encoder = pretrained.out / ENCODER_FILE
    saved = load_file(str(encoder))
    config = replace(pretrained.load_config(), **{"model.visual.pretrained": str(encoder)})
    model = MultiViewActionModel(config.model, 4)
    loaded = model.visual_encoder.net.state_dict()
    assert set(loaded) == set(saved)
    for name, value in saved.items():
        assert torch.equal(loaded[name], value), name
    torch.manual_seed(0)
    fresh = MultiViewActionModel(pretrained.load_config().model, 4).visual_encoder.net.state_dict()
    assert any(not torch.equal(fresh[name], value) for name, value in saved.items())  # training changed them
    video = torch.zeros(1, 2, 3, 3, *config.data.image_size)
    with torch.no_grad():
        assert model.eval()({"video": video}).seq_logits.shape == (1, 4)


def test_report_names_targets_without_action_labels(pretrained: PretrainOptions) -> None:
    report = json.loads((pretrained.out / REPORT_FILE).read_text())
    assert report["generator_seed"] == pretrain_seed(0) and report["train_seconds"] > 0
    assert set(report["targets"]) <= {"visible", "mask", "pose", "hand_mouth", "props", "state"}
    assert len(report["targets"]["mask"]) == int(np.prod(report["patch_grid"])) == 36
    assert len(report["epochs"]) == 1 and np.isfinite(report["epochs"][0]["train"]["loss"])


def test_rerun_reuses_finished_steps(pretrained: PretrainOptions, capsys: pytest.CaptureFixture[str]) -> None:
    encoder = pretrained.out / ENCODER_FILE
    before = encoder.stat().st_mtime_ns
    capsys.readouterr()
    assert main(["pretrain", str(pretrained.out), *CLI_TINY]) == 0
    printed = capsys.readouterr().out
    assert printed.count(": reused") == 4, printed
    assert encoder.stat().st_mtime_ns == before
    assert main(["pretrain", str(pretrained.out), *CLI_TINY[:-3], "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "epochs: 1 → 2" in err and len(err.strip().splitlines()) == 1


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for extra, message in ((["--targets", "visible,actions"], "unknown visual target 'actions'"),
                           (["--modality", "audio", "--targets", "visible"], "unknown audio target 'visible'"),
                           (["--clips", "1"], "--clips 1"), (["--duration", "soon"], "--duration 'soon'")):
        assert main(["pretrain", str(tmp_path / "x"), *extra, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    with pytest.raises(VicokdError, match="listed twice"):
        PretrainOptions(targets=("mask", "mask")).validate()


def test_actor_mask_matches_the_rendered_actor() -> None:
    options = SynthOptions(clips=1, views=2, seed=3, size=(80, 60), fps=2.5, duration=(10.0, 10.0), supersample=1)
    home, jobs = plan_dataset(options)
    targets = clip_targets(home, jobs[0].script, options.size, options.fps, grid=(6, 4))
    assert targets["mask"].shape == (2, 25, 6, 4)
    for view in range(2):
        renderer = ViewRenderer(home, home.cameras[view], options.size, 1)
        actor = render_view(renderer, jobs[0].script, options.fps)
        empty = render_view(renderer, jobs[0].script, options.fps, actor=False)
        drawn = (np.abs(actor.astype(int) - empty.astype(int)).sum(-1) > 0).astype(float)  # (F, 60, 80)
        cells = drawn.reshape(len(drawn), 6, 10, 4, 20).mean(axis=(2, 4))
        assert np.corrcoef(cells.ravel(), targets["mask"][view].ravel())[0, 1] > 0.9
        assert np.abs(cells - targets["mask"][view]).mean() < 0.02


def _toy_data(n: int = 40) -> PretrainData:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (n, 3, 16, 16), dtype=np.uint8)
    bright = (frames.mean(axis=(1, 2, 3)) > 127.5).astype(np.float32)[:, None]
    mask = rng.random((n, 4)).astype(np.float32)
    return PretrainData(frames, (TargetGroup("visible", bright, np.ones(n, np.float32), ("visible",)),
                                 TargetGroup("mask", mask, np.ones(n, np.float32), tuple("abcd"))),
                        np.arange(n) % 5 == 4)


def test_pretraining_resumes_to_the_same_weights(pretrained: PretrainOptions, tmp_path: Path) -> None:
    config = replace(pretrained.load_config(), **{"model.visual.timm_kwargs": {
        "img_size": 16, "patch_size": 8, "embed_dim": 16, "depth": 1, "num_heads": 2, "dynamic_img_size": True}})
    settings = PretrainSettings(epochs=2, batch_size=8, lr=1e-3)
    data = _toy_data()
    straight, history = pretrain_encoder(config.model.visual, data, settings, tmp_path / "a.safetensors",
                                         progress=False, echo=lambda _: None)
    assert len(history["epochs"]) == 2 and "mask_loss" in history["epochs"][0]["val"]

    def killed_after_first_epoch(line: str) -> None:
        if "epoch 1/2" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain_encoder(config.model.visual, data, settings, tmp_path / "b.safetensors", progress=False,
                         echo=killed_after_first_epoch)
    lines: list[str] = []
    resumed, history = pretrain_encoder(config.model.visual, data, settings, tmp_path / "b.safetensors",
                                        progress=False, echo=lines.append)
    assert any(line.startswith("resuming pretraining after epoch 1") for line in lines)
    assert [line.split(":")[0] for line in lines if line.startswith("pretrain epoch")] == ["pretrain epoch 2/2"]
    assert len(history["epochs"]) == 2
    for name, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name


def test_foreground_cells_find_what_moves() -> None:
    frames = np.full((2, 9, 3, 12, 12), 90, dtype=np.uint8)
    for j in range(9):  # a bright 4x4 square moving along the top rows of view 0
        frames[0, j, :, 0:4, j:j + 4] = 250
    cells = foreground_cells(frames, (3, 3))
    assert cells.shape == (2, 9, 3, 3)
    assert np.all(cells[1] == 0)  # a still view has no foreground
    assert cells[0, 0, 0, 0] == 1.0 and cells[0, 8, 0, 2] == 1.0  # the square, where it is
    assert np.all(cells[0, :, 1:] == 0)


# ------------------------------------------------------------------------------ audio


@pytest.fixture(scope="module")
def heard(pretrained: PretrainOptions, tmp_path_factory: pytest.TempPathFactory) -> PretrainOptions:
    """The audio encoder pretrained on the visual run's home (as the demo does)."""
    options = PretrainOptions(out=tmp_path_factory.mktemp("pretrain-audio") / "pt", home=pretrained.home_dir,
                              modality="audio", **TINY)
    run_pretrain(options, progress=False)
    return options


def test_sound_targets_hand_computed() -> None:
    class Script:  # the one field sound_targets reads
        sounds = (SoundEvent("gulp", 0.2, 0.4, 1.0), SoundEvent("gulp", 0.5, 0.2, 1.0),
                  SoundEvent("ring", 0.9, 1.0, (0.0, 0.0, 1.0)))

    targets = sound_targets(Script(), 3)  # chunks [0, .4), [.4, .8), [.8, 1.2)
    gulp, ring = SOUND_KINDS.index("gulp"), SOUND_KINDS.index("ring")
    np.testing.assert_allclose(targets[:, gulp], [0.5, 0.75, 0.0], atol=1e-6)  # 0.2-0.7 merged once
    np.testing.assert_allclose(targets[:, ring], [0.0, 0.0, 0.75], atol=1e-6)
    assert targets.sum() == pytest.approx(2.0)


def test_audio_checkpoint_loads_through_model_audio_pretrained(heard: PretrainOptions) -> None:
    encoder = heard.out / ENCODER_FILE
    saved = load_file(str(encoder))
    config = replace(heard.load_config(), **{"model.audio.pretrained": str(encoder), "model.mode": "teacher"})
    model = MultiViewActionModel(config.model, 4)
    loaded = model.audio_encoder.net.model.state_dict()
    assert set(loaded) == set(saved)
    assert all(torch.equal(loaded[name], value) for name, value in saved.items())
    report = json.loads((heard.out / REPORT_FILE).read_text())
    assert report["request"]["modality"] == "audio" and report["targets"]["sounds"]
    assert set(report["targets"]["sounds"]) <= set(SOUND_KINDS)
    assert report["usage"] == f"--set model.audio.pretrained={encoder}"
    # it learnt from the pretraining home's videos and nothing else
    assert report["videos"] and all(str(heard.home_dir / "data") in path for path in report["videos"])


def test_pretraining_trains_every_block_whatever_the_runs_fine_tune() -> None:
    """`vicokd demo --finetune` passes ``model.visual.trainable_blocks`` to its runs; the encoder they
    start from is still pretrained whole (its lower blocks learn too)."""
    from vicokd.config import VisualEncoderConfig
    from vicokd.training.pretrain_encoder import build_encoder_net

    config = VisualEncoderConfig(pretrained=None, trainable_blocks=1,
                                 timm_kwargs={"img_size": 48, "patch_size": 8, "embed_dim": 32, "depth": 2,
                                              "num_heads": 2})
    net = build_encoder_net(config)
    assert all(p.requires_grad for p in net.parameters())
