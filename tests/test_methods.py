"""The method registry: active terms per method and supervision, weights, and clear errors."""

import pytest
import torch

from vicokd.cli import main
from vicokd.config import DistillConfig, ModelConfig
from vicokd.errors import VicokdError
from vicokd.losses import feature_distillation_loss, logit_distillation_loss, two_way_loss
from vicokd.methods import METHODS, compute_losses, get_method
from vicokd.models import ModelOutput

B, V, T, C, D = 2, 3, 5, 4, 8


def fake_output(seed: int, extras: dict | None = None) -> ModelOutput:
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    return ModelOutput(view_frame_logits=r(B, V, T, C), frame_logits=r(B, T, C), seq_logits=r(B, C),
                       visual=r(B, V, T, D), audio=r(B, V, T, D), attn=r(B, V, T, D), av=r(B, V, T, D),
                       fusion=r(B, V, T, D), extras=extras or {})


def batch(person: bool = True) -> dict:
    g = torch.Generator().manual_seed(9)
    out = {"labels": (torch.rand(B, C, generator=g) > 0.5).float(),
           "frame_labels": (torch.rand(B, T, C, generator=g) > 0.5).float()}
    if person:
        out["person"] = torch.rand(B, V, T, generator=g)
    return out


EXPECTED = {
    "teacher": {"frame", "seq"},
    "teacher-vc": {"frame", "seq", "vc"},
    "student": {"frame", "seq"},
    "logitkd": {"frame", "seq", "ld"},
    "modalkd": {"frame", "seq", "modal"},
    "dualkd": {"frame", "seq", "modal", "ld"},
    "cokd": {"frame", "seq", "fd", "ld"},
    "vicokd": {"frame", "seq", "fd", "ld", "vc"},
    "vicokd-no-confw": {"frame", "seq", "fd", "ld", "vc"},
    "vicokd-no-mask": {"frame", "seq", "fd", "ld", "vc"},
    "vicokd-kl": {"frame", "seq", "fd", "ld", "vc"},
    "vicokd-no-fd": {"frame", "seq", "ld", "vc"},
    "vicokd-no-ld": {"frame", "seq", "fd", "vc"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("supervision", ["frame", "sequence"])
def test_active_terms(name, supervision):
    method = get_method(name)
    losses = compute_losses(method, fake_output(0), batch(), DistillConfig(supervision=supervision), ModelConfig(),
                            teacher=fake_output(1))
    expected = set(EXPECTED[name])
    if supervision == "sequence" and method.role == "student":
        expected.discard("frame")  # V_S: sequence labels only
    assert set(losses.terms) == expected
    assert torch.isclose(losses.total, sum(losses.terms.values()))  # all weights 1.0


def test_terms_are_the_losses_on_the_right_tensors():
    student, teacher = fake_output(0), fake_output(1)
    b = batch()
    losses = compute_losses(get_method("cokd"), student, b, DistillConfig(tau=2.0, lambda_seq=0.5), ModelConfig(),
                            teacher=teacher)
    assert torch.isclose(losses.terms["fd"], feature_distillation_loss([student.attn, student.av],
                                                                       [teacher.attn, teacher.av]))
    assert torch.isclose(losses.terms["ld"], logit_distillation_loss(student.view_frame_logits,
                                                                     teacher.view_frame_logits, 2.0))
    assert torch.isclose(losses.terms["frame"], two_way_loss(student.frame_logits.flatten(0, 1),
                                                             b["frame_labels"].flatten(0, 1)))
    expected_total = losses.terms["frame"] + 0.5 * losses.terms["seq"] + losses.terms["fd"] + losses.terms["ld"]
    assert torch.isclose(losses.total, expected_total)


def test_vc_variants_differ():
    values = {name: compute_losses(get_method(name), fake_output(0), batch(), DistillConfig(), ModelConfig(),
                                   teacher=fake_output(1)).terms["vc"]
              for name in ("vicokd", "vicokd-no-confw", "vicokd-no-mask", "vicokd-kl")}
    assert len({round(v.item(), 6) for v in values.values()}) == 4


def test_backbone_auxiliaries():
    mask = torch.zeros(B, T, C)
    mask[:, 0] = 1
    extras = {"cas_top": torch.randn(B, C), "actionness": torch.randn(B, T, 2), "topk_mask": mask,
              "human_logits": torch.randn(B, V, T)}
    losses = compute_losses(get_method("student"), fake_output(0, extras), batch(), DistillConfig(), ModelConfig())
    assert {"cas", "gce", "human"} <= set(losses.terms)
    no_person = compute_losses(get_method("student"), fake_output(0, extras), batch(person=False), DistillConfig(),
                               ModelConfig())
    assert "human" not in no_person.terms


def test_errors():
    with pytest.raises(VicokdError, match="unknown method 'fancykd'"):
        get_method("fancykd")
    with pytest.raises(VicokdError, match="needs a teacher"):
        compute_losses(get_method("vicokd"), fake_output(0), batch(), DistillConfig(), ModelConfig())
    with pytest.raises(VicokdError, match="needs person scores"):
        compute_losses(get_method("vicokd"), fake_output(0), batch(person=False), DistillConfig(), ModelConfig(),
                       teacher=fake_output(1))
    # without masks, no person scores are needed
    compute_losses(get_method("vicokd-no-mask"), fake_output(0), batch(person=False), DistillConfig(),
                   ModelConfig(), teacher=fake_output(1))


def test_methods_cli_lists_every_method(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in METHODS:
        assert f"\n{name} " in f"\n{out}"
    assert "L_F + λ·L_S + L_FD + L_LD + L_VC" in out
    assert main(["methods", "--supervision", "sequence"]) == 0
    assert "λ·L_S + L_FD + L_LD + L_VC" in capsys.readouterr().out
