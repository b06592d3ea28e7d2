"""The open readings of the paper as options (sequence head, LD logits, distribution, VC temperature, FD
reduction, student init) and the gradient-share measurement, on tiny random models (seconds each)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vicokd.config import DistillConfig, ModelConfig, load_config, replace
from vicokd.errors import VicokdError
from vicokd.losses import feature_distillation_loss, logit_distillation_loss, two_way_loss, view_consistency_loss
from vicokd.methods import compute_losses, get_method
from vicokd.models import ModelOutput, MultiViewActionModel
from vicokd.training.grad_share import (
    format_shares,
    parameter_groups,
    summarize,
    term_gradient_norms,
)

CONFIGS = Path(__file__).parent.parent / "configs" / "demo"
B, V, T, C = 2, 3, 4, 5
BACKBONES = ("multitrans", "multiasl", "multitsf")


def tiny_model_config(backbone: str, mode: str = "student", sequence_head: str = "backbone") -> ModelConfig:
    config = load_config(CONFIGS / "student.yaml").model
    return replace(config, backbone=backbone, mode=mode, sequence_head=sequence_head,
                   **{"visual.timm_kwargs": {**config.visual.timm_kwargs, "img_size": 16, "depth": 1}})


def video(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, V, T, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def labels() -> torch.Tensor:
    y = torch.zeros(B, C)
    y[0, 1] = y[1, 3] = y[1, 0] = 1
    return y


def frame_head_grad(backbone: str, sequence_head: str) -> torch.Tensor | None:
    """Gradient of L_S alone (what V_S trains with) on the backbone's per-view frame head."""
    torch.manual_seed(0)
    model = MultiViewActionModel(tiny_model_config(backbone, sequence_head=sequence_head), C)
    output = model({"video": video()})
    two_way_loss(output.seq_logits, labels()).backward()
    return model.backbone.frame_head.weight.grad


# ---------------------------------------------------------------- model.sequence_head


@pytest.mark.parametrize("backbone", BACKBONES)
def test_frame_pool_lets_the_sequence_loss_train_the_frame_head(backbone: str) -> None:
    grad = frame_head_grad(backbone, "frame_pool")
    assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize("backbone", BACKBONES)
def test_frame_pool_is_the_time_mean_of_the_fused_frame_logits(backbone: str) -> None:
    model = MultiViewActionModel(tiny_model_config(backbone, sequence_head="frame_pool"), C).eval()
    output = model({"video": video()})
    assert torch.allclose(output.seq_logits, output.frame_logits.mean(dim=1))
    # no unused sequence-head parameters (DDP would need find_unused_parameters for them)
    assert not any(name.startswith(("backbone.seq_head", "backbone.view_encoder", "backbone.attention_head"))
                   for name, _ in model.named_parameters())


def test_backbone_head_of_multitsf_leaves_the_frame_head_without_gradient_under_v_s() -> None:
    """Today's (released) behaviour, documented: MultiTSF's L_S reads the view Transformer, not the frame head."""
    grad = frame_head_grad("multitsf", "backbone")
    assert grad is None or grad.abs().sum() == 0


# ---------------------------------------------------------------- distill options in compute_losses


def fake_output(seed: int) -> ModelOutput:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 2

    return ModelOutput(view_frame_logits=r(B, V, T, C), frame_logits=r(B, T, C), seq_logits=r(B, C),
                       visual=r(B, V, T, 8), audio=r(B, V, T, 8), attn=r(B, V, T, 8), av=r(B, V, T, 8),
                       fusion=r(B, V, T, 8))


def batch() -> dict[str, torch.Tensor]:
    return {"labels": labels(), "frame_labels": labels()[:, None].expand(B, T, C).clone(),
            "person": torch.ones(B, V, T)}


def losses(method: str = "vicokd", **distill: object) -> dict[str, torch.Tensor]:
    return compute_losses(get_method(method), fake_output(0), batch(), DistillConfig(**distill), ModelConfig(),
                          teacher=fake_output(1)).terms


