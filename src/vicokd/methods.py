"""Named training recipes: which weighted loss terms a run optimises (teacher, student, KD methods).

Each :class:`Method` lists its terms; :func:`compute_losses` loops over the table :data:`TERMS`
and evaluates the active ones on the model's :class:`~vicokd.models.ModelOutput` (and the
frozen teacher's, when distilling), returning every term by name plus their weighted ``total``.
Terms (B batch, V views, T frames, C classes):

* ``frame``  L_F  = TwoWay(frame_logits (B·T, C), frame_labels)            (supervision ``frame``)
* ``seq``    λ·L_S = λ·TwoWay(seq_logits (B, C), labels)
* ``cas``    MultiASL: TwoWay(cas_top (B, C), labels)                       (backbone auxiliary)
* ``gce``    MultiASL: GCE of its two actionness heads (B, T, 2) against pseudo-targets: frame t
             is 1 where it is a top-k frame of a class of the clip (backbone auxiliary)
* ``human``  MultiTSF: CE over T of human_logits vs person scores           (when scores are loaded)
* ``fd``     Eq. 7 over the stages F^attn and F^AV                          (teacher detached)
* ``ld``     Eq. 8 on the frame logits, temperature τ                       (teacher detached)
* ``modal``  ModalKD: Eq. 7 form over F^V and F̂^A vs the teacher's F^V, F^A
* ``vc``     Eq. 10 on the per-view frame probabilities with person masks

The supervision (``distill.supervision``: ``frame`` = V_F, ``sequence`` = V_S) decides whether
``frame`` is active; ``seq`` and the backbone auxiliaries are always active. All weights 1.0 as
in the paper (config fields ``distill.weight_*``).

What the paper leaves open is a config field (``vicokd methods`` lists them, :data:`OPTIONS`):

* ``distill.ld_logits``: Eq. 8 writes ``p_t`` without a view index. ``view`` = LD on every view's
  frame logits (B, V, T, C); ``fused`` = on the view-fused ``frame_logits`` (B, T, C).
* ``distill.distribution``: how LD and VC form ``p``. ``softmax`` over classes (the paper's
  notation); ``sigmoid`` = a Bernoulli per class, KL / JS averaged over classes (multi-label).
  A softmax of two-way-loss logits is nearly flat, so JS ≈ 0 and VC's weight ≈ 1/C².
* ``distill.vc_tau``: VC's ``p_{n,t}`` = softmax or sigmoid of ``view_frame_logits / vc_tau``.
* ``distill.fd_reduction``: Eq. 7's ‖·‖²₂ ``sum``s over D; ``mean`` divides by D.
* ``model.sequence_head``: each backbone's own sequence head, or ``frame_pool`` (see
  :class:`vicokd.config.ModelConfig`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor

from vicokd.batch import Batch
from vicokd.config import Config, DistillConfig, ModelConfig
from vicokd.data.person_scores import person_mask
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
from vicokd.metrics import frame_rows
from vicokd.models import ModelOutput, MultiViewActionModel

Divergence = Literal["js", "kl"]
Distribution = Literal["softmax", "sigmoid"]


@dataclass(frozen=True)
class ViewConsistency:
    """Options of the VC term (Eq. 9-10) and its ablations."""

    divergence: Divergence = "js"
    confidence_weighting: bool = True
    use_mask: bool = True


@dataclass(frozen=True)
class Method:
    """A named recipe: the role it trains, its distillation / consistency terms, its display label.

    ``distribution`` fixes ``distill.distribution`` for this method (None = the config's value).
    ``paper`` says where it appears in the paper; an empty string marks a method beyond the paper.
    """

    name: str
    label: str  # row label in the results tables
    summary: str
    role: Literal["teacher", "student"]
    distill: tuple[str, ...] = ()  # subset of ("fd", "ld", "modal")
    vc: ViewConsistency | None = None
    paper: str = ""
    distribution: Distribution | None = None

    @property
    def needs_teacher(self) -> bool:
        return bool(self.distill)

    @property
    def needs_person_masks(self) -> bool:
        return self.vc is not None and self.vc.use_mask

    @property
    def beyond_paper(self) -> bool:
        return not self.paper

    def distill_config(self, distill: DistillConfig) -> DistillConfig:
        """`distill` with this method's fixed ``distribution`` (the run's config.yaml records it)."""
        if self.distribution is None or distill.distribution == self.distribution:
            return distill
        return replace(distill, distribution=self.distribution)

    def resolve(self, config: Config) -> Config:
        """The config a run of this method trains with: ``model.mode`` = its role, and its fixed
        ``distill.distribution`` when it has one (never applied behind the config's back)."""
        return replace(config, model=replace(config.model, mode=self.role), distill=self.distill_config(config.distill))

    def terms(self, supervision: str) -> list[str]:
        sup = ["frame", "seq"] if supervision == "frame" or self.role == "teacher" else ["seq"]
        return sup + list(self.distill) + (["vc"] if self.vc else [])

    def formula(self, supervision: str = "frame") -> str:
        symbols = {term.name: term.symbol for term in TERMS}
        text = [symbols[t] for t in self.terms(supervision)]
        tags = []
        if self.vc:
            tags += [] if self.vc.divergence == "js" else ["KL"]
            tags += [] if self.vc.confidence_weighting else ["no w"]
            tags += [] if self.vc.use_mask else ["no mask"]
        tags += [f"{self.distribution} p"] if self.distribution else []
        if tags:
            text[-1] += f"[{', '.join(tags)}]"
        return " + ".join(text) + " (+ backbone auxiliaries)"


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("teacher", "Teacher", "audio-visual teacher, frame labels (AV_F)", "teacher",
               paper="Table 1 Teacher"),
        Method("teacher-vc", "Teacher + VC", "teacher trained with view-aware consistency added", "teacher",
               vc=ViewConsistency(), paper="Table 3"),
        Method("student", "Student", "visual-only student without distillation", "student",
               paper="Table 1 Student"),
        Method("logitkd", "LogitKD", "logit distillation only (Eq. 8)", "student", ("ld",),
               paper="Table 1 LogitKD"),
        Method("modalkd", "ModalKD", "feature KD to the student's visual and pseudo-audio features", "student",
               ("modal",), paper="Table 1 ModalKD"),
        Method("dualkd", "DualKD", "ModalKD features + logit distillation", "student", ("modal", "ld"),
               paper="Table 1 DualKD"),
        Method("cokd", "CoKD", "feature (Eq. 7) + logit (Eq. 8) distillation: ViCoKD without VC", "student",
               ("fd", "ld"), paper="Table 1 CoKD"),
        Method("vicokd", "ViCoKD", "FD + LD + view-aware consistency (Eq. 7, 8, 10)", "student", ("fd", "ld"),
               ViewConsistency(), paper="Table 1 ViCoKD"),
        Method("vicokd-ml", "ViCoKD-ML (beyond the paper)",
               "ViCoKD with per-class Bernoulli distributions in LD and VC (distill.distribution: sigmoid)",
               "student", ("fd", "ld"), ViewConsistency(), distribution="sigmoid"),
        Method("vicokd-no-confw", "w/o ConfW", "ViCoKD without the confidence weight w", "student", ("fd", "ld"),
               ViewConsistency(confidence_weighting=False), paper="Table 4 w/o ConfW"),
        Method("vicokd-no-mask", "w/o Mask", "ViCoKD without person masks (all view pairs, all frames)",
               "student", ("fd", "ld"), ViewConsistency(use_mask=False), paper="Table 4 w/o Mask"),
        Method("vicokd-kl", "JS→KL", "ViCoKD with KL(p_i || p_j) instead of JS", "student", ("fd", "ld"),
               ViewConsistency(divergence="kl"), paper="Table 4 JS→KL"),
        Method("vicokd-no-fd", "w/o FD", "ViCoKD without feature distillation", "student", ("ld",),
               ViewConsistency(), paper="Table 4 w/o FD"),
        Method("vicokd-no-ld", "w/o LD", "ViCoKD without logit distillation", "student", ("fd",),
               ViewConsistency(), paper="Table 4 w/o LD"),
    ]
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise VicokdError(f"distill.method: unknown method {name!r} (known: {', '.join(METHODS)})")
    return METHODS[name]


