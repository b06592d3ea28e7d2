"""Models: shapes, batch / view permutation, teacher vs student, gradients, presets, CLI.

Tiny configurations built from config mappings; no network (HF offline), CPU only.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
import torch

from vicokd.cli import main
from vicokd.config import ModelConfig, config_from_dict, load_config, merge_dicts, replace
from vicokd.errors import ConfigError, VicokdError
from vicokd.models import (
    ModelOutput,
    MultiViewActionModel,
    count_parameters,
    model_costs,
    sinusoidal_encoding,
)
from vicokd.models.backbones import multitsf as multitsf_module
from vicokd.models.backbones._blocks import from_over_views, over_views

ROOT = Path(__file__).resolve().parents[1]
BACKBONES = ("multitrans", "multiasl", "multitsf")
MODES = ("teacher", "student")
C = 5
TINY = {
    "dim": 16,
    "visual": {"timm_kwargs": {"img_size": 32, "patch_size": 16, "embed_dim": 16, "depth": 1, "num_heads": 2}},
    "audio": {
        "kind": "ast",
        "max_rows": 16,
        "ast_kwargs": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "intermediate_size": 32, "frequency_stride": 16, "time_stride": 16},
    },
    "fusion": {"num_heads": 2},
    "multitsf": {"temporal_heads": 2, "view_heads": 2, "view_ffn": 32},
    "multiasl": {"temporal_heads": 2, "head_dim": 8},
    "multitrans": {"heads": 2, "layers": 1},
}


def tiny_config(**overrides: object) -> ModelConfig:
    """The tiny model section with dotted-free nested overrides, through the config loader."""
    return config_from_dict({"model": merge_dicts(TINY, overrides)}, "<tiny>").model


def tiny_model(backbone: str = "multitsf", mode: str = "teacher", **overrides: object) -> MultiViewActionModel:
    torch.manual_seed(0)
    return MultiViewActionModel(tiny_config(backbone=backbone, mode=mode, **overrides), C)


def make_batch(b: int = 2, v: int = 3, t: int = 8, rows: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "video": torch.randn(b, v, t, 3, 32, 32, generator=g),
        "audio": torch.randn(b, v, t, rows, 128, generator=g),
        "audio_present": torch.ones(b, v, dtype=torch.bool),
    }


def fields(out: ModelOutput) -> dict[str, torch.Tensor]:
    """Every tensor of an output, extras prefixed, for comparisons."""
    named = {k: getattr(out, k) for k in ("view_frame_logits", "frame_logits", "seq_logits", "visual", "audio",
                                          "attn", "av", "fusion")}
    return named | {f"extras.{k}": v for k, v in out.extras.items()}


# ------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("t", [8, 70])
@pytest.mark.parametrize("v", [1, 3, 5])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_output_shapes(backbone: str, mode: str, v: int, t: int) -> None:
    model = tiny_model(backbone, mode).eval()
    batch = make_batch(2, v, t)
    if mode == "student":
        batch = {"video": batch["video"]}
    with torch.no_grad():
        out = model(batch)
    assert out.view_frame_logits.shape == (2, v, t, C)
    assert out.frame_logits.shape == (2, t, C)
    assert out.seq_logits.shape == (2, C)
    for name in ("visual", "audio", "attn", "av", "fusion"):
        assert getattr(out, name).shape == (2, v, t, 16), name
    expected_extras = {
        "multitsf": {"human_logits": (2, v, t)},
        "multiasl": {"cas": (2, t, C), "cas_top": (2, C), "topk_mask": (2, t, C), "actionness": (2, t, 2)},
        "multitrans": {},
    }[backbone]
    assert {k: tuple(x.shape) for k, x in out.extras.items()} == expected_extras
    assert all(torch.isfinite(x).all() for x in fields(out).values())
    if backbone == "multiasl":
        assert (out.extras["topk_mask"].sum(1) == max(1, t // 8)).all()


def test_fbank_mlp_audio_encoder() -> None:
    model = tiny_model(audio={"kind": "mlp", "mlp_hidden": [32, 8]}).eval()
    out = model(make_batch(2, 2, 4, rows=20))  # 20 rows are cropped to max_rows = 16
    assert out.audio.shape == (2, 2, 4, 16)
    assert model.audio_encoder.net.layers[0].in_features == 16 * 128


def test_demo_preset_builds_and_runs() -> None:
    config = load_config(ROOT / "configs/demo/model.yaml").model
    for backbone in BACKBONES:
        for mode in MODES:
            model = MultiViewActionModel(replace(config, backbone=backbone, mode=mode), 4).eval()
            batch = make_batch(1, 2, 4, rows=38)
            batch["video"] = torch.randn(1, 2, 4, 3, 48, 64)  # dynamic image size
            with torch.no_grad():
                assert model(batch).seq_logits.shape == (1, 4)


def test_paper_preset_parameter_counts() -> None:
    config = load_config(ROOT / "configs/paper/model.yaml").model
    config = replace(config, **{"visual.pretrained": None, "audio.pretrained": None})
    lines = []
    for backbone in BACKBONES:
        for mode in MODES:
            with torch.device("meta"):
                model = MultiViewActionModel(replace(config, backbone=backbone, mode=mode), 16)
            parts = {name: count_parameters(child) for name, child in model.named_children()}
            lines.append(f"paper {mode:<7} {backbone:<10} {count_parameters(model):>12,}  {parts}")
            assert parts["visual_encoder"] == 22_493_952  # ViT-S/32 without its classifier
            if mode == "teacher":
                assert parts["audio_encoder"] == 85_588_608  # AST-base at 48 rows + Linear(768→384)
    print("\n" + "\n".join(lines))


def test_ast_patch_projection_is_float32_under_autocast() -> None:
    """The case oneDNN's bf16 convolution gets wrong on AVX-512 bf16 CPUs: a patch grid one patch wide."""
    from vicokd.models.audio_encoder import Float32Conv2d

    model = tiny_model("multitsf", "teacher")
    projection = model.audio_encoder.net.model.embeddings.patch_embeddings.projection
    assert isinstance(projection, Float32Conv2d)
    assert "audio_encoder.net.model.embeddings.patch_embeddings.projection.weight" in model.state_dict()
    x = torch.randn(48, 1, 128, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = torch.nn.functional.conv2d(x, projection.weight, projection.bias, stride=projection.stride)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = projection(x)
    assert out.dtype == torch.float32 and torch.allclose(out, reference, atol=1e-5)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_bf16_autocast_matches_fp32(backbone: str) -> None:
    """CPU bf16 autocast gives finite outputs within bf16 rounding of the fp32 ones, every output named.

    Seeded and deterministic: the weights come from a forked, seeded RNG, the batch from its own
    generator. (All activations of these models are of order 1, far from bf16's range.)
    """
    with torch.random.fork_rng():
        model = tiny_model(backbone, "teacher").eval()
    batch = make_batch(2, 3, 8)
    with torch.no_grad():
        reference = fields(model(batch))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(batch)
    assert out.seq_logits.shape == (2, C)
    for name, value in fields(out).items():
        value = value.float()
        assert torch.isfinite(value).all(), f"{name}: non-finite under bf16 autocast"
        scale = reference[name].abs().max().item()
        error = (value - reference[name]).abs().max().item()
        assert error <= 0.03 * max(scale, 1.0), f"{name}: bf16 differs from fp32 by {error:.3g} (scale {scale:.3g})"


# ---------------------------------------------------------------------------- batch composition


def batch_composition_error(model: MultiViewActionModel, batch: dict[str, torch.Tensor]) -> float:
    """Largest change of any sample's outputs between running it alone and in a reordered batch."""
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        alone = [fields(model({k: x[i:i + 1] for k, x in batch.items()})) for i in range(len(perm))]
        together = fields(model({k: x[perm] for k, x in batch.items()}))
    return max((together[k][j] - alone[i][k][0]).abs().max().item()
               for j, i in enumerate(perm.tolist()) for k in together)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_batch_composition_does_not_change_predictions(backbone: str, mode: str) -> None:
    model = tiny_model(backbone, mode).eval()
    assert batch_composition_error(model, make_batch(4, 3, 6)) < 1e-5


def test_batch_permutation_check_catches_the_old_view_transformer_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """The released MultiTSF fed (B·T, V, D) to a sequence-first Transformer: it attended over B·T."""
    model = tiny_model("multitsf", "student").eval()
    batch = make_batch(4, 3, 6)
    # Sequence-first semantics on (B·T, V, D): the attended axis is B·T, the "batch" axis is V.
    monkeypatch.setattr(multitsf_module, "over_views", lambda x: over_views(x).transpose(0, 1))
    monkeypatch.setattr(multitsf_module, "from_over_views", lambda x, b: from_over_views(x.transpose(0, 1), b))
    assert batch_composition_error(model, batch) > 1e-3


# ------------------------------------------------------------------------------------- views


def view_permutation(model: MultiViewActionModel, batch: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        ref = fields(model(batch))
        permuted = fields(model({k: x[:, perm] for k, x in batch.items()}))
    return ref, {"perm": perm, **permuted}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backbone", ["multiasl", "multitsf"])
def test_view_symmetric_backbones_permute_per_view_outputs(backbone: str, mode: str) -> None:
    model = tiny_model(backbone, mode).eval()
    ref, permuted = view_permutation(model, make_batch(2, 3, 6))
    perm = permuted.pop("perm")
    for name, value in ref.items():
        per_view = value.ndim >= 3 and value.shape[1] == 3 and name not in ("extras.cas", "extras.topk_mask",
                                                                            "extras.actionness")
        expected = value[:, perm] if per_view else value
        torch.testing.assert_close(permuted[name], expected, atol=1e-5, rtol=1e-4, msg=name)


def test_multitrans_sensor_embeddings_tie_views_to_positions() -> None:
    model = tiny_model("multitrans", "student").eval()
    batch = make_batch(2, 3, 6)
    ref, permuted = view_permutation(model, batch)
    perm = permuted.pop("perm")
    assert not torch.allclose(permuted["fusion"], ref["fusion"][:, perm], atol=1e-4)
    with torch.no_grad():
        model.backbone.sensor_embed.zero_()  # equal embeddings: the fusion itself is symmetric
    ref, permuted = view_permutation(model, batch)
    torch.testing.assert_close(permuted["fusion"], ref["fusion"][:, permuted["perm"]], atol=1e-5, rtol=1e-4)


def test_multitrans_rejects_more_views_than_embeddings() -> None:
    model = tiny_model("multitrans", "student", multitrans={"max_views": 2}).eval()
    with pytest.raises(VicokdError, match="max_views"):
        model({"video": make_batch(1, 3, 4)["video"]})


# ---------------------------------------------------------------------------- teacher / student


def test_student_needs_no_audio_and_teacher_does() -> None:
    student = tiny_model("multitsf", "student").eval()
    video = make_batch(2, 3, 5)["video"]
    out = student({"video": video})
    torch.testing.assert_close(out.audio, student.adapter(out.visual))
    assert not hasattr(student, "audio_encoder")
    with pytest.raises(VicokdError, match=r"batch\['audio'\]"):
        tiny_model("multitsf", "teacher")({"video": video})


def test_missing_audio_view_gets_no_attention() -> None:
    model = tiny_model("multitsf", "teacher").eval()
    batch = make_batch(2, 3, 6)
    batch["audio_present"][0, 1] = False
    batch["audio"][0, 1] = float("nan")  # whatever a loader puts there must not leak
    with torch.no_grad():
        out = model(batch)
    assert (out.attn[0, 1] == 0).all()
    torch.testing.assert_close(out.av[0, 1], out.visual[0, 1])
    assert out.attn[0, 0].abs().sum() > 0
    for name in ("view_frame_logits", "frame_logits", "seq_logits", "av", "fusion"):
        assert torch.isfinite(getattr(out, name)).all(), name


def test_teacher_and_student_state_dicts_load_into_each_other() -> None:
    teacher, student = tiny_model("multiasl", "teacher"), tiny_model("multiasl", "student")
    result = student.load_state_dict(teacher.state_dict(), strict=False)
    assert result.missing_keys and all(k.startswith("adapter.") for k in result.missing_keys)
    assert result.unexpected_keys and all(k.startswith("audio_encoder.") for k in result.unexpected_keys)
    torch.testing.assert_close(student.backbone.seq_head.weight, teacher.backbone.seq_head.weight)
    back = teacher.load_state_dict(student.state_dict(), strict=False)
    assert set(back.missing_keys) == set(result.unexpected_keys)
    assert set(back.unexpected_keys) == set(result.missing_keys)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_gradients_reach_every_trainable_parameter(backbone: str, mode: str) -> None:
    model = tiny_model(backbone, mode).train()
    out = model(make_batch(2, 3, 6) if mode == "teacher" else {"video": make_batch(2, 3, 6)["video"]})
    loss = out.view_frame_logits.sum() + out.frame_logits.sum() + out.seq_logits.sum()
    loss = loss + sum(x.float().sum() for x in out.extras.values())
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    for name, child in model.named_children():  # key biases alone get ~0: softmax ignores them
        assert sum(p.grad.abs().sum() for p in child.parameters()) > 0, name
    if mode == "student":
        assert model.adapter.fc1.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------ encoders


def test_chunking_checkpointing_and_freezing() -> None:
    config = tiny_config(backbone="multitsf", mode="student")
    torch.manual_seed(0)
    small = MultiViewActionModel(replace(config, **{"visual.chunk_size": 5, "visual.checkpointing": True}), C)
    torch.manual_seed(0)
    large = MultiViewActionModel(config, C)
    video = make_batch(2, 3, 6)["video"]
    small.train()
    large.train()
    torch.manual_seed(1)
    small({"video": video}).seq_logits.sum().backward()
    torch.manual_seed(1)
    large({"video": video}).seq_logits.sum().backward()
    for (name, p), q in zip(small.named_parameters(), large.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)

    frozen = MultiViewActionModel(replace(config, **{"visual.freeze": True}), C).train()
    assert not any(p.requires_grad for p in frozen.visual_encoder.net.parameters())
    assert not frozen.visual_encoder.net.training and frozen.backbone.training


def test_missing_pretrained_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vit.safetensors"
    with pytest.raises(VicokdError, match=rf"model\.visual\.pretrained: {missing}: not found"):
        tiny_model(visual={"pretrained": str(missing)})
    with pytest.raises(VicokdError, match=r"model\.audio\.pretrained: .*ast-dir: not found"):
        tiny_model(audio={"pretrained": str(tmp_path / "ast-dir")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(VicokdError, match=r"no model\.safetensors"):
        tiny_model(visual={"pretrained": str(tmp_path / "empty")})


def test_visual_pretrained_from_file_and_hf_cache_folder(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    kwargs = TINY["visual"]["timm_kwargs"]
    source = timm.create_model("vit_small_patch32_224.augreg_in21k_ft_in1k", **kwargs)  # with a 1000-class head
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, tmp_path / "vit.safetensors")
    torch.save(state, tmp_path / "vit.pth")
    snapshot = tmp_path / "models--timm--vit" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    save_file(state, snapshot / "model.safetensors")
    (tmp_path / "models--timm--vit" / "refs").mkdir()
    (tmp_path / "models--timm--vit" / "refs" / "main").write_text("abc123")
    for path in ("vit.safetensors", "vit.pth", "models--timm--vit"):
        model = tiny_model(visual={"pretrained": str(tmp_path / path)})
        torch.testing.assert_close(model.visual_encoder.net.pos_embed, source.pos_embed)
    with pytest.raises(VicokdError, match="does not fit"):
        tiny_model(visual={"pretrained": str(tmp_path / "vit.safetensors"),
                           "timm_kwargs": {**kwargs, "embed_dim": 32}})


def test_ast_pretrained_directory_resizes_time_positions(tmp_path: Path) -> None:
    import json

    from safetensors.torch import save_file
    from transformers import ASTConfig, ASTModel

    ast = TINY["audio"]["ast_kwargs"]
    source = ASTModel(ASTConfig(**ast, max_length=64))  # 4 time patches, the model uses 1 (16 rows)
    state = {f"audio_spectrogram_transformer.{k}": v.contiguous() for k, v in source.state_dict().items()}
    state["classifier.dense.weight"] = torch.zeros(3, 16)
    save_file(state, tmp_path / "model.safetensors")
    config = {**ast, "max_length": 64, "model_type": "audio-spectrogram-transformer"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = tiny_model(audio={"pretrained": str(tmp_path), "ast_kwargs": {}})
    loaded = model.audio_encoder.net.model
    torch.testing.assert_close(loaded.layers[0].attention.v_proj.weight, source.layers[0].attention.v_proj.weight)
    grid = source.embeddings.position_embeddings[:, 2:].reshape(1, 8, 4, 16)
    torch.testing.assert_close(loaded.embeddings.position_embeddings[:, 2:], grid[:, :, 1:2].reshape(1, 8, 16))


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"model\.visual\.name"):
        tiny_model(visual={"name": "no_such_model"})
    with pytest.raises(ConfigError, match=r"model\.audio\.ast_kwargs\.max_length"):
        tiny_model(audio={"ast_kwargs": {"max_length": 32}})
    with pytest.raises(ConfigError, match=r"model\.multitsf\.temporal_heads"):
        tiny_model(multitsf={"temporal_heads": 3})
    with pytest.raises(ConfigError, match=r"model\.audio\.chunk_size"):
        tiny_model(audio={"chunk_size": 0})


def test_visual_attention_maps() -> None:
    model = tiny_model().eval()
    maps = model.visual_attention(make_batch(2, 3, 4)["video"])
    assert maps.shape == (2, 3, 4, 2, 2)
    assert (maps >= 0).all() and (maps.sum((-2, -1)) <= 1 + 1e-5).all()


def test_sinusoidal_encoding_any_length() -> None:
    table = sinusoidal_encoding(75, 16)
    assert table.shape == (75, 16)
    torch.testing.assert_close(sinusoidal_encoding(8, 16), table[:8])
    torch.testing.assert_close(table[0, 1::2], torch.ones(8))


# ----------------------------------------------------------------------------------------- CLI


def test_models_cli_lists_costs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--config", str(ROOT / "configs/demo/model.yaml"), "--frames", "8", "--views", "3",
                 "--set", "data.image_size=[64,64]"]) == 0
    text = capsys.readouterr().out
    for name in ("visual encoder", "audio encoder", "backbone multitsf", "teacher multiasl", "student multitrans"):
        assert name in text


def test_model_costs_counts_flops_per_clip() -> None:
    rows = {name: (params, flops) for name, params, flops in model_costs(
        tiny_config(), C, num_views=2, num_frames=4, image_size=(32, 32))}
    assert rows["teacher multitsf"][1] > rows["student multitsf"][1] > rows["visual encoder"][1] > 0
    assert rows["teacher multitsf"][0] == rows["visual encoder"][0] + rows["audio encoder"][0] + \
        rows["cross attention"][0] + rows["backbone multitsf"][0]
