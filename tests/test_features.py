"""Frozen-encoder feature cache: computing, reading, training from features, and consistency with pixels."""

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from run_helpers import CONFIGS
from vicokd.cli import main
from vicokd.config import load_config
from vicokd.data.cache import read_index
from vicokd.data.dataset import MultiViewClips, collate
from vicokd.data.features import ENCODERS_FILE, resident_features
from vicokd.data.prepare import prepare
from vicokd.errors import VicokdError
from vicokd.models import MultiViewActionModel
from vicokd.models.checkpoint import load_state_dict
from vicokd.models.model import normalize_video
from vicokd.training.encoder_features import apply_feature_cache, compute_features, load_cached_encoders
from vicokd.training.module import ViCoKDModule
from vicokd.training.run import fit

from media_helpers import make_dataset


@pytest.fixture(scope="module")
def setup(tiny_workspace):
    base, overrides = tiny_workspace
    overrides = [*overrides, "optim.epochs=1"]
    teacher = Path(fit(load_config(CONFIGS / "teacher.yaml", overrides), progress=False)["best_checkpoint"])
    return base, overrides, teacher


def test_cli_features_and_consistency_with_pixels(setup):
    base, overrides, teacher = setup
    out = base / "feats"
    args = ["prepare", str(base / "data"), "--out", str(base / "cache"), "--config", str(CONFIGS / "teacher.yaml"),
            "--features", str(out), "--encoders-from", str(teacher)]
    assert main([*args, *[a for o in overrides for a in ("--set", o)]]) == 0
    visual = resident_features(out, "01_00_Part1", "visual")
    audio = resident_features(out, "01_00_Part1", "audio")
    assert visual.dtype == np.float16 and visual.shape[:2] == (3, 10) and audio.shape[:2] == (3, 10)

    config = apply_feature_cache(load_config(CONFIGS / "teacher.yaml", [*overrides, f"data.features={out}"]))
    assert config.model.visual.freeze and config.model.audio.freeze
    model = MultiViewActionModel(config.model, 4).eval()
    load_cached_encoders(model, out)
    pixels = collate([MultiViewClips(config.data.cache, "test", 6)[0]])
    cached = collate([MultiViewClips(config.data.cache, "test", 6, features=out)[0]])
    assert "video" not in cached and cached["visual_features"].shape[:3] == (1, 3, 6)
    pixels["video"] = normalize_video(pixels["video"], config.model.visual.mean, config.model.visual.std)
    with torch.no_grad():
        from_pixels, from_cache = model(pixels), model(cached)
    torch.testing.assert_close(from_cache.seq_logits, from_pixels.seq_logits, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(from_cache.visual, from_pixels.visual, atol=2e-2, rtol=2e-2)


def test_training_from_features_and_evaluating_on_pixels(setup):
    base, overrides, teacher = setup
    out = base / "feats2"
    config = load_config(CONFIGS / "teacher.yaml", overrides)
    compute_features(config, out, encoders_from=teacher, progress=False)
    run = load_config(CONFIGS / "teacher.yaml", [*overrides, f"data.features={out}", "train.name=frozen"])
    summary = fit(run, progress=False)
    assert 0 <= summary["test"]["seq_map"] <= 100
    # the checkpoint holds the cached encoders, so it also runs on raw video
    code = main(["evaluate", "--ckpt", summary["best_checkpoint"], "--set", "data.features=null",
                 "--out", str(base / "pixels.json")])
    assert code == 0
    # a student distilled on the same features
    student = load_config(CONFIGS / "student.yaml", [*overrides, f"data.features={out}", "train.name=s",
                                                     "distill.method=cokd"])
    assert fit(student, teacher_checkpoint=summary["best_checkpoint"], progress=False)["method"] == "cokd"
    # …but not from a teacher that read pixels
    other = load_config(CONFIGS / "student.yaml", [*overrides, f"data.features={out}", "train.name=s2",
                                                   "distill.method=cokd"])
    with pytest.raises(VicokdError, match="both must read the same inputs"):
        fit(other, teacher_checkpoint=teacher, progress=False)


def test_random_encoders_are_the_initial_weights_of_a_run(setup, tmp_path):
    # (the benchmark's "frozen at initialisation" run relies on this)
    _, overrides, _ = setup
    config = load_config(CONFIGS / "teacher.yaml", overrides)
    compute_features(config, tmp_path / "init", progress=False)
    cached = load_file(str(tmp_path / "init" / ENCODERS_FILE))
    L.seed_everything(config.train.seed, verbose=False)  # as `fit` does before building its module
    start = ViCoKDModule(config, read_index(config.data.cache).classes, None, None).model.state_dict()
    assert cached and all(torch.equal(start[name], tensor) for name, tensor in cached.items())


def test_mismatched_encoder_settings_are_refused(setup):
    base, overrides, teacher = setup
    out = base / "feats3"
    compute_features(load_config(CONFIGS / "teacher.yaml", overrides), out, encoders_from=teacher, progress=False)
    wrong = load_config(CONFIGS / "teacher.yaml", [*overrides, f"data.features={out}",
                                                   "model.visual.timm_kwargs.depth=1"])
    with pytest.raises(VicokdError, match=r"other encoder settings than this config \(model.visual.timm_kwargs: "):
        apply_feature_cache(wrong)
    with pytest.raises(VicokdError, match="no feature cache here"):
        apply_feature_cache(load_config(CONFIGS / "teacher.yaml", [*overrides, f"data.features={base / 'none'}"]))


def test_features_of_a_clip_prepare_redid_are_refused_then_recomputed(setup, tmp_path, capsys):
    import os

    from vicokd.errors import DataError

    _, overrides, _ = setup
    make_dataset(tmp_path / "data")
    mine = [*overrides, f"data.root={tmp_path / 'data'}", f"data.cache={tmp_path / 'cache'}"]
    config = load_config(CONFIGS / "teacher.yaml", mine)
    prepare(tmp_path / "data", config.data.cache, config.data, workers=1, progress=False)
    out = tmp_path / "feats"
    compute_features(config, out, progress=False)
    before = {key: resident_features(out, key, "visual").copy() for key in ("01_00_Part1", "01_05_Part1")}
    video = Path(read_index(config.data.cache).clips["01_05_Part1"].videos[0])
    video = video if video.is_absolute() else tmp_path / "data" / video
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))  # a replaced video
    prepare(tmp_path / "data", config.data.cache, config.data, workers=1, progress=False)  # redoes that clip
    with pytest.raises(DataError, match=r"features of 1 clips \(first '01_05_Part1'\) were computed before"):
        MultiViewClips(config.data.cache, "test", 6, features=out)
    capsys.readouterr()
    compute_features(config, out, progress=True)
    assert "(1 new)" in capsys.readouterr().out
    MultiViewClips(config.data.cache, "test", 6, features=out)  # current again
    np.testing.assert_array_equal(resident_features(out, "01_00_Part1", "visual"), before["01_00_Part1"])