def test_ld_logits_fused_reads_the_fused_frame_logits() -> None:
    student, teacher = fake_output(0), fake_output(1)
    fused = losses(ld_logits="fused", tau=2.0)["ld"]
    assert torch.isclose(fused, logit_distillation_loss(student.frame_logits, teacher.frame_logits, 2.0))
    view = losses(ld_logits="view", tau=2.0)["ld"]
    assert torch.isclose(view, logit_distillation_loss(student.view_frame_logits, teacher.view_frame_logits, 2.0))
    assert not torch.isclose(fused, view)


def test_distribution_sigmoid_uses_bernoulli_ld_and_vc() -> None:
    student, teacher = fake_output(0), fake_output(1)
    terms = losses(distribution="sigmoid")
    expected_ld = logit_distillation_loss(student.view_frame_logits, teacher.view_frame_logits, 1.0, multilabel=True)
    assert torch.isclose(terms["ld"], expected_ld)
    expected_vc = view_consistency_loss(student.view_frame_logits.sigmoid(), torch.ones(B, V, T), multilabel=True)
    assert torch.isclose(terms["vc"], expected_vc)
    # vicokd-ml is ViCoKD with the sigmoid distribution whatever the config says
    ml = losses("vicokd-ml", distribution="softmax")
    assert torch.isclose(ml["ld"], expected_ld) and torch.isclose(ml["vc"], expected_vc)


def test_smaller_vc_tau_raises_vc_on_the_same_logits() -> None:
    values = [losses(vc_tau=tau)["vc"].item() for tau in (1.0, 0.5, 0.25)]
    assert values[0] < values[1] < values[2]
    with pytest.raises(VicokdError, match="vc_tau"):
        losses(vc_tau=0.0)


def test_fd_reduction_mean_is_sum_over_d() -> None:
    student, teacher = fake_output(0), fake_output(1)
    summed, mean = losses(fd_reduction="sum")["fd"], losses(fd_reduction="mean")["fd"]
    assert torch.isclose(mean, summed / 8)
    direct = feature_distillation_loss([student.attn, student.av], [teacher.attn, teacher.av], reduction="mean")
    assert torch.isclose(mean, direct)
    with pytest.raises(ValueError, match="reduction"):
        feature_distillation_loss([student.attn], [teacher.attn], reduction="max")  # type: ignore[arg-type]


def test_methods_cli_shows_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    from vicokd.cli import main

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for field in ("model.sequence_head", "distill.ld_logits", "distill.distribution", "distill.vc_tau",
                  "distill.fd_reduction", "train.grad_share_every"):
        assert field in out
    assert "vicokd-ml" in out and "beyond the paper" in out


# ---------------------------------------------------------------- student init


def test_student_init_copies_every_shared_weight() -> None:
    torch.manual_seed(0)
    teacher = MultiViewActionModel(tiny_model_config("multitsf", mode="teacher"), C)
    torch.manual_seed(1)
    student = MultiViewActionModel(tiny_model_config("multitsf"), C)
    adapter_before = {k: v.clone() for k, v in student.state_dict().items() if k.startswith("adapter.")}
    copied = student.copy_shared_weights(teacher)
    theirs, mine = teacher.state_dict(), student.state_dict()
    assert set(copied) == set(mine) - set(adapter_before)
    assert set(theirs) - set(copied) == {k for k in theirs if k.startswith("audio_encoder.")}
    assert all(torch.equal(mine[k], theirs[k]) for k in copied)
    assert all(torch.equal(mine[k], v) for k, v in adapter_before.items())
    wider = MultiViewActionModel(replace(tiny_model_config("multitsf"), dim=32), C)
    with pytest.raises(VicokdError, match="cannot copy weights"):
        wider.copy_shared_weights(teacher)