def method_label(name: str) -> str:
    """The display label of a method (its name when it is not a known method)."""
    return METHODS[name].label if name in METHODS else name


@dataclass(frozen=True)
class Option:
    """A choice the paper leaves open: its config field, the values it takes, what each means."""

    field: str
    choices: str
    meaning: str


OPTIONS: tuple[Option, ...] = (
    Option("model.sequence_head", "backbone | frame_pool",
           "seq_logits from each backbone's own head, or mean over time of the view-fused frame logits"),
    Option("distill.ld_logits", "view | fused", "LD on every view's frame logits, or on the fused frame logits"),
    Option("distill.distribution", "softmax | sigmoid",
           "LD and VC distributions: softmax over classes, or a Bernoulli per class (multi-label)"),
    Option("distill.vc_tau", "> 0", "temperature of the logits VC turns into probabilities"),
    Option("distill.fd_reduction", "sum | mean", "Eq. 7's squared L2 summed over D (to the letter), or averaged"),
    Option("distill.tau", "> 0", "temperature of LD (Eq. 8)"),
    Option("distill.detach_confidence", "true | false", "VC's confidence weight w is a constant for the gradient"),
    Option("distill.student_init", "scratch | teacher", "the student starts from its own init or the teacher's"),
    Option("train.grad_share_every", "K >= 0", "log each term's gradient norm per parameter group every K steps"),
)