def test_trainable_top_block_from_cached_tokens_equals_the_model_on_raw_video(setup):
    """model.visual.trainable_blocks: 1 — the cache holds the tokens after block L-1; a run trains the
    top block (and everything above) from them, and its model gives the raw-video output."""
    base, overrides, teacher = setup
    out = base / "feats-k1"
    k1 = [*overrides, "model.visual.trainable_blocks=1"]
    compute_features(load_config(CONFIGS / "teacher.yaml", k1), out, encoders_from=teacher, progress=False)
    tokens = resident_features(out, "01_00_Part1", "visual")
    assert tokens.ndim == 4 and tokens.shape[:2] == (3, 10)  # (V, L, prefix + patches, W)
    config = apply_feature_cache(load_config(CONFIGS / "teacher.yaml", [*k1, f"data.features={out}"]))
    assert not config.model.visual.freeze and config.model.audio.freeze
    model = MultiViewActionModel(config.model, 4).eval()
    load_cached_encoders(model, out)
    encoder = model.visual_encoder
    trainable = {name for name, p in encoder.net.named_parameters() if p.requires_grad}
    last = len(encoder.net.blocks) - 1
    assert trainable and all(name.startswith((f"blocks.{last}.", "norm.", "fc_norm.")) for name in trainable)
    assert not encoder.net.patch_embed.proj.weight.requires_grad
    pixels = collate([MultiViewClips(config.data.cache, "test", 6)[0]])
    cached = collate([MultiViewClips(config.data.cache, "test", 6, features=out)[0]])
    assert cached["visual_features"].shape[:3] == (1, 3, 6) and cached["visual_features"].ndim == 5
    pixels["video"] = normalize_video(pixels["video"], config.model.visual.mean, config.model.visual.std)
    with torch.no_grad():
        from_pixels, from_cache = model(pixels), model(cached)
    torch.testing.assert_close(from_cache.visual, from_pixels.visual, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(from_cache.seq_logits, from_pixels.seq_logits, atol=2e-2, rtol=2e-2)
    # a run from the tokens trains the top block, and its checkpoint runs on raw video
    run = load_config(CONFIGS / "teacher.yaml", [*k1, f"data.features={out}", "train.name=k1"])
    summary = fit(run, progress=False)
    trained = load_state_dict(summary["best_checkpoint"])
    start = load_file(str(out / ENCODERS_FILE))
    top = [k for k in start if k.startswith(f"visual_encoder.net.blocks.{last}.")]
    below = [k for k in start if k.startswith("visual_encoder.net.patch_embed.")]
    assert any(not torch.equal(trained[k], start[k]) for k in top)
    assert all(torch.equal(trained[k], start[k]) for k in below)
    assert main(["evaluate", "--ckpt", summary["best_checkpoint"], "--set", "data.features=null",
                 "--out", str(base / "k1-pixels.json")]) == 0
    with pytest.raises(VicokdError, match="-1 .* cannot train from data.features"):
        apply_feature_cache(load_config(CONFIGS / "teacher.yaml", [*overrides, f"data.features={out}",
                                                                   "model.visual.trainable_blocks=-1"]))


def test_a_top_block_run_with_the_class_token_block_equals_one_with_the_whole_block(setup, monkeypatch):
    """The class-token block (models/class_token_block.py) changes the cost of a K = 1 run, not its
    result: the same run with the whole last block ends with the same weights and test mAP."""
    import vicokd.models.vit as vit

    base, overrides, teacher = setup
    out = base / "feats-k1-same"
    k1 = [*overrides, "model.visual.trainable_blocks=1", "optim.epochs=2"]
    compute_features(load_config(CONFIGS / "teacher.yaml", k1), out, encoders_from=teacher, progress=False)
    folded = fit(load_config(CONFIGS / "teacher.yaml", [*k1, f"data.features={out}", "train.name=k1-folded"]),
                 progress=False)
    monkeypatch.setattr(vit, "folds", lambda block: False)
    whole = fit(load_config(CONFIGS / "teacher.yaml", [*k1, f"data.features={out}", "train.name=k1-whole"]),
                progress=False)
    assert folded["test"]["seq_map"] == pytest.approx(whole["test"]["seq_map"], abs=1e-3)
    assert folded["best_epoch"] == whole["best_epoch"]
    a, b = load_state_dict(folded["best_checkpoint"]), load_state_dict(whole["best_checkpoint"])
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-3)