@pytest.mark.parametrize("backbone", ["multitsf", "multiasl", "multitrans"])
def test_gated_student_from_the_teacher_is_the_teacher_without_audio_at_step_0(backbone: str) -> None:
    """model.fusion.student_gate: g = 0 at init, so F^AV = F^V, as a teacher whose audio is absent."""
    torch.manual_seed(0)
    teacher = MultiViewActionModel(tiny_model_config(backbone, mode="teacher"), C).eval()
    gated = replace(tiny_model_config(backbone), **{"fusion.student_gate": True})
    student = MultiViewActionModel(gated, C).eval()
    student.copy_shared_weights(teacher)
    frames = video()
    with torch.no_grad():
        silent = teacher({"video": frames, "audio": torch.zeros(B, V, T, 48, 128),
                          "audio_present": torch.zeros(B, V, dtype=torch.bool)})
        out = student({"video": frames})
    torch.testing.assert_close(out.seq_logits, silent.seq_logits)
    torch.testing.assert_close(out.view_frame_logits, silent.view_frame_logits)
    # the gate trains: L_S reaches it through the attention output
    student.train()
    two_way_loss(student({"video": frames}).seq_logits, labels()).backward()
    assert student.attention_gate.grad is not None and student.attention_gate.grad.abs().sum() > 0
    ungated = MultiViewActionModel(tiny_model_config(backbone), C).eval()
    ungated.copy_shared_weights(teacher)
    with torch.no_grad():  # without the gate the random adapter's pseudo-audio moves the outputs
        assert not torch.allclose(ungated({"video": frames}).seq_logits, silent.seq_logits)


# ---------------------------------------------------------------- gradient shares


def test_parameter_groups_cover_every_trainable_parameter_once() -> None:
    model = MultiViewActionModel(tiny_model_config("multiasl"), C)
    groups = parameter_groups(model)
    assert set(groups) == {"visual", "cross_modal", "backbone", "heads"}
    grouped = [id(p) for members in groups.values() for p in members]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    heads = {id(p) for p in groups["heads"]}
    assert id(model.backbone.frame_head.weight) in heads and id(model.backbone.temporal.norm.weight) not in heads


def test_term_gradient_norms_match_a_direct_computation() -> None:
    torch.manual_seed(0)
    model = MultiViewActionModel(tiny_model_config("multitsf", sequence_head="frame_pool"), C)
    output = model({"video": video()})
    terms = {"seq": two_way_loss(output.seq_logits, labels()),
             "half": 0.5 * output.view_frame_logits.square().mean()}
    groups = parameter_groups(model)
    norms = term_gradient_norms(terms, groups)
    for name, value in terms.items():
        model.zero_grad()
        value.backward(retain_graph=True)
        for group, members in groups.items():
            expected = math.sqrt(sum(float(p.grad.square().sum()) for p in members if p.grad is not None))
            assert norms[name][group] == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_summarize_and_format_shares(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,grad/seq/heads,grad/seq/backbone,grad/vc/heads,grad/vc/backbone,val/seq_map\n"
                    "0,0,3.0,4.0,0.0,0.0,\n"    # seq 5, vc 0 -> shares 1, 0
                    "0,5,0.6,0.8,0.0,0.0001,\n"  # seq 1, vc 1e-4
                    "0,9,,,,,50.0\n")            # an evaluation row, not a measurement
    summary = summarize(path)
    assert summary["steps"] == 2
    assert summary["share"]["vc"] == pytest.approx(0.5 * 1e-4 / (1 + 1e-4))
    assert summary["share"]["seq"] + summary["share"]["vc"] == pytest.approx(1.0)
    assert summary["share_by_group"]["heads"]["seq"] == pytest.approx(1.0)
    lines = format_shares(summary)
    assert lines[0].startswith("gradient share: seq 100.0 %") and "2 measured steps" in lines[0]
    assert lines[1].startswith("vc: ") and lines[1].endswith("of the gradient: inert")
    assert summarize(tmp_path / "absent.csv") == {"steps": 0, "share": {}, "share_by_group": {}}