@dataclass
class LossBreakdown:
    """Weighted total, every unweighted term by name, and the weight of each."""

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)

    def weighted(self) -> dict[str, Tensor]:
        """Each term times its weight: the summands of ``total``."""
        return {name: self.weights.get(name, 1.0) * value for name, value in self.terms.items()}


@dataclass(frozen=True)
class TermInputs:
    """Everything a term may read: the method, both outputs, the batch and the options."""

    method: Method
    output: ModelOutput
    batch: Batch
    distill: DistillConfig
    model_config: ModelConfig
    teacher: ModelOutput | None
    person_threshold: float

    @property
    def multilabel(self) -> bool:
        return self.distill.distribution == "sigmoid"


def _frame(x: TermInputs) -> Tensor:
    return two_way_loss(frame_rows(x.output.frame_logits), frame_rows(x.batch["frame_labels"]))


def _seq(x: TermInputs) -> Tensor:
    return two_way_loss(x.output.seq_logits, x.batch["labels"])


def _cas(x: TermInputs) -> Tensor | None:
    """MultiASL: two-way loss on the top-k class activations."""
    cas_top = x.output.extras.get("cas_top")
    return None if cas_top is None else two_way_loss(cas_top, x.batch["labels"])


def _gce(x: TermInputs) -> Tensor | None:
    """MultiASL: GCE on the actionness heads; frame t is 1 when it is top-k for a class of the clip."""
    extras = x.output.extras
    if "actionness" not in extras or "topk_mask" not in extras:
        return None
    targets = (extras["topk_mask"] * x.batch["labels"][:, None, :]).amax(dim=-1, keepdim=True)
    return generalized_cross_entropy_with_logits(
        extras["actionness"], targets.expand_as(extras["actionness"]).detach(), q=x.model_config.multiasl.gce_q)


def _human(x: TermInputs) -> Tensor | None:
    if "human_logits" not in x.output.extras or "person" not in x.batch:
        return None
    return human_presence_loss(x.output.extras["human_logits"], x.batch["person"])


def _teacher(x: TermInputs) -> ModelOutput:
    if x.teacher is None:
        raise VicokdError(f"method {x.method.name!r} needs a teacher checkpoint (--teacher)")
    return x.teacher


def _fd(x: TermInputs) -> Tensor:
    teacher = _teacher(x)
    return feature_distillation_loss([x.output.attn, x.output.av], [teacher.attn, teacher.av],
                                     reduction=x.distill.fd_reduction)


def _ld(x: TermInputs) -> Tensor:
    teacher = _teacher(x)
    if x.distill.ld_logits == "fused":
        return logit_distillation_loss(x.output.frame_logits, teacher.frame_logits, x.distill.tau,
                                       multilabel=x.multilabel)
    return logit_distillation_loss(x.output.view_frame_logits, teacher.view_frame_logits, x.distill.tau,
                                   multilabel=x.multilabel)


def _modal(x: TermInputs) -> Tensor:
    teacher = _teacher(x)
    return modal_distillation_loss(student_visual=x.output.visual, student_pseudo_audio=x.output.audio,
                                   teacher_visual=teacher.visual, teacher_audio=teacher.audio)


def vc_probabilities(view_frame_logits: Tensor, distill: DistillConfig) -> Tensor:
    """p of VC (B, V, T, C) from view frame logits at temperature τ_VC: ``softmax(z / τ)`` over
    classes, or ``σ(z / τ)`` per class with ``distill.distribution: sigmoid``."""
    logits = view_frame_logits.float() / distill.vc_tau
    return logits.sigmoid() if distill.distribution == "sigmoid" else logits.softmax(dim=-1)