def test_encoder_differences_name_the_field():
    from vicokd.config import Config, replace
    from vicokd.training.encoder_features import _encoder_differences, _encoder_sections

    config = Config()
    recorded = _encoder_sections(config)
    assert _encoder_differences(recorded, config) == []
    older = {**recorded, "visual": {k: v for k, v in recorded["visual"].items() if k != "trainable_blocks"}}
    assert _encoder_differences(older, config) == []  # a field added since counts as its default
    other = replace(config, **{"model.visual.trainable_blocks": 0, "data.image_size": (48, 48)})
    assert _encoder_differences(recorded, other) == [
        "model.visual.trainable_blocks: None there, 0 here", f"data.image_size: {recorded['image_size']!r} there, "
        "[48, 48] here"]


def test_resident_features_are_read_once_reread_when_rewritten_and_bounded(tmp_path, monkeypatch):
    from vicokd.data import features as features_module
    from vicokd.data.features import feature_path
    from vicokd.errors import DataError
    from vicokd.io import atomic_path
    from vicokd.memo import FileMemo

    def write(key: str, value: float) -> None:
        path = feature_path(tmp_path, key, "visual")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # as `prepare --features` writes them
            np.save(tmp, np.full((2, 3, 4), value, dtype=np.float16))

    write("a", 1.0)
    first = resident_features(tmp_path, "a", "visual")
    assert resident_features(tmp_path, "a", "visual") is first and not first.flags.writeable  # shared, read-only
    write("a", 2.0)
    assert float(resident_features(tmp_path, "a", "visual")[0, 0, 0]) == 2.0  # a rewritten file is read again
    monkeypatch.setattr(features_module, "_resident", FileMemo(2 * first.nbytes, size=lambda array: array.nbytes))
    write("b", 3.0)
    write("c", 3.0)
    for key in ("a", "b", "c"):
        resident_features(tmp_path, key, "visual")
    kept = features_module._resident._entries
    assert len(kept) == 2 and features_module._resident._total == 2 * first.nbytes
    assert all("/a." not in identity[0] for identity in kept)  # the least recently used left
    with pytest.raises(DataError, match=r"no visual features for clip 'z'"):
        resident_features(tmp_path, "z", "visual")
