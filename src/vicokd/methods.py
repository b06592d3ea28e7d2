"""Named training recipes: which weighted loss terms a run optimises (teacher, student, KD methods).

Each :class:`Method` lists its terms; :func:`compute_losses` evaluates them on the model's
:class:`~vicokd.models.ModelOutput` (and the frozen teacher's, when distilling) and returns every
term by name plus their weighted ``total``. Terms (B batch, V views, T frames, C classes):

* ``frame``  L_F  = TwoWay(frame_logits (B·T, C), frame_labels)            (supervision ``frame``)
* ``seq``    λ·L_S = λ·TwoWay(seq_logits (B, C), labels)
* ``cas``    MultiASL: TwoWay(cas_top (B, C), labels)                       (backbone auxiliary)
* ``gce``    MultiASL: GCE of its two actionness heads (B, T, 2) against pseudo-targets: frame t
             is 1 where it is a top-k frame of a class of the clip (backbone auxiliary)
* ``human``  MultiTSF: CE over T of human_logits vs person scores           (when scores are loaded)
* ``fd``     Eq. 7 over the stages F^attn and F^AV                          (teacher detached)
* ``ld``     Eq. 8 on every view's frame logits, temperature τ              (teacher detached)
* ``modal``  ModalKD: Eq. 7 form over F^V and F̂^A vs the teacher's F^V, F^A
* ``vc``     Eq. 10 on softmax(view_frame_logits) with person masks

The supervision (``distill.supervision``: ``frame`` = V_F, ``sequence`` = V_S) decides whether
``frame`` is active; ``seq`` and the backbone auxiliaries are always active. All weights 1.0 as
in the paper (config fields ``distill.weight_*``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from vicokd.config import DistillConfig, ModelConfig
from vicokd.errors import VicokdError
from vicokd.losses import (
    feature_distillation_loss,
    generalized_cross_entropy_with_logits,
    human_presence_loss,
    logit_distillation_loss,
    modal_distillation_loss,
    two_way_loss,
    view_consistency_loss,
)
from vicokd.models import ModelOutput

Divergence = Literal["js", "kl"]


@dataclass(frozen=True)
class ViewConsistency:
    """Options of the VC term (Eq. 9-10) and its ablations."""

    divergence: Divergence = "js"
    confidence_weighting: bool = True
    use_mask: bool = True


@dataclass(frozen=True)
class Method:
    """A named recipe: the role it trains and its distillation / consistency terms."""

    name: str
    summary: str
    role: Literal["teacher", "student"]
    distill: tuple[str, ...] = ()  # subset of ("fd", "ld", "modal")
    vc: ViewConsistency | None = None
    paper: str = ""  # where it appears in the paper

    @property
    def needs_teacher(self) -> bool:
        return bool(self.distill)

    @property
    def needs_person_masks(self) -> bool:
        return self.vc is not None and self.vc.use_mask

    def terms(self, supervision: str) -> list[str]:
        sup = ["frame", "seq"] if supervision == "frame" or self.role == "teacher" else ["seq"]
        return sup + list(self.distill) + (["vc"] if self.vc else [])

    def formula(self, supervision: str = "frame") -> str:
        parts = {"frame": "L_F", "seq": "λ·L_S", "fd": "L_FD", "ld": "L_LD", "modal": "L_MKD"}
        text = [parts[t] for t in self.terms(supervision) if t in parts]
        if self.vc:
            tag = [] if self.vc.divergence == "js" else ["KL"]
            tag += [] if self.vc.confidence_weighting else ["no w"]
            tag += [] if self.vc.use_mask else ["no mask"]
            text.append("L_VC" + (f"[{', '.join(tag)}]" if tag else ""))
        return " + ".join(text) + " (+ backbone auxiliaries)"


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("teacher", "audio-visual teacher, frame labels (AV_F)", "teacher", paper="Table 1 Teacher"),
        Method("teacher-vc", "teacher trained with view-aware consistency added", "teacher",
               vc=ViewConsistency(), paper="Table 3"),
        Method("student", "visual-only student without distillation", "student", paper="Table 1 Student"),
        Method("logitkd", "logit distillation only (Eq. 8)", "student", ("ld",), paper="Table 1 LogitKD"),
        Method("modalkd", "feature KD to the student's visual and pseudo-audio features", "student",
               ("modal",), paper="Table 1 ModalKD"),
        Method("dualkd", "ModalKD features + logit distillation", "student", ("modal", "ld"),
               paper="Table 1 DualKD"),
        Method("cokd", "feature (Eq. 7) + logit (Eq. 8) distillation: ViCoKD without VC", "student",
               ("fd", "ld"), paper="Table 1 CoKD"),
        Method("vicokd", "FD + LD + view-aware consistency (Eq. 7, 8, 10)", "student", ("fd", "ld"),
               ViewConsistency(), paper="Table 1 ViCoKD"),
        Method("vicokd-no-confw", "ViCoKD without the confidence weight w", "student", ("fd", "ld"),
               ViewConsistency(confidence_weighting=False), paper="Table 4 w/o ConfW"),
        Method("vicokd-no-mask", "ViCoKD without person masks (all view pairs, all frames)", "student",
               ("fd", "ld"), ViewConsistency(use_mask=False), paper="Table 4 w/o Mask"),
        Method("vicokd-kl", "ViCoKD with KL(p_i || p_j) instead of JS", "student", ("fd", "ld"),
               ViewConsistency(divergence="kl"), paper="Table 4 JS→KL"),
        Method("vicokd-no-fd", "ViCoKD without feature distillation", "student", ("ld",), ViewConsistency(),
               paper="Table 4 w/o FD"),
        Method("vicokd-no-ld", "ViCoKD without logit distillation", "student", ("fd",), ViewConsistency(),
               paper="Table 4 w/o LD"),
    ]
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise VicokdError(f"distill.method: unknown method {name!r} (known: {', '.join(METHODS)})")
    return METHODS[name]


@dataclass
class LossBreakdown:
    """Weighted total and every unweighted term by name."""

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


def _asl_terms(extras: dict[str, Tensor], labels: Tensor, config: ModelConfig) -> dict[str, Tensor]:
    """MultiASL auxiliaries: two-way on the top-k class activations, GCE on the actionness heads."""
    terms: dict[str, Tensor] = {}
    if "cas_top" in extras:
        terms["cas"] = two_way_loss(extras["cas_top"], labels)
    if "actionness" in extras and "topk_mask" in extras:
        # pseudo-target of frame t: it is among the top-k frames of a class present in the clip
        targets = (extras["topk_mask"] * labels[:, None, :]).amax(dim=-1, keepdim=True)
        terms["gce"] = generalized_cross_entropy_with_logits(
            extras["actionness"], targets.expand_as(extras["actionness"]).detach(), q=config.multiasl.gce_q)
    return terms


def compute_losses(
    method: Method,
    output: ModelOutput,
    batch: dict[str, Any],
    distill: DistillConfig,
    model_config: ModelConfig,
    teacher: ModelOutput | None = None,
    person_threshold: float = 0.5,
) -> LossBreakdown:
    """Evaluate the terms of `method` on `output` (and `teacher`'s when distilling).

    `batch` holds ``frame_labels`` (B, T, C), ``labels`` (B, C) and, when masks or the human head
    need them, ``person`` (B, V, T) scores (mask = score > `person_threshold`).
    """
    terms: dict[str, Tensor] = {}
    weights: dict[str, float] = {}
    active = method.terms(distill.supervision)
    labels = batch["labels"]
    if "frame" in active:
        frames = output.frame_logits
        terms["frame"] = two_way_loss(frames.flatten(0, 1), batch["frame_labels"].flatten(0, 1))
    terms["seq"] = two_way_loss(output.seq_logits, labels)
    weights["seq"] = distill.lambda_seq
    terms.update(_asl_terms(output.extras, labels, model_config))
    if "human_logits" in output.extras and "person" in batch:
        terms["human"] = human_presence_loss(output.extras["human_logits"], batch["person"])
    if method.needs_teacher:
        if teacher is None:
            raise VicokdError(f"method {method.name!r} needs a teacher checkpoint (--teacher)")
        if "fd" in active:
            terms["fd"] = feature_distillation_loss([output.attn, output.av], [teacher.attn, teacher.av])
            weights["fd"] = distill.weight_fd
        if "ld" in active:
            terms["ld"] = logit_distillation_loss(output.view_frame_logits, teacher.view_frame_logits, distill.tau)
            weights["ld"] = distill.weight_ld
        if "modal" in active:
            terms["modal"] = modal_distillation_loss(
                student_visual=output.visual, student_pseudo_audio=output.audio,
                teacher_visual=teacher.visual, teacher_audio=teacher.audio)
            weights["modal"] = distill.weight_fd
    if method.vc is not None:
        if method.vc.use_mask and "person" not in batch:
            raise VicokdError(f"method {method.name!r} needs person scores (make them with `vicokd detect`)")
        probs = torch.softmax(output.view_frame_logits.float(), dim=-1)
        mask = (batch["person"] > person_threshold) if "person" in batch else torch.ones(probs.shape[:3])
        terms["vc"] = view_consistency_loss(
            probs, mask.to(probs.device), divergence=method.vc.divergence,
            confidence_weighting=method.vc.confidence_weighting, detach_weights=distill.detach_confidence,
            use_mask=method.vc.use_mask)
        weights["vc"] = distill.weight_vc
    total = sum(weights.get(name, 1.0) * value for name, value in terms.items())
    return LossBreakdown(total=total, terms=terms)  # type: ignore[arg-type]