def _vc(x: TermInputs) -> Tensor:
    vc = x.method.vc
    assert vc is not None
    if vc.use_mask and "person" not in x.batch:
        raise VicokdError(f"method {x.method.name!r} needs person scores (make them with `vicokd detect`)")
    if x.distill.vc_tau <= 0:
        raise VicokdError(f"distill.vc_tau: must be > 0, got {x.distill.vc_tau}")
    probs = vc_probabilities(x.output.view_frame_logits, x.distill)
    person = x.batch.get("person")
    mask = person_mask(person, x.person_threshold) if person is not None else torch.ones(probs.shape[:3])
    return view_consistency_loss(probs, mask.to(probs.device), divergence=vc.divergence,
                                 confidence_weighting=vc.confidence_weighting,
                                 detach_weights=x.distill.detach_confidence, use_mask=vc.use_mask,
                                 multilabel=x.multilabel)


@dataclass(frozen=True)
class Term:
    """One loss term: its key, formula symbol, weight field and how it is computed.

    ``kind``: ``method`` terms run when the method lists them (:meth:`Method.terms`);
    ``auxiliary`` terms run whenever the backbone outputs what they read (``compute`` returns
    None otherwise). ``weight`` names the :class:`~vicokd.config.DistillConfig` field that scales
    it (None = 1.0).
    """

    name: str
    symbol: str
    kind: Literal["method", "auxiliary"]
    compute: Callable[[TermInputs], Tensor | None]
    weight: str | None = None


TERMS: tuple[Term, ...] = (
    Term("frame", "L_F", "method", _frame),
    Term("seq", "λ·L_S", "method", _seq, "lambda_seq"),
    Term("cas", "L_CAS", "auxiliary", _cas),
    Term("gce", "L_GCE", "auxiliary", _gce),
    Term("human", "L_human", "auxiliary", _human),
    Term("fd", "L_FD", "method", _fd, "weight_fd"),
    Term("ld", "L_LD", "method", _ld, "weight_ld"),
    Term("modal", "L_MKD", "method", _modal, "weight_fd"),
    Term("vc", "L_VC", "method", _vc, "weight_vc"),
)


def compute_losses(
    method: Method,
    output: ModelOutput,
    batch: Batch,
    distill: DistillConfig,
    model_config: ModelConfig,
    teacher: ModelOutput | None = None,
    person_threshold: float = 0.5,
) -> LossBreakdown:
    """Evaluate the terms of `method` on `output` (and `teacher`'s when distilling).

    `batch` holds ``frame_labels`` (B, T, C), ``labels`` (B, C) and, when masks or the human head
    need them, ``person`` (B, V, T) scores (mask = score > `person_threshold`).
    """
    distill = method.distill_config(distill)
    inputs = TermInputs(method, output, batch, distill, model_config, teacher, person_threshold)
    if method.needs_teacher:
        _teacher(inputs)
    active = set(method.terms(distill.supervision))
    breakdown = LossBreakdown(total=torch.zeros(()))
    for term in TERMS:
        if term.kind == "method" and term.name not in active:
            continue
        value = term.compute(inputs)
        if value is None:
            continue
        breakdown.terms[term.name] = value
        breakdown.weights[term.name] = getattr(distill, term.weight) if term.weight else 1.0
    breakdown.total = sum(breakdown.weighted().values())  # type: ignore[assignment]
    return breakdown


def batch_objective(method: Method, model: MultiViewActionModel, teacher: MultiViewActionModel | None,
                    batch: Batch, config: Config) -> LossBreakdown:
    """The training objective of one batch, for the training module and the benchmarks alike.

    The model runs on `batch` (uint8 video is normalised inside it); the frozen `teacher`, when
    given, runs in eval mode without gradients on the same batch; :func:`compute_losses` gives
    the terms of `method` and their weighted sum.
    """
    output = model(batch)
    teacher_output = None
    if teacher is not None:
        if teacher.training:  # set once: a mode switch walks every submodule (~2 ms a step)
            teacher.eval()
        with torch.no_grad():
            teacher_output = teacher(batch)
    return compute_losses(method, output, batch, config.distill, config.model, teacher_output,
                          config.data.person_threshold)
